// The incremental snapshot equals a cold build after every change of a random sequence
// (records added, removed, re-statused, moved between names and ServicePorts, re-tagged alone;
// ports with and without a host binding, on networks or not, with inbound mTLS addresses or
// not; hosts going down, rebooting, vanishing), for every flavour (both node kinds, plain and
// mTLS) on a host's network and on a Docker network; and a pre-encoded response decodes as the
// same DiscoveryResponse protobufjs would write.
import t from 'tap'
import type { CatalogSnapshot, HostView, ServiceRecord } from '../src/registry/types.js'
import { GroupIndex, resolveGroup, type ClientNetwork } from '../src/xds/groups.js'
import { DECODE_OPTIONS, encodeDiscoveryResponse, loadXdsProtos, TypeUrl } from '../src/xds/protos.js'
import { groupServicePorts } from './lib/xds-oracle.js'
import { flavourName, SnapshotBuilder, versionOf, versionOfSet, type Flavour, type KindSnapshot } from '../src/xds/snapshot.js'
import { rec } from './lib/xds-fixture.js'

// A small deterministic PRNG, so a failure names a reproducible seed.
function prng(seed: number) {
  let s = seed >>> 0
  return (n: number) => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s % n
  }
}

const NAMES = ['api', 'echo', 'web', 'db']
const STATUSES = ['alive', 'alive', 'unknown', 'draining', 'unhealthy', 'tombstone'] as const
const MODES = ['http', 'tcp', 'grpc', 'ws'] as const
const HOST_STATES = ['alive', 'alive', 'alive', 'suspect', 'dead'] as const
const NETWORKS: ClientNetwork[] = [null, 'apps']
const FLAVOURS: Flavour[] = [
  { kind: 'envoy', mtls: false },
  { kind: 'grpc', mtls: false },
  { kind: 'envoy', mtls: true },
  { kind: 'grpc', mtls: true },
]
const VIEWS: Array<[Flavour, ClientNetwork]> = NETWORKS.flatMap((n) => FLAVOURS.map((f): [Flavour, ClientNetwork] => [f, n]))
/** The mTLS forms need a trust domain, and Envoy's this agent's node (h0: its instances are reached directly). */
const BUILD_OPTIONS = { envoyBind: '127.0.0.1', trustDomain: 'cluster.test', node: 'h0', strict: false }
const TAGS = ['blue', 'green', 'canary']

function randomRecord(rand: (n: number) => number, host: string, bootId: string, id: string): ServiceRecord {
  const r = rec({
    host,
    id,
    name: NAMES[rand(NAMES.length)]!,
    servicePort: 10000 + rand(5),
    port: 9000 + rand(50),
    mode: MODES[rand(MODES.length)]!,
    status: STATUSES[rand(STATUSES.length)]!,
  })
  const extra = rand(4) === 0 ? [{ type: 'tcp' as const, port: 9100 + rand(5), servicePort: 10000 + rand(5), ip: '127.0.0.2' }] : []
  // Some ask for external authorization by another name: their listeners follow its groups.
  const labels: Record<string, string> = rand(3) === 0 ? { 'shoal.authz': NAMES[rand(NAMES.length)]! } : {}
  // Some take mTLS at an inbound address (other hosts' Envoys move them there), some may be retried.
  if (rand(3) === 0) labels['shoal.inbound'] = `${r.ports[0]!.servicePort}=10.0.0.${rand(4)}:${15000 + rand(3)}`
  if (rand(3) === 0) labels['shoal.idempotent'] = 'true'
  // Tags and attributes become endpoint metadata.
  if (rand(3) === 0) r.tags = [TAGS[rand(TAGS.length)]!]
  if (rand(4) === 0) r.attributes = { zone: `z${rand(2)}` }
  // Some instances are on the `apps` network (a few share an IP there), some of their ports unpublished.
  if (rand(3) === 0) {
    const ports = [...r.ports, ...extra].map((p, k) =>
      rand(2) === 0 ? { type: p.type, servicePort: p.servicePort, containerPort: 8080 + k } : { ...p, containerPort: 8080 + k },
    )
    return { ...r, bootId, ports, labels, networks: { apps: `10.9.0.${rand(6)}` } }
  }
  return { ...r, bootId, ports: [...r.ports, ...extra], labels }
}

function summary(s: KindSnapshot): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [type, m] of Object.entries(s.resources)) out[type] = [...m.values()].map((r) => `${r.name}=${r.hash}`).sort()
  return out
}

