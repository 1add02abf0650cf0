// External authorization on Envoy listeners: what a service's shoal.authz labels turn into
// (ext_authz calling the authorization service's Cluster, or a listener that fails closed),
// that every such config passes the protos' PGV rules, that gRPC api listeners carry none of
// it, and on a live ADS stream that removing the authorization service makes the protected
// listener deny everything (unless failure_mode_allow) before its Cluster goes.
import t, { type Test } from 'tap'
import { Registry } from 'prom-client'
import { authzOf } from '../src/registry/authz.js'
import { GroupIndex, resolveGroup } from '../src/xds/groups.js'
import { ExtUrl, loadXdsProtos, TypeUrl } from '../src/xds/protos.js'
import { buildGroupResources } from '../src/xds/resources.js'
import { XdsServer } from '../src/xds/server.js'
import { validateResource } from '../src/xds/validate.js'
import { capturedLogger } from './lib/log.js'
import { builtListenerFilters, deniesAll, extAuthzCluster, listenerFilters, protect } from './lib/xds-authz.js'
import { resourcesOf } from './lib/xds-oracle.js'
import { catalogTurn, ENVOY_NODE, FixtureCatalog, host, rec, startServer, type AdsClient, type DecodedResponse } from './lib/xds-fixture.js'

const protos = loadXdsProtos()
const OPTS = { envoyBind: '127.0.0.1' }
const authzRec = rec({ host: 'h2', id: 'z1', name: 'authz', servicePort: 10100, port: 9191, mode: 'grpc' })

function index(hosts: ReturnType<typeof host>[]) {
  const gi = new GroupIndex()
  gi.update(new FixtureCatalog(hosts).snapshot())
  return gi
}

/** The Envoy listener of `sp`, built, validated and packed and decoded as Envoy would read it. */
function envoyListener(t: Test, gi: GroupIndex, sp: number) {
  const g = gi.groups.get(sp)!
  const set = buildGroupResources(resolveGroup(g, null).group, 'envoy', OPTS)
  for (const [k, url, name, o] of resourcesOf(set))
    t.same(validateResource(protos, url, o), [], `${g.mode} ${k} ${name} passes the PGV rules and Shoal's`)
  return builtListenerFilters(set.listeners.values().next().value!)
}

t.test('labels: NAME or NAME:SERVICEPORT, failure_mode_allow, timeout; every bad spelling names its label', async (t) => {
  t.same(authzOf({}), { kind: 'none' })
  t.same(authzOf({ 'shoal.authz': 'Authz' }), { kind: 'spec', spec: { service: 'authz', failureModeAllow: false, timeoutMs: 200 } })
  t.same(authzOf({ 'shoal.authz': 'authz:10100', 'shoal.authz.failure_mode_allow': 'TRUE', 'shoal.authz.timeout': '1.5s' }), {
    kind: 'spec',
    spec: { service: 'authz', servicePort: 10100, failureModeAllow: true, timeoutMs: 1500 },
  })
  const bad: Array<[Record<string, string>, string, RegExp]> = [
    [{ 'shoal.authz.timeout': '1s' }, 'shoal.authz', /is missing while shoal.authz.timeout is set/],
    [{ 'shoal.authz': '' }, 'shoal.authz', /not NAME or NAME:SERVICEPORT/],
    [{ 'shoal.authz': 'authz:0' }, 'shoal.authz', /ServicePort 1-65535/],
    [{ 'shoal.authz': 'authz:10100:1' }, 'shoal.authz', /not NAME or NAME:SERVICEPORT/],
    [{ 'shoal.authz': 'authz', 'shoal.authz.failure_mode_allow': 'yes' }, 'shoal.authz.failure_mode_allow', /"yes" is not true or false/],
    [{ 'shoal.authz': 'authz', 'shoal.authz.timeout': '200' }, 'shoal.authz.timeout', /add a unit: 200s/],
    [{ 'shoal.authz': 'authz', 'shoal.authz.timeout': '2m' }, 'shoal.authz.timeout', /outside 1ms to 60s/],
  ]
  for (const [labels, label, problem] of bad) {
    const r = authzOf(labels)
    t.equal(r.kind, 'invalid', JSON.stringify(labels))
    if (r.kind === 'invalid') {
      t.equal(r.label, label)
      t.match(r.problem, problem)
    }
  }
})

