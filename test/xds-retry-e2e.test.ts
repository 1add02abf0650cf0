// Issue 14: retries of calls that raced with a drain, with both real proxyless clients
// (grpc-js-xds and gRPC C-core). A ServicePort whose instances say `shoal.idempotent=true`
// gets a route retry policy (gRFC A44: UNAVAILABLE, 3 attempts); any other gets none, so a
// call that reached an application is never repeated. Two instances on one host (one
// locality: round robin, so a retry lands on the other one), one of which fails every call
// UNAVAILABLE: with the label no call fails, without it about half do. Both clients accept
// the routes (zero NACKs). Outlier detection is slowed down so it does not eject the failing
// instance in the middle of the count.
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import { echoBackend } from './lib/echo.js'
import { noNacks, startXdsClient, within, XDS_CLIENT_KINDS, xdsClientMissing } from './lib/xds-clients.js'
import { FixtureCatalog, host, rec, startServer } from './lib/xds-fixture.js'

for (const kind of XDS_CLIENT_KINDS) {
  const skip = xdsClientMissing(kind) ?? false

  t.test(`${kind}: UNAVAILABLE is retried on another instance only for shoal.idempotent=true`, { skip }, async (t) => {
    const ok = await echoBackend(t, 'A')
    const failing = await echoBackend(t, 'U', { failWith: grpc.status.UNAVAILABLE })
    const idem = { 'shoal.idempotent': 'true' }
    const catalog = new FixtureCatalog([
      host('h1', [
        rec({ host: 'h1', id: 'e1', name: 'echo', servicePort: 10001, port: ok, mode: 'grpc' }),
        rec({ host: 'h1', id: 'e2', name: 'echo', servicePort: 10001, port: failing, mode: 'grpc' }),
        rec({ host: 'h1', id: 'c1', name: 'cart', servicePort: 10002, port: ok, mode: 'grpc', labels: idem }),
        rec({ host: 'h1', id: 'c2', name: 'cart', servicePort: 10002, port: failing, mode: 'grpc', labels: idem }),
      ]),
    ])
    const { server, port } = await startServer(t, catalog, { outlierIntervalMs: 600_000 })
    const client = await startXdsClient(t, kind, { nodeId: `retry-${kind}`, xdsAddress: `127.0.0.1:${port}` })

    within(t, await client.until('xds:///cart:10002', (w) => w === 'A', 1, 30_000), 'the idempotent service resolves')
    within(t, await client.until('xds:///echo:10001', (w) => w === 'A', 1, 30_000), 'the other service resolves')
    const idempotent = await client.counts('xds:///cart:10002', 40)
    t.same(idempotent, { A: 40 }, `idempotent: every call that met U was retried on A (${JSON.stringify(idempotent)})`)
    const plain = await client.counts('xds:///echo:10001', 40)
    t.ok(
      (plain['!UNAVAILABLE'] ?? 0) >= 5 && (plain.A ?? 0) >= 5,
      `not idempotent: U's calls fail, no retry repeats them (${JSON.stringify(plain)})`,
    )
    noNacks(t, client, server.debugInfo())
  })
}
