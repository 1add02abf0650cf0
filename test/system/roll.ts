/**
 * A rolling restart under load on a private dockerd, as the issue 14 suites and the roll
 * benchmark run it: replicas of a gRPC echo server in containers (test/lib/echo-server.mjs,
 * node and the checkout's node_modules mounted read-only into the imported busybox image),
 * discovered by host-a (`--docker-network bridge`: the containers' bridge addresses, on this
 * machine) with a Tcp check; a grpc-js-xds client that declares the bridge network (issue 13:
 * a client on the host network is sent host bindings only) on host-b's xDS calling them at `rate`
 * calls/s; each replica replaced in turn, `rounds` times: `docker stop` the old one, `docker
 * run` a new one, wait until host-b serves it and one more second, go on.
 *
 * @example
 *   const r = await rollingRestart(t, d, { onTerm: 'linger', rounds: 5 })
 *   t.equal(r.failed, 0)
 */
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { interfaceIpv4 } from '../../src/address.js'
import { takesTraffic } from '../../src/registry/types.js'
import { assertLocalRoute } from '../lib/route.js'
import type { Test } from 'tap'
import { pct } from '../../bench/stats.js'
import { startXdsClient, type LoadCall, type XdsTestClient } from '../lib/xds-clients.js'
import { dockerAgents, dockerEvents, StatusLog } from './docker-agents.js'
import { IMAGE, initSwarm, waitFor, type Dockerd } from './dockerd.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const TARGET = 'xds:///echo:10001'

type DockerEventLog = Awaited<ReturnType<typeof dockerEvents>>

/** The echo server's files, mounted read-only into a container: [host path, container path] (see rollingRestart). */
const ECHO_MOUNTS: Array<[string, string]> = [
  // node and its shared libraries (ldd: /lib/x86_64-linux-gnu, /lib64's loader) and the checkout's modules.
  [process.execPath, '/usr/bin/node'],
  ['/usr/lib', '/lib'],
  ['/usr/lib64', '/lib64'],
  [join(ROOT, 'node_modules'), '/app/node_modules'],
  [join(ROOT, 'test/lib/echo-server.mjs'), '/app/lib/echo-server.mjs'],
]
const ECHO_COMMAND = ['/usr/bin/node', '/app/lib/echo-server.mjs', '50051']

/** What a replica does on SIGTERM (test/lib/echo-server.mjs). */
export type OnTerm = 'linger' | 'refuse' | 'abrupt'

export interface RollOptions {
  onTerm: OnTerm
  /** Times every replica is replaced. */
  rounds: number
  /** 3. */
  replicas?: number
  /** Calls per second (200). */
  rate?: number
  /** Label the replicas `shoal.idempotent=true` (false). */
  idempotent?: boolean
  /** host-a's `--drain-on-stop` (true). */
  drainOnStop?: boolean
  /**
   * How long an `onTerm: 'linger'` replica keeps serving after SIGTERM (ECHO_LINGER_MS; 1000).
   * It bounds the time from the stop signal to the client's routing leaving the replica (the
   * kill event, the drain, gossip to the client's agent, its push), which the suites give 2 s:
   * beside stress-ng --cpu 2 one Swarm stop took over 1 s (51 calls of 22,957 failed).
   */
  lingerMs?: number
}

export interface RollResult {
  calls: number
  failed: number
  /** Failed calls per gRPC status name. */
  failures: Record<string, number>
  /** Per replaced replica: ms from its SIGTERM (Docker's kill event) to host-b no longer routing it (draining, or gone). */
  sigtermToOut: number[]
  /** Per new replica: ms from its first passing check (alive on host-a) to the end of the first call it answered. */
  checkToFirstCall: number[]
  /** New replicas that answered no call at all. */
  neverCalled: string[]
  /** Wall time of the roll under load (ms). */
  durationMs: number
  /** The calls that failed, and each replica's start and Docker kill event (epoch ms), for a failure's story. */
  failedCalls: LoadCall[]
  replicas: Array<{ id: string; ran: number; kill?: number; ip?: string; onB: Array<{ at: number; status: string }> }>
}

interface TestLike {
  teardown(fn: () => unknown): void
}

