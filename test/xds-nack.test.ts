import t from 'tap'
import { ENVOY_NODE, envoyClusterStream, FixtureCatalog, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

t.test('a NACKed version is never sent again; the next changed version is', async (t) => {
  const { catalog, server, c, first: r1 } = await envoyClusterStream(t)
  c.ack(r1, [])
  t.ok(await c.quiet(100), 'ACK landed')
  const base = catalog.snapshot().hosts
  const withWeb = [...base, host('h3', [rec({ host: 'h3', id: 'c1', name: 'web', servicePort: 10002, port: 9003 })])]
  catalog.set(withWeb)
  const r2 = await c.next()
  t.same(r2.names.sort(), ['echo:10001', 'web:10002'])
  // NACK: the previous version plus error_detail.
  c.send({
    type_url: TypeUrl.cluster,
    version_info: r1.version_info,
    response_nonce: r2.nonce,
    error_detail: { code: 14, message: 'rejected by test' },
  })
  t.ok(await c.quiet(300), 'the NACKed version is not re-sent')
  const cds = server.debugInfo().clients[0]!.types.find((x) => x.type === 'cds')!
  t.equal(cds.ackedVersion, r1.version_info, 'last ACKed version kept')
  t.equal(cds.nackedVersion, r2.version_info)
  t.equal(cds.nackError, 'rejected by test')

  // The catalog producing the NACKed content again (new snapshot) sends nothing.
  catalog.set([...withWeb])
  t.ok(await c.quiet(300), 'same NACKed content: nothing sent')

  // The next changed version goes out.
  const withApi = [...base, host('h4', [rec({ host: 'h4', id: 'd1', name: 'api', servicePort: 10003, port: 9004 })])]
  catalog.set(withApi)
  const r3 = await c.next()
  t.same(r3.names.sort(), ['api:10003', 'echo:10001'])
  t.not(r3.version_info, r2.version_info)
  c.ack(r3, [])
  // Back to the NACKed content: still never sent.
  catalog.set(withWeb)
  const after = []
  for (;;) {
    try {
      after.push(await c.next(300))
    } catch {
      break
    }
  }
  t.notOk(
    after.some((r) => r.version_info === r2.version_info),
    'a NACKed version stays NACKed',
  )
})

// Envoy re-sends its last request, error_detail and nonce included, when its subscription
// changes. That repeat must not book a second NACK: the first one fell back to the last
// ACKed version, which a second would bar, leaving the client on the NACKed content's
// predecessor forever (here: an endpoint stuck DRAINING after it was undrained).
t.test('a repeated NACK (same nonce) books nothing: the last ACKed version can still be sent', async (t) => {
  const web = (status: 'alive' | 'draining') =>
    host('h1', [rec({ host: 'h1', id: 'w1', name: 'web', servicePort: 10001, port: 9001, status })])
  const db = host('h2', [rec({ host: 'h2', id: 'd1', name: 'db', servicePort: 10002, port: 9002 })])
  const catalog = new FixtureCatalog([web('alive'), db])
  const { server, connect } = await startServer(t, catalog)
  const c = connect()
  c.send({ type_url: TypeUrl.endpoint, node: ENVOY_NODE, resource_names: ['web:10001'] })
  const r1 = await c.next()
  c.ack(r1)
  t.ok(await c.quiet(100), 'ACK landed')

  catalog.set([web('draining'), db])
  const r2 = await c.next()
  const nack = {
    type_url: TypeUrl.endpoint,
    version_info: r1.version_info,
    response_nonce: r2.nonce,
    error_detail: { code: 13, message: 'rejected by test' },
  }
  c.send({ ...nack, resource_names: ['web:10001'] })
  t.ok(await c.quiet(200), 'the NACKed version is not re-sent')
  // The subscription grows: the same request again with the new names.
  c.send({ ...nack, resource_names: ['web:10001', 'db:10002'] })
  const r3 = await c.next()
  t.same(r3.names.sort(), ['db:10002', 'web:10001'])
  c.ack(r3)
  t.ok(await c.quiet(100), 'ACK landed')
  let eds = server.debugInfo().clients[0]!.types.find((x) => x.type === 'eds')!
  t.equal(eds.nackedVersion, r2.version_info, 'the NACK is booked against the version rejected, once')
  t.equal(eds.ackedVersion, r3.version_info)

  c.ack(r3, ['web:10001'])
  await c.quiet(200)
  catalog.set([web('alive'), db])
  const r4 = await c.next()
  t.same(r4.names, ['web:10001'])
  t.equal(r4.version_info, r1.version_info, 'the first ACKed content goes out again')
  t.equal(r4.resources[0]!.endpoints[0].lb_endpoints[0].health_status, 'HEALTHY')
  c.ack(r4)
  t.ok(await c.quiet(100), 'ACK landed')
  eds = server.debugInfo().clients[0]!.types.find((x) => x.type === 'eds')!
  t.equal(eds.nackedVersion, r2.version_info)
  t.equal(eds.upToDate, true)
})
