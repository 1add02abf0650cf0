import t from 'tap'
import { echoCatalog, ENVOY_NODE, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

t.test('wildcard: legacy empty list and explicit "*" get every resource, new ones included', async (t) => {
  const catalog = echoCatalog()
  catalog.set([...catalog.snapshot().hosts, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003 })])])
  const { connect } = await startServer(t, catalog)
  const c = connect()
  c.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE, resource_names: ['*'] })
  const cds = await c.next()
  t.same(cds.names.sort(), ['echo:10001', 'web:10002'])
  c.send({ type_url: TypeUrl.listener, resource_names: [] })
  const lds = await c.next()
  t.same(lds.names.sort(), ['echo:10001', 'web:10002'])
  const web = lds.resources.find((l) => l.name === 'web:10002')!
  t.same(
    web.address.socket_address,
    { ...web.address.socket_address, address: '127.0.0.1', port_value: 10002 },
    'Envoy listener on envoyBind:ServicePort',
  )
  c.ack(cds, ['*'])
  c.ack(lds, [])
  t.ok(await c.quiet(200))
  // A new service reaches both wildcard subscriptions.
  catalog.set([
    ...catalog.snapshot().hosts,
    host('h4', [rec({ host: 'h4', id: 'd1', name: 'api', servicePort: 10003, port: 9004, mode: 'tcp' })]),
  ])
  const cds2 = await c.next(2000, TypeUrl.cluster)
  const lds2 = await c.next(2000, TypeUrl.listener)
  t.ok(cds2.names.includes('api:10003'))
  t.ok(lds2.names.includes('api:10003'))
  // Legacy wildcard ends once the client names resources.
  c.send({ type_url: TypeUrl.listener, version_info: lds2.version_info, response_nonce: lds2.nonce, resource_names: ['web:10002'] })
  t.ok(await c.quiet(300), 'narrowing is not answered: the client holds web:10002 already')
  // From now on only web:10002 is sent.
  catalog.set([
    host('h1', catalog.snapshot().hosts[0]!.services),
    host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003, mode: 'tcp' })]),
  ])
  const lds3 = await c.next(2000, TypeUrl.listener)
  t.same(lds3.names, ['web:10002'])
})
