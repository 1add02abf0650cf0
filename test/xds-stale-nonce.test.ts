import t from 'tap'
import { echoCatalog, envoyClusterStream, GRPC_NODE, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

t.test('requests carrying a stale nonce are not answered; their names still count', async (t) => {
  const { catalog, server, c, first: r1 } = await envoyClusterStream(t)
  // Not ACKed yet; the catalog changes and a newer response supersedes r1.
  catalog.set([...catalog.snapshot().hosts, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003 })])])
  const r2 = await c.next()
  t.not(r2.nonce, r1.nonce)
  // A NACK of r1 (stale nonce) must not count and must not change anything.
  c.send({ type_url: TypeUrl.cluster, version_info: '', response_nonce: r1.nonce, error_detail: { code: 3, message: 'late' } })
  // A stale request naming resources: the client's interest changed (it was sent before r2 arrived).
  c.send({ type_url: TypeUrl.cluster, version_info: '', response_nonce: r1.nonce, resource_names: ['echo:10001'] })
  t.ok(await c.quiet(300), 'no response to stale requests')
  let cds = server.debugInfo().clients[0]!.types.find((x) => x.type === 'cds')!
  t.equal(cds.nackedVersion, null, 'stale NACK ignored')
  t.same([cds.wildcard, cds.names], [false, ['echo:10001']], 'the stale request changed the subscription')
  c.ack(r2, ['echo:10001'])
  t.ok(await c.quiet(300), 'the ACK of r2 with the same names needs no answer')
  cds = server.debugInfo().clients[0]!.types.find((x) => x.type === 'cds')!
  t.equal(cds.ackedVersion, r2.version_info, 'the current nonce is ACKed')
})

t.test('a client that unsubscribes and subscribes again across a response in flight gets the resource again', async (t) => {
  const catalog = echoCatalog()
  const web = host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003 })])
  catalog.set([...catalog.snapshot().hosts, web])
  const { connect } = await startServer(t, catalog)
  const c = connect()
  c.send({ type_url: TypeUrl.cluster, node: GRPC_NODE, resource_names: ['echo:10001', 'web:10002'] })
  const r1 = await c.next()
  c.ack(r1, ['echo:10001', 'web:10002'])
  t.ok(await c.quiet(200))
  // echo changes: r2 is in flight when the client drops web (the request names r1: stale) ...
  catalog.set([host('h1', [rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: 9101 })]), web])
  const r2 = await c.next()
  c.send({ type_url: TypeUrl.cluster, version_info: r1.version_info, response_nonce: r1.nonce, resource_names: ['echo:10001'] })
  // ... so it ignores web in r2, and then takes web again with its ACK of r2.
  c.ack(r2, ['echo:10001', 'web:10002'])
  const r3 = await c.next()
  t.same(r3.names.sort(), ['echo:10001', 'web:10002'], 'web is sent again')
  c.ack(r3, ['echo:10001', 'web:10002'])
  // The same nonce and names once more: the client asks again (it lost what it had between two requests).
  c.ack(r3, ['echo:10001', 'web:10002'])
  const r4 = await c.next()
  t.same(r4.names.sort(), ['echo:10001', 'web:10002'], 'a repeated request is answered')
})

t.test('a gRPC client that ACKed a Cluster but never asks for its assignment gets the Cluster once more', async (t) => {
  const catalog = echoCatalog()
  const { connect } = await startServer(t, catalog, { removalGraceMs: 100 })
  const c = connect()
  c.send({ type_url: TypeUrl.endpoint, node: GRPC_NODE, resource_names: [] })
  const e0 = await c.next()
  c.ack(e0, [])
  c.send({ type_url: TypeUrl.cluster, resource_names: ['echo:10001'] })
  const r1 = await c.next()
  c.ack(r1, ['echo:10001'])
  // The client lost it (as gRPC C-core does in a race): no EDS request for echo:10001 follows.
  const r2 = await c.next(5000)
  t.same([r2.type_url, r2.names], [TypeUrl.cluster, ['echo:10001']], 'the Cluster is sent again')
  t.not(r2.nonce, r1.nonce)
  c.ack(r2, ['echo:10001'])
  t.ok(await c.quiet(600), 'once: not again while the assignment is still not asked for')
})