/** Run one rolling restart; everything it starts is stopped at `t`'s teardown. */
export async function rollingRestart(t: TestLike, d: Dockerd, o: RollOptions): Promise<RollResult> {
  const replicas = o.replicas ?? 3
  const events = await dockerEvents(t, d.docker)
  const extraA = ['--docker-network', 'bridge', ...(o.drainOnStop === false ? ['--drain-on-stop', 'false'] : [])]
  const h = await dockerAgents(t, d, { extraA })
  const logA = new StatusLog(t, h.a)
  const logB = new StatusLog(t, h.b)

  let n = 0
  const ran: Array<{ full: string; id: string; ran: number; ip?: string }> = []
  const run = async (): Promise<{ name: string; full: string; id: string }> => {
    const name = `echo-${++n}`
    const at = Date.now()
    const full = await d.cli([
      'run',
      '-d',
      '--name',
      name,
      ...ECHO_MOUNTS.flatMap(([from, to]) => ['-v', `${from}:${to}:ro`]),
      '-e',
      `ECHO_ON_TERM=${o.onTerm}`,
      '-e',
      `ECHO_LINGER_MS=${o.lingerMs ?? 1000}`,
      '-l',
      'ServiceName=echo',
      '-l',
      'ServicePort_50051=10001',
      '-l',
      'ProxyMode=grpc',
      '-l',
      'HealthCheck=Tcp',
      '-l',
      'HealthCheckArgs={{ host }}:50051',
      ...(o.idempotent ? ['-l', 'shoal.idempotent=true'] : []),
      IMAGE,
      ...ECHO_COMMAND,
    ])
    // Its address, for a failure's story: Docker hands a freed address to the next container.
    const ip = (await d.docker.getContainer(full).inspect()).NetworkSettings.Networks.bridge?.IPAddress
    ran.push({ full, id: full.slice(0, 12), ran: at, ip })
    return { name, full, id: full.slice(0, 12) }
  }
  const servedOnB = (id: string) => waitFor(() => logB.serving(id), 60_000, `host-b to serve replica ${id}`)

  const current: Array<{ name: string; full: string; id: string }> = []
  for (let k = 0; k < replicas; k++) current.push(await run())
  for (const r of current) await servedOnB(r.id)

  // The replicas publish no port: the client declares the bridge network (node metadata
  // shoal.network, README "Addresses per client") to be sent their bridge IPs, which this host reaches.
  const client = await startXdsClient(t, 'grpc-js', { nodeId: 'roll', xdsAddress: `127.0.0.1:${h.b.bound.xds}`, network: 'bridge' })
  await reachEvery(client, current, 'the client never reached every replica')

  const started = Date.now()
  await client.startLoad(TARGET, o.rate ?? 200)
  const stopped: Array<{ full: string; id: string }> = []
  const fresh: string[] = []
  let results: LoadCall[]
  try {
    for (let round = 0; round < o.rounds; round++) {
      for (let k = 0; k < replicas; k++) {
        const old = current[k]!
        await d.cli(['stop', old.name])
        stopped.push(old)
        await d.cli(['rm', old.name])
        const next = await run()
        current[k] = next
        fresh.push(next.id)
        await servedOnB(next.id)
        await new Promise((r) => setTimeout(r, 1000))
      }
    }
  } finally {
    results = await client.stopLoad()
  }
  return summarize({
    results,
    durationMs: Date.now() - started,
    stopped,
    fresh,
    events,
    logA,
    logB,
    ran,
  })
}

/** Call TARGET (1 call/s) until every one of `replicas` has answered, for 60 s; else throws `failure`, naming who answered. */
async function reachEvery(client: XdsTestClient, replicas: Array<{ id: string }>, failure: string): Promise<void> {
  const seen = new Set<string>()
  const all = await client.until(
    TARGET,
    (w) => {
      if (w) seen.add(w)
      return replicas.every((r) => seen.has(r.id))
    },
    1,
    60_000,
  )
  if (all === null) throw new Error(`${failure} (answered: ${[...seen].join(', ') || 'none'})`)
}

