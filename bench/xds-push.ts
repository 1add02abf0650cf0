// xDS push bench: catalog change -> ACK recorded by the server, with 1000 ServicePorts x 10
// instances. Two clients at once: an Envoy-like raw ADS client (wildcard CDS/LDS, EDS/RDS for
// every name) and a real grpc-js-xds channel on xds:///svc0:10000. Also snapshot build time
// and memory at that size. Writes bench/RESULTS-xds.md.
//   TS_NODE_TRANSPILE_ONLY=1 node --import=@tapjs/typescript/import bench/xds-push.ts [iterations]
import * as grpc from '@grpc/grpc-js'
import { writeFileSync } from 'node:fs'
import { silentLogger } from '../src/log.js'
import type { CatalogEvent, CatalogSnapshot, CatalogView, HostView, ServiceRecord } from '../src/registry/types.js'
import { grpcBootstrap } from '../src/xds/bootstrap.js'
import { DECODE_OPTIONS, loadXdsProtos, TypeUrl } from '../src/xds/protos.js'
import { XdsServer } from '../src/xds/server.js'
import { SnapshotBuilder } from '../src/xds/snapshot.js'

const SERVICES = 1000
const HOSTS = 10
const ITER = Number(process.argv[2] ?? 200)

class BenchCatalog implements CatalogView {
  snap: CatalogSnapshot
  private ls = new Set<(e: CatalogEvent) => void>()
  constructor(hosts: HostView[]) {
    this.snap = { cluster: 'bench', seq: 1, hosts }
  }
  snapshot() {
    return this.snap
  }
  subscribe(l: (e: CatalogEvent) => void) {
    this.ls.add(l)
    return () => this.ls.delete(l)
  }
  set(hosts: HostView[]) {
    this.snap = { cluster: 'bench', seq: this.snap.seq + 1, hosts }
    for (const l of this.ls) l({ type: 'host-up', host: 'h0' })
  }
}

function record(h: number, s: number, status: ServiceRecord['status'] = 'alive'): ServiceRecord {
  return {
    id: `h${h}s${s}`,
    name: `svc${s}`,
    image: 'img',
    created: 0,
    host: `h${h}`,
    bootId: `b${h}`,
    ports: [{ type: 'tcp', port: 20000 + s, servicePort: 10000 + s, ip: `10.0.${h}.1` }],
    proxyMode: s % 4 === 0 ? 'grpc' : s % 4 === 1 ? 'tcp' : 'http',
    status,
    version: [1, 0],
    updated: 0,
    labels: {},
  }
}

const hosts: HostView[] = []
for (let h = 0; h < HOSTS; h++) {
  const services: ServiceRecord[] = []
  for (let s = 0; s < SERVICES; s++) services.push(record(h, s))
  hosts.push({ name: `h${h}`, address: `10.0.${h}.1:7946`, state: 'alive', bootId: `b${h}`, services })
}
const catalog = new BenchCatalog(hosts)

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}
const f = (x: number) => x.toFixed(2)

// ---- snapshot build time and memory ----
const t0 = performance.now()
const protos = loadXdsProtos()
const loadMs = performance.now() - t0
global.gc?.()
const heap0 = process.memoryUsage().heapUsed
const builder = new SnapshotBuilder(protos, { envoyBind: '127.0.0.1' }, () => undefined)
let t1 = performance.now()
builder.build(catalog.snapshot(), 'envoy')
const coldEnvoyMs = performance.now() - t1
t1 = performance.now()
builder.build(catalog.snapshot(), 'grpc')
const coldGrpcMs = performance.now() - t1
global.gc?.()
const heapMb = (process.memoryUsage().heapUsed - heap0) / 1e6
const incr: number[] = []
for (let i = 0; i < 50; i++) {
  const h0 = { ...hosts[0]!, services: hosts[0]!.services.map((r, s) => (s === i ? record(0, s, 'unhealthy') : r)) }
  const snap = { cluster: 'bench', seq: 1000 + i, hosts: [h0, ...hosts.slice(1)] }
  t1 = performance.now()
  builder.build(snap, 'envoy')
  builder.build(snap, 'grpc')
  incr.push(performance.now() - t1)
}

// ---- push latency ----
const server = new XdsServer({ bind: '127.0.0.1:0', envoyBind: '127.0.0.1' }, { logger: silentLogger(), catalog })
const { port } = await server.start()
server.setReady(true)

// Envoy-like raw client: ACKs every response at once.
const Ctor = grpc.makeGenericClientConstructor(protos.adsService, 'ads')
const raw = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as any
const stream = raw.StreamAggregatedResources()
const allNames = Array.from({ length: SERVICES }, (_, s) => `svc${s}:${10000 + s}`)
const namesFor = (type: string) => (type === TypeUrl.cluster || type === TypeUrl.listener ? [] : allNames)
stream.on('data', (res: any) => {
  stream.write({ type_url: res.type_url, version_info: res.version_info, response_nonce: res.nonce, resource_names: namesFor(res.type_url) })
  if (res.type_url === TypeUrl.endpoint) lastEds = res
})
let lastEds: any = null
stream.on('error', () => undefined)
stream.write({ type_url: TypeUrl.cluster, node: { id: 'bench-envoy', user_agent_name: 'envoy' }, resource_names: [] })
stream.write({ type_url: TypeUrl.endpoint, resource_names: allNames })
stream.write({ type_url: TypeUrl.listener, resource_names: [] })
stream.write({ type_url: TypeUrl.route, resource_names: allNames })

