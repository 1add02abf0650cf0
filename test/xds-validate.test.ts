import t from 'tap'
import { loadXdsProtos, TypeUrl, ExtUrl } from '../src/xds/protos.js'
import { buildResources, resourcesOf } from './lib/xds-oracle.js'
import { validateResource } from '../src/xds/validate.js'
import { Registry } from 'prom-client'
import { mixedCatalog, FixtureCatalog, host, rec, GRPC_NODE, ENVOY_NODE, startServer } from './lib/xds-fixture.js'

const p = loadXdsProtos()
const router = { name: 'envoy.filters.http.router', typed_config: { '@type': ExtUrl.router } }

t.test('every built resource of a mixed catalog passes', async (t) => {
  const snap = mixedCatalog().snapshot()
  for (const kind of ['envoy', 'grpc'] as const) {
    const r = buildResources(snap, kind, { envoyBind: '192.168.255.1' })
    for (const [k, url, name, o] of resourcesOf(r)) t.same(validateResource(p, url, o), [], `${kind} ${k} ${name}`)
  }
})

t.test('one failing case per resource type', async (t) => {
  const bad = {
    cluster: validateResource(p, TypeUrl.cluster, {
      name: 'x:1',
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {} } },
      connect_timeout: { seconds: 0, nanos: 0 },
      lb_polcy: 'ROUND_ROBIN',
    }),
    endpoint: validateResource(p, TypeUrl.endpoint, {
      cluster_name: 'x:1',
      endpoints: [
        {
          locality: { zone: 'h1' },
          lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'backend.local', port_value: 80 } } } }],
        },
        { locality: { zone: 'h1' }, load_balancing_weight: { value: 1 }, lb_endpoints: [] },
      ],
    }),
    listener: validateResource(p, TypeUrl.listener, {
      name: 'x:1',
      api_listener: {
        api_listener: {
          '@type': ExtUrl.hcm,
          stat_prefix: 's',
          route_config: { name: 'r' },
          http_filters: [{ name: 'envoy.filters.http.router' }],
        },
      },
    }),
    route: validateResource(p, TypeUrl.route, {
      name: 'r',
      virtual_hosts: [{ name: 'v', domains: [], routes: [{ match: { prefix: '/' }, route: { cluster: '' } }] }],
    }),
  }
  t.match(bad.cluster.join('\n'), /unknown field "lb_polcy"/)
  t.match(
    validateResource(p, TypeUrl.cluster, {
      name: 'c',
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {} } },
      connect_timeout: { seconds: 1 },
      outlier_detection: { consecutive_5xx: { value: 5 } },
    }).join('\n'),
    /success-rate ejection without explicit/,
  )
  t.match(bad.cluster.join('\n'), /connect_timeout: duration must be > 0s/, 'PGV duration gt rule')
  t.match(bad.endpoint.join('\n'), /not an IP literal/)
  t.match(bad.endpoint.join('\n'), /appears twice/)
  t.match(bad.endpoint.join('\n'), /without load_balancing_weight/)
  t.match(bad.listener.join('\n'), /without typed_config/)
  t.match(bad.route.join('\n'), /domains: needs at least 1 items/, 'PGV repeated min_items')
  t.match(bad.route.join('\n'), /route.cluster: needs at least 1 characters/, 'PGV string min_len')
  // More PGV rules read from the protos.
  t.match(
    validateResource(p, TypeUrl.endpoint, {
      cluster_name: 'x',
      endpoints: [{ locality: {}, load_balancing_weight: { value: 0 }, priority: 200 }],
    }).join('\n'),
    /load_balancing_weight: 0 out of range[\s\S]*priority: 200 out of range/,
  )
  t.match(validateResource(p, TypeUrl.cluster, { name: 'c', type: 'NOPE' }).join('\n'), /"NOPE" is not a value/)
  t.match(
    validateResource(p, TypeUrl.listener, {
      name: 'l',
      address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
      filter_chains: [{ filters: [{ name: 'f', typed_config: { '@type': 'type.googleapis.com/not.Loaded' } }] }],
    }).join('\n'),
    /not loaded/,
  )
  t.match(
    validateResource(p, TypeUrl.route, {
      name: 'r',
      virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: {}, route: { cluster: 'c' } }] }],
    }).join('\n'),
    /oneof path_specifier is required/,
    'PGV required oneof',
  )
  t.same(
    validateResource(p, TypeUrl.listener, {
      name: 'ok',
      api_listener: { api_listener: { '@type': ExtUrl.hcm, stat_prefix: 's', route_config: { name: 'r' }, http_filters: [router] } },
    }),
    [],
  )
})

