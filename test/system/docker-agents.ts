/**
 * Two real agents on one private dockerd, as the lifecycle suites and benches use them: host-a
 * discovers the engine's containers, host-b (`--discovery none`) joined to it stands for every
 * other host. Both run in this process with the `lan` profile, gossip over UDP+TCP on
 * 127.0.0.1. A `StatusLog` records every status host-b sees for host-a's instances, with the
 * wall time, so a test can order what the other host saw against what Docker did.
 *
 * @example
 *   const h = await dockerAgents(t, d)
 *   const log = new StatusLog(t, h.b)
 *   await d.cli(['stop', 'web'])
 *   log.first(id, (s) => s.status === 'draining')   // { at, status: 'draining', reason: 'stopping' }
 */
import { Agent } from '../../src/agent/agent.js'
import { parseAgentConfig } from '../../src/agent/config.js'
import { silentLogger } from '../../src/log.js'
import { liveRecords, takesTraffic, type ServiceRecord } from '../../src/registry/types.js'
import { waitFor, type Dockerd } from './dockerd.js'
import type Dockerode from 'dockerode'

export interface DockerAgents {
  /** Discovers the engine's containers. */
  a: Agent
  /** Another host: no discovery of its own, joined to host-a. */
  b: Agent
}

interface TestLike {
  teardown(fn: () => unknown): void
}

/** Starts host-a (`--discovery docker` on `d`, plus `extraA`) and host-b joined to it; both stopped at teardown. */
export async function dockerAgents(
  t: TestLike,
  d: Pick<Dockerd, 'host'>,
  o: { extraA?: string[]; extraB?: string[] } = {},
): Promise<DockerAgents> {
  const common = ['--cluster', 'lifecycle', '--profile', 'lan', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0']
  const a = new Agent(
    parseAgentConfig(
      ['--node', 'host-a', ...common, '--dns', 'off', '--discovery', 'docker', '--docker-host', d.host, ...(o.extraA ?? [])],
      {},
    ),
    { logger: silentLogger() },
  )
  t.teardown(() => a.stop({ leave: false }))
  await a.start()
  const b = new Agent(
    parseAgentConfig(
      ['--node', 'host-b', ...common, '--dns', 'off', '--discovery', 'none', '--join', `127.0.0.1:${a.bound.gossip}`, ...(o.extraB ?? [])],
      {},
    ),
    { logger: silentLogger() },
  )
  t.teardown(() => b.stop({ leave: false }))
  await b.start()
  await waitFor(() => b.members().some((m) => m.name === 'host-a' && m.state === 'alive') && b.isReady(), 20_000, 'host-b to join host-a')
  return { a, b }
}

/** One status an agent held for an instance, from the moment it held it (epoch ms). */
export interface StatusAt {
  at: number
  /** `gone` once the record is no longer live (tombstoned or its host down). */
  status: ServiceRecord['status'] | 'gone'
  reason?: string
}

/** Every status change `agent` sees for the instances of `host`, in order, per instance id. */
export class StatusLog {
  private readonly byId = new Map<string, StatusAt[]>()

  /** Follows `agent` until `t`'s teardown. */
  constructor(
    t: TestLike,
    private readonly agent: Agent,
    private readonly host = 'host-a',
  ) {
    const unsubscribe = agent.view().subscribe(() => this.sample())
    t.teardown(unsubscribe)
    this.sample()
  }

  private sample(): void {
    const at = Date.now()
    const live = new Map(liveRecords(this.agent.view().snapshot()).flatMap((r) => (r.host === this.host ? [[r.id, r] as const] : [])))
    for (const [id, r] of live)
      this.note(id, {
        at,
        status: r.status,
        ...(r.reason !== undefined ? { reason: r.reason } : {}),
      })
    for (const id of this.byId.keys()) if (!live.has(id)) this.note(id, { at, status: 'gone' })
  }

  private note(id: string, s: StatusAt): void {
    let list = this.byId.get(id)
    if (!list) this.byId.set(id, (list = []))
    const last = list[list.length - 1]
    if (last && last.status === s.status && last.reason === s.reason) return
    list.push(s)
  }

  /** What the agent saw for `id`, in order. */
  of(id: string): StatusAt[] {
    return this.byId.get(id) ?? []
  }

  /** The first status of `id` (at or after `since`) that `pred` accepts. */
  first(id: string, pred: (s: StatusAt) => boolean, since = 0): StatusAt | undefined {
    return this.of(id).find((s) => s.at >= since && pred(s))
  }

  /** Whether the instance takes new traffic now. */
  serving(id: string): boolean {
    const last = this.of(id).at(-1)
    return last !== undefined && last.status !== 'gone' && takesTraffic(last.status)
  }
}

/** Epoch ms of each Docker event `action` per container id (full), from the engine's own stream. */
export async function dockerEvents(t: TestLike, docker: Dockerode) {
  const seen: Array<{ id: string; action: string; at: number }> = []
  const stream = (await docker.getEvents({ filters: JSON.stringify({ type: ['container'] }) })) as NodeJS.ReadableStream & {
    destroy(): void
  }
  let buf = ''
  stream.on('data', (c: Buffer) => {
    buf += c.toString()
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim()
      buf = buf.slice(nl + 1)
      if (!line) continue
      const e = JSON.parse(line) as { id?: string; Action?: string; Actor?: { ID?: string } }
      seen.push({ id: e.Actor?.ID ?? e.id ?? '', action: (e.Action ?? '').split(':')[0]!, at: Date.now() })
    }
  })
  stream.on('error', () => {})
  t.teardown(() => stream.destroy())
  return { at: (id: string, action: string) => seen.find((e) => e.id === id && e.action === action)?.at }
}