// grpc-js-xds client.
process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(grpcBootstrap({ nodeId: 'bench-grpc', xdsAddress: `127.0.0.1:${port}` }))
const xds = await import('@grpc/grpc-js-xds')
xds.register()
const client = new grpc.Client('xds:///svc0:10000', grpc.credentials.createInsecure())
client.getChannel().getConnectivityState(true)

const ackedEds = (nodeId: string) => server.ackedVersion(nodeId, 'eds')
async function waitFor(pred: () => boolean, ms = 10_000) {
  const end = performance.now() + ms
  while (!pred()) {
    if (performance.now() > end) throw new Error('timeout')
    await new Promise((r) => setImmediate(r))
  }
}
await waitFor(() => ackedEds('bench-envoy') !== null && ackedEds('bench-grpc') !== null)
await new Promise((r) => setTimeout(r, 500))

const envoyLat: number[] = []
const grpcLat: number[] = []
let state = hosts.map((h) => h.services)
for (let i = 0; i < ITER; i++) {
  // Toggle svc0 on host 0 (seen by both clients), or another service (Envoy client only) every other round.
  const s = i % 2 === 0 ? 0 : 1 + ((i * 7) % (SERVICES - 1))
  const cur = state[0]![s]!
  const next = record(0, s, cur.status === 'alive' ? 'unhealthy' : 'alive')
  state = [state[0]!.map((r, j) => (j === s ? next : r)), ...state.slice(1)]
  const beforeEnvoy = ackedEds('bench-envoy')
  const beforeGrpc = ackedEds('bench-grpc')
  const start = performance.now()
  catalog.set(hosts.map((h, k) => ({ ...h, services: state[k]! })))
  await waitFor(() => ackedEds('bench-envoy') !== beforeEnvoy && (s !== 0 || ackedEds('bench-grpc') !== beforeGrpc))
  const doneBoth = performance.now()
  envoyLat.push(doneBoth - start)
  if (s === 0) grpcLat.push(doneBoth - start)
  await new Promise((r) => setTimeout(r, 120)) // past the 100 ms push interval: every change is a "first change"
}
void lastEds
void DECODE_OPTIONS

const lines = [
  '# xDS push bench',
  '',
  `Run: \`TS_NODE_TRANSPILE_ONLY=1 node --expose-gc --import=@tapjs/typescript/import bench/xds-push.ts ${ITER}\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${(await import('node:os')).cpus().length} CPUs.`,
  `Load average at the end of the run: ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' / ')} (other work on the machine inflates every figure).`,
  `Catalog: ${SERVICES} ServicePorts x ${HOSTS} instances (one per host, ${HOSTS} hosts, ${SERVICES * HOSTS} records; modes mixed http/tcp/grpc).`,
  '',
  '## Catalog change until the client ACKed the new version (server-side ACK seen)',
  '',
  '| client | samples | p50 ms | p99 ms | max ms |',
  '|---|---|---|---|---|',
  `| grpc-js-xds, xds:///svc0:10000 (EDS of its cluster) | ${grpcLat.length} | ${f(pct(grpcLat, 50))} | ${f(pct(grpcLat, 99))} | ${f(Math.max(...grpcLat))} |`,
  `| Envoy-like raw ADS client (wildcard CDS/LDS, EDS/RDS for all ${SERVICES}) | ${envoyLat.length} | ${f(pct(envoyLat, 50))} | ${f(pct(envoyLat, 99))} | ${f(Math.max(...envoyLat))} |`,
  '',
  'Target: p99 <= 50 ms. Each change comes after the 100 ms push interval (a "first change after quiet"), so no coalescing delay is included; both clients are connected during every change.',
  '',
  '## Snapshot build',
  '',
  `| what | figure |`,
  '|---|---|',
  `| protos load (once per process) | ${f(loadMs)} ms |`,
  `| cold build, envoy kind (4000 resources: validate + encode + hash) | ${f(coldEnvoyMs)} ms |`,
  `| cold build, grpc kind (~5000 resources) | ${f(coldGrpcMs)} ms |`,
  `| incremental build after one record changed, both kinds (p50 / p99 of 50) | ${f(pct(incr, 50))} / ${f(pct(incr, 99))} ms |`,
  `| heap held by both cached snapshots | ${heapMb.toFixed(1)} MB${global.gc ? '' : ' (run without --expose-gc: approximate)'} |`,
  '',
]
writeFileSync(new URL('./RESULTS-xds.md', import.meta.url), lines.join('\n'))
console.log(lines.join('\n'))
client.close()
stream.cancel()
raw.close()
await server.stop()
process.exit(0)