t.test('a failing resource is not served; the reason is logged and counted', async (t) => {
  // A ServicePort out of range (a record from a peer that skipped validation): Envoy's Listener
  // on it fails (port_value <= 65535) and is not served; its Cluster and the rest are.
  const catalog = new FixtureCatalog([
    host('h1', [
      rec({ host: 'h1', id: 'a', name: 'echo', servicePort: 70000, port: 9000 }),
      rec({ host: 'h1', id: 'b', name: 'web', servicePort: 10002, port: 9001 }),
    ]),
  ])
  const registry = new Registry()
  const { server, connect } = await startServer(t, catalog, { shutdownGraceMs: 100 }, { registry })
  const c = connect()
  c.send({ type_url: TypeUrl.listener, node: ENVOY_NODE })
  const r = await c.next()
  t.same(r.names, ['web:10002'], 'the invalid Listener is not served, the other one is')
  const dbg = server.debugInfo()
  t.equal(dbg.invalid.length, 1)
  t.match(dbg.invalid[0]!, { kind: 'envoy', type: 'lds', name: 'echo:70000' })
  t.match(await registry.metrics(), /shoal_xds_invalid_resources_total\{type="lds"\} 1/)
})

t.test('an endpoint no client accepts is left out of its ClusterLoadAssignment, logged and counted', async (t) => {
  const catalog = new FixtureCatalog([
    host('h1', [
      rec({ host: 'h1', id: 'a', name: 'echo', servicePort: 10001, port: 9000, ip: 'not-an-ip' }),
      rec({ host: 'h1', id: 'b', name: 'echo', servicePort: 10001, port: 9001 }),
    ]),
  ])
  const registry = new Registry()
  const { server, connect } = await startServer(t, catalog, { shutdownGraceMs: 100 }, { registry })
  const c = connect()
  c.send({ type_url: TypeUrl.endpoint, node: GRPC_NODE, resource_names: ['echo:10001'] })
  const r = await c.next()
  t.same(r.names, ['echo:10001'], 'the CLA is served')
  const eps = (r.resources[0]!.endpoints as any[]).flatMap((l) => l.lb_endpoints.map((e: any) => e.endpoint.address.socket_address))
  t.same(
    eps.map((e: any) => [e.address, e.port_value]),
    [['127.0.0.1', 9001]],
    'with the good endpoint only',
  )
  const dbg = server.debugInfo()
  t.same(dbg.invalid, [])
  t.match(dbg.dropped, [{ servicePort: 10001, service: 'echo', host: 'h1', id: 'a', address: 'not-an-ip:9000', reason: 'not_an_ip' }])
  t.match(await registry.metrics(), /shoal_xds_dropped_endpoints\{reason="not_an_ip",network="host"\} 1/)
})

t.test('a ClusterLoadAssignment listing one address twice is rejected before it is sent', async (t) => {
  const ep = (ip: string, port: number) => ({ endpoint: { address: { socket_address: { address: ip, port_value: port } } } })
  const errs = validateResource(p, TypeUrl.endpoint, {
    cluster_name: 'echo:10001',
    endpoints: [
      { locality: { zone: 'h1' }, load_balancing_weight: { value: 1 }, lb_endpoints: [ep('10.0.0.1', 80), ep('10.0.0.2', 80)] },
      { locality: { zone: 'h2' }, load_balancing_weight: { value: 1 }, lb_endpoints: [ep('10.0.0.1', 81), ep('10.0.0.1', 80)] },
      { locality: { zone: 'h3' }, load_balancing_weight: { value: 1 }, lb_endpoints: [ep('::1', 80), ep('0::1', 80)] },
    ],
  })
  t.equal(errs.length, 2, errs.join('\n'))
  t.match(
    errs[0]!,
    /endpoints\[1\]\.lb_endpoints\[1\]: address 10\.0\.0\.1 port 80 is listed twice \(first at .*endpoints\[0\]\.lb_endpoints\[0\]\)/,
  )
  t.match(errs[1]!, /endpoints\[2\]\.lb_endpoints\[1\]: address 0::1 port 80 is listed twice/)
})
