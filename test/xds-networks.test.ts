// Issue 13: every xDS client is given the addresses it can reach. A client on a host's network
// (the default, every Envoy from `shoal envoy-bootstrap`) gets host bindings; a client that
// declares a Docker network (node metadata `shoal.network`) gets the instances' IPs on it, and
// host bindings for the others; an instance with no address for a client is not sent to it, and
// /debug/xds, the log and shoal_xds_dropped_endpoints{reason,network} say so for that client.
// First on raw ADS streams (every kind, every push checked), then with both real proxyless
// clients (grpc-js-xds and gRPC C-core) calling echo backends on loopback addresses that stand
// in for a host binding and two network addresses, with zero NACKs.
import t, { type Test } from 'tap'
import { Registry } from 'prom-client'
import type { Logger } from '../src/log.js'
import { silentLogger } from '../src/log.js'
import type { HostView, ServiceRecord } from '../src/registry/types.js'
import { DECODE_OPTIONS, loadXdsProtos } from '../src/xds/protos.js'
import { XdsServer } from '../src/xds/server.js'
import { flavourName, SnapshotBuilder, type KindSnapshot } from '../src/xds/snapshot.js'
import { echoBackend } from './lib/echo.js'
import { startXdsClient, XDS_CLIENT_KINDS, xdsClientMissing } from './lib/xds-clients.js'
import { AdsClient, ENVOY_NODE, FixtureCatalog, GRPC_NODE, host, TypeUrl } from './lib/xds-fixture.js'

/** A record of instance `id` on `h` with the given ports and networks. */
function instance(h: string, id: string, ports: ServiceRecord['ports'], networks?: Record<string, string>): ServiceRecord {
  return {
    id,
    name: 'web',
    image: 'web',
    created: 0,
    host: h,
    bootId: 'boot-' + h,
    ports,
    proxyMode: 'grpc',
    status: 'alive',
    version: [1, 0],
    updated: 0,
    labels: {},
    ...(networks ? { networks } : {}),
  }
}

const withNetwork = (node: object, network: unknown) => ({ ...node, metadata: { fields: { 'shoal.network': network } } })

/** The endpoints (`ip:port`, sorted) of a decoded EDS response. */
const endpointsOf = (res: { resources: Array<Record<string, any>> }): string[] =>
  res.resources
    .flatMap((r) => r.endpoints.flatMap((l: any) => l.lb_endpoints.map((e: any) => e.endpoint.address.socket_address)))
    .map((a: { address: string; port_value: number }) => `${a.address}:${a.port_value}`)
    .sort()

/** A logger that keeps warnings. */
function keepWarnings(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = []
  const base = silentLogger()
  const wrap = (l: Logger): Logger =>
    new Proxy(l, {
      get(target, prop, recv) {
        if (prop === 'warn') return (obj: unknown, msg?: string) => warnings.push(typeof obj === 'string' ? obj : (msg ?? ''))
        if (prop === 'child') return () => wrap(target)
        return Reflect.get(target, prop, recv)
      },
    })
  return { logger: wrap(base), warnings }
}

/** A ready XdsServer on 127.0.0.1 port 0 over `catalog`, keeping its warnings; stopped at teardown. */
async function startServer(t: Test, catalog: FixtureCatalog) {
  const registry = new Registry()
  const { logger, warnings } = keepWarnings()
  const server = new XdsServer(
    { bind: { host: '127.0.0.1', port: 0 }, envoyBind: '127.0.0.1', shutdownGraceMs: 200 },
    { logger, catalog, registry },
  )
  const { port } = await server.start()
  server.setReady(true)
  t.teardown(() => server.stop())
  return { server, port, registry, warnings }
}