/**
 * What the roll suites check of a roll (issue 14): calls were made, none failed (else the story of
 * each failure: every instance's start and kill, every failed call, in ms from the first start),
 * `stopped` instances left host-b's routing, and every new one answered calls soon after its
 * first passing check. Its figures go in a comment.
 */
export function assertRoll(
  t: Pick<Test, 'ok' | 'equal' | 'same' | 'comment'>,
  r: RollResult,
  o: { stopped: number; unit: 'replica' | 'task' },
): void {
  t.comment(
    `${r.calls} calls in ${r.durationMs} ms; SIGTERM to out of host-b's routing p50 ${pct(r.sigtermToOut, 50)} ms, ` +
      `p99 ${pct(r.sigtermToOut, 99)} ms; first passing check to first call p50 ${pct(r.checkToFirstCall, 50)} ms`,
  )
  t.ok(r.calls >= 1000, `calls were made under the roll (${r.calls})`)
  t.equal(r.failed, 0, `no call failed (${JSON.stringify(r.failures)})`)
  if (r.failed) {
    const t0 = Math.min(...r.replicas.map((x) => x.ran))
    t.comment(
      r.replicas
        .map(
          (x) =>
            `${o.unit} ${x.id}${x.ip ? ` at ${x.ip}` : ''} ran +${x.ran - t0} kill ${x.kill ? `+${x.kill - t0}` : '-'}; ` +
            `host-b: ${x.onB.map((s) => `${s.status} +${s.at - t0}`).join(', ')}`,
        )
        .join('\n'),
    )
    t.comment(r.failedCalls.map((c) => `call +${c.at - t0}..+${c.end - t0}: ${c.ok ? '' : `${c.code} ${c.error}`}`).join('\n'))
  }
  t.equal(r.sigtermToOut.length, o.stopped, `every ${o.unit} stopped left host-b's routing, from its kill event`)
  t.same(r.neverCalled, [], `every new ${o.unit} answered calls`)
  // The 1 s target is the benchmark's (bench/docker-roll.ts, p50 / p99 in the README): on a loaded
  // 2-core machine a tail beyond it says nothing (beside stress-ng one replica took 5.5 s). This
  // bound catches an instance left waiting for a periodic repair (a Docker resync, a push-pull:
  // 30 s and more), whatever the load.
  t.ok(
    Math.max(...r.checkToFirstCall) <= 15_000,
    `each soon after its first passing check (p50 ${pct(r.checkToFirstCall, 50)} ms, all: ${r.checkToFirstCall.join(', ')} ms)`,
  )
}

/** What a roll measured, from its calls, the replicas it stopped and started, Docker's events and both agents' status logs. */
function summarize(r: {
  results: LoadCall[]
  durationMs: number
  /** Replicas stopped under load (full container id, short id). */
  stopped: Array<{ full: string; id: string }>
  /** Short ids of the replicas started under load. */
  fresh: string[]
  events: DockerEventLog
  logA: StatusLog
  logB: StatusLog
  /** Every replica, with the epoch ms it was started (and its address when known). */
  ran: Array<{ full: string; id: string; ran: number; ip?: string }>
}): RollResult {
  const { results, events, logA, logB } = r
  const failures: Record<string, number> = {}
  for (const c of results) if (!c.ok) failures[c.code] = (failures[c.code] ?? 0) + 1
  const sigtermToOut = r.stopped.flatMap((s) => {
    const kill = events.at(s.full, 'kill')
    const out = kill === undefined ? undefined : logB.first(s.id, (x) => x.status === 'gone' || !takesTraffic(x.status), kill)
    return kill !== undefined && out ? [out.at - kill] : []
  })
  const checkToFirstCall: number[] = []
  const neverCalled: string[] = []
  for (const id of r.fresh) {
    const alive = logA.first(id, (x) => x.status === 'alive')
    const first = results.filter((c) => c.ok && c.who === id).reduce((m, c) => Math.min(m, c.end), Infinity)
    if (!alive || first === Infinity) neverCalled.push(id)
    else checkToFirstCall.push(first - alive.at)
  }
  return {
    calls: results.length,
    failed: results.filter((c) => !c.ok).length,
    failures,
    sigtermToOut,
    checkToFirstCall,
    neverCalled,
    durationMs: r.durationMs,
    failedCalls: results.filter((c) => !c.ok),
    replicas: r.ran.map((x) => ({ id: x.id, ran: x.ran, kill: events.at(x.full, 'kill'), ip: x.ip, onB: logB.of(x.id) })),
  }
}

