import t from 'tap'
import { canonicalIp } from '../src/address.js'
import { endpointFilter, type Instance } from '../src/xds/groups.js'
import { clientNetworkOf, nodeKindOf } from '../src/xds/resources.js'
import { buildResources } from './lib/xds-oracle.js'
import { FixtureCatalog, host, rec } from './lib/xds-fixture.js'

t.test('node kind rule', async (t) => {
  t.equal(nodeKindOf({ user_agent_name: 'envoy' }), 'envoy')
  t.equal(nodeKindOf({ user_agent_name: 'gRPC Node Pure JS' }), 'grpc')
  t.equal(nodeKindOf({ user_agent_name: 'grpc-go' }), 'grpc')
  t.equal(nodeKindOf({ client_features: ['envoy.lb.does_not_support_overprovisioning'] }), 'grpc')
  t.equal(
    nodeKindOf({ user_agent_name: 'gRPC Node Pure JS', metadata: { fields: { 'shoal.node_kind': { string_value: 'envoy' } } } }),
    'envoy',
    'metadata wins',
  )
  t.equal(nodeKindOf(undefined), 'envoy')
  // As the ADS server decodes it: the well-known Value type in camelCase.
  t.equal(
    nodeKindOf({ user_agent_name: 'envoy', metadata: { fields: { 'shoal.node_kind': { stringValue: 'grpc', kind: 'stringValue' } } } }),
    'grpc',
    'metadata as decoded from the wire',
  )
})

t.test('network rule: node metadata shoal.network', async (t) => {
  const net = (v: object) => clientNetworkOf({ metadata: { fields: { 'shoal.network': v } } })
  t.same(clientNetworkOf({}), { network: null }, "absent: a host's network")
  t.same(net({ stringValue: 'shoal-apps', kind: 'stringValue' }), { network: 'shoal-apps' })
  t.same(net({ stringValue: 'host', kind: 'stringValue' }), { network: null }, "`host` is Docker's name for a host's own network")
  t.same(net({ stringValue: '' }), { network: null })
  t.match(net({ numberValue: 1, kind: 'numberValue' }), { network: null, error: /is a numberValue, not a string/ })
  t.match(net({ stringValue: 'x'.repeat(257) }), { network: null, error: /257 characters long, at most 256/ })
})

t.test('shapes per proxy mode, statuses, localities, conflicts', async (t) => {
  const snap = new FixtureCatalog([
    host('h1', [
      rec({ host: 'h1', id: 'a1', name: 'web', servicePort: 10002, port: 8001, mode: 'http' }),
      rec({ host: 'h1', id: 'a2', name: 'web', servicePort: 10002, port: 8002, mode: 'http', status: 'unknown' }),
      rec({ host: 'h1', id: 'a3', name: 'web', servicePort: 10002, port: 8003, mode: 'http', status: 'unhealthy' }),
      rec({ host: 'h1', id: 'a4', name: 'chat', servicePort: 10003, port: 8004, mode: 'ws' }),
      rec({ host: 'h1', id: 'a5', name: 'echo', servicePort: 10001, port: 8005, mode: 'grpc' }),
      rec({ host: 'h1', id: 'a6', name: 'db', servicePort: 10004, port: 8006, mode: 'tcp' }),
      rec({ host: 'h1', id: 'a7', name: 'zeta', servicePort: 10002, port: 8007, mode: 'http' }),
    ]),
    host('h2', [rec({ host: 'h2', id: 'b1', name: 'web', servicePort: 10002, port: 8101, mode: 'http', status: 'draining' })]),
    host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 8201, mode: 'http' })], 'suspect'),
    host('h4', [rec({ host: 'h4', id: 'd1', name: 'web', servicePort: 10002, port: 8301, mode: 'http' })], 'dead'),
  ]).snapshot()
  const e = buildResources(snap, 'envoy', { envoyBind: '10.0.0.1' })
  t.same(e.conflicts, [{ servicePort: 10002, winner: 'web', losers: ['zeta'] }], 'smallest name wins')
  const cla = e.endpoints.get('web:10002') as any
  t.same(
    cla.endpoints.map((l: any) => [
      l.locality.zone,
      l.load_balancing_weight.value,
      l.lb_endpoints.map((x: any) => [x.endpoint.address.socket_address.port_value, x.health_status]),
    ]),
    [
      [
        'h1',
        2,
        [
          [8001, 'HEALTHY'],
          [8002, 'UNKNOWN'],
        ],
      ],
      ['h2', 1, [[8101, 'DRAINING']]],
      ['h3', 1, [[8201, 'HEALTHY']]],
    ],
    'one locality per host; unhealthy and dead-host instances left out',
  )
  const grpcCla = buildResources(snap, 'grpc', { envoyBind: '10.0.0.1' }).endpoints.get('web:10002') as any
  t.same(
    grpcCla.endpoints.map((l: any) => l.locality.zone),
    ['h1', 'h3'],
    'gRPC nodes do not get draining endpoints',
  )

  const tcp = e.listeners.get('db:10004') as any
  t.equal(tcp.filter_chains[0].filters[0].name, 'envoy.filters.network.tcp_proxy')
  t.same(tcp.address.socket_address, { address: '10.0.0.1', port_value: 10004 })
  t.notOk(e.routes.has('db:10004'))
  const ws = e.listeners.get('chat:10003') as any
  t.same(ws.filter_chains[0].filters[0].typed_config.upgrade_configs, [{ upgrade_type: 'websocket' }])
  t.same((e.routes.get('chat:10003') as any).virtual_hosts[0].routes[0].route.timeout, { seconds: 0, nanos: 0 })
  t.ok((e.clusters.get('echo:10001') as any).typed_extension_protocol_options, 'grpc: HTTP/2 upstream')
  t.same((e.routes.get('echo:10001') as any).virtual_hosts[0].routes[0].route.timeout, { seconds: 0, nanos: 0 })
  t.equal((e.routes.get('web:10002') as any).virtual_hosts[0].routes[0].route.timeout, undefined)
  t.ok((e.clusters.get('web:10002') as any).outlier_detection)
  const hcm = ws.filter_chains[0].filters[0].typed_config
  t.equal(hcm.http_filters.at(-1).name, 'envoy.filters.http.router')

  const g = buildResources(snap, 'grpc', { envoyBind: '10.0.0.1' })
  t.same([...g.listeners.keys()].sort(), ['chat', 'chat:10003', 'db', 'db:10004', 'echo', 'echo:10001', 'web', 'web:10002'])
  t.same((g.listeners.get('echo') as any).api_listener.api_listener.route_config.virtual_hosts[0].domains, ['echo', 'echo:10001'])
  t.equal(g.routes.size, 0, 'gRPC nodes get inline route configs')
})