t.test('each client kind and network gets the addresses it can reach; the rest is named per client', async (t) => {
  const hosts = (published: boolean): HostView[] => [
    host('h1', [
      // Published, and on two networks.
      instance('h1', 'w1', [{ type: 'tcp', port: 9001, servicePort: 10080, ip: '127.0.0.1', containerPort: 8080 }], {
        apps: '10.1.0.7',
        other: '10.2.0.7',
      }),
      // Not published: on `apps` only (until `published`).
      instance(
        'h1',
        'w2',
        [
          published
            ? { type: 'tcp', port: 9002, servicePort: 10080, ip: '127.0.0.1', containerPort: 8080 }
            : { type: 'tcp', servicePort: 10080, containerPort: 8080 },
        ],
        { apps: '10.1.0.8' },
      ),
    ]),
    // A static entry on another host: a host binding only.
    host('h2', [instance('h2', 's1', [{ type: 'tcp', port: 9003, servicePort: 10080, ip: '127.0.0.3' }])]),
  ]
  const catalog = new FixtureCatalog(hosts(false))
  const { server, port, registry, warnings } = await startServer(t, catalog)
  /** Open a stream as `node`, ask for the assignment, and return its endpoints. */
  const open = async (node: object) => {
    const c = new AdsClient(port)
    t.teardown(() => c.close())
    c.send({ type_url: TypeUrl.endpoint, resource_names: ['web:10080'], node })
    const res = await c.next(5000, TypeUrl.endpoint)
    c.ack(res)
    return { c, endpoints: endpointsOf(res) }
  }

  const envoy = await open(ENVOY_NODE)
  t.same(envoy.endpoints, ['127.0.0.1:9001', '127.0.0.3:9003'], "Envoy (a host's network): the host bindings only")
  const grpcHost = await open(withNetwork(GRPC_NODE, { stringValue: 'host' }))
  t.same(grpcHost.endpoints, ['127.0.0.1:9001', '127.0.0.3:9003'], '`host` is the host network, for gRPC too')
  const apps = await open(withNetwork({ ...ENVOY_NODE, id: 'envoy-apps' }, { stringValue: 'apps' }))
  t.same(
    apps.endpoints,
    ['10.1.0.7:8080', '10.1.0.8:8080', '127.0.0.3:9003'],
    'on `apps`: the IPs there at the container port, the host binding for an instance not on it',
  )
  const other = await open(withNetwork({ ...GRPC_NODE, id: 'grpc-other' }, { stringValue: 'other' }))
  t.same(other.endpoints, ['10.2.0.7:8080', '127.0.0.3:9003'], 'on `other`: w2 has no address there and no published port')

  const dbg = server.debugInfo()
  const of = (id: string) => dbg.clients.find((c) => c.nodeId === id)!
  t.same(
    [of('envoy-1'), of('grpc-1'), of('envoy-apps'), of('grpc-other')].map((c) => [c.kind, c.network]),
    [
      ['envoy', null],
      ['grpc', null],
      ['envoy', 'apps'],
      ['grpc', 'other'],
    ],
    '/debug/xds shows each client with its network',
  )
  t.same(
    of('envoy-1').dropped.map((d) => [d.host, d.id, d.reason, d.network, d.networks]),
    [['h1', 'w2', 'no_reachable_address', null, ['apps']]],
    'for the Envoy: w2 is not sent, it has no published port (on apps only)',
  )
  t.same(of('envoy-apps').dropped, [], 'nothing left out on apps')
  t.same(
    of('grpc-other').dropped.map((d) => [d.id, d.reason, d.network]),
    [['w2', 'no_reachable_address', 'other']],
  )
  t.same(dbg.dropped, of('envoy-1').dropped, "the top-level list is the host network's")
  t.ok(
    warnings.some((w) =>
      /web:10080: h1\/w2 has no address reachable from a host's network \(no published port; on network apps only\)/.test(w),
    ),
    'logged once with what to do',
  )
  t.ok(warnings.some((w) => /web:10080: h1\/w2 has no address on network "other" and no published port/.test(w)))
  let metrics = await registry.metrics()
  t.match(metrics, /shoal_xds_dropped_endpoints\{reason="no_reachable_address",network="host"\} 1/)
  t.match(metrics, /shoal_xds_dropped_endpoints\{reason="no_reachable_address",network="other"\} 1/)
  t.match(metrics, /shoal_xds_dropped_endpoints\{reason="no_reachable_address",network="apps"\} 0/)

  // w2 gets a published port: every client follows, nothing is left out any more.
  catalog.set(hosts(true))
  const next = async (c: AdsClient) => {
    const res = await c.next(5000, TypeUrl.endpoint)
    c.ack(res)
    return endpointsOf(res)
  }
  t.same(await next(envoy.c), ['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.3:9003'], 'Envoy: w2 by its host binding')
  t.same(await next(other.c), ['10.2.0.7:8080', '127.0.0.1:9002', '127.0.0.3:9003'], 'other: w2 by its host binding')
  t.ok(await apps.c.quiet(300), 'apps: nothing changed for it, nothing sent')
  t.same(server.debugInfo().dropped, [])

  // A network's view goes with its last client.
  other.c.close()
  await new Promise((r) => setTimeout(r, 200))
  catalog.set(hosts(false))
  await next(envoy.c)
  metrics = await registry.metrics()
  t.notMatch(metrics, /network="other"/, "the other network's view and its series are gone with its client")
  t.match(metrics, /shoal_xds_dropped_endpoints\{reason="no_reachable_address",network="host"\} 1/)
})

