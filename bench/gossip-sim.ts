/**
 * Gossip at scale on the simulator: the real protocol code (src/gossip/gossip.ts), the `lan`
 * profile, virtual time, an in-memory network (1 ms latency + up to 1 ms jitter).
 *
 * Run:   npm run bench:gossip            (all sizes; writes bench/RESULTS-gossip.md)
 *        npm run bench:gossip -- --quick (N = 100 only, nothing written)
 * which is: node --max-old-space-size=16384 --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/gossip-sim.ts
 * (tap's TypeScript loader, already installed; no build step).
 *
 * Per N (100, 1000 and 5000: 20 broadcast and 20 crash trials; 5000 costs about
 * 1.5 s of CPU per virtual second): the cluster starts converged (Gossip.seedMembers, no join storm);
 * then trials of: one node broadcasts 100 bytes -> virtual time until 100% of nodes delivered
 * it (p50, p99) and that time in gossip intervals (200 ms); user-message transmissions and
 * bytes per node per broadcast; then one node crashes -> time until every other node marks it
 * dead. Once: N = 1000 for 30 virtual minutes with 10% loss on packets and streams:
 * false-positive deaths (a live node declared dead anywhere) and bytes per node per second.
 * Every datagram is watched for its size.
 */
import { execSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { VirtualClock } from '../src/clock.js'
import { Gossip } from '../src/gossip/gossip.js'
import { SimNetwork } from '../src/gossip/transport-sim.js'
import { silentLogger } from '../src/log.js'
import { pct } from './stats.js'
import { seeded } from '../test/lib/random.js'

const GOSSIP_INTERVAL = 200
let maxDatagram = 0

interface Cluster {
  clock: VirtualClock
  net: SimNetwork
  nodes: Gossip[]
  hosts: string[]
}

async function cluster(n: number, seed: number, loss = 0): Promise<Cluster> {
  const clock = new VirtualClock()
  const random = seeded(seed)
  const net = new SimNetwork(clock, { latencyMs: 1, jitterMs: 1, loss, random })
  net.tap((_f, _t, data, kind) => {
    if (kind === 'packet' && data.length > maxDatagram) maxDatagram = data.length
  })
  const logger = silentLogger()
  const nodes: Gossip[] = []
  const hosts: string[] = []
  for (let i = 0; i < n; i++) {
    const host = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
    hosts.push(host)
    const g = new Gossip({ name: `node-${i}`, cluster: 'bench', profile: 'lan' }, { transport: net.transport(host), clock, logger, random })
    await g.start()
    nodes.push(g)
  }
  const all = nodes.map((g) => g.localMember())
  for (const g of nodes) g.seedMembers(all)
  return { clock, net, nodes, hosts }
}

interface SizeResult {
  n: number
  trials: number
  crashTrials: number
  p50: number
  p99: number
  rounds50: number
  rounds99: number
  pktsPerNode: number
  bytesPerNode: number
  allBytesPerNode: number
  dead50: number
  dead99: number
  falseDead: number
  wallS: number
}

async function runSize(n: number, trials: number, crashTrials: number): Promise<SizeResult> {
  const wall = Date.now()
  const c = await cluster(n, n)
  const { clock, nodes, net } = c
  await clock.advance(2000)
  let got = 0
  let current = -1
  nodes.forEach((g) =>
    g.onMessage((p) => {
      if (p[0] === (current & 255)) got++
    }),
  )
  const times: number[] = []
  const pkts: number[] = []
  const bytes: number[] = []
  const allBytes: number[] = []
  const rnd = seeded(99)
  const sum = (f: (g: Gossip) => number): number => nodes.reduce((s, g) => s + f(g), 0)
  for (let t = 0; t < trials; t++) {
    current = t
    got = 0
    const origin = nodes[Math.floor(rnd() * n)]!
    const p0 = sum((g) => g.stats().packetsOut.user ?? 0)
    const b0 = sum((g) => g.stats().bytesOut.user ?? 0)
    const a0 = net.stats().bytesSent
    const t0 = clock.now()
    const payload = Buffer.alloc(100, t & 255)
    origin.broadcast('bench', payload)
    const ok = await clock.runUntil(() => got >= n - 1, 10_000, 5)
    if (!ok) console.error(`N=${n} trial ${t}: only ${got + 1}/${n} after 10 s`)
    times.push(clock.now() - t0)
    await clock.advance(4000 - (clock.now() - t0))
    pkts.push((sum((g) => g.stats().packetsOut.user ?? 0) - p0) / n)
    bytes.push((sum((g) => g.stats().bytesOut.user ?? 0) - b0) / n)
    allBytes.push((net.stats().bytesSent - a0) / n)
  }
  const deadTimes: number[] = []
  const crashed = new Set<string>()
  let falseDead = 0
  const deadCount = new Map<string, number>()
  nodes.forEach((g) =>
    g.on('dead', (m) => {
      if (!crashed.has(m.name)) falseDead++
      deadCount.set(m.name, (deadCount.get(m.name) ?? 0) + 1)
    }),
  )
  for (let t = 0; t < crashTrials; t++) {
    let idx: number
    do idx = Math.floor(rnd() * n)
    while (crashed.has(`node-${idx}`))
    const name = `node-${idx}`
    crashed.add(name)
    const t0 = clock.now()
    net.crash(c.hosts[idx]!)
    await nodes[idx]!.stop()
    const watchers = n - crashed.size
    const ok = await clock.runUntil(() => (deadCount.get(name) ?? 0) >= watchers, 300_000, 100)
    if (!ok) console.error(`N=${n} crash ${t}: ${deadCount.get(name) ?? 0}/${watchers} marked ${name} dead after 300 s`)
    deadTimes.push(clock.now() - t0)
    await clock.advance(5000)
  }
  for (const g of nodes) await g.stop()
  return {
    n,
    trials,
    crashTrials,
    p50: pct(times, 50),
    p99: pct(times, 99),
    rounds50: pct(times, 50) / GOSSIP_INTERVAL,
    rounds99: pct(times, 99) / GOSSIP_INTERVAL,
    pktsPerNode: pct(pkts, 50),
    bytesPerNode: pct(bytes, 50),
    allBytesPerNode: pct(allBytes, 50),
    dead50: pct(deadTimes, 50),
    dead99: pct(deadTimes, 99),
    falseDead,
    wallS: (Date.now() - wall) / 1000,
  }
}

async function runLoss(
  n: number,
  minutes: number,
): Promise<{ falseDead: number; suspicions: number; failedProbes: number; bytesPerNodePerS: number; wallS: number }> {
  const wall = Date.now()
  const c = await cluster(n, 7, 0.1)
  let falseDead = 0
  c.nodes.forEach((g) =>
    g.on('dead', () => {
      falseDead++
    }),
  )
  const b0 = c.net.stats()
  const ms = minutes * 60_000
  for (let t = 0; t < ms; t += 10_000) await c.clock.advance(10_000)
  const b1 = c.net.stats()
  const bytes = b1.bytesSent - b0.bytesSent + b1.streamBytesSent - b0.streamBytesSent
  const suspicions = c.nodes.reduce((s, g) => s + g.stats().suspicions, 0)
  const failedProbes = c.nodes.reduce((s, g) => s + g.stats().probesFailed, 0)
  for (const g of c.nodes) await g.stop()
  return { falseDead, suspicions, failedProbes, bytesPerNodePerS: bytes / n / (ms / 1000), wallS: (Date.now() - wall) / 1000 }
}

const quick = process.argv.includes('--quick')
// N = 5000 costs about 1.5 s of CPU per virtual second (5000 full member lists in one
// process, push-pulls of 5000 records): it runs last, after the loss run.
const plan: Array<[number, number, number]> = quick
  ? [[100, 20, 5]]
  : [
      [100, 20, 20],
      [1000, 20, 20],
      [5000, 20, 20],
    ]
const rows: SizeResult[] = []
let loss: Awaited<ReturnType<typeof runLoss>> | undefined

const f1 = (x: number): string => x.toFixed(1)
const f2 = (x: number): string => x.toFixed(2)
function table(): string {
  let md =
    '| N | trials (bcast/crash) | 100% delivered p50 / p99 | gossip intervals p50 / p99 | user msgs sent per node | user bytes per node | all bytes per node (4 s window) | crash -> dead everywhere p50 / p99 | false deaths |\n'
  md += '|---|---|---|---|---|---|---|---|---|\n'
  for (const r of rows) {
    md += `| ${r.n} | ${r.trials} / ${r.crashTrials} | ${r.p50} ms / ${r.p99} ms | ${f1(r.rounds50)} / ${f1(r.rounds99)} | ${f2(r.pktsPerNode)} | ${f1(r.bytesPerNode)} | ${f1(r.allBytesPerNode)} | ${f1(r.dead50 / 1000)} s / ${f1(r.dead99 / 1000)} s | ${r.falseDead} |\n`
  }
  if (loss) {
    md += `\nN = 1000, 30 virtual minutes, 10% loss on packets and streams: **${loss.falseDead} false-positive deaths** (${loss.failedProbes} failed probes raised a suspicion; ${loss.suspicions} suspect transitions summed over all nodes; every one refuted), ${f1(loss.bytesPerNodePerS)} bytes per node per second (packets + streams).\n`
  }
  md += `\nLargest datagram seen: ${maxDatagram} bytes (limit 1400).\n`
  return md
}
function save(): void {
  if (quick) return
  const cpu = cpus()[0]?.model ?? 'unknown'
  const nproc = execSync('nproc').toString().trim()
  const walls = rows.map((r) => `N=${r.n}: ${r.wallS.toFixed(0)} s`).join(', ') + (loss ? `, loss run: ${loss.wallS.toFixed(0)} s` : '')
  writeFileSync(
    new URL('./RESULTS-gossip.md', import.meta.url),
    `# Gossip simulator results\n\nMeasured ${new Date().toISOString().slice(0, 10)} on ${nproc} CPUs (${cpu}), Node ${process.version}, with \`npm run bench:gossip\` (bench/gossip-sim.ts).\nlan profile, simulated network 1 ms latency + up to 1 ms jitter; virtual time. Wall time: ${walls}.\n\n${table()}\nTargets: N=100 p99 <= 0.5 s, N=1000 p99 <= 1 s, zero false positives at 10% loss, no datagram over 1400 bytes.\n`,
  )
}

for (const [n, trials, crashes] of plan.slice(0, 2)) {
  rows.push(await runSize(n, trials, crashes))
  console.error(`N=${n} done in ${rows[rows.length - 1]!.wallS.toFixed(0)} s`)
  save()
}
if (!quick) {
  loss = await runLoss(1000, 30)
  console.error(`loss run done in ${loss.wallS.toFixed(0)} s`)
  save()
}
for (const [n, trials, crashes] of plan.slice(2)) {
  rows.push(await runSize(n, trials, crashes))
  console.error(`N=${n} done in ${rows[rows.length - 1]!.wallS.toFixed(0)} s`)
  save()
}
console.log(table())
