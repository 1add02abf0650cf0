import t from 'tap'
import { ENVOY_NODE, FixtureCatalog, host, rec, startServer, TypeUrl, type AdsClient, type DecodedResponse } from './lib/xds-fixture.js'

const label = (r: DecodedResponse) => r.type_url.split('.').pop()

/**
 * The `expect` responses the step must bring (each may take up to 10 s on a loaded machine),
 * then any more that follow within 300 ms, so that an extra response still shows in the
 * sequence compared. (Waiting "until 300 ms pass without one" split a step in two under load.)
 */
async function drain(c: AdsClient, expect = 0): Promise<DecodedResponse[]> {
  const out: DecodedResponse[] = []
  try {
    while (out.length < expect) out.push(await c.next(10_000))
    for (;;) out.push(await c.next(300))
  } catch {
    return out
  }
}

t.test('make before break: CDS, EDS, LDS, RDS, then removals (LDS, and CDS once the LDS removal is ACKed)', async (t) => {
  const echo = rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: 9001, mode: 'http' })
  const web = rec({ host: 'h1', id: 'w1', name: 'web', servicePort: 10002, port: 9002, mode: 'http' })
  const catalog = new FixtureCatalog([host('h1', [echo, web])])
  const { connect } = await startServer(t, catalog)
  const c = connect()
  c.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE })
  c.send({ type_url: TypeUrl.endpoint, resource_names: ['echo:10001', 'web:10002'] })
  c.send({ type_url: TypeUrl.listener })
  c.send({ type_url: TypeUrl.route, resource_names: ['echo:10001', 'web:10002'] })
  const first = await drain(c, 4)
  t.same(first.map(label).sort(), ['ClusterLoadAssignment', 'Cluster', 'Listener', 'RouteConfiguration'].sort())
  for (const r of first) c.ack(r, r.type_url === TypeUrl.cluster || r.type_url === TypeUrl.listener ? [] : ['echo:10001', 'web:10002'])
  await c.quiet(150)

  // Add api, change echo's endpoints, remove web.
  const api = rec({ host: 'h1', id: 'p1', name: 'api', servicePort: 10003, port: 9003, mode: 'http' })
  catalog.set([host('h1', [{ ...echo, ports: [{ ...echo.ports[0]!, port: 9101 }] }, api])])
  const seq = await drain(c, 4)
  // RDS: echo's route is unchanged and api's is not asked for yet; web's is not dropped by a response.
  t.same(seq.map(label), ['Cluster', 'ClusterLoadAssignment', 'Listener', 'Listener'])
  t.same(seq[0]!.names.sort(), ['api:10003', 'echo:10001', 'web:10002'], 'first CDS still holds the removed cluster')
  t.same(seq[1]!.names.sort(), ['echo:10001', 'web:10002'], 'EDS still holds the removed assignment (no response only to drop it)')
  t.same(seq[2]!.names.sort(), ['api:10003', 'echo:10001', 'web:10002'], 'first LDS still holds the removed listener')
  t.same(seq[3]!.names.sort(), ['api:10003', 'echo:10001'], 'then the listener goes')
  const last = new Map([...first, ...seq].map((r) => [r.type_url, r]))
  for (const r of seq.slice(0, 3))
    c.ack(r, r.type_url === TypeUrl.cluster || r.type_url === TypeUrl.listener ? [] : ['echo:10001', 'web:10002'])
  t.ok(await c.quiet(300), 'no Cluster removal while the Listener removal is not ACKed')
  c.ack(seq[3]!, [])
  const cdsRemoval = await c.next(5000)
  t.equal(label(cdsRemoval), 'Cluster', 'the cluster goes after the listener removal is ACKed')
  t.same(cdsRemoval.names.sort(), ['api:10003', 'echo:10001'])
  last.set(TypeUrl.cluster, cdsRemoval)
  c.ack(cdsRemoval, [])
  // Envoy drops web from its EDS and RDS subscriptions: nothing is answered (no repeated or empty response).
  c.ack(last.get(TypeUrl.endpoint)!, ['echo:10001'])
  c.ack(last.get(TypeUrl.route)!, ['echo:10001'])
  t.same(await drain(c), [], 'unsubscribing is not answered')

  // A Cluster-only change (http -> grpc adds HTTP/2 upstream options) is followed by its CLA.
  const edsBefore = last.get(TypeUrl.endpoint)!
  catalog.set([host('h1', [{ ...echo, ports: [{ ...echo.ports[0]!, port: 9101 }], proxyMode: 'grpc' }, api])])
  const seq2 = await drain(c, 2)
  t.same(seq2.map(label).slice(0, 2), ['Cluster', 'ClusterLoadAssignment'])
  t.same(
    seq2[1]!.resources,
    edsBefore.resources.filter((r) => r.cluster_name === 'echo:10001'),
    'the CLA is re-sent although it did not change',
  )
})