t.test('an HTTP listener calls the authorization service over ext_authz; a tcp listener with the network filter', async (t) => {
  for (const mode of ['http', 'ws', 'grpc', 'tcp'] as const) {
    const web = protect(rec({ host: 'h1', id: 'w1', name: 'web', servicePort: 10002, port: 8080, mode }), 'authz', { timeout: '250ms' })
    const gi = index([host('h1', [web]), host('h2', [authzRec])])
    t.same(gi.groups.get(10002)!.authz, {
      target: 'authz',
      failureModeAllow: false,
      timeoutMs: 250,
      upstream: { name: 'authz', servicePort: 10100 },
    })
    t.same(gi.authzIssues, [])
    const filters = envoyListener(t, gi, 10002)
    const http = mode !== 'tcp'
    t.same(
      filters.map((f) => f.name),
      http
        ? ['envoy.filters.http.ext_authz', 'envoy.filters.http.router']
        : ['envoy.filters.network.ext_authz', 'envoy.filters.network.tcp_proxy'],
      `${mode}: ext_authz before the ${http ? 'router' : 'tcp_proxy'}`,
    )
    const f = filters[0]!
    t.equal(f.type, http ? ExtUrl.extAuthzHttp : ExtUrl.extAuthzNetwork)
    t.match(f.config, {
      grpc_service: { envoy_grpc: { cluster_name: 'authz:10100' }, timeout: { seconds: '0', nanos: 250_000_000 } },
      transport_api_version: 'V3',
      failure_mode_allow: false,
    })
    t.equal(extAuthzCluster(filters), 'authz:10100')
    // The authorization service's own Cluster speaks HTTP/2 (ext_authz is a gRPC call).
    const cluster = buildGroupResources(resolveGroup(gi.groups.get(10100)!, null).group, 'envoy', OPTS).clusters.get(
      'authz:10100',
    ) as Record<string, any>
    t.ok(cluster.typed_extension_protocol_options, 'the authz Cluster has HTTP/2 protocol options')
  }
})

