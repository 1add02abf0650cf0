/**
 * The registry at scale on the simulator: real Gossip + Catalog + GossipBridge per host,
 * virtual time, in-memory network (1 ms latency + up to 1 ms jitter, no loss).
 *
 * Run (node --import tsx bench/registry-sim.ts ...):
 *   [--run lan-200,local-200,lan-1000]   the runs (profile-hosts); default lan-200,local-200
 *   --quick                              lan and local at 50 hosts, 250 changes, nothing written
 *   --src DIR                            drive DIR/src instead of this tree's src (a `git archive` of another commit)
 *   --json FILE                          write the results as JSON instead of a table
 *   --compare REF                        before/after in one run: REF's src (git archive under /tmp) and this
 *                                        tree's src, one child process per run and version, alternating;
 *                                        writes bench/RESULTS-registry.md
 *
 * Per run: H hosts x 20 services start converged (membership seeded, every catalog filled with
 * every owner's records, so the measurement is the burst alone); then a burst of 5 x H changes
 * at one instant on random hosts (60% updates of port or status, 25% removals, 15% new
 * instances). Measured in virtual time: until every replica holds exactly what the owners
 * hold (digest equality, checked every 100 ms), and per change the time until every other
 * host holds it (p50, p99, max). Then 20 single changes on the quiet cluster (p50, p99 until
 * every host holds it). Also: push-pull digest size, bytes and datagrams sent per host during
 * the burst, stream requests.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { option, pct, registryModules } from './stats.js'
import { seeded } from '../test/lib/random.js'
import type { LocalRecord } from '../src/registry/catalog.js'
import type { Version } from '../src/registry/types.js'

const repo = fileURLToPath(new URL('..', import.meta.url))
const quick = process.argv.slice(2).includes('--quick')
const PER_HOST = 20

interface RunSpec {
  profile: 'lan' | 'local'
  hosts: number
  changes: number
}

function parseRuns(s: string): RunSpec[] {
  return s.split(',').map((r) => {
    const m = /^(lan|local)-(\d+)$/.exec(r.trim())
    if (!m) throw new Error(`--run ${r}: expected PROFILE-HOSTS, e.g. lan-200`)
    const hosts = Number(m[2])
    return { profile: m[1] as 'lan' | 'local', hosts, changes: hosts * 5 }
  })
}

export interface Result {
  profile: string
  hosts: number
  changes: number
  convergedMs: number
  perChange: { p50: number; p99: number; max: number }
  single: { p50: number; p99: number }
  digestBytes: number
  bytesPerHost: number
  packetsPerHost: number
  requests: number
  realMs: number
  heapMb: number
}

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

async function run(srcRoot: string, spec: RunSpec): Promise<Result> {
  const { VirtualClock, Gossip, SimNetwork, silentLogger, GossipBridge, Catalog, compareVersions, REGISTRY_PROTOCOL } =
    await registryModules(srcRoot)

  const { profile, hosts: HOSTS, changes: CHANGES } = spec
  const realStart = Date.now()
  // Where a long run stands, on stderr: real seconds, RSS, the phase (a 1000-host run takes a while).
  const progress = (what: string) =>
    process.stderr.write(
      `# ${profile}-${HOSTS} [${((Date.now() - realStart) / 1000).toFixed(0)} s real, rss ${Math.round(process.memoryUsage().rss / 1048576)} MiB]: ${what}\n`,
    )
  const clock = new VirtualClock()
  const random = seeded(42)
  const net = new SimNetwork(clock, { latencyMs: 1, jitterMs: 1, loss: 0, random })
  const logger = silentLogger()
  const nodes: Array<{ name: string; ip: string; gossip: any; catalog: any; bridge: any }> = []
  for (let i = 0; i < HOSTS; i++) {
    const name = `host-${String(i).padStart(4, '0')}`
    const ip = `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`
    // The registry protocol in the metadata, as the agent advertises it.
    const gossip = new Gossip(
      { name, cluster: 'bench', profile, meta: { reg: String(REGISTRY_PROTOCOL) } },
      { transport: net.transport(ip), clock, logger, random },
    )
    await gossip.start()
    const catalog = new Catalog({ cluster: 'bench', self: name, address: `${ip}:7946` }, { clock, logger })
    catalog.setLocalBoot(gossip.bootId)
    for (let s = 0; s < PER_HOST; s++) catalog.upsertLocal(service(ip, s))
    const bridge = new GossipBridge({ announceOnStart: false }, { catalog, gossip, logger, random })
    nodes.push({ name, ip, gossip, catalog, bridge })
  }
  progress(`${HOSTS} hosts made`)
  // Start converged: membership seeded, every catalog holding every owner's records.
  const all = nodes.map((n) => n.gossip.localMember())
  for (const n of nodes) n.gossip.seedMembers(all)
  const everything = nodes.flatMap((n) => n.catalog.localRecords())
  for (const n of nodes) {
    for (const m of all)
      if (m.name !== n.name) n.catalog.setHost(m.name, { state: 'alive', bootId: m.meta.boot ?? '', address: `${m.addr}:${m.port}` })
    for (const r of everything) if (r.host !== n.name) n.catalog.mergeRemote(r)
    // ...and knowing it holds all of it (releases with notices track that per owner).
    if (typeof n.catalog.cover === 'function')
      for (const o of nodes) if (o !== n) n.catalog.cover(o.name, o.gossip.bootId, o.catalog.coverage(o.name).version)
    n.bridge.start()
    n.catalog.start()
    if (nodes.indexOf(n) % 100 === 99) progress(`${nodes.indexOf(n) + 1} catalogs filled`)
  }
  await clock.advance(2000)
  progress('converged start; the burst begins')

  const digestBytes = nodes[0]!.bridge.digestBytes()
  const before = net.stats()

  // Per change: when did every other host hold (at least) its version? One byte per host and
  // change marks who still misses it (a Set of names per change is 5 million entries at 1000 hosts).
  const pending = new Map<string, Array<{ v: Version; at: number; missing: Uint8Array; left: number }>>()
  const done: number[] = []
  nodes.forEach((n, index) => {
    n.catalog.subscribe((ev: any) => {
      if (!('record' in ev)) return
      const r = ev.record
      const list = pending.get(`${r.host}/${r.id}`)
      if (!list) return
      for (const c of list) {
        if (c.missing[index] === 1 && compareVersions(r.version, c.v) >= 0) {
          c.missing[index] = 0
          if (--c.left === 0) done.push(clock.now() - c.at)
        }
      }
    })
  })
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
    const missing = new Uint8Array(HOSTS).fill(1)
    missing[nodes.indexOf(n)] = 0
    list.push({ v: rec.version, at: t0, missing, left: HOSTS - 1 })
    pending.set(key, list)
  }
  const tracked = [...pending.values()].reduce((s, l) => s + l.length, 0)

  // Every replica's per-owner digest equals the owner's own (early exit on the first difference).
  const converged = (): boolean => {
    const truth = new Map<string, any>()
    for (const n of nodes)
      truth.set(
        n.name,
        n.catalog.digest().find((d: any) => d.host === n.name),
      )
    for (const n of nodes) {
      const ds = n.catalog.digest()
      if (ds.length !== nodes.length) return false
      for (const d of ds) {
        const t = truth.get(d.host)
        if (!t || t.bootId !== d.bootId || t.count !== d.count || t.hash !== d.hash || compareVersions(t.max, d.max) !== 0) return false
      }
    }
    return true
  }
  let checks = 0
  const ok = await clock.runUntil(
    () => {
      if (++checks % 10 === 0)
        progress(`${((clock.now() - t0) / 1000).toFixed(1)} s virtual: ${done.length} of ${tracked} changes everywhere`)
      return converged()
    },
    600_000,
    100,
  )
  if (!ok) throw new Error(`${profile}-${HOSTS}: no convergence within 600 s of virtual time`)
  const convergedMs = Math.round(clock.now() - t0)
  const after = net.stats()
  // The burst's own figures now, before the single changes: a long run stopped later still reports them.
  progress(
    `converged after ${(convergedMs / 1000).toFixed(1)} s virtual; per change p50 ${Math.round(pct(done, 50))} ms, ` +
      `p99 ${Math.round(pct(done, 99))} ms, max ${Math.round(Math.max(...done))} ms (${done.length} of ${tracked}); ` +
      `${Math.round((after.bytesSent + after.streamBytesSent - before.bytesSent - before.streamBytesSent) / HOSTS / 1024)} KiB and ` +
      `${Math.round((after.packetsSent - before.packetsSent) / HOSTS)} datagrams sent per host; ${after.requestsSent - before.requestsSent} stream requests; ` +
      `digest ${digestBytes} B; single changes next`,
  )

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
    if (!(await clock.runUntil(reached, 120_000, 10))) throw new Error(`${profile}-${HOSTS}: a single change did not reach everyone`)
    single.push(clock.now() - at)
    progress(`single change ${k + 1} of 20 everywhere in ${Math.round(clock.now() - at)} ms`)
  }
  if (done.length !== tracked)
    process.stderr.write(
      `# ${profile}-${HOSTS}: ${tracked - done.length} of ${tracked} changes superseded before reaching everyone (counted via later versions)\n`,
    )
  const heapMb = process.memoryUsage().heapUsed / 1048576
  for (const n of nodes) {
    n.bridge.stop()
    n.catalog.stop()
    await n.gossip.stop()
  }
  return {
    profile,
    hosts: HOSTS,
    changes: CHANGES,
    convergedMs,
    perChange: { p50: Math.round(pct(done, 50)), p99: Math.round(pct(done, 99)), max: Math.round(Math.max(...done)) },
    single: { p50: Math.round(pct(single, 50)), p99: Math.round(pct(single, 99)) },
    digestBytes,
    bytesPerHost: Math.round((after.bytesSent + after.streamBytesSent - before.bytesSent - before.streamBytesSent) / HOSTS),
    packetsPerHost: Math.round((after.packetsSent - before.packetsSent) / HOSTS),
    requests: after.requestsSent - before.requestsSent,
    realMs: Date.now() - realStart,
    heapMb: Math.round(heapMb),
  }
}

function line(label: string, r: Result): string {
  return (
    `${label}${r.profile}, ${r.hosts} hosts x ${PER_HOST} services, burst of ${r.changes}: converged in ${(r.convergedMs / 1000).toFixed(1)} s virtual; ` +
    `per change p50 ${r.perChange.p50} ms, p99 ${r.perChange.p99} ms, max ${r.perChange.max} ms; ` +
    `single change p50 ${r.single.p50} ms, p99 ${r.single.p99} ms; digest ${r.digestBytes} B; ` +
    `${(r.bytesPerHost / 1024).toFixed(0)} KiB and ${r.packetsPerHost} datagrams sent per host; ${r.requests} stream requests; ` +
    `${(r.realMs / 1000).toFixed(1)} s real, heap ${r.heapMb} MB`
  )
}

function row(version: string, r: Result): string {
  return `| ${r.profile} | ${r.hosts} x ${PER_HOST}, ${r.changes} | ${version} | ${(r.convergedMs / 1000).toFixed(1)} s | ${r.perChange.p50} / ${r.perChange.p99} / ${r.perChange.max} ms | ${r.single.p50} / ${r.single.p99} ms | ${(r.bytesPerHost / 1024).toFixed(0)} KiB / ${r.packetsPerHost} | ${r.requests} | ${r.digestBytes} B | ${(r.realMs / 1000).toFixed(0)} s |`
}

/** REF's src/ (git archive) in a folder under /tmp that shares this tree's node_modules. */
function checkout(ref: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-registry-sim-'))
  const tar = execFileSync('git', ['archive', ref, 'src', 'package.json', 'tsconfig.json'], { cwd: repo, maxBuffer: 1 << 28 })
  spawnSync('tar', ['-x', '-C', dir], { input: tar })
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'))
  return dir
}

