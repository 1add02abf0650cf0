// Property: whatever the catalog holds and however it changes, both real proxyless clients
// (grpc-js-xds and gRPC C-core) never NACK and always end on the catalog's final state.
// Seeded random histories (duplicate addresses, IPv6 spellings, zero instances, all draining,
// long names, many ServicePorts, conflicts, dead hosts, removals and re-adds, services asking
// for external authorization, tags and attributes as endpoint metadata) are pushed through one live ADS server to one long-lived client
// of each kind; after each history the test waits until every client ACKed exactly what the
// final catalog gives for its subscriptions and subscribes to every Cluster and assignment its
// Listeners name.
//
// SHOAL_XDS_HISTORIES (default 200; `npm run fuzz:xds` runs 2000) sets the count;
// SHOAL_XDS_SEED=N replays history N alone (a failure prints its seed).
import t from 'tap'
import type { HostView, ServiceRecord } from '../src/registry/types.js'
import { seeded } from './lib/random.js'
import { groupServicePorts } from './lib/xds-oracle.js'
import { startXdsClient, XDS_CLIENT_KINDS, xdsClientMissing, type XdsTestClient } from './lib/xds-clients.js'
import { FixtureCatalog, rec, startServer } from './lib/xds-fixture.js'

const COUNT = Number(process.env.SHOAL_XDS_HISTORIES ?? 200)
const ONLY = process.env.SHOAL_XDS_SEED ? Number(process.env.SHOAL_XDS_SEED) : null

const LONG = 'svc-' + 'x'.repeat(100)
const NAMES = ['echo', 'web', 'api', LONG] as const
const SERVICE_PORTS = [10001, 10002, 10003, 10004] as const
// Few addresses, so that duplicates are common; two spellings of ::1.
const IPS = ['127.0.0.1', '127.0.0.2', '::1', '0:0:0:0:0:0:0:1'] as const
const PORTS = [9001, 9002, 9003] as const
const STATUSES = ['alive', 'alive', 'alive', 'unknown', 'draining', 'unhealthy'] as const
const MODES = ['grpc', 'http', 'tcp', 'ws'] as const
const HOSTS = ['h0', 'h1', 'h2', 'h3'] as const
const TAGS = ['blue', 'canary', 'v1.2', 'é中😀', 't'.repeat(128)] as const
const ATTRIBUTE_VALUES = ['us-east', '', 'é中😀 "quoted"', 'v'.repeat(512)] as const

/** Every Listener a client can name: `name:port` for the pool, and the bare names. */
const TARGETS = [...NAMES.flatMap((n) => SERVICE_PORTS.map((sp) => `xds:///${n}:${sp}`)), ...NAMES.map((n) => `xds:///${n}`)]

type Rand = () => number
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!

function randomRecord(r: Rand, host: string, id: string, shape: string): ServiceRecord {
  const name = shape === 'one-name' ? 'echo' : pick(r, NAMES)
  const ports = Array.from({ length: shape === 'many-ports' ? 1 + Math.floor(r() * 4) : 1 }, () => ({
    type: 'tcp' as const,
    port: pick(r, PORTS),
    servicePort: pick(r, SERVICE_PORTS),
    ip: pick(r, IPS),
  }))
  const status = shape === 'all-draining' ? 'draining' : pick(r, STATUSES)
  // Some ask for external authorization by another name of the pool (resolved or not): gRPC gets no filter for it.
  const labels: Record<string, string> = r() < 0.3 ? { 'shoal.authz': pick(r, NAMES) } : {}
  // Half say their calls may be repeated: the route's retry policy changes as instances come and go (issue 14).
  if (r() < 0.5) labels['shoal.idempotent'] = 'true'
  const out: ServiceRecord = { ...rec({ host, id, name, servicePort: 1, port: 1, mode: pick(r, MODES), status }), ports, labels }
  // Some carry tags and attributes (endpoint metadata), at their limits of length and in other planes.
  if (r() < 0.4) out.tags = TAGS.filter(() => r() < 0.5)
  if (r() < 0.3) out.attributes = { region: pick(r, ATTRIBUTE_VALUES), 'a.b-c_d': pick(r, ATTRIBUTE_VALUES) }
  return out
}

