// Issue 19: mTLS between Envoy sidecars through a live ADS server, its Unix socket and the real
// identity issuer (virtual time, real keys and files), with a raw Envoy-kind ADS client:
//  1. the Secrets an Envoy gets over the socket (b's leaf, a's leaf, the roots) load into Node's
//     tls module: a server with b's leaf and a client with a's complete a mutual handshake, the
//     client's SPIFFE check on b passes and one for another name fails;
//  2. the shapes: inbound Listeners (TLS with a required client certificate, RBAC, tcp_proxy to
//     a local Cluster, a plain chain under permissive only), the Cluster's transport socket match
//     and other hosts' endpoints moved to their inbound addresses;
//  3. a renewal reaches the Envoy as a new Secret version before the old leaf expires, and
//     nothing else changes;
//  4. over TCP a request for a key Secret ends the stream with PERMISSION_DENIED, is logged with
//     the peer and counted; over the socket it is served; the socket file is 0600 and goes at stop.
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Registry } from 'prom-client'
import { VirtualClock } from '../src/clock.js'
import { IdentityIssuer } from '../src/identity/index.js'
import type { ServiceRecord } from '../src/registry/types.js'
import { capturedLogger } from './lib/log.js'
import { makePki } from './lib/identity.js'
import { tlsServer } from './lib/tls-handshake.js'
import {
  AdsClient,
  catalogTurn,
  deepDecode,
  ENVOY_NODE,
  FixtureCatalog,
  host,
  rec,
  startServer,
  TypeUrl,
  type DecodedResponse,
} from './lib/xds-fixture.js'

const TD = 'prod'
const MIN = 60_000

function inbound(r: ServiceRecord, sp: number, port: number, extra: Record<string, string> = {}): ServiceRecord {
  return { ...r, labels: { ...r.labels, 'shoal.inbound': `${sp}=127.0.0.1:${port}`, ...extra } }
}

/** Host h1 (this agent) runs a and b, h2 runs another b and c; every instance publishes an inbound address. */
function catalog(bLabels: Record<string, string> = {}): FixtureCatalog {
  return new FixtureCatalog([
    host('h1', [
      inbound(rec({ host: 'h1', id: 'a1', name: 'a', servicePort: 10010, port: 9010 }), 10010, 15000),
      inbound(rec({ host: 'h1', id: 'b1', name: 'b', servicePort: 10011, port: 9011 }), 10011, 15001, bLabels),
    ]),
    host('h2', [
      {
        ...inbound(rec({ host: 'h2', id: 'b2', name: 'b', servicePort: 10011, port: 9111, ip: '127.0.0.2' }), 10011, 15100),
        tags: ['blue'],
      },
      inbound(rec({ host: 'h2', id: 'c2', name: 'c', servicePort: 10012, port: 9112, ip: '127.0.0.2' }), 10012, 15101),
    ]),
  ])
}