t.test('a request that cannot be served fails closed, or opens with failure_mode_allow; each problem says what to do', async (t) => {
  const web = rec({ host: 'h1', id: 'w1', name: 'web', servicePort: 10002, port: 8080, mode: 'http' })
  const db = rec({ host: 'h1', id: 'd1', name: 'db', servicePort: 10003, port: 5432, mode: 'tcp' })
  const cases: Array<{ what: string; hosts: ReturnType<typeof host>[]; problem: string; detail: RegExp }> = [
    {
      what: 'no such service',
      hosts: [host('h1', [protect(web, 'authz'), protect(db, 'authz')])],
      problem: 'missing',
      detail: /no service authz is in the registry/,
    },
    {
      what: 'a ServicePort it does not have',
      hosts: [host('h1', [protect(web, 'authz:10101'), protect(db, 'authz:10101')]), host('h2', [authzRec])],
      problem: 'missing',
      detail: /no service authz on ServicePort 10101 is in the registry \(it has ServicePort 10100\)/,
    },
    {
      what: 'two ServicePorts and none named',
      hosts: [
        host('h1', [protect(web, 'authz'), protect(db, 'authz')]),
        host('h2', [authzRec, { ...authzRec, id: 'z2', ports: [{ ...authzRec.ports[0]!, servicePort: 10101 }] }]),
      ],
      problem: 'ambiguous',
      detail: /authz has ServicePorts 10100, 10101; name one: shoal.authz=authz:10100/,
    },
    {
      what: 'not in proxy mode grpc',
      hosts: [host('h1', [protect(web, 'authz'), protect(db, 'authz')]), host('h2', [{ ...authzRec, proxyMode: 'http' }])],
      problem: 'not_grpc',
      detail: /authz:10100 is in proxy mode http; .* give it proxy mode grpc/,
    },
    {
      what: 'labels that do not read',
      hosts: [
        host('h1', [
          { ...web, labels: { 'shoal.authz': 'authz', 'shoal.authz.timeout': 'soon' } },
          { ...db, labels: { 'shoal.authz': 'authz', 'shoal.authz.failure_mode_allow': 'maybe' } },
        ]),
        host('h2', [authzRec]),
      ],
      problem: 'invalid',
      detail: /^shoal\.authz\.(timeout: "soon" is not a duration|failure_mode_allow: "maybe" is not true or false)/,
    },
  ]
  for (const c of cases) {
    const gi = index(c.hosts)
    t.same(
      gi.authzIssues.map((i) => [i.servicePort, i.problem]),
      [
        [10002, c.problem],
        [10003, c.problem],
      ],
      `${c.what}: both listed as ${c.problem}`,
    )
    for (const i of gi.authzIssues) t.match(i.detail, c.detail, `${c.what}: ${i.detail}`)
    const http = envoyListener(t, gi, 10002)
    t.same(
      http.map((f) => f.name),
      ['envoy.filters.http.rbac', 'envoy.filters.http.router'],
      `${c.what}: the HTTP listener denies every request`,
    )
    t.ok(deniesAll(http), 'RBAC rules present and empty: DENY')
    const tcp = envoyListener(t, gi, 10003)
    t.same(
      tcp.map((f) => f.name),
      ['envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy'],
      `${c.what}: the tcp listener closes every connection`,
    )
    t.ok(deniesAll(tcp))
    t.equal(extAuthzCluster(http), null, 'no Cluster is named that the snapshot lacks')
  }
  // Labels that do not read never open the door, even when they say failure_mode_allow.
  const gi = index([
    host('h1', [{ ...web, labels: { 'shoal.authz': 'authz', 'shoal.authz.failure_mode_allow': 'true', 'shoal.authz.timeout': 'x' } }]),
  ])
  t.ok(deniesAll(envoyListener(t, gi, 10002)), 'unreadable labels deny whatever they say')
  // failure_mode_allow: a missing authorization service lets traffic through, as Envoy would.
  const open = index([host('h1', [protect(web, 'authz', { allow: true }), protect(db, 'authz', { allow: true })])])
  t.same(
    envoyListener(t, open, 10002).map((f) => f.name),
    ['envoy.filters.http.router'],
  )
  t.same(
    envoyListener(t, open, 10003).map((f) => f.name),
    ['envoy.filters.network.tcp_proxy'],
  )
  t.match(open.authzIssues, [
    { problem: 'missing', failureModeAllow: true },
    { problem: 'missing', failureModeAllow: true },
  ])
  // With the service present, failure_mode_allow goes to Envoy's filter.
  const present = index([host('h1', [protect(web, 'authz', { allow: true })]), host('h2', [authzRec])])
  t.match(envoyListener(t, present, 10002)[0]!.config, { failure_mode_allow: true })
})

t.test('the first instance (by host, id) that asks decides; one that asks protects the whole service', async (t) => {
  const w1 = rec({ host: 'h1', id: 'w1', name: 'web', servicePort: 10002, port: 8080, mode: 'http' })
  const w2 = rec({ host: 'h2', id: 'w2', name: 'web', servicePort: 10002, port: 8080, mode: 'http' })
  const gi = index([host('h1', [w1]), host('h2', [protect(w2, 'authz'), authzRec])])
  t.equal(gi.groups.get(10002)!.authz?.upstream?.name, 'authz', 'h2 asks, h1 does not: protected')
})

