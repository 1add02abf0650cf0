import t from 'tap'
import { envoyClusterStream, host, rec } from './lib/xds-fixture.js'

t.test('an ACK records the version and sends nothing more until the view changes', async (t) => {
  const { catalog, server, c, first: r1 } = await envoyClusterStream(t)
  t.same(r1.names, ['echo:10001'])
  t.ok(r1.version_info.length > 0 && r1.nonce.length > 0, 'version and nonce set')
  c.ack(r1, [])
  t.ok(await c.quiet(300), 'nothing sent after the ACK')
  const dbg = server.debugInfo().clients[0]!
  t.equal(dbg.nodeId, 'envoy-1')
  t.equal(dbg.kind, 'envoy')
  const cds = dbg.types.find((x) => x.type === 'cds')!
  t.equal(cds.ackedVersion, r1.version_info)
  t.equal(cds.wildcard, true)

  // The same content again (a new snapshot object, same records): same version, nothing sent.
  catalog.set(catalog.snapshot().hosts)
  t.ok(await c.quiet(300), 'unchanged view sends nothing')

  catalog.set([...catalog.snapshot().hosts, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003 })])])
  const r2 = await c.next()
  t.not(r2.version_info, r1.version_info)
  t.same(r2.names.sort(), ['echo:10001', 'web:10002'])
  c.ack(r2, [])
  t.ok(await c.quiet(200))
  t.equal(server.debugInfo().clients[0]!.types[0]!.ackedVersion, r2.version_info)
  t.same(server.debugInfo().invalid, [])
})
