/**
 * Docker discovery across hosts: time from `docker start` on one host to the record on
 * another agent. Needs root and the apt packages docker.io + busybox-static (the private
 * dockerd of the system tests, test/system/dockerd.ts).
 *
 * Run:   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/docker-cross-host.ts
 * Env:   BENCH_CONTAINERS=30   started one at a time (>= 20)
 *        BENCH_BURST=20        then started at once (0: skip)
 *        BENCH_OUT=bench/RESULTS-docker-cross-host.md   (empty: write nothing)
 *
 * Two real agents in this process, both `--profile lan`, gossip over UDP+TCP on 127.0.0.1:
 * A with `--discovery docker --docker-host unix://<private dockerd>`, B with `--discovery none`,
 * joined to A. For each labelled busybox container (ServiceName, ServicePort_80, port 80
 * published): t0 just before the start API call, t1 when it returned; observed through each
 * catalog's subscribe(): the record on A (local), live on B (the other host). Then each
 * container is killed: kill call -> gone from B. Then a burst started at once: last start
 * returned -> all live on B.
 */
import { execSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { liveRecords } from '../src/registry/types.js'
import { createService, startDockerd, waitFor } from '../test/system/dockerd.js'
import { benchHarness, machineSection, pct } from './stats.js'
import { loopbackAgentFlags } from '../test/lib/agent-process.js'

const env = process.env
const CONTAINERS = Number(env.BENCH_CONTAINERS ?? 30)
const BURST = Number(env.BENCH_BURST ?? 20)
const OUT = env.BENCH_OUT ?? 'bench/RESULTS-docker-cross-host.md'
const CEILING_MS = 30_000

// The harness wants a tap-like test; a bench gives it the same two hooks.
const harness = benchHarness()

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1))

/** Resolves with performance.now() at the first catalog event after which `pred` holds. */
function until(agent: Agent, pred: () => boolean, what: string): Promise<number> {
  if (pred()) return Promise.resolve(performance.now())
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsub()
      reject(new Error(`timed out after ${CEILING_MS} ms: ${what}`))
    }, CEILING_MS)
    const unsub = agent.view().subscribe(() => {
      if (!pred()) return
      const now = performance.now()
      clearTimeout(timer)
      unsub()
      resolve(now)
    })
  })
}

function uptime(): string {
  try {
    return execSync('uptime', { encoding: 'utf8' }).trim()
  } catch {
    return `load average: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(', ')}`
  }
}

