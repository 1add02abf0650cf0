/**
 * The registry at scale on the simulator: real Gossip + Catalog + GossipBridge per host,
 * virtual time, in-memory network (1 ms latency + up to 1 ms jitter, no loss).
 *
 * Run:   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/registry-sim.ts
 *        (add --quick for 50 hosts and nothing written)
 *
 * Per profile (lan, local): 200 hosts x 20 services start converged (membership seeded,
 * every catalog filled with every owner's records, so the measurement is the burst alone);
 * then a burst of 1000 changes at one instant on random hosts (60% updates of port/status,
 * 25% removals, 15% new instances). Measured in virtual time: until every replica holds
 * exactly what the owners hold (digest equality, checked every 100 ms), and per change the
 * time until every other host holds it (p50, p99, max). Then 20 single changes on the quiet
 * cluster (p50, p99 until every host holds it). Also: push-pull digest size, bytes per host,
 * pulls. Writes bench/RESULTS-registry.md.
 */
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { VirtualClock } from '../src/clock.js'
import { Gossip } from '../src/gossip/gossip.js'
import { SimNetwork } from '../src/gossip/transport-sim.js'
import { silentLogger } from '../src/log.js'
import { GossipBridge } from '../src/registry/bridge.js'
import { Catalog, type LocalRecord } from '../src/registry/catalog.js'
import { compareVersions } from '../src/registry/hlc.js'
import type { Version } from '../src/registry/types.js'
import { pct } from './stats.js'
import { seeded } from '../test/lib/random.js'

const quick = process.argv.includes('--quick')
const HOSTS = quick ? 50 : 200
const PER_HOST = 20
const CHANGES = quick ? 250 : 1000

function service(ip: string, i: number, port = 8000 + i, status: LocalRecord['status'] = 'alive'): LocalRecord {
  return {
    id: `s${i}`,
    name: `svc-${i}`,
    image: `reg/svc-${i}:1`,
    created: 1_700_000_000_000,
    ports: [{ type: 'tcp', port, servicePort: 10000 + i, ip }],
    proxyMode: 'http',
    status,
    labels: { team: `t${i % 4}` },
  }
}

interface Node {
  name: string
  ip: string
  gossip: Gossip
  catalog: Catalog
  bridge: GossipBridge
}

interface Result {
  profile: string
  convergedMs: number
  perChange: { p50: number; p99: number; max: number }
  single: { p50: number; p99: number }
  digestBytes: number
  bytesPerHost: number
  packetsPerHost: number
  pulls: number
  recordsPulled: number
  realMs: number
}