t.test('one address once: the endpoint rule of a group', async (t) => {
  const i = (host: string, id: string, ip: string, port: number, status: Instance['status'] = 'alive'): Instance => ({
    host,
    id,
    status,
    ip,
    port,
    mode: 'grpc',
    servicePort: 10001,
    idempotent: false,
  })
  const alive = i('h2', 'b', '10.0.0.1', 80)
  const draining = i('h1', 'a', '10.0.0.1', 80, 'draining')
  const unknown = i('h1', 'c', '10.0.0.1', 80, 'unknown')
  const unhealthy = i('h0', 'z', '10.0.0.1', 80, 'unhealthy')
  const r = endpointFilter(10001, 'echo', [unhealthy, draining, unknown, alive])
  t.same(r.kept, [unhealthy, alive], 'alive wins over unknown and draining; unhealthy never displaces a served one')
  t.same(
    r.dropped.map((d) => [d.id, d.reason, d.keptBy?.id]),
    [
      ['a', 'duplicate_address', 'b'],
      ['c', 'duplicate_address', 'b'],
    ],
  )
  const tie = endpointFilter(10001, 'echo', [i('h1', 'a', '10.0.0.1', 80), i('h2', 'b', '10.0.0.1', 80)])
  t.same(
    tie.kept.map((x) => x.id),
    ['a'],
    'equal statuses: the first by (host, id) wins, on every agent',
  )
  const v6 = endpointFilter(10001, 'echo', [i('h1', 'a', '::1', 80), i('h2', 'b', '0:0:0:0:0:0:0:1', 80), i('h3', 'c', '::1', 81)])
  t.same(
    v6.kept.map((x) => x.id),
    ['a', 'c'],
    'IPv6 spellings of one address are one address; another port is another address',
  )
  const bad = endpointFilter(10001, 'echo', [i('h1', 'a', 'db.local', 80), i('h1', 'b', '10.0.0.2', 0), i('h1', 'c', '10.0.0.3', 80)])
  t.same(
    bad.dropped.map((d) => [d.id, d.reason, d.address]),
    [
      ['a', 'not_an_ip', 'db.local:80'],
      ['b', 'port_out_of_range', '10.0.0.2:0'],
    ],
  )
  t.equal(canonicalIp('2001:DB8:0:0:0:0:0:1'), '2001:db8::1')
  t.equal(canonicalIp('localhost'), null)
})