t.test('the PGV rules of the new filter configs are enforced, and an unloaded type is caught', async (t) => {
  const errs = (o: object, url: string) => validateResource(protos, url, o).join('\n')
  t.match(errs({ stat_prefix: '', grpc_service: { envoy_grpc: { cluster_name: 'a:1' } } }, ExtUrl.extAuthzNetwork), /stat_prefix/)
  t.match(
    errs({ grpc_service: { envoy_grpc: { cluster_name: 'a:1' } }, transport_api_version: 'V9' }, ExtUrl.extAuthzHttp),
    /transport_api_version/,
  )
  t.match(errs({ grpc_service: { envoy_grpc: { cluster_name: '' } } }, ExtUrl.extAuthzHttp), /cluster_name/)
  t.match(errs({ stat_prefix: 's', rules: { action: 'PERMIT' } }, ExtUrl.rbacNetwork), /action/)
  const listener = {
    name: 'web:10002',
    address: { socket_address: { address: '127.0.0.1', port_value: 10002 } },
    filter_chains: [
      {
        filters: [
          { name: 'x', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm' } },
          { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': ExtUrl.tcpProxy, stat_prefix: 's', cluster: 'web:10002' } },
        ],
      },
    ],
  }
  t.match(errs(listener, TypeUrl.listener), /is not loaded/, 'an Any of a type the server did not load would go out empty: refused')
})

t.test('gRPC api listeners carry no authorization filter (gRPC NACKs filters it does not implement)', async (t) => {
  const web = protect(rec({ host: 'h1', id: 'w1', name: 'web', servicePort: 10002, port: 8080, mode: 'grpc' }), 'authz')
  for (const hosts of [[host('h1', [web]), host('h2', [authzRec])], [host('h1', [web])]]) {
    const gi = index(hosts)
    const set = buildGroupResources(resolveGroup(gi.groups.get(10002)!, null).group, 'grpc', OPTS)
    for (const [name, l] of set.listeners) {
      t.same(validateResource(protos, TypeUrl.listener, l), [])
      t.same(
        builtListenerFilters(l).map((f) => f.name),
        ['envoy.filters.http.router'],
        `${name}: the router alone`,
      )
    }
  }
})

/** Responses until 300 ms pass without one; the first may take `firstMs`. */
async function drain(c: AdsClient, firstMs = 300): Promise<DecodedResponse[]> {
  const out: DecodedResponse[] = []
  for (let wait = firstMs; ; wait = 300) {
    try {
      out.push(await c.next(wait))
    } catch {
      return out
    }
  }
}

for (const allow of [false, true]) {
  t.test(`live stream: the authorization service goes away${allow ? ' (failure_mode_allow)' : ''}`, async (t) => {
    const web = protect(rec({ host: 'h1', id: 'w1', name: 'web', servicePort: 10002, port: 8080, mode: 'http' }), 'authz', { allow })
    const catalog = new FixtureCatalog([host('h1', [web]), host('h2', [authzRec])])
    const { server, connect } = await startServer(t, catalog)
    const c = connect()
    const names = ['authz:10100', 'web:10002']
    c.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE })
    c.send({ type_url: TypeUrl.endpoint, resource_names: names })
    c.send({ type_url: TypeUrl.listener })
    c.send({ type_url: TypeUrl.route, resource_names: names })
    const first = await drain(c, 10_000)
    const cds = first.find((r) => r.type_url === TypeUrl.cluster)!
    const lds = first.find((r) => r.type_url === TypeUrl.listener)!
    t.same(cds.names.sort(), names)
    const web1 = lds.resources.find((l) => l.name === 'web:10002')!
    t.equal(extAuthzCluster(listenerFilters(web1)), 'authz:10100', 'the listener calls a Cluster of the same snapshot')
    t.ok(
      first.findIndex((r) => r.type_url === TypeUrl.cluster) < first.findIndex((r) => r.type_url === TypeUrl.listener),
      'the Cluster arrives before the Listener that names it',
    )
    for (const r of first) c.ack(r, r.type_url === TypeUrl.cluster || r.type_url === TypeUrl.listener ? [] : names)
    await c.quiet(150)

    catalog.set([host('h1', [web])])
    const seq = await drain(c, 5000)
    const ldsNext = seq.find((r) => r.type_url === TypeUrl.listener)!
    const filters = listenerFilters(ldsNext.resources.find((l) => l.name === 'web:10002')!)
    if (allow)
      t.same(
        filters.map((f) => f.name),
        ['envoy.filters.http.router'],
        'failure_mode_allow: the listener lets requests through',
      )
    else {
      t.same(
        filters.map((f) => f.name),
        ['envoy.filters.http.rbac', 'envoy.filters.http.router'],
        'the protected listener denies everything',
      )
      t.ok(deniesAll(filters))
    }
    t.notOk(
      seq.some((r) => r.type_url === TypeUrl.cluster && !r.names.includes('authz:10100')),
      'the authz Cluster stays while the Listener update is not ACKed',
    )
    for (const r of seq) c.ack(r, r.type_url === TypeUrl.cluster || r.type_url === TypeUrl.listener ? [] : names)
    const removal = await c.next(5000, TypeUrl.cluster)
    t.same(removal.names, ['web:10002'], 'then the authz Cluster goes')
    t.match(server.debugInfo().authz, [
      { servicePort: 10002, service: 'web', target: 'authz', problem: 'missing', failureModeAllow: allow },
    ])
  })
}