async function compare(ref: string, runs: RunSpec[]): Promise<void> {
  const sha = execFileSync('git', ['rev-parse', '--short', ref], { cwd: repo, encoding: 'utf8' }).trim()
  const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, encoding: 'utf8' }).trim()
  const before = checkout(ref)
  const rows: string[] = []
  const loads: number[] = []
  try {
    for (const spec of runs) {
      for (const [label, src] of [
        [`before (${sha})`, before],
        [`after (${head} + work tree)`, repo],
      ] as const) {
        const out = join(tmpdir(), `shoal-registry-sim-${process.pid}.json`)
        loads.push(loadavg()[0]!)
        const r = spawnSync(
          process.execPath,
          [
            '--max-old-space-size=16384',
            '--import',
            join(repo, 'node_modules/@tapjs/typescript/dist/esm/import.mjs'),
            fileURLToPath(import.meta.url),
            '--run',
            `${spec.profile}-${spec.hosts}`,
            '--src',
            src,
            '--json',
            out,
          ],
          { stdio: ['ignore', 'inherit', 'inherit'] },
        )
        if (r.status !== 0) throw new Error(`${label} ${spec.profile}-${spec.hosts} failed (exit ${r.status})`)
        const res = JSON.parse(readFileSync(out, 'utf8')) as Result[]
        rmSync(out, { force: true })
        for (const x of res) {
          console.log(line(`${label}: `, x))
          rows.push(row(label, x))
        }
      }
    }
  } finally {
    rmSync(before, { recursive: true, force: true })
  }
  writeFileSync(join(repo, 'bench', 'RESULTS-registry.md'), results(rows, loads, `${sha} (before) and ${head} plus the work tree (after)`))
  console.log('wrote bench/RESULTS-registry.md')
}