t.test('a network declared wrongly: a warning naming it, a count, and host addresses', async (t) => {
  const catalog = new FixtureCatalog([
    host('h1', [
      instance('h1', 'w1', [{ type: 'tcp', port: 9001, servicePort: 10080, ip: '127.0.0.1', containerPort: 8080 }], { apps: '10.1.0.7' }),
    ]),
  ])
  const { server, port, registry, warnings } = await startServer(t, catalog)
  for (const [id, value] of [
    ['number', { numberValue: 7 }],
    ['long', { stringValue: 'n'.repeat(300) }],
  ] as const) {
    const c = new AdsClient(port)
    t.teardown(() => c.close())
    c.send({ type_url: TypeUrl.endpoint, resource_names: ['web:10080'], node: withNetwork({ ...ENVOY_NODE, id }, value) })
    t.same(endpointsOf(await c.next(5000, TypeUrl.endpoint)), ['127.0.0.1:9001'], `${id}: served as on a host's network`)
  }
  t.same(
    server.debugInfo().clients.map((c) => c.network),
    [null, null],
  )
  t.ok(
    warnings.some((w) =>
      /node metadata shoal.network is a numberValue, not a string naming a Docker network: served as a client on a host's network/.test(w),
    ),
    'the wrong type is named',
  )
  t.ok(
    warnings.some((w) => /shoal.network is 300 characters long, at most 256/.test(w)),
    'the length is named',
  )
  t.match(await registry.metrics(), /shoal_xds_bad_requests_total\{reason="bad_network"\} 2/)
})

