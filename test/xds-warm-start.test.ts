import t from 'tap'
import { Registry } from 'prom-client'
import { echoCatalog, ENVOY_NODE, FixtureCatalog, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

t.test('nothing is served before ready; earlier streams are answered when ready', async (t) => {
  const catalog = echoCatalog()
  const { server, connect } = await startServer(t, catalog, { ready: false })
  const c = connect()
  c.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE })
  c.send({ type_url: TypeUrl.listener })
  catalog.set([])
  t.ok(await c.quiet(400), 'no response while not ready (an empty catalog never wipes Envoy)')
  catalog.set(echoCatalog().snapshot().hosts)
  server.setReady(true)
  const cds = await c.next(2000, TypeUrl.cluster)
  const lds = await c.next(2000, TypeUrl.listener)
  t.same(cds.names, ['echo:10001'])
  t.same(lds.names, ['echo:10001'])
})

// The warm start ended with no peer exchange (a restarted agent that knows no peer yet): its
// view holds this host only. A client that reconnects holding a configuration of the whole
// cluster is not answered from it; a client that holds nothing, or exactly that view, is.
t.test('holding resuming clients: only a client whose version differs from the host-only view waits', async (t) => {
  const local = host('h1', [rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: 9001 })])
  const remote = host('h2', [rec({ host: 'h2', id: 'b1', name: 'web', servicePort: 10002, port: 9002 })])
  // The versions a client holds: of the whole cluster, and of this host alone.
  const before = new FixtureCatalog([local, remote])
  const earlier = await startServer(t, before)
  const versionOf = async (): Promise<string> => {
    const c = earlier.connect()
    c.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE })
    const res = await c.next(5000, TypeUrl.cluster)
    c.close()
    return res.version_info
  }
  const whole = await versionOf()
  before.set([local])
  const hostOnly = await versionOf()
  t.not(whole, hostOnly)

  const catalog = new FixtureCatalog([local])
  const registry = new Registry()
  const { server, connect } = await startServer(t, catalog, { ready: false }, { registry })
  /** The held-clients gauge and counter for envoy nodes, and what /debug/xds says of each client. */
  const held = async () => {
    const text = await registry.metrics()
    const info = server.debugInfo()
    return {
      gauge: Number(/^shoal_xds_held_clients\{kind="envoy"\} (\d+)$/m.exec(text)?.[1]),
      total: Number(/^shoal_xds_resumes_held_total\{kind="envoy"\} (\d+)$/m.exec(text)?.[1]),
      holdResuming: info.holdResuming,
      clients: Object.fromEntries(info.clients.map((c) => [c.nodeId, c.held])),
    }
  }
  const resuming = connect()
  resuming.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE, version_info: whole })
  server.setReady(true, { holdResuming: true })
  const fresh = connect()
  fresh.send({ type_url: TypeUrl.cluster, node: { ...ENVOY_NODE, id: 'envoy-fresh' } })
  const first = await fresh.next(5000, TypeUrl.cluster)
  t.same(first.names, ['echo:10001'], 'a client that holds nothing gets this host view')
  fresh.ack(first, [])
  const same = connect()
  same.send({ type_url: TypeUrl.cluster, node: { ...ENVOY_NODE, id: 'envoy-same' }, version_info: hostOnly })
  const upToDate = (id: string) =>
    server
      .debugInfo()
      .clients.find((c) => c.nodeId === id)
      ?.types.every((x) => x.upToDate)
  while (upToDate('envoy-same') !== true) await new Promise((r) => setTimeout(r, 10))
  t.pass('a client that holds exactly the host-only view is served (it needs nothing)')
  const late = connect()
  late.send({ type_url: TypeUrl.cluster, node: { ...ENVOY_NODE, id: 'envoy-late' }, version_info: whole })
  // A change of the local view while held is not pushed to a held client either.
  const local2 = host('h1', [...local.services, rec({ host: 'h1', id: 'a2', name: 'extra', servicePort: 10005, port: 9003 })])
  catalog.set([local2])
  t.same((await fresh.next(5000, TypeUrl.cluster)).names.sort(), ['echo:10001', 'extra:10005'], 'the fresh client follows the view')
  t.equal(upToDate('envoy-1'), false, 'the held client is not served')
  t.same(resuming.pending(), [], 'the client that holds the whole cluster got no answer')
  t.same(late.pending(), [], 'nor one that reconnects while holding')
  for (let i = 0; i < 500 && (await held()).gauge !== 2; i++) await new Promise((r) => setTimeout(r, 10))
  t.same(
    await held(),
    {
      gauge: 2,
      total: 2,
      holdResuming: true,
      clients: { 'envoy-1': true, 'envoy-fresh': false, 'envoy-same': false, 'envoy-late': true },
    },
    'shoal_xds_held_clients and /debug/xds name the two held clients',
  )

  // The first peer exchange brings the cluster back; held clients are served now.
  catalog.set([local2, remote, host('h3', [rec({ host: 'h3', id: 'c1', name: 'api', servicePort: 10003, port: 9004 })])])
  server.setReady(true)
  for (const c of [resuming, late])
    t.same(
      (await c.next(5000, TypeUrl.cluster)).names.sort(),
      ['api:10003', 'echo:10001', 'extra:10005', 'web:10002'],
      'released with the whole cluster',
    )
  t.same(same.pending()[0]?.names.sort(), ['echo:10001', 'extra:10005'], 'the client that held the host-only view followed it')
  t.same(
    await held(),
    {
      gauge: 0,
      total: 2,
      holdResuming: false,
      clients: { 'envoy-1': false, 'envoy-fresh': false, 'envoy-same': false, 'envoy-late': false },
    },
    'none held once released; the counter keeps the two',
  )
})
