/**
 * Registry propagation on real sockets: 5 agents on loopback (UDP+TCP gossip, static files),
 * in one process, once per gossip profile (lan, local).
 *
 * Run:   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/registry-propagation.ts
 * Env:   BENCH_CHANGES=100  static-file writes per profile (>= 30 for the p99 to mean something)
 *        BENCH_CRASHES=5    crashed agents per profile
 *        BENCH_PROFILES=lan,local
 *        BENCH_OUT=bench/RESULTS-registry-sockets.md   (empty: write nothing)
 *
 * Changes: each write replaces one agent's file (atomic rename) with its base service plus a
 * new instance, which also removes that agent's previous new instance. Measured from just
 * before the write, observed through each catalog's subscribe():
 *   - owner: until the writer's own catalog lists the new record (fs.watch + 50 ms debounce + parse);
 *   - every other agent: until the last of the other 4 lists it live (and, for the removed
 *     one, until the last of them no longer does).
 * A random pause (up to one gossip interval) separates writes so they do not lock onto the
 * gossip ticks.
 * Crashes: an agent stops without leaving (sockets closed, as after kill -9); measured until
 * its services are gone from every other agent's live view (failure detection: probe,
 * suspicion, dead gossiped). Each victim is replaced by a fresh agent before the next crash.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { execSync } from 'node:child_process'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { liveRecords } from '../src/registry/types.js'
import { pct } from './stats.js'
import { loopbackAgentFlags } from '../test/lib/agent-process.js'

const env = process.env
const CHANGES = Number(env.BENCH_CHANGES ?? 100)
const CRASHES = Number(env.BENCH_CRASHES ?? 5)
const PROFILES = (env.BENCH_PROFILES ?? 'lan,local').split(',').map((s) => s.trim()) as Array<'lan' | 'local'>
const OUT = env.BENCH_OUT ?? 'bench/RESULTS-registry-sockets.md'
const N = 5
const GOSSIP_INTERVAL_MS = { lan: 200, local: 50 } as const
const CEILING_MS = 60_000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1))
const stats = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99), max: Math.max(...xs) })

/** Resolves when `pred` holds for an agent's catalog, checked on every catalog event. */
class Observer {
  private waits = new Set<{ agent: Agent; pred: () => boolean; resolve: (t: number) => void }>()
  private unsubs: Array<() => void> = []

  watch(agent: Agent): void {
    this.unsubs.push(
      agent.view().subscribe(() => {
        const now = performance.now()
        for (const w of this.waits) {
          if (w.agent === agent && w.pred()) {
            this.waits.delete(w)
            w.resolve(now)
          }
        }
      }),
    )
  }

  until(agent: Agent, pred: () => boolean, what: string): Promise<number> {
    if (pred()) return Promise.resolve(performance.now())
    return new Promise((resolve, reject) => {
      const w = {
        agent,
        pred,
        resolve: (t: number) => {
          clearTimeout(timer)
          resolve(t)
        },
      }
      const timer = setTimeout(() => {
        this.waits.delete(w)
        reject(new Error(`timed out after ${CEILING_MS} ms: ${what}`))
      }, CEILING_MS)
      this.waits.add(w)
    })
  }

  close(): void {
    for (const u of this.unsubs) u()
  }
}

const isLive = (a: Agent, id: string, host: string) => liveRecords(a.view().snapshot()).some((r) => r.id === id && r.host === host)

interface ProfileResult {
  profile: string
  ownerAdd: number[]
  allAdd: number[]
  eachAdd: number[]
  allRemove: number[]
  crashGone: number[]
  crashDead: number[]
  wallS: number
  /** Event-loop delay of this process during the run (ms): stalls here delay every agent. */
  loop: { p99: number; max: number }
}

