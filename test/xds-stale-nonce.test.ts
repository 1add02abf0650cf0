import t from 'tap'
import { echoCatalog, ENVOY_NODE, host, rec, startServer, TypeUrl } from './xds-fixture.js'

t.test('requests carrying a stale nonce are ignored', async (t) => {
  const catalog = echoCatalog()
  const { server, connect } = await startServer(t, catalog)
  const c = connect()
  c.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE })
  const r1 = await c.next()
  // Not ACKed yet; the catalog changes and a newer response supersedes r1.
  catalog.set([...catalog.snapshot().hosts, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003 })])])
  const r2 = await c.next()
  t.not(r2.nonce, r1.nonce)
  // A NACK of r1 (stale nonce) must not count and must not change anything.
  c.send({ type_url: TypeUrl.cluster, version_info: '', response_nonce: r1.nonce, error_detail: { code: 3, message: 'late' } })
  // A stale request naming resources must not change the subscription either.
  c.send({ type_url: TypeUrl.cluster, version_info: '', response_nonce: r1.nonce, resource_names: ['nothing:1'] })
  t.ok(await c.quiet(300), 'no response to stale requests')
  let cds = server.debugInfo().clients[0]!.types.find((x) => x.type === 'cds')!
  t.equal(cds.nackedVersion, null, 'stale NACK ignored')
  t.equal(cds.wildcard, true, 'stale request did not change the subscription')
  c.ack(r2, [])
  await c.quiet(100)
  cds = server.debugInfo().clients[0]!.types.find((x) => x.type === 'cds')!
  t.equal(cds.ackedVersion, r2.version_info, 'the current nonce is ACKed')
})