async function run(profile: 'lan' | 'local'): Promise<Result> {
  const realStart = Date.now()
  const clock = new VirtualClock()
  const random = seeded(42)
  const net = new SimNetwork(clock, { latencyMs: 1, jitterMs: 1, loss: 0, random })
  const logger = silentLogger()
  const nodes: Node[] = []
  for (let i = 0; i < HOSTS; i++) {
    const name = `host-${String(i).padStart(3, '0')}`
    const ip = `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`
    const gossip = new Gossip({ name, cluster: 'bench', profile }, { transport: net.transport(ip), clock, logger, random })
    await gossip.start()
    const catalog = new Catalog({ cluster: 'bench', self: name, address: `${ip}:7946` }, { clock, logger })
    catalog.setLocalBoot(gossip.bootId)
    for (let s = 0; s < PER_HOST; s++) catalog.upsertLocal(service(ip, s))
    const bridge = new GossipBridge({ announceOnStart: false }, { catalog, gossip, logger })
    nodes.push({ name, ip, gossip, catalog, bridge })
  }
  // Start converged: membership seeded, every catalog holding every owner's records.
  const all = nodes.map((n) => n.gossip.localMember())
  for (const n of nodes) n.gossip.seedMembers(all)
  const everything = nodes.flatMap((n) => n.catalog.localRecords())
  for (const n of nodes) {
    for (const m of all)
      if (m.name !== n.name) n.catalog.setHost(m.name, { state: 'alive', bootId: m.meta.boot ?? '', address: `${m.addr}:${m.port}` })
    for (const r of everything) if (r.host !== n.name) n.catalog.mergeRemote(r)
    n.bridge.start()
    n.catalog.start()
  }
  await clock.advance(2000)

  const digestBytes = nodes[0]!.bridge.digestBytes()
  const before = net.stats()

  // Per change: when did every other host hold (at least) its version?
  const pending = new Map<string, { v: Version; at: number; missing: Set<string> }[]>()
  const done: number[] = []
  for (const n of nodes) {
    n.catalog.subscribe((ev) => {
      if (!('record' in ev)) return
      const r = ev.record
      const list = pending.get(`${r.host}/${r.id}`)
      if (!list) return
      for (const c of list) {
        if (compareVersions(r.version, c.v) >= 0 && c.missing.delete(n.name) && c.missing.size === 0) done.push(clock.now() - c.at)
      }
    })
  }
  const rnd = seeded(7)
  const t0 = clock.now()
  for (let k = 0; k < CHANGES; k++) {
    const n = nodes[Math.floor(rnd() * nodes.length)]!
    const r = rnd()
    let rec
    if (r < 0.6) {
      const i = Math.floor(rnd() * PER_HOST)
      rec = n.catalog.upsertLocal(service(n.ip, i, 9000 + Math.floor(rnd() * 1000), rnd() < 0.7 ? 'alive' : 'unhealthy'))
    } else if (r < 0.85) {
      const i = Math.floor(rnd() * PER_HOST)
      if (!n.catalog.removeLocal(`s${i}`)) continue
      rec = n.catalog.get(n.name, `s${i}`)!
    } else {
      rec = n.catalog.upsertLocal(service(n.ip, PER_HOST + Math.floor(rnd() * 10)))
    }
    const key = `${rec.host}/${rec.id}`
    const list = pending.get(key) ?? []
    list.push({ v: rec.version, at: t0, missing: new Set(nodes.filter((x) => x !== n).map((x) => x.name)) })
    pending.set(key, list)
  }
  const tracked = [...pending.values()].reduce((s, l) => s + l.length, 0)

  const converged = (): boolean => {
    const truth = new Map(nodes.map((n) => [n.name, JSON.stringify(n.catalog.digest().find((d) => d.host === n.name))]))
    for (const n of nodes) {
      for (const d of n.catalog.digest()) if (truth.get(d.host) !== JSON.stringify(d)) return false
    }
    return true
  }
  const ok = await clock.runUntil(converged, 600_000, 100)
  if (!ok) throw new Error(`${profile}: no convergence within 600 s of virtual time`)
  const convergedMs = Math.round(clock.now() - t0)
  const after = net.stats()
  const pulls = nodes.reduce((s, n) => s + n.bridge.stats.pullsSent, 0)
  const recordsPulled = nodes.reduce((s, n) => s + n.bridge.stats.recordsPulled, 0)

  // Single changes on a quiet cluster: one record at a time, until every other host holds it.
  const single: number[] = []
  for (let k = 0; k < 20; k++) {
    await clock.advance(3000)
    const n = nodes[Math.floor(rnd() * nodes.length)]!
    const rec = n.catalog.upsertLocal(service(n.ip, k % PER_HOST, 20000 + k, 'alive'))
    const at = clock.now()
    const reached = (): boolean =>
      nodes.every((x) => {
        const v = x.catalog.versionOf(rec.host, rec.id)
        return v !== undefined && compareVersions(v, rec.version) >= 0
      })
    if (!(await clock.runUntil(reached, 120_000, 10))) throw new Error(`${profile}: a single change did not reach everyone`)
    single.push(clock.now() - at)
  }
  if (done.length !== tracked)
    console.log(
      `# ${profile}: ${tracked - done.length} of ${tracked} changes superseded before reaching everyone (counted via later versions)`,
    )
  for (const n of nodes) {
    n.bridge.stop()
    n.catalog.stop()
    await n.gossip.stop()
  }
  return {
    profile,
    convergedMs,
    perChange: { p50: Math.round(pct(done, 50)), p99: Math.round(pct(done, 99)), max: Math.round(Math.max(...done)) },
    single: { p50: Math.round(pct(single, 50)), p99: Math.round(pct(single, 99)) },
    digestBytes,
    bytesPerHost: Math.round((after.bytesSent + after.streamBytesSent - before.bytesSent - before.streamBytesSent) / HOSTS),
    packetsPerHost: Math.round((after.packetsSent - before.packetsSent) / HOSTS),
    pulls,
    recordsPulled,
    realMs: Date.now() - realStart,
  }
}