/** The attachable overlay network of a Swarm roll. */
export const SWARM_NETWORK = 'shoal-apps'

/** One step of a Swarm roll: `docker service update --force --update-order ORDER`, or `docker service scale echo=N`. */
export type SwarmStep = { update: 'stop-first' | 'start-first' } | { scale: number }

/**
 * The roll of the Swarm test and benchmark: update --force stop-first, then start-first, scale
 * to 1 and back to 3, and both updates again (4 x 3 tasks replaced, 2 scaled away, 2 added).
 */
export const SWARM_ROLL_STEPS: readonly SwarmStep[] = [
  { update: 'stop-first' },
  { update: 'start-first' },
  { scale: 1 },
  { scale: 3 },
  { update: 'stop-first' },
  { update: 'start-first' },
]

export interface SwarmRollOptions {
  onTerm: OnTerm
  /** What is done to the service under load, in order (SWARM_ROLL_STEPS). */
  steps?: readonly SwarmStep[]
  /** Replicas the service is created with (3). */
  replicas?: number
  /** Calls per second (200). */
  rate?: number
  /** Label the tasks `shoal.idempotent=true` (false). */
  idempotent?: boolean
  /** host-a's `--drain-on-stop` (true). */
  drainOnStop?: boolean
  /**
   * How long an `onTerm: 'linger'` replica keeps serving after SIGTERM (ECHO_LINGER_MS; 1000).
   * It bounds the time from the stop signal to the client's routing leaving the replica (the
   * kill event, the drain, gossip to the client's agent, its push), which the suites give 2 s:
   * beside stress-ng --cpu 2 one Swarm stop took over 1 s (51 calls of 22,957 failed).
   */
  lingerMs?: number
}

/** What a Swarm roll measured: a roll's figures, and the wall time of each step (ms, until host-b routes what Swarm runs). */
export interface SwarmRollResult extends RollResult {
  steps: Array<{ step: string; ms: number }>
  /** Tasks Swarm reports failed or rejected (`service ps`: state and error), none in a clean roll. */
  taskErrors: string[]
  /** The overlay network's subnet, and the xDS address the client used (docker_gwbridge's IP, host-b's xDS port). */
  subnet: string
  xdsAddress: string
}

/**
 * `docker ARGS` on the swarm engine `d`; when it fails, the error also holds every task of the
 * echo service with its state and error, and the last lines of each task container that exited.
 */
async function swarmCli(d: Dockerd, args: string[]): Promise<string> {
  try {
    return await d.cli(args)
  } catch (err) {
    const tasks = await d
      .cli(['service', 'ps', 'echo', '--no-trunc', '--format', '{{.ID}} {{.DesiredState}} {{.CurrentState}} {{.Error}}'])
      .catch((e: Error) => e.message)
    const exited = (
      await d.cli(['ps', '-aq', '--filter', 'status=exited', '--filter', 'label=com.docker.swarm.service.name=echo']).catch(() => '')
    )
      .split('\n')
      .filter(Boolean)
    const logs: string[] = []
    for (const id of exited) {
      const code = await d.cli(['inspect', '--format', '{{.State.ExitCode}} {{.State.Error}}', id]).catch((e: Error) => e.message)
      const tail = await d.cli(['logs', '--tail', '5', id]).catch((e: Error) => e.message)
      logs.push(`container ${id} exited ${code}: ${tail}`)
    }
    throw new Error(`${(err as Error).message}\ntasks:\n${tasks}\n${logs.join('\n')}`)
  }
}

/** A running task of the echo service: its container (full and short id). */
interface Task {
  full: string
  id: string
}

