import t from 'tap'
import { echoCatalog, GRPC_NODE, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

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
  t.ok(await c.quiet(300), 'an unsubscribe is not answered: the client holds what it asks for already')
  // web changes: nothing for this client.
  catalog.set([hosts[0]!, hosts[1]!, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9999 })])])
  t.ok(await c.quiet(300), 'no push for an unsubscribed name')
  // echo changes: pushed.
  catalog.set([hosts[0]!, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9999 })])])
  const r3 = await c.next()
  t.same(r3.names, ['echo:10001'])
  t.equal((r3.resources[0]!.endpoints as any[]).length, 1)
  c.ack(r3, ['echo:10001'])
  // Unsubscribing the last name: no empty response either.
  c.ack(r3, [])
  t.ok(await c.quiet(300), 'unsubscribing everything sends no empty response')
  // Subscribing again to a name the client does not hold: answered.
  c.send({ type_url: TypeUrl.endpoint, version_info: r3.version_info, response_nonce: r3.nonce, resource_names: ['web:10002'] })
  const r4 = await c.next()
  t.same(r4.names, ['web:10002'])
})