async function runProfile(profile: 'lan' | 'local'): Promise<ProfileResult> {
  const wall0 = Date.now()
  const dir = mkdtempSync(join(tmpdir(), `regprop-${profile}-`))
  const agents: Agent[] = []
  const all: Agent[] = []
  const obs = new Observer()
  const res: ProfileResult = {
    profile,
    ownerAdd: [],
    allAdd: [],
    eachAdd: [],
    allRemove: [],
    crashGone: [],
    crashDead: [],
    wallS: 0,
    loop: { p99: 0, max: 0 },
  }
  const loop = monitorEventLoopDelay({ resolution: 10 })
  loop.enable()
  const files: string[] = []
  const writeStatic = (i: number, extra?: string) => {
    const services = [{ id: `base-${i}`, name: `base-${i}`, ports: [{ port: 8000 + i, servicePort: 10000 + i }] }]
    if (extra) services.push({ id: extra, name: 'extra', ports: [{ port: 9000 + i, servicePort: 10100 }] })
    writeFileSync(files[i]! + '.tmp', JSON.stringify({ services }))
    renameSync(files[i]! + '.tmp', files[i]!)
  }
  let seed = ''
  const startAgent = async (i: number, name: string) => {
    const flags = [
      ...loopbackAgentFlags(name, { dns: true, profile }),
      '--cluster',
      `bench-${profile}`,
      '--discovery',
      'static',
      '--static',
      files[i]!,
      ...(seed ? ['--join', seed] : []),
    ]
    const a = new Agent(parseAgentConfig(flags, {}), { logger: silentLogger() })
    await a.start()
    all.push(a)
    obs.watch(a)
    return a
  }
  try {
    for (let i = 0; i < N; i++) {
      files.push(join(dir, `static-${i}.json`))
      writeStatic(i)
      agents.push(await startAgent(i, `node-${i}`))
      seed ||= `127.0.0.1:${agents[0]!.bound.gossip}`
    }
    const names = () => agents.map((a) => a.config.node)
    await Promise.all(
      agents.flatMap((a) => names().map((n, i) => obs.until(a, () => isLive(a, `base-${i}`, n), `base-${i} on ${a.config.node}`))),
    )
    console.log(`# ${profile}: ${N} agents converged in ${Date.now() - wall0} ms`)

    // Changes.
    const lastExtra: Array<string | undefined> = []
    for (let k = 0; k < CHANGES; k++) {
      const i = k % N
      const writer = agents[i]!
      const host = writer.config.node
      const others = agents.filter((a) => a !== writer)
      const id = `x-${k}`
      const removed = lastExtra[i]
      const t0 = performance.now()
      const adds = others.map((a) => obs.until(a, () => isLive(a, id, host), `${id} live on ${a.config.node}`))
      const owner = obs.until(
        writer,
        () =>
          writer
            .view()
            .snapshot()
            .hosts.some((h) => h.name === host && h.services.some((r) => r.id === id)),
        `${id} on its owner`,
      )
      const rems = removed ? others.map((a) => obs.until(a, () => !isLive(a, removed, host), `${removed} gone from ${a.config.node}`)) : []
      writeStatic(i, id)
      lastExtra[i] = id
      const addTimes = (await Promise.all(adds)).map((t) => t - t0)
      addTimes.forEach((x, j) => {
        if (x > 10 * GOSSIP_INTERVAL_MS[profile] + 100)
          console.log(`# ${profile}: slow: ${id} written on ${host} reached ${others[j]!.config.node} after ${ms(x)} ms`)
      })
      res.ownerAdd.push((await owner) - t0)
      res.allAdd.push(Math.max(...addTimes))
      res.eachAdd.push(...addTimes)
      if (rems.length) res.allRemove.push(Math.max(...(await Promise.all(rems)).map((t) => t - t0)))
      await sleep(Math.random() * GOSSIP_INTERVAL_MS[profile] + 20)
    }

    // Crashes: never node-0 (the seed replacements join through).
    for (let c = 0; c < CRASHES; c++) {
      const slot = 1 + (c % (N - 1))
      const victim = agents[slot]!
      const vname = victim.config.node
      const others = agents.filter((a) => a !== victim)
      const vIds = liveRecords(others[0]!.view().snapshot())
        .filter((r) => r.host === vname)
        .map((r) => r.id)
      const t0 = performance.now()
      const gone = others.map((a) =>
        obs.until(a, () => vIds.every((id) => !isLive(a, id, vname)), `${vname}'s services gone from ${a.config.node}`),
      )
      const deadAt = others.map(async (a) => {
        const end = Date.now() + CEILING_MS
        while (a.members().find((m) => m.name === vname)?.state !== 'dead') {
          if (Date.now() > end) throw new Error(`${vname} never dead on ${a.config.node}`)
          await sleep(5)
        }
        return performance.now()
      })
      await victim.stop({ leave: false })
      res.crashGone.push(Math.max(...(await Promise.all(gone)).map((t) => t - t0)))
      res.crashDead.push(Math.max(...(await Promise.all(deadAt)).map((t) => t - t0)))
      console.log(`# ${profile}: crash ${c + 1}: ${vname}'s services gone everywhere after ${ms(res.crashGone.at(-1)!)} ms`)
      // A fresh agent takes the slot (a new name: the dead one stays in membership as dead).
      lastExtra[slot] = undefined
      writeStatic(slot)
      const fresh = await startAgent(slot, `node-${slot}-r${c + 1}`)
      agents[slot] = fresh
      await Promise.all(
        agents.map((a) => obs.until(a, () => isLive(a, `base-${slot}`, fresh.config.node), `replacement on ${a.config.node}`)),
      )
      await sleep(GOSSIP_INTERVAL_MS[profile] * 5)
    }
  } finally {
    obs.close()
    await Promise.all(all.map((a) => a.stop({ leave: false })))
    rmSync(dir, { recursive: true, force: true })
  }
  loop.disable()
  res.loop = { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 }
  res.wallS = (Date.now() - wall0) / 1000
  return res
}