t.test('a view is a flavour on a network: mTLS forms, retry policies and endpoint metadata hold on every network', async (t) => {
  const protos = loadXdsProtos()
  const decode = (url: string, value: Uint8Array): any => {
    const T = protos.typeOf(url)!
    return T.toObject(T.decode(value), DECODE_OPTIONS)
  }
  const retryable = { 'shoal.idempotent': 'true' }
  // h0 is this agent's node (its instances are reached directly); h1 takes mTLS at an inbound
  // address; h2 publishes nothing and has no inbound address.
  const a = {
    ...instance('h0', 'a', [{ type: 'tcp', port: 32768, servicePort: 10080, ip: '10.0.0.1', containerPort: 8080 }], { apps: '10.1.0.1' }),
    labels: retryable,
    tags: ['blue'],
  }
  const b = {
    ...instance('h1', 'b', [{ type: 'tcp', port: 32769, servicePort: 10080, ip: '10.0.0.2', containerPort: 8080 }], { apps: '10.1.0.2' }),
    labels: { ...retryable, 'shoal.inbound': '10080=10.0.0.2:15001' },
    tags: ['green'],
  }
  const c = { ...instance('h2', 'c', [{ type: 'tcp', servicePort: 10080, containerPort: 8080 }], { apps: '10.1.0.3' }), labels: retryable }
  const snap = { cluster: 't', seq: 1, hosts: [host('h0', [a]), host('h1', [b]), host('h2', [c])] }
  const opts = { envoyBind: '127.0.0.1', trustDomain: 'cluster.test', node: 'h0' }
  const permissive = new SnapshotBuilder(protos, { ...opts, strict: false }, () => undefined)
  const strict = new SnapshotBuilder(protos, { ...opts, strict: true }, () => undefined)
  /** endpoint -> whether it carries the transport socket match, and its tags. */
  const endpoints = (s: KindSnapshot): Record<string, string> => {
    const out: Record<string, string> = {}
    for (const r of s.resources[TypeUrl.endpoint].values()) {
      for (const l of decode(TypeUrl.endpoint, r.any.value).endpoints) {
        for (const e of l.lb_endpoints) {
          const sa = e.endpoint.address.socket_address
          const fm = e.metadata?.filter_metadata ?? {}
          const tags = fm.shoal?.fields?.tags?.listValue?.values?.map((v: any) => v.stringValue) ?? []
          out[`${sa.address}:${sa.port_value}`] = [fm['envoy.transport_socket_match'] ? 'mtls' : 'plain', ...tags].join(' ')
        }
      }
    }
    return out
  }
  const envoy = { kind: 'envoy', mtls: false } as const
  const envoyMtls = { kind: 'envoy', mtls: true } as const
  const grpcMtls = { kind: 'grpc', mtls: true } as const
  t.same(
    endpoints(permissive.build(snap, envoy, 'apps')),
    { '10.1.0.1:8080': 'plain blue', '10.1.0.2:8080': 'plain green', '10.1.0.3:8080': 'plain' },
    'plain on apps: every IP on apps',
  )
  t.same(
    endpoints(permissive.build(snap, envoyMtls, 'apps')),
    { '10.1.0.1:8080': 'plain blue', '10.0.0.2:15001': 'mtls green', '10.1.0.3:8080': 'plain' },
    "mTLS on apps: this node's instance at its apps IP, another host's at its inbound address (its tags kept), one without an inbound address in plain text (permissive)",
  )
  t.same(
    endpoints(permissive.build(snap, envoyMtls, null)),
    { '10.0.0.1:32768': 'plain blue', '10.0.0.2:15001': 'mtls green' },
    "mTLS on a host's network: host bindings, the inbound address; the unpublished instance left out",
  )
  t.same(
    endpoints(strict.build(snap, envoyMtls, 'apps')),
    { '10.1.0.1:8080': 'plain blue', '10.0.0.2:15001': 'mtls green' },
    'strict on apps: no plain text to another host',
  )
  t.same(permissive.dropped('apps'), [], 'nothing is dropped for apps')
  t.same(
    permissive.dropped(null).map((d) => [d.id, d.reason]),
    [['c', 'no_reachable_address']],
  )
  const grpc = permissive.build(snap, grpcMtls, 'apps')
  t.same(endpoints(grpc), { '10.1.0.1:8080': 'plain blue', '10.1.0.2:8080': 'plain green', '10.1.0.3:8080': 'plain' })
  const cluster = decode(TypeUrl.cluster, [...grpc.resources[TypeUrl.cluster].values()][0]!.any.value)
  t.equal(cluster.transport_socket?.name, 'envoy.transport_sockets.tls', "gRPC's mTLS form on apps: the Cluster's UpstreamTlsContext")
  for (const [s, want] of [
    [grpc, 'unavailable'],
    [permissive.build(snap, envoyMtls, 'apps'), 'connect-failure,refused-stream,reset-before-request,reset,unavailable'],
  ] as const) {
    const routes = [...s.resources[TypeUrl.route].values()].map((r) => decode(TypeUrl.route, r.any.value))
    // A gRPC api listener carries its RouteConfiguration inside the HttpConnectionManager Any.
    const listeners = [...s.resources[TypeUrl.listener].values()].map((r) => {
      const l = decode(TypeUrl.listener, r.any.value)
      const hcm = l.api_listener?.api_listener
      return JSON.stringify(hcm ? decode(hcm.type_url, hcm.value) : l)
    })
    const policies = [...routes.map((r) => JSON.stringify(r)), ...listeners].filter((x) => x.includes('retry_on'))
    t.ok(
      policies.length > 0 && policies.every((x) => x.includes(`"retry_on":"${want}"`)),
      `${flavourName(s.flavour)} on ${s.network}: the idempotent service's retry policy (${want})`,
    )
  }
  t.same(
    permissive.flavours().map(flavourName).sort(),
    ['envoy', 'envoy+mtls', 'grpc+mtls'],
    'flavours are made when asked, across networks',
  )
})