/**
 * Issue 14, acceptance 3: a Swarm roll under load, on engine `d` (started with `{ swarm: true }`),
 * made a one-node swarm here. A service `echo` of `replicas` tasks of the gRPC echo server
 * (the files of rollingRestart's replicas, bind-mounted read-only) on the attachable overlay
 * SWARM_NETWORK, its port published in host mode without a fixed port
 * (`--publish mode=host,target=50051`, README "Deploy on Docker Swarm"); host-a discovers them
 * (`--docker-network` the overlay) with a Tcp check on the host binding; host-b, the other
 * host, also serves xDS on docker_gwbridge (`--xds-interfaces`). The grpc-js-xds client runs in
 * the network namespace of a container attached to the overlay (nsenter, as startXdsClient's
 * netnsPid), reaches host-b at docker_gwbridge's IP and declares the overlay, so it is sent the
 * tasks' overlay IPs and calls them over the overlay; it calls at `rate` calls/s while each
 * step runs with `--detach=false` and then until host-b routes exactly the running tasks, plus
 * 1 s. Everything (swarm, service, network, containers, agents, client) is removed at `t`'s
 * teardown.
 *
 * @example
 *   const r = await swarmRoll(t, d, { onTerm: 'linger', steps: [{ update: 'stop-first' }, { scale: 1 }, { scale: 3 }] })
 *   t.equal(r.failed, 0)
 */
