// Property: whatever the catalog holds and however it changes, external authorization never
// leaves a protected service open and never names a Cluster the snapshot lacks. Seeded random
// histories (protected services of every proxy mode; authorization services that come and
// go, change mode, gain a second ServicePort, lose their name to a ServicePort conflict;
// labels that do not read; failure_mode_allow; hosts going down) go through one incremental
// SnapshotBuilder, and after every change, for Envoy:
//  - an ext_authz filter calls a Cluster of the same snapshot, and that Cluster speaks HTTP/2;
//  - a listener of a service that asks for authorization has ext_authz, or denies everything
//    (RBAC, rules present and empty), or carries nothing only when failure_mode_allow says so;
//  - it denies everything only when the request cannot be served from this snapshot;
//  - the incremental snapshot equals a cold build, and the problems listed equal the oracle's;
// for gRPC: no api listener carries anything but the router; and every resource is valid.
//
// SHOAL_AUTHZ_HISTORIES (default 300) sets the count; SHOAL_AUTHZ_SEED=N replays history N.
import t from 'tap'
import { authzOf } from '../src/registry/authz.js'
import { liveRecords, type CatalogSnapshot, type HostView, type ServiceRecord } from '../src/registry/types.js'
import { loadXdsProtos, TypeUrl } from '../src/xds/protos.js'
import { SnapshotBuilder, type KindSnapshot } from '../src/xds/snapshot.js'
import { seeded } from './lib/random.js'
import { decodeServed, deniesAll, extAuthzCluster, listenerFilters } from './lib/xds-authz.js'
import { groupServicePorts } from './lib/xds-oracle.js'
import { rec } from './lib/xds-fixture.js'

const COUNT = Number(process.env.SHOAL_AUTHZ_HISTORIES ?? 300)
const ONLY = process.env.SHOAL_AUTHZ_SEED ? Number(process.env.SHOAL_AUTHZ_SEED) : null

const NAMES = ['web', 'db', 'api', 'authz', 'authz2'] as const
const SERVICE_PORTS = [10001, 10002, 10003, 10100, 10101] as const
const MODES = ['grpc', 'grpc', 'http', 'tcp', 'ws'] as const
const HOSTS = ['h0', 'h1', 'h2'] as const
const TARGETS = ['authz', 'authz', 'authz:10100', 'authz:10101', 'authz2', 'web'] as const

type Rand = () => number
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!

function randomLabels(r: Rand): Record<string, string> {
  const x = r()
  if (x < 0.35) return {}
  if (x < 0.4) return { 'shoal.authz.timeout': '1s' } // options without a target
  const labels: Record<string, string> = { 'shoal.authz': x < 0.45 ? 'authz:99999' : pick(r, TARGETS) }
  if (r() < 0.3) labels['shoal.authz.failure_mode_allow'] = pick(r, ['true', 'false', 'TRUE', 'maybe'])
  if (r() < 0.2) labels['shoal.authz.timeout'] = pick(r, ['50ms', '2s', 'soon'])
  return labels
}

function randomRecord(r: Rand, h: string, id: string): ServiceRecord {
  const name = pick(r, NAMES)
  const sp = name.startsWith('authz') && r() < 0.7 ? pick(r, [10100, 10101]) : pick(r, SERVICE_PORTS)
  const base = rec({ host: h, id, name, servicePort: sp, port: 9000 + Math.floor(r() * 20), mode: pick(r, MODES) })
  return { ...base, status: pick(r, ['alive', 'alive', 'unknown', 'unhealthy'] as const), labels: randomLabels(r) }
}

function randomState(r: Rand, prev: HostView[]): HostView[] {
  // Mostly a small change of the previous state (so incremental builds are exercised), sometimes a new one.
  if (prev.length && r() < 0.75) {
    const k = Math.floor(r() * prev.length)
    return prev.map((h, i) => {
      if (i !== k) return h
      const what = r()
      if (what < 0.2) return { ...h, state: pick(r, ['alive', 'suspect', 'dead'] as const) }
      if (what < 0.5) return { ...h, services: h.services.slice(1) }
      return { ...h, state: 'alive', services: [...h.services, randomRecord(r, h.name, `${h.name}-${Math.floor(r() * 1e9)}`)] }
    })
  }
  return HOSTS.filter(() => r() < 0.85).map((h) => ({
    name: h,
    address: '127.0.0.1:7946',
    state: pick(r, ['alive', 'alive', 'alive', 'dead'] as const),
    bootId: 'boot-' + h,
    services: Array.from({ length: Math.floor(r() * 5) }, (_, k) => randomRecord(r, h, `${h}-${k}`)),
  }))
}

