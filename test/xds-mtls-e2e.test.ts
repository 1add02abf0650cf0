// Issue 18, acceptance 1 and 3: proxyless gRPC over mTLS configured by the agents (gRFC A29,
// A36, A41). Two agents with intermediates signed by one offline root, each with --tls-dir;
// a real XdsServer of `b` (grpc-js-xds, its own process) on agent B's host takes its Listener
// from agent B; real clients of `a` and `c` on agent A's host, each kind in turn (grpc-js-xds,
// then gRPC C-core), call xds:///b:10011 with xDS credentials:
//  - `a` reaches b over mTLS and b sees a's SPIFFE ID; a server showing b's certificate at z's
//    address is refused by the client (its Cluster expects z's SPIFFE ID);
//  - a client whose leaf chains to another root is refused by the server;
//  - with `allow: ["c"]` on b (the static file's field, the label shoal.allow), a gets
//    PERMISSION_DENIED and c gets through;
//  - no client NACKs anything, and the server NACKs nothing.
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { IdentityIssuer } from '../src/identity/index.js'
import { silentLogger } from '../src/log.js'
import { grpcBootstrap } from '../src/xds/bootstrap.js'
import { makePki } from './lib/identity.js'
import { bServices, debugXds, nacksOf, serverB, twoAgents, writeStatic } from './lib/mtls-agents.js'
import { startXdsClient, XDS_CLIENT_KINDS, xdsClientMissing, type XdsClientKind } from './lib/xds-clients.js'

const B = 'xds:///b:10011'

async function scenario(t: Test, kind: XdsClientKind): Promise<void> {
  const env = await twoAgents(t, kind === 'grpc-js' ? 'js' : 'cc')
  const { a, b, trustDomain: td } = env
  const server = await serverB(t, env)

  // 1. a calls b over mTLS; b sees a's SPIFFE ID.
  const ca = await startXdsClient(t, kind, { ...env.clientOf('a'), creds: 'xds' })
  const aId = `spiffe://${td}/svc/a`
  const ms = await ca.until(B, (w) => w === `B|${aId}`, 10, 45_000)
  t.ok(ms !== null, `a reaches b over mTLS and b sees ${aId} (${ms} ms): ${JSON.stringify(ca.calls.slice(-3))}`)
  t.match(
    (await debugXds(a)).clients.find((c) => c.nodeId === env.clientOf('a').nodeId),
    { mtls: true, service: 'a' },
    'agent A serves the client of a its mTLS resources',
  )
  t.match(
    (await debugXds(b)).clients.find((c) => c.nodeId === 'server-b'),
    { mtls: true, service: 'b' },
    'agent B serves the server of b its mTLS Listener',
  )

  // The client checks the server's SPIFFE ID: z's Cluster expects spiffe://TD/svc/z, and the
  // server at z's address shows b's certificate.
  const zCalls = []
  for (let i = 0; i < 3; i++) zCalls.push(await ca.call('xds:///z:10013', 3000))
  t.same(
    zCalls.map((r) => (r.ok ? r.who : r.code)),
    ['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE'],
    `a server whose certificate is not the target's is refused by the client: ${JSON.stringify(zCalls.at(-1))}`,
  )
  t.equal((await ca.call(B)).ok, true, 'while b answers')

  // 2. A client whose leaf chains to another root (it trusts the real root) is refused by the server.
  const other = await makePki(t, { cluster: td, nodes: ['rogue'] })
  const rogue = new IdentityIssuer({ dir: other.tlsDir('rogue'), trustDomain: td }, { logger: silentLogger() })
  t.teardown(() => rogue.stop())
  await rogue.start()
  rogue.setServices(['a'])
  await rogue.settled()
  const boot = grpcBootstrap({ ...env.clientOf('a'), nodeId: `rogue-${kind}`, tlsDir: other.tlsDir('rogue') }) as {
    certificate_providers: Record<string, { config: Record<string, string> }>
  }
  boot.certificate_providers['shoal-roots']!.config.ca_certificate_file = join(env.tlsA, 'services', 'a', 'bundle.pem')
  const cr = await startXdsClient(t, kind, { nodeId: `rogue-${kind}`, xdsAddress: '', bootstrap: boot, creds: 'xds' })
  const rogueCalls = []
  for (let i = 0; i < 5; i++) rogueCalls.push(await cr.call(B, 3000))
  t.ok(
    rogueCalls.every((r) => !r.ok),
    `every call of the client from another root fails: ${JSON.stringify(rogueCalls.map((r) => (r.ok ? r.who : r.code)))}`,
  )

  // 3. allow: ["c"] on b: a is refused with PERMISSION_DENIED, c gets through.
  writeStatic(env.staticB, bServices(env.serverPort, ['c']))
  const denied = await ca.until(B, () => isDenied(ca.calls.at(-1)?.result), 3, 45_000)
  t.ok(denied !== null, `a is refused with PERMISSION_DENIED (${denied} ms): ${JSON.stringify(ca.calls.at(-1))}`)
  const cc = await startXdsClient(t, kind, { ...env.clientOf('c'), creds: 'xds' })
  const cId = `spiffe://${td}/svc/c`
  const through = await cc.until(B, (w) => w === `B|${cId}`, 5, 45_000)
  t.ok(through !== null, `c gets through and b sees ${cId} (${through} ms): ${JSON.stringify(cc.calls.slice(-3))}`)
  t.same(await ca.counts(B, 5), { '!PERMISSION_DENIED': 5 }, 'a stays refused')

  t.same(ca.nacks, [], 'client a: no NACK')
  t.same(cr.nacks, [], 'the client from another root: no NACK')
  t.same(cc.nacks, [], 'client c: no NACK')
  t.same(await nacksOf(a), [], 'agent A: no client NACKed anything')
  t.same(await nacksOf(b), [], 'agent B: the server NACKed nothing')
  t.notOk(
    server.log.some((l) => l.includes('Sending discovery request') && /"error_detail": \{/.test(l)),
    "the server's own log shows no NACK",
  )
}

function isDenied(r: { ok: boolean; code?: string } | undefined): boolean {
  return r !== undefined && !r.ok && r.code === 'PERMISSION_DENIED'
}

for (const kind of XDS_CLIENT_KINDS) {
  const missing = xdsClientMissing(kind)
  t.test(`${kind}: mTLS between two agents' services, another root refused, the allow-list enforced`, { skip: missing ?? false }, (t) =>
    scenario(t, kind),
  )
}