/** One catalog state: 0-4 hosts, each with 0-4 records, in one of a few shapes. */
function randomState(r: Rand): HostView[] {
  const shape = pick(r, ['mixed', 'mixed', 'mixed', 'empty', 'all-draining', 'many-ports', 'one-name'])
  if (shape === 'empty') return []
  return HOSTS.filter(() => r() < 0.8).map((h) => ({
    name: h,
    address: '127.0.0.1:7946',
    state: pick(r, ['alive', 'alive', 'alive', 'suspect', 'dead'] as const),
    bootId: 'boot-' + h,
    services: Array.from({ length: Math.floor(r() * 5) }, (_, k) => randomRecord(r, h, `${h}-${k}`, shape)),
  }))
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms))

t.test('random catalog histories: no NACK, every client ends on the final state', async (t) => {
  const kinds = XDS_CLIENT_KINDS.filter((k) => xdsClientMissing(k) === null)
  for (const k of XDS_CLIENT_KINDS) if (!kinds.includes(k)) t.comment(`skipped ${k}: ${xdsClientMissing(k)}`)
  const catalog = new FixtureCatalog([])
  // A short removal grace: grpc-js-xds keeps watching a removed Cluster, so each removal
  // waits for the grace; the rule under test is the same.
  const { server, port } = await startServer(t, catalog, { removalGraceMs: 100 })
  const clients: XdsTestClient[] = []
  for (const kind of kinds) {
    const c = await startXdsClient(t, kind, { nodeId: `prop-${kind}`, xdsAddress: `127.0.0.1:${port}` })
    await c.watch(TARGETS)
    clients.push(c)
  }

  /** Why the clients are not yet on the final state, or null when they are. */
  const lag = (): string | null => {
    const dbg = server.debugInfo()
    for (const c of clients) {
      const st = dbg.clients.find((x) => x.nodeId === `prop-${c.kind}`)
      if (!st) return `${c.kind}: not connected`
      const ty = new Map(st.types.map((x) => [x.type, x]))
      const lds = ty.get('lds')
      if (!lds || lds.names.length < TARGETS.length) return `${c.kind}: Listeners not all subscribed`
      for (const x of st.types) if (!x.upToDate) return `${c.kind}: ${x.type} not up to date (acked ${x.ackedVersion})`
      // Every Listener that exists names a Cluster the client must subscribe, and its assignment.
      const clusters = groupServicePorts(catalog.snapshot()).groups.map((g) => `${g.name}:${g.servicePort}`)
      for (const cl of clusters) {
        if (!ty.get('cds')?.names.includes(cl)) return `${c.kind}: Cluster ${cl} not subscribed`
        if (!ty.get('eds')?.names.includes(cl)) return `${c.kind}: assignment ${cl} not subscribed`
      }
    }
    return null
  }

  const seeds = ONLY !== null ? [ONLY] : Array.from({ length: COUNT }, (_, k) => k + 1)
  const started = Date.now()
  let failed = 0
  for (const seed of seeds) {
    const r = seeded(seed)
    const steps = 1 + Math.floor(r() * 5)
    for (let s = 0; s < steps; s++) {
      catalog.set(randomState(r))
      // Sometimes the next state lands before the last one was pushed, sometimes after.
      await sleep(Math.floor(r() * 3) * 60)
    }
    const deadline = Date.now() + 30_000
    let why = lag()
    while (why !== null && Date.now() < deadline) {
      await sleep(10)
      why = lag()
    }
    const nacks = clients.flatMap((c) => c.nacks.map((n) => `${c.kind}: ${n}`))
    const serverNacks = server
      .debugInfo()
      .clients.flatMap((c) => c.types.filter((x) => x.nackedVersion !== null).map((x) => `${c.nodeId} ${x.type}: ${x.nackError}`))
    const invalid = server.debugInfo().invalid
    if (why !== null || nacks.length || serverNacks.length || invalid.length) {
      failed++
      t.fail(`seed ${seed} (replay: SHOAL_XDS_SEED=${seed}): ${why ?? 'converged'}`, {
        nacks,
        serverNacks,
        invalid,
        clients: server.debugInfo().clients.map((c) => ({ node: c.nodeId, types: c.types })),
      })
      break
    }
  }
  t.equal(failed, 0, `${seeds.length} histories, ${kinds.join(' and ')}: converged with no NACK in ${Date.now() - started} ms`)
})