export async function swarmRoll(t: Parameters<typeof initSwarm>[0], d: Dockerd, o: SwarmRollOptions): Promise<SwarmRollResult> {
  const replicas = o.replicas ?? 3
  const { gwBridge } = await initSwarm(t, d)
  await d.cli(['network', 'create', '--driver', 'overlay', '--attachable', SWARM_NETWORK])
  const subnet = (
    JSON.parse(await d.cli(['network', 'inspect', SWARM_NETWORK, '--format', '{{json .IPAM.Config}}'])) as Array<{ Subnet: string }>
  )[0]!.Subnet
  // A container on the overlay, whose network namespace the client runs in: it reaches host-b
  // on the engine's docker_gwbridge (on-link) and the tasks by their overlay IPs (on-link),
  // never the host's loopback.
  const box = await d.cli(['run', '-d', '--network', SWARM_NETWORK, '--name', 'roll-client', IMAGE, 'sleep', '86400'])
  t.teardown(() => d.cli(['rm', '-f', box]).catch(() => undefined))
  const boxPid = (await d.docker.getContainer(box).inspect()).State.Pid
  // Host-b serves xDS on docker_gwbridge's address too.
  await waitFor(() => interfaceIpv4(gwBridge) !== undefined, 60_000, `docker_gwbridge (${gwBridge}) to have an IPv4 address`)
  const gw = interfaceIpv4(gwBridge)!

  const events = await dockerEvents(t, d.docker)
  const h = await dockerAgents(t, d, {
    extraA: ['--docker-network', SWARM_NETWORK, ...(o.drainOnStop === false ? ['--drain-on-stop', 'false'] : [])],
    extraB: ['--xds-interfaces', gwBridge],
  })
  const logA = new StatusLog(t, h.a)
  const logB = new StatusLog(t, h.b)

  await d.cli([
    'service',
    'create',
    '--detach',
    '--name',
    'echo',
    '--network',
    SWARM_NETWORK,
    '--replicas',
    String(replicas),
    '--publish',
    'mode=host,target=50051',
    // Longer than any replica's stop handler: Swarm's SIGKILL is not what the roll measures.
    '--stop-grace-period',
    '10s',
    // A task that fails to start (once in 12 rolls at load 20: the update paused "due to failure
    // or early termination of task") is never served, so it costs no call; Swarm starts another
    // and the roll goes on. Such tasks are listed in the result (taskErrors).
    '--update-failure-action',
    'continue',
    ...ECHO_MOUNTS.flatMap(([from, to]) => ['--mount', `type=bind,source=${from},target=${to},readonly`]),
    '--env',
    `ECHO_ON_TERM=${o.onTerm}`,
    '--env',
    `ECHO_LINGER_MS=${o.lingerMs ?? 1000}`,
    ...['ServiceName=echo', 'ServicePort_50051=10001', 'ProxyMode=grpc', 'HealthCheck=Tcp', 'HealthCheckArgs={{ host }}:{{ tcp 50051 }}']
      .concat(o.idempotent ? ['shoal.idempotent=true'] : [])
      .flatMap((l) => ['--container-label', l]),
    IMAGE,
    ...ECHO_COMMAND,
  ])

  /** The service's tasks that Swarm wants running, by their running containers. */
  const running = async (): Promise<Task[]> => {
    const taskIds = (await d.cli(['service', 'ps', 'echo', '-q', '--no-trunc', '--filter', 'desired-state=running']))
      .split('\n')
      .filter(Boolean)
    const out: Task[] = []
    for (const task of taskIds) {
      const full = (await d.cli(['ps', '-q', '--no-trunc', '--filter', `label=com.docker.swarm.task.id=${task}`])).split('\n')[0]
      if (full) out.push({ full, id: full.slice(0, 12) })
    }
    return out
  }
  const everSeen = new Map<string, Task>()
  /** Host-b routes exactly the `n` tasks Swarm runs (every other task ever seen out of its routing): those tasks. */
  const settled = async (n: number, what: string): Promise<Task[]> => {
    let now: Task[] = []
    await waitFor(
      async () => {
        now = await running()
        for (const x of now) everSeen.set(x.full, x)
        const ids = new Set(now.map((x) => x.id))
        return (
          now.length === n &&
          now.every((x) => logB.serving(x.id)) &&
          [...everSeen.values()].every((x) => ids.has(x.id) || !logB.serving(x.id))
        )
      },
      120_000,
      `${what}: host-b to route exactly the ${n} running echo tasks`,
    )
    return now
  }

  let current = await settled(replicas, 'service create')

  const taskIp = async (x: Task) => (await d.docker.getContainer(x.full).inspect()).NetworkSettings.Networks[SWARM_NETWORK]?.IPAddress ?? ''
  for (const x of current) assertLocalRoute(await taskIp(x), { netnsPid: boxPid })
  const xdsAddress = `${gw}:${h.b.bound.xds}`
  const client = await startXdsClient(t, 'grpc-js', { nodeId: 'swarm-roll', xdsAddress, network: SWARM_NETWORK, netnsPid: boxPid })
  await reachEvery(client, current, 'the client on the overlay never reached every task')

  const ran = new Map<string, { full: string; id: string; ran: number }>()
  const note = () => {
    for (const x of everSeen.values()) if (!ran.has(x.full)) ran.set(x.full, { ...x, ran: events.at(x.full, 'start') ?? Date.now() })
  }
  note()
  const started = Date.now()
  await client.startLoad(TARGET, o.rate ?? 200)
  const stopped: Task[] = []
  const fresh: string[] = []
  const steps: SwarmRollResult['steps'] = []
  let results: LoadCall[]
  try {
    for (const step of o.steps ?? SWARM_ROLL_STEPS) {
      const at = Date.now()
      const before = current
      let what: string
      let n: number
      if ('update' in step) {
        what = `service update --force --update-order ${step.update}`
        n = current.length
        await swarmCli(d, ['service', 'update', '--detach=false', '--force', '--update-order', step.update, 'echo'])
      } else {
        what = `service scale echo=${step.scale}`
        n = step.scale
        await swarmCli(d, ['service', 'scale', '--detach=false', `echo=${step.scale}`])
      }
      current = await settled(n, what)
      const ids = new Set(current.map((x) => x.id))
      stopped.push(...before.filter((x) => !ids.has(x.id)))
      const was = new Set(before.map((x) => x.id))
      fresh.push(...current.filter((x) => !was.has(x.id)).map((x) => x.id))
      note()
      await new Promise((r) => setTimeout(r, 1000))
      steps.push({ step: what, ms: Date.now() - at })
    }
  } finally {
    results = await client.stopLoad()
  }
  const taskErrors = (await d.cli(['service', 'ps', 'echo', '--no-trunc', '--format', '{{.ID}} {{.CurrentState}} {{.Error}}']))
    .split('\n')
    .filter((l) => /^\S+ (Failed|Rejected)/.test(l))
  return {
    ...summarize({ results, durationMs: Date.now() - started, stopped, fresh, events, logA, logB, ran: [...ran.values()] }),
    steps,
    taskErrors,
    subnet,
    xdsAddress,
  }
}