for (const kind of XDS_CLIENT_KINDS) {
  const skip = xdsClientMissing(kind) ?? false

  t.test(
    `${kind}: a client on a network calls the instances' addresses there; a host-network client their published ports`,
    { skip },
    async (t) => {
      // Loopback addresses stand in: H is w1's host binding, N1 its address on `apps`, N2 the
      // address on `apps` of w2, which publishes nothing.
      const pH = await echoBackend(t, 'H', { ip: '127.0.0.1' })
      const pN1 = await echoBackend(t, 'N1', { ip: '127.0.0.2' })
      const pN2 = await echoBackend(t, 'N2', { ip: '127.0.0.3' })
      const w1 = instance('h1', 'w1', [{ type: 'tcp', port: pH, servicePort: 10080, ip: '127.0.0.1', containerPort: pN1 }], {
        apps: '127.0.0.2',
      })
      const w2 = instance('h2', 'w2', [{ type: 'tcp', servicePort: 10080, containerPort: pN2 }], { apps: '127.0.0.3' })
      const catalog = new FixtureCatalog([host('h1', [w1]), host('h2', [w2])])
      const registry = new Registry()
      const server = new XdsServer(
        { bind: { host: '127.0.0.1', port: 0 }, envoyBind: '127.0.0.1', shutdownGraceMs: 200 },
        { logger: silentLogger(), catalog, registry },
      )
      const { port } = await server.start()
      server.setReady(true)
      t.teardown(() => server.stop())
      const onHost = await startXdsClient(t, kind, { nodeId: `host-${kind}`, xdsAddress: `127.0.0.1:${port}` })
      const onApps = await startXdsClient(t, kind, { nodeId: `apps-${kind}`, xdsAddress: `127.0.0.1:${port}`, network: 'apps' })

      const ready = async (c: typeof onHost, pred: (w: string) => boolean) => {
        const ms = await c.until('xds:///web', pred, 1, 30_000)
        t.ok(ms !== null, `${c.kind} ${c === onHost ? 'on the host' : 'on apps'} resolves (${ms} ms)`)
      }
      await ready(onHost, (w) => w === 'H')
      await ready(onApps, (w) => w === 'N1' || w === 'N2')
      t.same(await onHost.counts('xds:///web', 20), { H: 20 }, "host network: w1's published port only; w2 has none")
      const spread = await onApps.counts('xds:///web', 40)
      t.ok(
        (spread.N1 ?? 0) > 0 && (spread.N2 ?? 0) > 0 && !spread.H,
        `apps: both instances at their addresses there, never H: ${JSON.stringify(spread)}`,
      )
      const dbg = server.debugInfo()
      t.same(
        dbg.clients.map((c) => [c.nodeId, c.network, c.dropped.map((d) => `${d.id} ${d.reason}`)]).sort(),
        [
          [`apps-${kind}`, 'apps', []],
          [`host-${kind}`, null, ['w2 no_reachable_address']],
        ],
        'the bootstrap --network reached the server; /debug/xds names what the host client is not sent',
      )

      // w2 publishes its port (on H's address stand-in for simplicity: another port of 127.0.0.1).
      const pH2 = await echoBackend(t, 'H2', { ip: '127.0.0.1' })
      catalog.set([
        host('h1', [w1]),
        host('h2', [{ ...w2, ports: [{ type: 'tcp', port: pH2, servicePort: 10080, ip: '127.0.0.1', containerPort: pN2 }] }]),
      ])
      t.ok((await onHost.until('xds:///web', (w) => w === 'H2', 1, 20_000)) !== null, 'the host client follows: w2 by its new host binding')
      const after = await onApps.counts('xds:///web', 30)
      t.ok(!after.H && !after.H2, `the apps client stays on the network addresses: ${JSON.stringify(after)}`)

      for (const c of [onHost, onApps]) t.same(c.nacks, [], `${kind} ${c === onHost ? 'host' : 'apps'} client logged no NACK`)
      t.same(
        server
          .debugInfo()
          .clients.flatMap((c) => c.types.filter((x) => x.nackedVersion !== null).map((x) => `${c.nodeId} ${x.type}: ${x.nackError}`)),
        [],
        'the server saw no NACK',
      )
      t.same(server.debugInfo().invalid, [])
    },
  )
}