const results: Result[] = []
for (const profile of ['lan', 'local'] as const) {
  const r = await run(profile)
  results.push(r)
  console.log(
    `${profile}: ${HOSTS} hosts x ${PER_HOST} services, burst of ${CHANGES} changes: converged in ${(r.convergedMs / 1000).toFixed(1)} s virtual; ` +
      `per change p50 ${r.perChange.p50} ms, p99 ${r.perChange.p99} ms, max ${r.perChange.max} ms; ` +
      `single change to all hosts p50 ${r.single.p50} ms, p99 ${r.single.p99} ms; digest ${r.digestBytes} B; ` +
      `${(r.bytesPerHost / 1024).toFixed(0)} KiB and ${r.packetsPerHost} packets sent per host; ${r.pulls} pulls (${r.recordsPulled} records); ${(r.realMs / 1000).toFixed(1)} s real`,
  )
}

if (!quick) {
  const rows = results
    .map(
      (r) =>
        `| ${r.profile} | ${(r.convergedMs / 1000).toFixed(1)} s | ${r.perChange.p50} ms | ${r.perChange.p99} ms | ${r.perChange.max} ms | ${r.single.p50} / ${r.single.p99} ms | ${r.digestBytes} B | ${(r.bytesPerHost / 1024).toFixed(0)} KiB / ${r.packetsPerHost} | ${r.pulls} (${r.recordsPulled}) | ${(r.realMs / 1000).toFixed(0)} s |`,
    )
    .join('\n')
  const md = `# Registry on the simulator

\`bench/registry-sim.ts\`: real \`Gossip\` + \`Catalog\` + \`GossipBridge\` per host, virtual time,
in-memory network (1 ms latency, up to 1 ms jitter, no loss). ${HOSTS} hosts x ${PER_HOST} services start
converged (membership seeded, catalogs filled), then a burst of ${CHANGES} changes at one instant on random
hosts (updates of port or status, removals, new instances).

- converged: virtual time until every replica's per-owner digest equals the owner's own (same live records, same versions);
- per change: virtual time until every other host holds that version (or a later one);
- single change: afterwards, 20 changes one at a time on a quiet cluster, each until every host holds it;
- digest: the push-pull state one host sends (${HOSTS} owners);
- sent per host: datagram + stream bytes and datagrams during the burst, averaged over hosts;
- pulls: second-step push-pull requests (records fetched) during the burst.

| profile | burst converged | burst: per change p50 | p99 | max | single change p50 / p99 | digest | sent per host (burst) | pulls (records) | real time |
|---|---|---|---|---|---|---|---|---|---|
${rows}

Gossip timing per profile: lan = 200 ms gossip interval, fanout 3, push-pull every 30 s (x4 at ${HOSTS} hosts);
local = 50 ms, fanout 3, push-pull 5 s (x4). Dissemination is bounded by datagram capacity: every record change
(about 150 bytes with the gossip envelope) is relayed by every host up to the retransmit limit, so a burst of
${CHANGES} changes takes a number of gossip rounds proportional to ${CHANGES} x limit / (records per datagram).

Machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores), Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.
`
  writeFileSync(new URL('./RESULTS-registry.md', import.meta.url), md)
  console.log('wrote bench/RESULTS-registry.md')
}