async function setup(t: Test, o: { mode?: 'permissive' | 'strict'; bLabels?: Record<string, string> } = {}) {
  const clock = new VirtualClock({ startWall: Date.now() })
  const pki = await makePki(t, { cluster: TD, nodes: ['h1'], now: clock.wallNow() })
  const issuer = new IdentityIssuer(
    { dir: pki.tlsDir('h1'), trustDomain: TD, leafTtlMs: 90 * MIN, node: 'h1' },
    { logger: capturedLogger('error').logger, clock },
  )
  t.teardown(() => issuer.stop())
  await issuer.start()
  issuer.setServices(['a', 'b'])
  await issuer.settled()
  const dir = mkdtempSync(join(tmpdir(), 'shoal-sds-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const socket = join(dir, 'ads.sock')
  const registry = new Registry()
  const { logger, lines } = capturedLogger('info')
  const cat = catalog(o.bLabels)
  const s = await startServer(
    t,
    cat,
    { tls: { mode: o.mode ?? 'permissive', trustDomain: TD }, localHost: 'h1', socket, minPushIntervalMs: 0 },
    { logger, registry, identities: issuer },
  )
  const viaSocket = (): AdsClient => {
    const c = new AdsClient(`unix:${socket}`)
    t.teardown(() => c.close())
    return c
  }
  return { ...s, clock, issuer, socket, registry, lines, cat, viaSocket }
}

/** What an Envoy does first: CDS and LDS for everything. */
async function envoyStart(c: AdsClient): Promise<{ cds: DecodedResponse; lds: DecodedResponse }> {
  c.send({ node: ENVOY_NODE, type_url: TypeUrl.cluster })
  const cds = await c.next(5000, TypeUrl.cluster)
  c.ack(cds, [])
  c.send({ type_url: TypeUrl.listener })
  const lds = await c.next(5000, TypeUrl.listener)
  c.ack(lds, [])
  return { cds, lds }
}

function secretsOf(r: DecodedResponse): Map<string, any> {
  return new Map(r.resources.map((x) => [x.name as string, x]))
}

t.test('1. the Secrets from the socket make a mutual TLS handshake in Node, SPIFFE checks included', async (t) => {
  const { viaSocket } = await setup(t)
  const c = viaSocket()
  await envoyStart(c)
  c.send({ type_url: TypeUrl.secret, resource_names: ['shoal/svc/b', 'shoal/svc/a', 'shoal/roots'] })
  const sds = secretsOf(await c.next(5000, TypeUrl.secret))
  t.same([...sds.keys()].sort(), ['shoal/roots', 'shoal/svc/a', 'shoal/svc/b'])
  const b = sds.get('shoal/svc/b').tls_certificate
  const a = sds.get('shoal/svc/a').tls_certificate
  const ca = sds.get('shoal/roots').validation_context.trusted_ca.inline_string as string
  const hs = await tlsServer(t, { cert: b.certificate_chain.inline_string, key: b.private_key.inline_string, ca })
  const dial = (expect: string) => hs.dial({ cert: a.certificate_chain.inline_string, key: a.private_key.inline_string, ca }, expect)
  t.equal(await dial(`spiffe://${TD}/svc/b`), 'ok', "the client's check of b's SPIFFE ID passes and the handshake completes")
  t.equal(hs.peers[0], `URI:spiffe://${TD}/svc/a`, "the server sees a's SPIFFE ID")
  t.match(await dial(`spiffe://${TD}/svc/x`), /not spiffe:\/\/prod\/svc\/x/, 'a check for another name fails')
  t.equal(new X509Certificate(b.certificate_chain.inline_string).subjectAltName, `URI:spiffe://${TD}/svc/b`)
})

t.test('2. inbound Listeners, local Clusters, transport socket matches and inbound endpoints; every Secret named is served', async (t) => {
  for (const mode of ['permissive', 'strict'] as const) {
    const { viaSocket, server } = await setup(t, { mode, bAllow: undefined } as never)
    const c = viaSocket()
    const { cds, lds } = await envoyStart(c)
    const listeners = new Map(lds.resources.map((l) => [l.name as string, deepDecode(l) as any]))
    const clusters = new Map(cds.resources.map((x) => [x.name as string, deepDecode(x) as any]))
    const inb = listeners.get('shoal/inbound/b1:10011')
    t.ok(inb, `${mode}: b's instance on this host has an inbound Listener`)
    t.match(inb.address.socket_address, { address: '127.0.0.1', port_value: 15001 })
    t.equal(
      inb.filter_chains.length,
      mode === 'strict' ? 1 : 2,
      `${mode}: ${mode === 'strict' ? 'the TLS chain only' : 'a plain chain beside the TLS one'}`,
    )
    const tlsChain = inb.filter_chains[0]
    t.match(tlsChain.transport_socket.typed_config, {
      require_client_certificate: { value: true },
      common_tls_context: {
        tls_certificate_sds_secret_configs: [{ name: 'shoal/svc/b' }],
        validation_context_sds_secret_config: { name: 'shoal/roots' },
      },
    })
    t.equal(tlsChain.filters.at(-1).typed_config.cluster, 'shoal/local/b1:10011', 'tcp_proxy to the local Cluster')
    t.match(clusters.get('shoal/local/b1:10011')?.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, {
      address: '127.0.0.1',
      port_value: 9011,
    })
    const rbac = tlsChain.filters.find((f: any) => f.name === 'envoy.filters.network.rbac')
    if (mode === 'strict')
      t.same(Object.values(rbac.typed_config.rules.policies as object)[0].principals[0].authenticated.principal_name, {
        prefix: `spiffe://${TD}/`,
      })
    else t.notOk(rbac, 'permissive without a list: no RBAC (TLS needs a certificate of the roots)')
    t.notOk(listeners.has('shoal/inbound/b2:10011'), "another host's instance has none here")
    const bc = clusters.get('b:10011')
    t.match(bc.transport_socket_matches[0], {
      name: 'shoal-mtls',
      match: { fields: { 'shoal.mtls': { boolValue: true } } },
      transport_socket: {
        typed_config: {
          common_tls_context: {
            tls_certificate_sds_secret_configs: [{ name: 'shoal/node/h1' }],
            combined_validation_context: {
              default_validation_context: {
                match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: `spiffe://${TD}/svc/b` } }],
              },
              validation_context_sds_secret_config: { name: 'shoal/roots' },
            },
          },
        },
      },
    })
    c.send({ type_url: TypeUrl.endpoint, resource_names: ['b:10011'] })
    const cla = deepDecode((await c.next(5000, TypeUrl.endpoint)).resources[0]) as any
    const eps = cla.endpoints.flatMap((l: any) =>
      l.lb_endpoints.map((e: any) => [
        e.endpoint.address.socket_address.port_value,
        e.metadata?.filter_metadata?.['envoy.transport_socket_match']?.fields?.['shoal.mtls']?.boolValue,
      ]),
    )
    t.same(
      eps.sort(),
      [
        [15100, true],
        [9011, undefined],
      ].sort(),
      `${mode}: h2's b through its inbound port over mTLS, this host's b directly`,
    )

    const moved = cla.endpoints.flatMap((l: any) => l.lb_endpoints).find((e: any) => e.endpoint.address.socket_address.port_value === 15100)
    t.ok(moved?.metadata?.filter_metadata?.shoal, `${mode}: the moved endpoint keeps its tags metadata beside the match`)
    // Every Secret a Listener or Cluster names is served.
    const named = new Set<string>()
    const collect = (v: unknown, key = ''): void => {
      if (Array.isArray(v)) v.forEach((x) => collect(x, key))
      else if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>
        if ((key === 'tls_certificate_sds_secret_configs' || key === 'validation_context_sds_secret_config') && typeof o.name === 'string')
          named.add(o.name)
        for (const [k, x] of Object.entries(o)) collect(x, k)
      }
    }
    collect([...listeners.values(), ...clusters.values()])
    c.send({ type_url: TypeUrl.secret, resource_names: [...named] })
    const sds = await c.next(5000, TypeUrl.secret)
    t.same(sds.names.sort(), [...named].sort(), `${mode}: the ${named.size} Secrets named are all served: ${[...named].join(', ')}`)
    t.same(server.debugInfo().invalid, [], `${mode}: everything built passed the PGV rules`)
  }
})

