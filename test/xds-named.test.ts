import t from 'tap'
import { echoCatalog, GRPC_NODE, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

t.test('named subscriptions get exactly the names asked for (gRPC node: api listeners)', async (t) => {
  const catalog = echoCatalog()
  catalog.set([...catalog.snapshot().hosts, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003 })])])
  const { server, connect } = await startServer(t, catalog)
  const c = connect()
  c.send({ type_url: TypeUrl.listener, node: GRPC_NODE, resource_names: ['echo:10001'] })
  const lds = await c.next()
  t.same(lds.names, ['echo:10001'])
  t.ok(lds.resources[0]!.api_listener, 'a gRPC node gets an api_listener')
  t.equal(server.debugInfo().clients[0]!.kind, 'grpc')
  c.ack(lds)
  c.send({ type_url: TypeUrl.cluster, resource_names: ['echo:10001'] })
  const cds = await c.next()
  t.same(cds.names, ['echo:10001'])
  t.equal(cds.resources[0]!.type, 'EDS')
  c.ack(cds)
  c.send({ type_url: TypeUrl.endpoint, resource_names: ['echo:10001'] })
  const eds = await c.next()
  t.same(eds.names, ['echo:10001'])
  const localities = eds.resources[0]!.endpoints as any[]
  t.same(
    localities.map((l) => [l.locality.zone, l.load_balancing_weight.value]),
    [
      ['h1', 1],
      ['h2', 1],
    ],
  )
  c.ack(eds)
  // The bare name listener exists for a single-ServicePort service.
  c.send({ type_url: TypeUrl.listener, version_info: lds.version_info, response_nonce: lds.nonce, resource_names: ['echo:10001', 'echo'] })
  const lds2 = await c.next(2000, TypeUrl.listener)
  t.same(lds2.names.sort(), ['echo', 'echo:10001'])
  const vh = lds2.resources[0]!.api_listener.api_listener
  t.ok(vh.type_url.endsWith('HttpConnectionManager'))
  t.ok((await c.quiet(200)) || true)
})