async function main() {
  const loadBefore = uptime()
  const loop = monitorEventLoopDelay({ resolution: 10 })
  loop.enable()
  const d = await startDockerd(harness)
  if (!d) {
    console.log(`skipped: ${harness.skipped}`)
    process.exitCode = 2
    return
  }
  const dockerVersion = (await d.docker.version()).Version
  const flags = (node: string) => [...loopbackAgentFlags(node, { dns: true, profile: 'lan' }), '--cluster', 'bench-docker']
  const a = new Agent(parseAgentConfig([...flags('host-a'), '--discovery', 'docker', '--docker-host', d.host], {}), {
    logger: silentLogger(),
  })
  harness.teardown(() => a.stop({ leave: false }))
  await a.start()
  const b = new Agent(parseAgentConfig([...flags('host-b'), '--discovery', 'none', '--join', `127.0.0.1:${a.bound.gossip}`], {}), {
    logger: silentLogger(),
  })
  harness.teardown(() => b.stop({ leave: false }))
  await b.start()
  await waitFor(() => b.members().some((m) => m.name === 'host-a' && m.state === 'alive') && b.isReady(), 10_000, 'host-b to join host-a')

  const liveOn = (ag: Agent, id: string) => liveRecords(ag.view().snapshot()).some((r) => r.id === id && r.host === 'host-a')
  const create = (name: string, sp: number) => createService(d, name, sp, name)

  const issuedToB: number[] = []
  const returnedToB: number[] = []
  const issuedToA: number[] = []
  const aToB: number[] = []
  const killToGoneB: number[] = []
  const singles: string[] = []
  for (let i = 0; i < CONTAINERS; i++) {
    const c = await create(`one-${i}`, 20000 + i)
    const id = c.id.slice(0, 12)
    singles.push(c.id)
    const onA = until(a, () => liveOn(a, id), `${id} on host-a`)
    const onB = until(b, () => liveOn(b, id), `${id} on host-b`)
    const t0 = performance.now()
    await c.start()
    const t1 = performance.now()
    const [ta, tb] = await Promise.all([onA, onB])
    issuedToB.push(tb - t0)
    returnedToB.push(tb - t1)
    issuedToA.push(ta - t0)
    aToB.push(tb - ta)
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 200))
  }
  console.log(`# ${CONTAINERS} containers started one at a time`)
  for (const full of singles) {
    const id = full.slice(0, 12)
    const gone = until(b, () => !liveOn(b, id), `${id} gone from host-b`)
    const t0 = performance.now()
    await d.docker.getContainer(full).kill()
    killToGoneB.push((await gone) - t0)
  }
  console.log(`# ${CONTAINERS} containers killed one at a time`)

  let burst: { startsMs: number; lastReturnedToAllOnB: number } | undefined
  if (BURST > 0) {
    const ids = await Promise.all(Array.from({ length: BURST }, (_x, i) => create(`burst-${i}`, 30000 + i).then((c) => c.id)))
    const allOnB = until(b, () => ids.every((full) => liveOn(b, full.slice(0, 12))), 'burst on host-b')
    const t0 = performance.now()
    let last = 0
    await Promise.all(
      ids.map((full) =>
        d.docker
          .getContainer(full)
          .start()
          .then(() => {
            last = performance.now()
          }),
      ),
    )
    const tb = await allOnB
    burst = { startsMs: last - t0, lastReturnedToAllOnB: tb - last }
    console.log(`# burst of ${BURST}`)
  }
  const loadAfter = uptime()
  loop.disable()
  const loopLine = `Event-loop delay of the process holding both agents during the run: p99 ${fmt(loop.percentile(99) / 1e6)} ms, max ${fmt(loop.max / 1e6)} ms.`

  const row = (label: string, xs: number[]) =>
    `| ${label} | ${xs.length} | ${fmt(pct(xs, 50))} | ${fmt(pct(xs, 99))} | ${fmt(Math.max(...xs))} |`
  const table = [
    '| measure (ms) | n | p50 | p99 | max |',
    '|---|---|---|---|---|',
    row('`docker start` issued -> record live on host-b', issuedToB),
    row('`docker start` returned -> record live on host-b', returnedToB),
    row('`docker start` issued -> record on host-a (local discovery)', issuedToA),
    row('record on host-a -> live on host-b (gossip)', aToB),
    row('`docker kill` issued -> record gone from host-b', killToGoneB),
  ].join('\n')
  const burstLine = burst
    ? `Burst: ${BURST} containers started at once (parallel start calls; the starts took ${fmt(burst.startsMs)} ms): all ${BURST} live on host-b **${fmt(burst.lastReturnedToAllOnB)} ms after the last start returned**.`
    : 'Burst: skipped (BENCH_BURST=0).'
  console.log('\n' + table + '\n\n' + burstLine + '\n' + loopLine)

  if (OUT) {
    writeFileSync(
      OUT,
      [
        '# Docker discovery across hosts: measured',
        '',
        '`bench/docker-cross-host.ts` (run as root: `node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/docker-cross-host.ts`).',
        `A private dockerd ${dockerVersion} (the system-test harness \`test/system/dockerd.ts\`: own socket, data-root, exec-root,`,
        'bridge, `--iptables=false`, docker-proxy for published ports) and a locally imported busybox image. Two real agents in one',
        'Node process, both `--profile lan`, gossip over UDP+TCP on 127.0.0.1: host-a `--discovery docker --docker-host unix://…`,',
        'host-b `--discovery none`, joined to host-a. Each container: labels `ServiceName`, `ServicePort_80`, port 80 published;',
        "observed through each catalog's `subscribe()`; one at a time with a 50-250 ms pause between them.",
        '',
        table,
        '',
        burstLine,
        '',
        loopLine,
        '',
        ...machineSection(loadBefore, loadAfter),
        '',
        '## Reading',
        '',
        '- Nearly all of "issued -> live on host-b" is Docker creating the container\'s network namespace and process: the',
        "  `start` event reaches host-a's source and the inspect + mapping finish within milliseconds of the call returning",
        '  (the event often arrives before the call returns). Without a health-check label the record is `unknown`, which is',
        '  live and served at once.',
        '- host-a -> host-b is one gossip broadcast: a new application broadcast triggers an early gossip round (at least',
        '  20 ms apart, bucket of 4, refilled 10/s) rather than waiting for the 200 ms tick of the lan profile.',
        "- A kill is seen as Docker's `die` event; the record becomes a tombstone at a higher version and is gossiped the same way.",
        '- Both agents share one event loop with the bench, and the 2 cores with dockerd, containerd and whatever else ran',
        '  (see load): the figures are an upper bound for two separate hosts on a quiet LAN.',
        '',
      ].join('\n'),
    )
    console.log(`wrote ${OUT}`)
  }
}

main()
  .catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
  .finally(() => harness.close())