t.test('an allow-list on an inbound Listener names the Envoys of the hosts that run an allowed service', async (t) => {
  const { viaSocket } = await setup(t, { bLabels: { 'shoal.allow': 'c, bad name' } })
  const { lds } = await envoyStart(viaSocket())
  const inb = deepDecode(lds.resources.find((l) => l.name === 'shoal/inbound/b1:10011')) as any
  for (const chain of inb.filter_chains) {
    const rbac = chain.filters.find((f: any) => f.name === 'envoy.filters.network.rbac')
    t.same(
      Object.values(rbac.typed_config.rules.policies as object)[0].principals.map((p: any) => p.authenticated.principal_name),
      [{ exact: `spiffe://${TD}/node/h2` }],
      'c runs on h2: only its Envoy (the plain chain applies the list too, so it refuses plain text)',
    )
  }
})

t.test('3. a renewal is a new Secret version, before the old leaf expires; Listeners and Clusters stay', async (t) => {
  const { viaSocket, clock, issuer } = await setup(t)
  const c = viaSocket()
  await envoyStart(c)
  c.send({ type_url: TypeUrl.secret, resource_names: ['shoal/svc/b', 'shoal/roots', 'shoal/node/h1'] })
  const first = await c.next(5000, TypeUrl.secret)
  c.ack(first)
  const old = issuer.identity('b')!
  await clock.advance(old.renewAt! - clock.wallNow() + 1)
  await issuer.settled()
  const renewed = issuer.identity('b')!.certChainPem
  t.not(renewed, old.certChainPem, 'b was renewed')
  // a, b and the node's leaf renew one by one: each may be a Secret push of its own.
  let next: DecodedResponse
  for (;;) {
    next = await c.next(5000, TypeUrl.secret)
    c.ack(next)
    if (secretsOf(next).get('shoal/svc/b').tls_certificate.certificate_chain.inline_string === renewed) break
  }
  t.pass("a Secret response holds b's new leaf")
  t.not(next.version_info, first.version_info, 'a new Secret version')
  t.ok(
    clock.wallNow() < old.notAfter,
    `it arrived ${((old.notAfter - clock.wallNow()) / MIN).toFixed(0)} minutes before the old leaf expires`,
  )
  await new Promise((r) => setTimeout(r, 300))
  t.same(
    c
      .pending()
      .filter((r) => r.type_url !== TypeUrl.secret)
      .map((r) => r.type_url),
    [],
    'no Listener, Cluster or assignment response: they name the Secret, which is all that changed',
  )
})

