import t from 'tap'
import { echoCatalog, GRPC_NODE, host, rec, startServer, TypeUrl } from './xds-fixture.js'

t.test('unsubscribing a name stops its updates', async (t) => {
  const catalog = echoCatalog()
  const hosts = [...catalog.snapshot().hosts, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003 })])]
  catalog.set(hosts)
  const { connect } = await startServer(t, catalog)
  const c = connect()
  c.send({ type_url: TypeUrl.endpoint, node: GRPC_NODE, resource_names: ['echo:10001', 'web:10002'] })
  const r1 = await c.next()
  t.same(r1.names.sort(), ['echo:10001', 'web:10002'])
  c.ack(r1, ['echo:10001'])
  const r2 = await c.next()
  t.same(r2.names, ['echo:10001'], 'the answer to the unsubscribe holds only what is still subscribed')
  c.ack(r2, ['echo:10001'])
  // web changes: nothing for this client.
  catalog.set([hosts[0]!, hosts[1]!, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9999 })])])
  t.ok(await c.quiet(300), 'no push for an unsubscribed name')
  // echo changes: pushed.
  catalog.set([hosts[0]!, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9999 })])])
  const r3 = await c.next()
  t.same(r3.names, ['echo:10001'])
  t.equal((r3.resources[0]!.endpoints as any[]).length, 1)
})
