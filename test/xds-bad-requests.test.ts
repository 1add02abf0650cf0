// Requests an operator should hear about once, not per request: a type Shoal does not serve
// (warned once per client and type, naming the types served; counted every time) and NACKs
// (one warning a minute per client and type; every NACK counted).
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import { Registry } from 'prom-client'
import { DEBUG_NAMES_SHOWN, MAX_NAMES_PER_TYPE, NODE_FIELD_MAX } from '../src/xds/server.js'
import { capturedLogger } from './lib/log.js'
import { waitFor } from './lib/wait.js'
import { echoCatalog, ENVOY_NODE, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

const RTDS = 'type.googleapis.com/envoy.service.runtime.v3.Runtime'

t.test('a type Shoal does not serve: one warning per client and type, every request counted', async (t) => {
  const { logger, lines } = capturedLogger('warn')
  const registry = new Registry()
  const { connect } = await startServer(t, echoCatalog(), {}, { logger, registry })
  const c = connect()
  c.send({ type_url: RTDS, node: ENVOY_NODE, resource_names: ['rt'] })
  c.send({ type_url: RTDS, resource_names: ['rt'] })
  c.send({ type_url: RTDS, resource_names: ['rt', 'rt2'] })
  t.ok(await c.quiet(300), 'not answered')
  // Quiet is what the server says, not proof that it has read all three: wait for the count
  // (a loaded machine may take longer than the 300 ms).
  const counted = (n: number) => async () => (await registry.metrics()).includes(`shoal_xds_bad_requests_total{reason="unknown_type"} ${n}`)
  await waitFor('three requests counted', counted(3))
  const warned = lines.filter((l) => l.level === 40 && String(l.msg).includes(RTDS))
  t.equal(warned.length, 1, 'warned once')
  t.match(warned[0]!.msg, /envoy-1/, 'names the client')
  t.match(warned[0]!.msg, TypeUrl.cluster, 'lists the types served')
  t.match(warned[0]!.msg, TypeUrl.secret)
  t.match(await registry.metrics(), /shoal_xds_bad_requests_total\{reason="unknown_type"\} 3/)
  // Another client asking for it is warned about too.
  const d = connect()
  d.send({ type_url: RTDS, node: { ...ENVOY_NODE, id: 'envoy-2' } })
  t.ok(await d.quiet(300))
  await waitFor("the other client's request counted", counted(4))
  t.equal(lines.filter((l) => l.level === 40 && String(l.msg).includes(RTDS)).length, 2)
})

t.test('NACKs: every one counted, one warning per client and type a minute', async (t) => {
  const { logger, lines } = capturedLogger('warn')
  const registry = new Registry()
  const catalog = echoCatalog()
  const base = catalog.snapshot().hosts
  const { connect } = await startServer(t, catalog, {}, { logger, registry })
  const c = connect()
  c.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE })
  let r = await c.next()
  const nacks = async () => /shoal_xds_nacks_total\{type="cds"\} (\d+)/.exec(await registry.metrics())?.[1]
  // Every new version is NACKed. The next version is made only once the server has counted the
  // NACK: made sooner, its push can go out before the server reads the NACK, whose nonce is then
  // stale and rightly ignored (xDS protocol, "ACK and NACK semantics": counted as stale_nonce).
  for (let i = 0; i < 3; i++) {
    c.send({ type_url: TypeUrl.cluster, response_nonce: r.nonce, error_detail: { code: 13, message: `bad ${i}` } })
    await waitFor(`NACK ${i + 1} counted`, async () => (await nacks()) === String(i + 1))
    catalog.set([...base, host(`h${i}`, [rec({ host: `h${i}`, id: `n${i}`, name: `svc${i}`, servicePort: 11000 + i, port: 9100 + i })])])
    r = await c.next()
  }
  c.send({ type_url: TypeUrl.cluster, response_nonce: r.nonce, error_detail: { code: 13, message: 'bad 3' } })
  t.ok(await c.quiet(200))
  await waitFor('four NACKs counted', async () => (await nacks()) === '4').catch(async (err: Error) => {
    throw new Error(
      `${err.message}: ${await nacks()} counted; ${(await registry.metrics())
        .split('\n')
        .filter((l) => /bad_requests_total\{/.test(l) && !/ 0$/.test(l))
        .join('; ')}`,
    )
  })
  t.equal(lines.filter((l) => l.level === 40 && /xDS NACK/.test(String(l.msg))).length, 1, 'one warning')
})

t.test('subscriptions and node fields are bounded: the stream is refused with the limit; /debug/xds shows counts', async (t) => {
  const { logger, lines } = capturedLogger('warn')
  const registry = new Registry()
  const { server, connect } = await startServer(t, echoCatalog(), {}, { logger, registry })
  const many = Array.from({ length: MAX_NAMES_PER_TYPE + 1 }, (_, i) => `svc-${i}:10001`)
  const c = connect()
  c.send({ type_url: TypeUrl.endpoint, node: ENVOY_NODE, resource_names: many })
  await t.rejects(c.next(), /no response/)
  t.equal(c.error?.code, grpc.status.RESOURCE_EXHAUSTED)
  t.match(c.error?.details, `at most ${MAX_NAMES_PER_TYPE}`)
  t.match(await registry.metrics(), /shoal_xds_bad_requests_total\{reason="too_many_names"\} 1/)
  t.equal(server.debugInfo().clients.length, 0, 'nothing kept')

  const d = connect()
  d.send({ type_url: TypeUrl.cluster, node: { ...ENVOY_NODE, id: 'x'.repeat(1 << 20) } })
  await t.rejects(d.next(), /no response/)
  t.equal(d.error?.code, grpc.status.INVALID_ARGUMENT)
  t.match(d.error?.details, `node.id of ${1 << 20} characters, at most ${NODE_FIELD_MAX}`)
  t.match(await registry.metrics(), /shoal_xds_bad_requests_total\{reason="node_field_too_long"\} 1/)
  // The service it says it is (node metadata shoal.service) goes into the same lines.
  const m = connect()
  m.send({
    type_url: TypeUrl.cluster,
    node: { ...ENVOY_NODE, metadata: { fields: { 'shoal.service': { stringValue: 'y'.repeat(1 << 20) } } } },
  })
  await t.rejects(m.next(), /no response/)
  t.equal(m.error?.code, grpc.status.INVALID_ARGUMENT)
  t.match(m.error?.details, `node metadata shoal.service of ${1 << 20} characters, at most ${NODE_FIELD_MAX}`)
  t.match(await registry.metrics(), /shoal_xds_bad_requests_total\{reason="node_field_too_long"\} 2/)
  t.ok(
    lines.every((l) => JSON.stringify(l).length < 4096),
    'no log line carries the field',
  )

  // At the limit: served; /debug/xds lists the first names and the count.
  const e = connect()
  e.send({ type_url: TypeUrl.endpoint, node: ENVOY_NODE, resource_names: many.slice(0, MAX_NAMES_PER_TYPE) })
  await e.next()
  const eds = server.debugInfo().clients[0]!.types.find((x) => x.type === 'eds')!
  t.equal(eds.nameCount, MAX_NAMES_PER_TYPE)
  t.equal(eds.names.length, DEBUG_NAMES_SHOWN)
})
