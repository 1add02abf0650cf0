// End to end with @grpc/grpc-js-xds as the real proxyless client (it registers globally, once
// per process: this file owns its process) against real gRPC echo backends on loopback.
import * as grpc from '@grpc/grpc-js'
import t from 'tap'
import { grpcBootstrap } from '../src/xds/bootstrap.js'
import { FixtureCatalog, host, rec, startServer } from './xds-fixture.js'
import { echoBackend as backend, call, counts, until as untilMs } from './lib/echo.js'

/** Call until `pred` holds for `window` answers in a row, within the ceiling. */
const until = async (client: grpc.Client, pred: (who: string) => boolean, window = 20, ceilingMs = 10_000) =>
  (await untilMs(client, pred, window, ceilingMs)) !== null

t.test('grpc-js-xds client balances over two hosts and follows status changes', async (t) => {
  const pa = await backend(t, 'A')
  const pb = await backend(t, 'B')
  const pc = await backend(t, 'C')
  const a = rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: pa, mode: 'grpc' })
  const b = rec({ host: 'h2', id: 'b1', name: 'echo', servicePort: 10001, port: pb, mode: 'grpc' })
  const c = rec({ host: 'h3', id: 'c1', name: 'echo', servicePort: 10001, port: pc, mode: 'grpc' })
  const catalog = new FixtureCatalog([host('h1', [a]), host('h2', [b])])
  const { server, port } = await startServer(t, catalog)

  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(grpcBootstrap({ nodeId: 'e2e-client', xdsAddress: `127.0.0.1:${port}` }))
  const xds = await import('@grpc/grpc-js-xds')
  xds.register()
  const client = new grpc.Client('xds:///echo:10001', grpc.credentials.createInsecure())
  t.teardown(() => client.close())

  // The first call waits for the xDS resolution: give it a generous ceiling on a loaded machine.
  t.ok(await until(client, (w) => w === 'A' || w === 'B', 1, 30_000), 'the channel resolves over xDS')
  const first = await counts(client, 100)
  t.ok((first.A ?? 0) >= 30 && (first.B ?? 0) >= 30, `both backends answer >= 30 of 100: ${JSON.stringify(first)}`)
  const dbg = server.debugInfo()
  t.equal(dbg.clients[0]?.kind, 'grpc', 'node kind detected from the user agent')
  t.same(dbg.clients[0]?.types.map((x) => x.type).sort(), ['cds', 'eds', 'lds'])

  for (const status of ['unhealthy', 'draining'] as const) {
    catalog.set([host('h1', [a]), host('h2', [{ ...b, status }])])
    t.ok(await until(client, (w) => w === 'A'), `${status} backend stops receiving`)
    t.same(await counts(client, 30), { A: 30 }, `no call reaches the ${status} backend`)
    catalog.set([host('h1', [a]), host('h2', [b])])
    t.ok(await until(client, (w) => w === 'B', 1), 'back to alive: receives again')
  }

  catalog.set([host('h1', [a])])
  t.ok(await until(client, (w) => w === 'A'), 'removed backend stops receiving')
  catalog.set([host('h1', [a]), host('h3', [c])])
  t.ok(await until(client, (w) => w === 'C', 1), 'a new backend starts receiving')
  const last = await counts(client, 60)
  t.ok((last.C ?? 0) > 0 && (last.A ?? 0) > 0 && !last.B, `A and C share calls: ${JSON.stringify(last)}`)

  // The bare service name works for a single-ServicePort service.
  const bare = new grpc.Client('xds:///echo', grpc.credentials.createInsecure())
  t.teardown(() => bare.close())
  t.match(await call(bare), /^[AC]$/, 'xds:///echo answers')

  const after = server.debugInfo()
  t.same(after.invalid, [], 'every resource served was valid')
  t.ok(
    after.clients.every((cl) => cl.types.every((x) => x.nackedVersion === null)),
    'the client NACKed nothing',
  )
})