t.test('incremental builds equal cold builds over a random change sequence', async (t) => {
  const protos = loadXdsProtos()
  for (const seed of [1, 2, 3]) {
    const rand = prng(seed)
    const inc = new SnapshotBuilder(protos, BUILD_OPTIONS, () => undefined)
    const index = new GroupIndex()
    let hosts: HostView[] = []
    for (let h = 0; h < 4; h++) {
      const name = `h${h}`
      hosts.push({
        name,
        address: '127.0.0.1:7946',
        state: 'alive',
        bootId: 'b0',
        services: Array.from({ length: 3 }, (_, k) => randomRecord(rand, name, 'b0', `${name}-${k}`)),
      })
    }
    let mismatches = 0
    for (let step = 0; step < 60; step++) {
      const h = rand(hosts.length + 1)
      if (h === hosts.length) {
        // A host vanishes or appears.
        if (hosts.length > 2 && rand(2) === 0) hosts = hosts.filter((_, k) => k !== rand(hosts.length))
        else {
          const name = `n${step}`
          hosts = [
            ...hosts,
            { name, address: '127.0.0.1:7946', state: 'alive', bootId: 'b0', services: [randomRecord(rand, name, 'b0', `${name}-0`)] },
          ]
        }
      } else {
        const cur = hosts[h]!
        let next: HostView
        const what = rand(7)
        if (what === 0) next = { ...cur, state: HOST_STATES[rand(HOST_STATES.length)]! }
        else if (what === 1) next = { ...cur, bootId: cur.bootId === 'b0' ? 'b1' : 'b0' }
        else if (what === 2) next = { ...cur, services: cur.services.slice(1) }
        else if (what === 3)
          next = { ...cur, services: [...cur.services, randomRecord(rand, cur.name, cur.bootId, `${cur.name}-s${step}`)] }
        else if (what === 4 && cur.services.length > 0) {
          // Only the tags change (a new record object, everything else equal): the endpoint metadata must follow.
          const k = rand(cur.services.length)
          const old = cur.services[k]!
          const tags = [TAGS[(TAGS.indexOf(old.tags?.[0] ?? '') + 1) % TAGS.length]!]
          next = { ...cur, services: cur.services.map((r, j) => (j === k ? { ...old, tags } : r)) }
        } else {
          // Replace one record by a changed copy (new status, name, port or ServicePort).
          const k = rand(Math.max(1, cur.services.length))
          const old = cur.services[k]
          const fresh = randomRecord(rand, cur.name, cur.bootId, old?.id ?? `${cur.name}-r${step}`)
          next = { ...cur, services: old ? cur.services.map((r, j) => (j === k ? fresh : r)) : [fresh] }
        }
        hosts = hosts.map((x, k) => (k === h ? next : x))
      }
      // Sometimes the same records come in fresh arrays and host objects (as the real Catalog does).
      if (rand(3) === 0) hosts = hosts.map((x) => ({ ...x, services: [...x.services] }))
      const snap: CatalogSnapshot = { cluster: 't', seq: step + 2, hosts }
      index.update(snap)
      const got = [...index.groups.values()].sort((a, b) => a.servicePort - b.servicePort)
      for (const network of NETWORKS) {
        const want = groupServicePorts(snap, network)
        const resolved = got.map((g) => resolveGroup(g, network))
        const dropped = resolved.flatMap((r) => r.dropped)
        if (
          JSON.stringify(got) !== JSON.stringify(want.groups) ||
          JSON.stringify(resolved.map((r) => r.group)) !== JSON.stringify(want.endpoints) ||
          JSON.stringify(index.conflicts) !== JSON.stringify(want.conflicts) ||
          JSON.stringify(dropped) !== JSON.stringify(want.dropped) ||
          JSON.stringify(index.authzIssues) !== JSON.stringify(want.authzIssues)
        ) {
          mismatches++
          t.same(got, want.groups, `seed ${seed} step ${step}: groups`)
          t.same(
            resolved.map((r) => r.group),
            want.endpoints,
            `seed ${seed} step ${step} network ${network}: endpoints`,
          )
          t.same(index.conflicts, want.conflicts, `seed ${seed} step ${step}: conflicts`)
          t.same(dropped, want.dropped, `seed ${seed} step ${step} network ${network}: dropped endpoints`)
          t.same(index.authzIssues, want.authzIssues, `seed ${seed} step ${step}: authorization problems`)
        }
      }
      for (const [flavour, network] of VIEWS) {
        const kind = flavourName(flavour)
        const a = inc.build(snap, flavour, network)
        const cold = new SnapshotBuilder(protos, BUILD_OPTIONS, () => undefined).build(snap, flavour, network)
        const sa = summary(a)
        const sc = summary(cold)
        if (JSON.stringify(sa) !== JSON.stringify(sc)) {
          mismatches++
          t.same(sa, sc, `seed ${seed} step ${step} ${kind} on ${network}: resources`)
        }
        for (const type of Object.values(TypeUrl)) {
          if (versionOfSet(a.resources[type]) !== versionOfSet(cold.resources[type])) {
            mismatches++
            t.fail(`seed ${seed} step ${step} ${kind} on ${network} ${type}: versions differ`)
          }
        }
        t.same(a.conflicts, cold.conflicts)
        const wantDropped = groupServicePorts(snap, network).dropped
        if (JSON.stringify(inc.dropped(network)) !== JSON.stringify(wantDropped)) {
          mismatches++
          t.same(inc.dropped(network), wantDropped, `seed ${seed} step ${step} network ${network}: the builder's dropped endpoints`)
        }
      }
      if (mismatches > 5) break
    }
    t.equal(mismatches, 0, `seed ${seed}: 60 changes, incremental == cold for groups, resources and versions`)
  }
})

