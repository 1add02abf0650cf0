import t from 'tap'
import { echoCatalog, GRPC_NODE, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

t.test('first change pushed at once, then at most one push per 100 ms, last state wins', async (t) => {
  const catalog = echoCatalog()
  const { connect } = await startServer(t, catalog, { minPushIntervalMs: 100 })
  const c = connect()
  c.send({ type_url: TypeUrl.endpoint, node: GRPC_NODE, resource_names: ['echo:10001'] })
  c.ack(await c.next())
  await c.quiet(200)
  const base = catalog.snapshot().hosts
  const changeAt = performance.now()
  // 12 changes, 10 ms apart (120 ms), each a different instance port.
  for (let i = 0; i < 12; i++) {
    catalog.set([base[0]!, host('h2', [rec({ host: 'h2', id: 'b1', name: 'echo', servicePort: 10001, port: 9100 + i })])])
    await new Promise((r) => setTimeout(r, 10))
  }
  const got = []
  for (;;) {
    try {
      const r = await c.next(400)
      got.push(r)
      c.ack(r)
    } catch {
      break
    }
  }
  t.ok(got.length >= 2 && got.length <= 3, `pushes coalesced: ${got.length} for 12 changes`)
  t.ok(got[0]!.at - changeAt < 50, `first push at once (${(got[0]!.at - changeAt).toFixed(1)} ms)`)
  // Sent >= 100 ms apart; seen here after delivery, which jitters by tens of ms on a loaded
  // machine. Uncoalesced pushes would be ~10 ms apart.
  for (let i = 1; i < got.length; i++)
    t.ok(got[i]!.at - got[i - 1]!.at >= 70, `pushes ${(got[i]!.at - got[i - 1]!.at).toFixed(1)} ms apart`)
  const ports = (got.at(-1)!.resources[0]!.endpoints as any[]).flatMap((l) =>
    l.lb_endpoints.map((e: any) => e.endpoint.address.socket_address.port_value),
  )
  t.ok(ports.includes(9111), 'the last push carries the last state')

  // A burst within one tick is one push.
  await c.quiet(200)
  for (let i = 0; i < 5; i++)
    catalog.set([base[0]!, host('h2', [rec({ host: 'h2', id: 'b1', name: 'echo', servicePort: 10001, port: 9200 + i })])])
  const one = await c.next()
  c.ack(one)
  t.ok(await c.quiet(250), 'a same-tick burst gives exactly one push')
})