t.test('4. over TCP a key Secret is refused, logged with the peer and counted; over the socket it is served', async (t) => {
  const { connect, viaSocket, registry, lines, socket, server } = await setup(t)
  t.equal(statSync(socket).mode & 0o777, 0o600, 'the socket file is 0600')
  t.equal(statSync(socket).uid, process.getuid!(), "owned by the agent's user")
  const tcp = connect()
  const { cds } = await envoyStart(tcp)
  t.notOk(
    cds.resources.some((x) => deepDecode(x) && (x as any).transport_socket_matches?.length),
    'an Envoy over TCP gets plain-text Clusters (permissive)',
  )
  tcp.send({ type_url: TypeUrl.secret, resource_names: ['shoal/svc/b'] })
  await tcp.next(3000).catch(() => undefined)
  t.equal(tcp.error?.code, 7, 'the stream ends with PERMISSION_DENIED')
  t.match(tcp.error?.details, /served only over the agent's Unix socket/)
  t.ok(
    lines.some(
      (l) => l.level === 40 && /asked over TCP for a Secret that holds a private key/.test(l.msg) && /127\.0\.0\.1/.test(String(l.peer)),
    ),
    'a warning names the peer',
  )
  const refused = async () => (await registry.getSingleMetric('shoal_xds_key_requests_refused_total')!.get()).values[0]?.value
  t.equal(await refused(), 1, 'and counts it')
  // Envoy retries at once: each refusal is counted, the warning comes once a minute.
  const again = connect()
  again.send({ node: ENVOY_NODE, type_url: TypeUrl.secret, resource_names: ['shoal/node/h1'] })
  await again.next(3000).catch(() => undefined)
  t.equal(again.error?.code, 7, 'the retry is refused too')
  t.equal(await refused(), 2, 'and counted')
  t.equal(lines.filter((l) => /asked over TCP for a Secret/.test(l.msg)).length, 1, 'not logged again within the minute')
  const unix = viaSocket()
  await envoyStart(unix)
  unix.send({ type_url: TypeUrl.secret, resource_names: ['shoal/svc/b'] })
  t.same((await unix.next(5000, TypeUrl.secret)).names, ['shoal/svc/b'], 'over the socket it is served')
  await server.stop()
  t.notOk(existsSync(socket), 'the socket file is gone after stop')
})

t.test(
  "a peer's shoal.inbound that does not read: logged once with the record and value, counted, the instance reached in plain text",
  async (t) => {
    const { viaSocket, lines, registry, cat } = await setup(t)
    const hosts = cat.snapshot().hosts
    const bad = { ...rec({ host: 'h3', id: 'b3', name: 'b', servicePort: 10011, port: 9311, ip: '127.0.0.3' }) }
    bad.labels = { 'shoal.inbound': '10011=not-an-ip:15200' }
    cat.set([...hosts, host('h3', [bad])])
    await catalogTurn()
    cat.set([...hosts, host('h3', [bad])]) // the same record again: no second report
    await catalogTurn()
    const warns = lines.filter((l) => /does not read/.test(l.msg))
    t.equal(warns.length, 1, 'one warning')
    t.match(warns[0], { host: 'h3', id: 'b3', value: '10011=not-an-ip:15200', bad: ['10011=not-an-ip:15200'] })
    t.match(warns[0]!.msg, /reached in plain text/)
    t.equal((await registry.getSingleMetric('shoal_xds_bad_inbound_labels_total')!.get()).values[0]?.value, 1, 'counted')
    const c = viaSocket()
    await envoyStart(c)
    c.send({ type_url: TypeUrl.endpoint, resource_names: ['b:10011'] })
    const cla = (await c.next(5000, TypeUrl.endpoint)).resources[0] as any
    const at = cla.endpoints.flatMap((l: any) => l.lb_endpoints).find((e: any) => e.endpoint.address.socket_address.address === '127.0.0.3')
    t.equal(at?.endpoint.address.socket_address.port_value, 9311, "h3's b is reached at its own address (permissive)")
    t.notOk(at?.metadata, 'in plain text')
  },
)

t.test('over TCP a wildcard Secret request (`*`) is refused as well: it asks for every key', async (t) => {
  for (const mode of ['permissive', 'strict'] as const) {
    const { connect } = await setup(t, { mode })
    const tcp = connect()
    await envoyStart(tcp)
    tcp.send({ type_url: TypeUrl.secret, resource_names: ['*'] })
    const got = await tcp.next(3000, TypeUrl.secret).catch(() => null)
    t.notOk(
      got?.resources.some((x: any) => x.tls_certificate?.private_key),
      `${mode}: no key sent over TCP (got ${got ? got.names.join(', ') || 'an empty response' : 'nothing'})`,
    )
    t.equal(tcp.error?.code, 7, `${mode}: the stream ends with PERMISSION_DENIED`)
  }
})