t.test('an unchanged resource is reused, not re-validated or re-encoded', async (t) => {
  const protos = loadXdsProtos()
  const b = new SnapshotBuilder(protos, { envoyBind: '127.0.0.1' }, () => undefined)
  const a1 = rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: 9001 })
  const w1 = rec({ host: 'h1', id: 'w1', name: 'web', servicePort: 10002, port: 9002 })
  const h = (services: ServiceRecord[]): HostView => ({ name: 'h1', address: '127.0.0.1:1', state: 'alive', bootId: 'boot-h1', services })
  const s1 = b.build({ cluster: 't', seq: 1, hosts: [h([a1, w1])] }, 'envoy')
  const s2 = b.build({ cluster: 't', seq: 2, hosts: [h([{ ...a1, ports: [{ ...a1.ports[0]!, port: 9101 }] }, w1])] }, 'envoy')
  t.same(
    b.lastStats,
    { groupsRebuilt: 1, resourcesEncoded: 1, resourcesReused: 3 },
    'only the changed CLA is encoded; cluster, listener, route reused',
  )
  t.equal(s2.resources[TypeUrl.cluster], s1.resources[TypeUrl.cluster], 'an untouched type keeps its map')
  t.not(s2.resources[TypeUrl.endpoint], s1.resources[TypeUrl.endpoint], 'a touched type gets a new map')
  t.equal(s1.resources[TypeUrl.endpoint].get('web:10002'), s2.resources[TypeUrl.endpoint].get('web:10002'), 'the other group is shared')
  t.not(versionOfSet(s2.resources[TypeUrl.endpoint]), versionOfSet(s1.resources[TypeUrl.endpoint]))
  // Order does not matter to a version.
  const list = [...s2.resources[TypeUrl.endpoint].values()]
  t.equal(versionOf(list), versionOf([...list].reverse()))
})

t.test('a pre-encoded DiscoveryResponse decodes like protobufjs output', async (t) => {
  const protos = loadXdsProtos()
  const b = new SnapshotBuilder(protos, { envoyBind: '127.0.0.1' }, () => undefined)
  const snap = b.build(
    {
      cluster: 't',
      seq: 1,
      hosts: [
        {
          name: 'h1',
          address: '127.0.0.1:1',
          state: 'alive',
          bootId: 'boot-h1',
          services: [rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: 9001 })],
        },
      ],
    },
    'grpc',
  )
  const res = [...snap.resources[TypeUrl.listener].values()]
  const bytes = encodeDiscoveryResponse(
    'v1',
    res.map((r) => r.wire),
    TypeUrl.listener,
    'n1',
  )
  const type = protos.root.lookupType('envoy.service.discovery.v3.DiscoveryResponse')
  const ref = type
    .encode(type.fromObject({ version_info: 'v1', resources: res.map((r) => r.any), type_url: TypeUrl.listener, nonce: 'n1' }))
    .finish()
  t.same(Buffer.from(bytes), Buffer.from(ref), 'byte-identical to protobufjs')
  const decoded = type.toObject(type.decode(bytes), DECODE_OPTIONS) as any
  t.same(
    decoded.resources.map((a: any) => a.type_url),
    res.map(() => TypeUrl.listener),
  )
})