t.test('a served ClusterLoadAssignment never lists an address twice', async (t) => {
  const snap = new FixtureCatalog([
    host('h1', [
      rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: 9000, ip: '10.0.0.1', status: 'draining' }),
      rec({ host: 'h1', id: 'a2', name: 'echo', servicePort: 10001, port: 9000, ip: '10.0.0.1' }),
    ]),
    host('h2', [rec({ host: 'h2', id: 'b1', name: 'echo', servicePort: 10001, port: 9000, ip: '10.0.0.1' })]),
  ]).snapshot()
  for (const kind of ['envoy', 'grpc'] as const) {
    const r = buildResources(snap, kind, { envoyBind: '127.0.0.1' })
    const cla = r.endpoints.get('echo:10001') as any
    t.same(
      cla.endpoints.map((l: any) => [l.locality.zone, l.lb_endpoints.map((e: any) => e.endpoint.address.socket_address.address)]),
      [['h1', ['10.0.0.1']]],
      `${kind}: one endpoint, h1's alive copy`,
    )
    t.same(
      r.dropped.map((d) => [d.host, d.id]),
      [
        ['h1', 'a1'],
        ['h2', 'b1'],
      ],
    )
  }
})

t.test('retry policies: what cannot have reached the application for everyone, more only for shoal.idempotent=true', async (t) => {
  const idem = { 'shoal.idempotent': 'true' }
  const snap = new FixtureCatalog([
    host('h1', [
      rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: 8001, mode: 'grpc' }),
      rec({ host: 'h1', id: 'a2', name: 'cart', servicePort: 10002, port: 8002, mode: 'grpc', labels: idem }),
      rec({ host: 'h1', id: 'a3', name: 'shop', servicePort: 10003, port: 8003, mode: 'http', labels: { 'shoal.idempotent': ' TRUE ' } }),
      // One instance that does not say so makes the whole ServicePort non-idempotent.
      rec({ host: 'h1', id: 'a4', name: 'mixed', servicePort: 10004, port: 8004, mode: 'grpc', labels: idem }),
    ]),
    host('h2', [rec({ host: 'h2', id: 'b4', name: 'mixed', servicePort: 10004, port: 8104, mode: 'grpc' })]),
  ]).snapshot()
  const e = buildResources(snap, 'envoy', { envoyBind: '10.0.0.1' })
  const envoyRetry = (n: string) => (e.routes.get(n) as any).virtual_hosts[0].routes[0].route.retry_policy
  const backOff = { base_interval: { seconds: 0, nanos: 25_000_000 }, max_interval: { seconds: 0, nanos: 250_000_000 } }
  const safe = 'connect-failure,refused-stream,reset-before-request'
  t.same(
    envoyRetry('echo:10001'),
    { retry_on: safe, num_retries: { value: 2 }, retry_back_off: backOff },
    'Envoy: only what never reached the application',
  )
  t.equal(envoyRetry('cart:10002').retry_on, `${safe},reset,unavailable`, 'Envoy, idempotent gRPC: any reset and UNAVAILABLE too')
  t.equal(envoyRetry('shop:10003').retry_on, `${safe},reset`, 'Envoy, idempotent HTTP: any reset too (the label is read trimmed, any case)')
  t.equal(envoyRetry('mixed:10004').retry_on, safe, 'one instance without the label: not idempotent')
  t.same(
    (e.clusters.get('echo:10001') as any).circuit_breakers.thresholds[0].retry_budget,
    { budget_percent: { value: 20 }, min_retry_concurrency: { value: 3 } },
    "Envoy's retries are bounded by a budget",
  )

  const g = buildResources(snap, 'grpc', { envoyBind: '10.0.0.1' })
  const grpcRetry = (n: string) =>
    (g.listeners.get(n) as any).api_listener.api_listener.route_config.virtual_hosts[0].routes[0].route.retry_policy
  t.equal(grpcRetry('echo:10001'), undefined, 'gRPC, not idempotent: no policy (transparent retries need none)')
  t.same(
    grpcRetry('cart:10002'),
    { retry_on: 'unavailable', num_retries: { value: 2 }, retry_back_off: backOff },
    'gRPC, idempotent: UNAVAILABLE',
  )
  t.equal(grpcRetry('mixed:10004'), undefined)
  t.notOk((g.clusters.get('cart:10002') as any).circuit_breakers, 'gRPC clients get no retry budget (gRFC A44 leaves it out)')
})
