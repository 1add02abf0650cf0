import t from 'tap'
import { echoCatalog, ENVOY_NODE, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

t.test('LDS and CDS carry the full set: a removed service is deleted by omission', async (t) => {
  const catalog = echoCatalog()
  const base = catalog.snapshot().hosts
  catalog.set([...base, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003 })])])
  const { connect } = await startServer(t, catalog)
  const c = connect()
  c.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE })
  const cds = await c.next()
  c.ack(cds, [])
  c.send({ type_url: TypeUrl.listener })
  const lds = await c.next()
  t.same(lds.names.sort(), ['echo:10001', 'web:10002'])
  c.ack(lds, [])
  // web's host dies: its records vanish from the view.
  catalog.set([...base, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003 })], 'dead')])
  const lds2 = await c.next(2000, TypeUrl.listener)
  t.same(lds2.names, ['echo:10001'])
  t.ok(await c.quiet(200), 'the Cluster removal waits for the Listener removal to be ACKed')
  c.ack(lds2, [])
  const cds2 = await c.next(2000, TypeUrl.cluster)
  t.same(cds2.names, ['echo:10001'])
  // A tombstoned record is gone too.
  const r = rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: 9001, status: 'tombstone' })
  const r2 = rec({ host: 'h2', id: 'b1', name: 'echo', servicePort: 10001, port: 9002, status: 'tombstone' })
  c.ack(cds2, [])
  catalog.set([host('h1', [r]), host('h2', [r2])])
  const lds3 = await c.next(2000, TypeUrl.listener)
  c.ack(lds3, [])
  const cds3 = await c.next(2000, TypeUrl.cluster)
  t.same(lds3.names, [])
  t.same(cds3.names, [])
})
