import t from 'tap'
import { envoyClusterStream, host, rec, TypeUrl } from './lib/xds-fixture.js'

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
