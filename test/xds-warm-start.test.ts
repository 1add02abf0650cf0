import t from 'tap'
import { echoCatalog, ENVOY_NODE, startServer, TypeUrl } from './xds-fixture.js'

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
