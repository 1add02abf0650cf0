// End to end with both real proxyless clients (grpc-js-xds and gRPC C-core, each in its own
// process) against an XdsServer fed by a fixture catalog and real gRPC echo backends on
// loopback: balancing, status changes, a duplicate address (fault 1 of issue 11) and
// failure-percentage outlier ejection among two instances (fault 3). Every scenario ends by
// checking that the client NACKed nothing, in its own log and in the server's view. A service
// protected by external authorization (issue 21) is served to them as it is to any client:
// their api listeners carry no ext_authz, whatever becomes of the authorization service.
import t, { type Test } from 'tap'
import { echoBackend as backend } from './lib/echo.js'
import { noNacks as noNacksIn, startXdsClient, within, XDS_CLIENT_KINDS, xdsClientMissing, type XdsTestClient } from './lib/xds-clients.js'
import { protect } from './lib/xds-authz.js'
import { FixtureCatalog, host, rec, startServer } from './lib/xds-fixture.js'
import type { XdsServer } from '../src/xds/server.js'

const ECHO = 'xds:///echo:10001'

/** Zero NACKs, in the client's log and in the server's view. */
const noNacks = (t: Test, client: XdsTestClient, server: XdsServer) => noNacksIn(t, client, server.debugInfo())

for (const kind of XDS_CLIENT_KINDS) {
  const skip = xdsClientMissing(kind) ?? false

  t.test(`${kind}: balances over two hosts and follows status changes`, { skip }, async (t) => {
    const pa = await backend(t, 'A')
    const pb = await backend(t, 'B')
    const pc = await backend(t, 'C')
    const a = rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: pa, mode: 'grpc' })
    const b = rec({ host: 'h2', id: 'b1', name: 'echo', servicePort: 10001, port: pb, mode: 'grpc' })
    const c = rec({ host: 'h3', id: 'c1', name: 'echo', servicePort: 10001, port: pc, mode: 'grpc' })
    const catalog = new FixtureCatalog([host('h1', [a]), host('h2', [b])])
    const { server, port } = await startServer(t, catalog)
    const client = await startXdsClient(t, kind, { nodeId: `e2e-${kind}`, xdsAddress: `127.0.0.1:${port}` })

    // The first call waits for the xDS resolution: a generous ceiling on a loaded machine.
    within(t, await client.until(ECHO, (w) => w === 'A' || w === 'B', 1, 30_000), 'the channel resolves over xDS')
    const first = await client.counts(ECHO, 100)
    t.ok((first.A ?? 0) >= 25 && (first.B ?? 0) >= 25, `both backends answer >= 25 of 100: ${JSON.stringify(first)}`)
    const dbg = server.debugInfo()
    t.equal(dbg.clients[0]?.kind, 'grpc', `node kind detected from the user agent "${dbg.clients[0]?.userAgent}"`)
    t.same(dbg.clients[0]?.types.map((x) => x.type).sort(), ['cds', 'eds', 'lds'])

    for (const status of ['unhealthy', 'draining'] as const) {
      catalog.set([host('h1', [a]), host('h2', [{ ...b, status }])])
      within(t, await client.until(ECHO, (w) => w === 'A', 20, 20_000), `${status} backend stops receiving`)
      t.same(await client.counts(ECHO, 30), { A: 30 }, `no call reaches the ${status} backend`)
      catalog.set([host('h1', [a]), host('h2', [b])])
      within(t, await client.until(ECHO, (w) => w === 'B', 1, 20_000), 'back to alive: receives again')
    }

    catalog.set([host('h1', [a])])
    within(t, await client.until(ECHO, (w) => w === 'A', 20, 20_000), 'removed backend stops receiving')
    catalog.set([host('h1', [a]), host('h3', [c])])
    within(t, await client.until(ECHO, (w) => w === 'C', 1, 20_000), 'a new backend starts receiving')
    const last = await client.counts(ECHO, 60)
    t.ok((last.C ?? 0) > 0 && (last.A ?? 0) > 0 && !last.B, `A and C share calls: ${JSON.stringify(last)}`)

    // The bare service name works for a single-ServicePort service.
    const bare = await client.call('xds:///echo', 20_000)
    t.ok(bare.ok && /^[AC]$/.test(bare.who), `xds:///echo answers: ${JSON.stringify(bare)}`)
    noNacks(t, client, server)
  })

  t.test(`${kind}: one address listed twice does not take the service down`, { skip }, async (t) => {
    const pa = await backend(t, 'A')
    const pb = await backend(t, 'B')
    // h1 and h2 both list B's address (two static files naming one external endpoint), and h1
    // lists A's twice under two ids; B's own record on h2 is draining, h1's copy alive.
    const a1 = rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: pa, mode: 'grpc' })
    const a2 = rec({ host: 'h1', id: 'a2', name: 'echo', servicePort: 10001, port: pa, mode: 'grpc' })
    const x1 = rec({ host: 'h1', id: 'x1', name: 'echo', servicePort: 10001, port: pb, mode: 'grpc' })
    const b1 = rec({ host: 'h2', id: 'b1', name: 'echo', servicePort: 10001, port: pb, mode: 'grpc', status: 'draining' })
    const catalog = new FixtureCatalog([host('h1', [a1, a2, x1]), host('h2', [b1])])
    const { server, port } = await startServer(t, catalog)
    const client = await startXdsClient(t, kind, { nodeId: `dup-${kind}`, xdsAddress: `127.0.0.1:${port}` })

    const seen = new Set<string>()
    const both = (w: string) => {
      if (w) seen.add(w)
      return seen.has('A') && seen.has('B')
    }
    within(t, await client.until(ECHO, both, 1, 30_000), 'both addresses answer')
    const spread = await client.counts(ECHO, 60)
    t.ok((spread.A ?? 0) > 0 && (spread.B ?? 0) > 0, `A and B share the calls: ${JSON.stringify(spread)}`)
    t.match(
      server.debugInfo().dropped,
      [
        { servicePort: 10001, host: 'h1', id: 'a2', reason: 'duplicate_address', keptBy: { host: 'h1', id: 'a1' } },
        { servicePort: 10001, host: 'h2', id: 'b1', reason: 'duplicate_address', keptBy: { host: 'h1', id: 'x1', status: 'alive' } },
      ],
      'the duplicates are shown, the alive copy is served',
    )
    // The alive copy goes: the draining one is all that is left at that address.
    catalog.set([host('h1', [a1, a2]), host('h2', [b1])])
    within(t, await client.until(ECHO, (w) => w === 'A', 20, 20_000), 'a draining address gets no calls')
    t.same(server.debugInfo().dropped.length, 1, 'only the duplicate of A is left out now')
    noNacks(t, client, server)
  })

  t.test(`${kind}: a service removed and added back unchanged is served again`, { skip }, async (t) => {
    const pa = await backend(t, 'A')
    const a = rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: pa, mode: 'grpc' })
    const catalog = new FixtureCatalog([host('h1', [a])])
    const { server, port } = await startServer(t, catalog, { removalGraceMs: 100 })
    const client = await startXdsClient(t, kind, { nodeId: `readd-${kind}`, xdsAddress: `127.0.0.1:${port}` })
    within(t, await client.until(ECHO, (w) => w === 'A', 1, 30_000), 'the channel resolves over xDS')
    for (let round = 1; round <= 2; round++) {
      catalog.set([])
      within(t, await client.until(ECHO, (w) => w === '', 3, 20_000), `round ${round}: the removed service stops answering`)
      catalog.set([host('h1', [a])])
      // grpc-js-xds 1.14 ignores a re-added resource equal to the one it deleted: Shoal sends a restored form.
      within(t, await client.until(ECHO, (w) => w === 'A', 5, 20_000), `round ${round}: added back, it answers again`)
    }
    noNacks(t, client, server)
  })

  t.test(
    `${kind}: a service protected by external authorization is served unchanged, whatever its authorization service does`,
    { skip },
    async (t) => {
      const pa = await backend(t, 'A')
      const pz = await backend(t, 'Z')
      const a = protect(rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: pa, mode: 'grpc' }), 'authz', {
        timeout: '250ms',
      })
      const z = rec({ host: 'h2', id: 'z1', name: 'authz', servicePort: 10191, port: pz, mode: 'grpc' })
      const catalog = new FixtureCatalog([host('h1', [a]), host('h2', [z])])
      const { server, port } = await startServer(t, catalog, { removalGraceMs: 100 })
      const client = await startXdsClient(t, kind, { nodeId: `authz-${kind}`, xdsAddress: `127.0.0.1:${port}` })
      within(t, await client.until(ECHO, (w) => w === 'A', 1, 30_000), 'the protected service answers over xDS')
      within(t, await client.until('xds:///authz', (w) => w === 'Z', 1, 30_000), 'the authorization service is a service like any other')
      t.same(server.debugInfo().authz, [], 'the request resolves')
      // The authorization service goes: Envoy's listener for echo now denies everything; the gRPC view of echo is unchanged.
      catalog.set([host('h1', [a])])
      within(t, await client.until('xds:///authz', (w) => w === '', 3, 20_000), 'the authorization service is gone')
      t.same(await client.counts(ECHO, 20), { A: 20 }, 'the protected service still answers proxyless clients')
      t.match(server.debugInfo().authz, [{ servicePort: 10001, problem: 'missing' }])
      // It comes back in the wrong proxy mode, then right.
      catalog.set([host('h1', [a]), host('h2', [{ ...z, proxyMode: 'http' }])])
      within(t, await client.until('xds:///authz', (w) => w === 'Z', 1, 20_000), 'back (proxy mode http)')
      t.match(server.debugInfo().authz, [{ servicePort: 10001, problem: 'not_grpc' }])
      catalog.set([host('h1', [a]), host('h2', [z])])
      t.same(await client.counts(ECHO, 20), { A: 20 }, 'the protected service answers throughout')
      t.same(server.debugInfo().authz, [])
      noNacks(t, client, server)
    },
  )

  t.test(`${kind}: a failing instance among two is ejected (failure percentage), the other keeps serving`, { skip }, async (t) => {
    const pa = await backend(t, 'A')
    const pf = await backend(t, 'F', { fail: true })
    const catalog = new FixtureCatalog([
      host('h1', [rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: pa, mode: 'grpc' })]),
      host('h2', [rec({ host: 'h2', id: 'f1', name: 'echo', servicePort: 10001, port: pf, mode: 'grpc' })]),
    ])
    // A 1 s outlier interval (10 s in production) keeps the test short; the rule is the same.
    const { server, port } = await startServer(t, catalog, { outlierIntervalMs: 1000 })
    const client = await startXdsClient(t, kind, { nodeId: `od-${kind}`, xdsAddress: `127.0.0.1:${port}` })
    within(t, await client.until(ECHO, (w) => w === 'A', 1, 30_000), 'the channel resolves over xDS')
    // Calls in bursts, so that each instance gets the request volume (20) within an interval
    // however slow the machine is.
    const before = await client.burst(ECHO, 60)
    t.ok((before['!INTERNAL'] ?? 0) > 0, `before ejection the failing instance gets calls: ${JSON.stringify(before)}`)
    const start = Date.now()
    let ejected: number | null = null
    while (ejected === null && Date.now() - start < 60_000) {
      const b = await client.burst(ECHO, 60)
      if (b.A === 60) ejected = Date.now() - start
    }
    within(t, ejected, 'the failing instance is ejected: a burst of 60 calls all answered by A')
    t.same(await client.counts(ECHO, 40), { A: 40 }, 'no call fails after ejection')
    noNacks(t, client, server)
  })
}