t.test('a request that cannot be served is logged once while it lasts, counted and shown in /debug/xds', async (t) => {
  const { logger, lines } = capturedLogger('info')
  const registry = new Registry()
  const web = protect(rec({ host: 'h1', id: 'w1', name: 'web', servicePort: 10002, port: 8080, mode: 'http' }), 'authz')
  const catalog = new FixtureCatalog([host('h1', [web])])
  const server = new XdsServer(
    { bind: { host: '127.0.0.1', port: 0 }, envoyBind: '127.0.0.1', shutdownGraceMs: 100 },
    { logger, catalog, registry },
  )
  await server.start()
  t.teardown(() => server.stop())
  const warnings = () => lines.filter((l) => l.level === 40 && /external authorization/.test(l.msg))
  t.same(
    warnings().map((l) => l.msg),
    [
      'web:10002 asks for external authorization by "authz": no service authz is in the registry; start it, or fix shoal.authz; until then its Envoy listener denies everything',
    ],
  )
  t.match(await registry.metrics(), /shoal_xds_authz_unresolved\{problem="missing"\} 1/)
  t.match(server.debugInfo().authz, [{ servicePort: 10002, service: 'web', target: 'authz', problem: 'missing' }])
  // An unrelated change does not log it again.
  catalog.set([host('h1', [web, rec({ host: 'h1', id: 'e1', name: 'echo', servicePort: 10001, port: 9001 })])])
  await catalogTurn()
  t.equal(warnings().length, 1, 'logged once')
  // The authorization service arrives, but in proxy mode http: a new problem, a new line.
  catalog.set([host('h1', [web]), host('h2', [{ ...authzRec, proxyMode: 'http' }])])
  await catalogTurn()
  t.match(warnings()[1]?.msg, /authz:10100 is in proxy mode http/)
  t.match(await registry.metrics(), /shoal_xds_authz_unresolved\{problem="not_grpc"\} 1/)
  catalog.set([host('h1', [web]), host('h2', [authzRec])])
  await catalogTurn()
  t.same(server.debugInfo().authz, [], 'resolved: nothing listed')
  t.match(await registry.metrics(), /shoal_xds_authz_unresolved\{problem="not_grpc"\} 0/)
  t.ok(
    lines.some((l) => l.level === 30 && /external authorization problem cleared/.test(l.msg)),
    'the end of the problem is logged',
  )
})