/** Why the Envoy snapshot breaks a rule, or null. */
function envoyViolation(snap: CatalogSnapshot, env: KindSnapshot): string | null {
  const clusters = env.resources[TypeUrl.cluster]
  const http2 = (name: string) =>
    !!decodeServed(clusters.get(name)!).typed_extension_protocol_options?.['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']
  const { groups } = groupServicePorts(snap)
  const live = liveRecords(snap)
  for (const g of groups) {
    const name = `${g.name}:${g.servicePort}`
    const served = env.resources[TypeUrl.listener].get(name)
    if (!served) return `${name}: no listener`
    const filters = listenerFilters(decodeServed(served))
    const cluster = extAuthzCluster(filters)
    if (cluster !== null) {
      if (!clusters.has(cluster)) return `${name}: ext_authz calls ${cluster}, which is not in the snapshot`
      if (!http2(cluster)) return `${name}: ext_authz calls ${cluster}, which has no HTTP/2`
    }
    // The records of this service on this ServicePort, in (host, id) order; the first that asks decides.
    const mine = live
      .filter((r) => r.name === g.name && r.ports.some((p) => p.type === 'tcp' && p.servicePort === g.servicePort))
      .sort((a, b) => (a.host + '\0' + a.id < b.host + '\0' + b.id ? -1 : 1))
    const asking = mine.find((r) => Object.keys(r.labels).some((k) => k.startsWith('shoal.authz')))
    if (!asking) {
      if (filters.length !== 1) return `${name}: asks for nothing, yet has ${filters.map((f) => f.name).join(', ')}`
      continue
    }
    const req = authzOf(asking.labels)
    const deny = deniesAll(filters)
    if (cluster === null && !deny) {
      if (req.kind !== 'spec' || !req.spec.failureModeAllow)
        return `${name}: asks for authorization (${JSON.stringify(asking.labels)}) but is open`
    }
    if (deny || (cluster === null && req.kind === 'spec')) {
      // It fails closed (or open) only when the request cannot be served from this snapshot.
      if (req.kind !== 'spec') continue
      const { service, servicePort } = req.spec
      const candidates = [...clusters.keys()].filter((c) => (servicePort ? c === `${service}:${servicePort}` : c.startsWith(`${service}:`)))
      if (candidates.length === 1 && http2(candidates[0]!))
        return `${name}: ${candidates[0]} could serve ${JSON.stringify(asking.labels)}, yet no ext_authz`
    }
  }
  return null
}

t.test('random histories: protected listeners never open and never name a missing Cluster', async (t) => {
  const protos = loadXdsProtos()
  const invalid: string[] = []
  const inc = new SnapshotBuilder(protos, { envoyBind: '127.0.0.1' }, (kind, bad) =>
    invalid.push(`${kind} ${bad.name}: ${bad.errors.join('; ')}`),
  )
  const seeds = ONLY !== null ? [ONLY] : Array.from({ length: COUNT }, (_, k) => k + 1)
  let steps = 0
  let denied = 0
  let called = 0
  let failed = 0
  let hosts: HostView[] = []
  for (const seed of seeds) {
    const r = seeded(seed)
    const n = 1 + Math.floor(r() * 6)
    let why: string | null = null
    for (let s = 0; s < n && why === null; s++) {
      hosts = randomState(r, hosts)
      const snap: CatalogSnapshot = { cluster: 't', seq: ++steps, hosts }
      const env = inc.build(snap, 'envoy')
      const grpc = inc.build(snap, 'grpc')
      why = envoyViolation(snap, env)
      for (const [name, l] of grpc.resources[TypeUrl.listener]) {
        const names = listenerFilters(decodeServed(l)).map((f) => f.name)
        if (why === null && names.join() !== 'envoy.filters.http.router') why = `grpc ${name}: ${names.join(', ')}`
      }
      const oracle = groupServicePorts(snap)
      if (why === null && JSON.stringify(inc.authzIssues) !== JSON.stringify(oracle.authzIssues))
        why = `problems listed ${JSON.stringify(inc.authzIssues)}, oracle ${JSON.stringify(oracle.authzIssues)}`
      for (const kind of ['envoy', 'grpc'] as const) {
        const cold = new SnapshotBuilder(protos, { envoyBind: '127.0.0.1' }, () => undefined).build(snap, kind)
        const got = kind === 'envoy' ? env : grpc
        for (const type of Object.values(TypeUrl)) {
          const a = [...got.resources[type].values()].map((x) => `${x.name}=${x.hash}`).sort()
          const b = [...cold.resources[type].values()].map((x) => `${x.name}=${x.hash}`).sort()
          if (why === null && a.join() !== b.join()) why = `${kind} ${type}: incremental ${a.join(' ')} != cold ${b.join(' ')}`
        }
      }
      if (why === null && invalid.length) why = `invalid resources: ${invalid.join(' | ')}`
      for (const l of env.resources[TypeUrl.listener].values()) {
        const f = listenerFilters(decodeServed(l))
        if (deniesAll(f)) denied++
        if (extAuthzCluster(f)) called++
      }
    }
    if (why !== null) {
      failed++
      t.fail(`seed ${seed} (replay: SHOAL_AUTHZ_SEED=${seed}): ${why}`, { hosts })
      break
    }
  }
  t.equal(failed, 0, `${seeds.length} histories, ${steps} snapshots: no violation`)
  // The histories must reach both outcomes, or the property says little.
  t.ok(denied > 50 && called > 50, `listeners seen denying everything: ${denied}, calling ext_authz: ${called}`)
})