function results(rows: string[], loads: number[], what: string): string {
  return `# Registry on the simulator

\`bench/registry-sim.ts --compare REF\`: real \`Gossip\` + \`Catalog\` + \`GossipBridge\` per host, virtual time,
in-memory network (1 ms latency, up to 1 ms jitter, no loss); ${what}, each run in a child process
of the same invocation. H hosts x ${PER_HOST} services start converged (membership seeded, catalogs filled), then a
burst of 5 x H changes at one instant on random hosts (updates of port or status, removals, new instances).

- converged: virtual time until every replica's per-owner digest equals the owner's own (same live records, same versions);
- per change: virtual time until every other host holds that version (or a later one), p50 / p99 / max;
- single change: afterwards, 20 changes one at a time on a quiet cluster, each until every host holds it;
- sent per host: datagram and stream bytes, and datagrams, during the burst (until converged), averaged over hosts;
- stream requests: pulls, digest requests and gets during the burst, all hosts;
- digest: the per-owner push-pull digest one host sends (H owners).

| profile | hosts x services, burst | version | burst converged | per change p50 / p99 / max | single change p50 / p99 | sent per host (burst) | stream requests | digest | real time |
|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Goals (issue 17): at 200 hosts a burst of 1000 converges everywhere within 2 s with a per-change p99 within 1.5 s,
sending no more bytes per host than before; a single change on a quiet cluster stays within p99 350 ms (lan).

Gossip timing per profile: lan = 200 ms gossip interval, fanout 3, push-pull every 30 s (x4 at 200 hosts, x6 at 1000);
local = 50 ms, fanout 3, push-pull 5 s (same scaling).

Machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores), Node ${process.version}, ${new Date().toISOString().slice(0, 10)};
load average ${Math.min(...loads).toFixed(1)} to ${Math.max(...loads).toFixed(1)} at the starts of the runs (virtual time: the figures do not depend on load).
`
}

const runs = parseRuns(option('--run') ?? (quick ? 'lan-50,local-50' : 'lan-200,local-200'))
if (quick) for (const r of runs) r.changes = Math.min(r.changes, 250)
const ref = option('--compare')
if (ref) await compare(ref, runs)
else {
  const results: Result[] = []
  for (const spec of runs) {
    const r = await run(option('--src') ?? repo, spec)
    results.push(r)
    if (!option('--json')) console.log(line('', r))
  }
  if (option('--json')) writeFileSync(option('--json')!, JSON.stringify(results))
}
process.exit(0)