function machine(): { cpu: string; nproc: number; uptime: string; node: string } {
  let uptime: string
  try {
    uptime = execSync('uptime', { encoding: 'utf8' }).trim()
  } catch {
    uptime = `load average: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(', ')}`
  }
  return { cpu: cpus()[0]?.model ?? 'unknown', nproc: cpus().length, uptime, node: process.version }
}

async function main() {
  const before = machine()
  const results: ProfileResult[] = []
  for (const p of PROFILES) results.push(await runProfile(p))
  const after = machine()

  const row = (label: string, xs: number[]) => {
    if (xs.length === 0) return `| ${label} | 0 | - | - | - |`
    const s = stats(xs)
    return `| ${label} | ${s.n} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.max)} |`
  }
  const tables = results.map((r) =>
    [
      `### ${r.profile} profile (${r.wallS.toFixed(0)} s)`,
      '',
      '| measure (ms from the static-file write, or from the crash) | n | p50 | p99 | max |',
      '|---|---|---|---|---|',
      row("write -> owner's catalog has the record", r.ownerAdd),
      row('write -> record live on every other agent', r.allAdd),
      row('write -> record live on one other agent (each of 4)', r.eachAdd),
      row('write (removal) -> gone from every other agent', r.allRemove),
      row('crash (no leave) -> its services gone from every other agent', r.crashGone),
      row('crash -> member dead on every other agent', r.crashDead),
      '',
      `Event-loop delay of the process holding the 5 agents during this run: p99 ${ms(r.loop.p99)} ms, max ${ms(r.loop.max)} ms.`,
      '',
    ].join('\n'),
  )
  console.log('\n' + tables.join('\n'))

  if (OUT) {
    const md = [
      '# Registry propagation on real sockets',
      '',
      '`bench/registry-propagation.ts` (run: `node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/registry-propagation.ts`).',
      `5 real agents (\`Agent\`: gossip over UDP+TCP on 127.0.0.1, catalog, bridge, static-file source, xDS and HTTP servers) in one`,
      `Node process, each with its own static file; ${CHANGES} file writes per profile (each adds one instance on the writing agent and`,
      `removes that agent's previous one), ${CRASHES} crashes per profile (\`stop({ leave: false })\`: sockets closed without a leave).`,
      'Observed through each catalog\'s `subscribe()`; "every other agent" is the last of the 4 non-writers.',
      '',
      ...tables,
      '## Machine',
      '',
      `- date: ${new Date().toISOString()}`,
      `- CPU: ${before.cpu}, nproc ${before.nproc}; Node ${before.node}`,
      `- load before: \`${before.uptime}\``,
      `- load after: \`${after.uptime}\``,
      '',
      '## Reading',
      '',
      "- The owner column is the local part (fs.watch event, the source's 50 ms debounce, parse, catalog write); the",
      '  rest is gossip: one broadcast, relayed by origin+key to 3 random members per round. A new application',
      '  broadcast triggers an early round (at least 20 ms apart, a bucket of 4, refilled 10/s) instead of waiting',
      '  for the next gossip tick (lan 200 ms, local 50 ms), so with 5 members most changes reach every other agent',
      '  in that first round; a member missed by it gets the relay one tick later.',
      '- The retransmit limit counts transmissions per member: mult x ceil(log10(N + 1)), at N = 5 that is 3 (local) or',
      "  4 (lan). With local's 3, one round with fanout 3 uses the whole budget: the writer reaches 3 of the 4 others and each",
      '  of them relays to 3 random members, so one member misses the change with a probability of about (1/4)^3 = 1.6 %',
      '  and gets it from the next push-pull instead (every 5 s in local), 1-4 s later. In a separate',
      '  run of 150 local writes, 3 reached one member late (1.3 s, 2.7 s, 3.7 s), the other 597 deliveries within 143 ms.',
      "  lan's budget of 4 adds a second round and showed no such miss. The `# slow:` lines of the bench name each one.",
      '- A crash is failure detection: a probe miss (lan: 1 s interval, 500 ms timeout; local: 200/100 ms), then',
      '  Lifeguard suspicion (lan: min 4 x probe interval, shortened by independent confirmations from the other',
      '  members), then `dead` gossiped. The services vanish on each agent the moment it marks the owner dead.',
      '- All 5 agents share one event loop and the 2 cores with whatever else ran (see load): the figures are an',
      '  upper bound for 5 separate hosts. Ceilings in the tests (test/agent-cluster.test.ts) are 5 s and 10 s.',
      '',
    ].join('\n')
    writeFileSync(OUT, md)
    console.log(`wrote ${OUT}`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
