import t from 'tap'
import { echoCatalog, GRPC_NODE, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

t.test('a name requested before it exists is pushed when it appears', async (t) => {
  const catalog = echoCatalog()
  const { connect } = await startServer(t, catalog)
  const c = connect()
  c.send({ type_url: TypeUrl.listener, node: GRPC_NODE, resource_names: ['later:10005'] })
  const r1 = await c.next()
  t.same(r1.names, [], 'answered: does not exist yet')
  c.ack(r1, ['later:10005'])
  catalog.set([...catalog.snapshot().hosts, host('h9', [rec({ host: 'h9', id: 'l1', name: 'later', servicePort: 10005, port: 9005 })])])
  const r2 = await c.next()
  t.same(r2.names, ['later:10005'])
  t.ok(r2.resources[0]!.api_listener)
})
