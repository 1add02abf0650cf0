// Issue 19 through two real agents (in-process, real gossip on loopback, real identity issuers
// and files, one offline root, an intermediate each): every agent runs with --tls-dir,
// --xds-socket and --inbound-ports, and an Envoy-kind ADS client stands in for each host's
// Envoy on the agent's Unix socket.
//  - agent B publishes where its Envoy takes mTLS for b (the record label shoal.inbound, a port
//    of its --inbound-ports); agent A's Envoy gets b's endpoint at that address with the
//    transport socket match, and b's Cluster verifies spiffe://TD/svc/b;
//  - the Secrets each Envoy gets from its own agent make the cross-host handshake in Node's
//    tls module: B's inbound side shows b's leaf (B's intermediate) and requires a client
//    certificate; A's outbound side shows A's node leaf (A's intermediate) and checks b's SAN;
//  - over A's TCP port the node's key Secret is refused.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { freePort } from './lib/agent-child.js'
import { makePki } from './lib/identity.js'
import { until } from './lib/mtls-agents.js'
import { tlsServer } from './lib/tls-handshake.js'
import { AdsClient, deepDecode, ENVOY_NODE, TypeUrl, type DecodedResponse } from './lib/xds-fixture.js'

const TD = 'sds-e2e'

async function agent(t: Test, dir: string, pkiDir: string, node: string, service: string, servicePort: number, seed?: string) {
  const file = join(dir, `${node}.json`)
  const services = [
    { id: `${service}-1`, name: service, ports: [{ port: await freePort(), servicePort, ip: '127.0.0.1' }], proxyMode: 'tcp' },
  ]
  writeFileSync(file, JSON.stringify({ services }))
  const inbound = await freePort()
  const socket = join(dir, `${node}.sock`)
  const flags = [
    ...['--node', node, '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', 'off'],
    ...['--profile', 'local', '--cluster', TD, '--discovery', 'static', '--static', file],
    ...['--tls-dir', pkiDir, '--xds-socket', socket, '--inbound-ports', `${inbound}-${inbound}`],
    ...(seed ? ['--join', seed] : []),
  ]
  const a = new Agent(parseAgentConfig(flags, {}), { logger: silentLogger() })
  t.teardown(() => a.stop({ leave: false }))
  await a.start()
  return { agent: a, socket, inbound }
}

function envoyOn(t: Test, target: string | number): AdsClient {
  const c = new AdsClient(typeof target === 'string' ? `unix:${target}` : target)
  t.teardown(() => c.close())
  return c
}

/** Ask for `names` of `type` and read responses (ACKing each) until `ok` holds for one. */
async function watchFor(
  c: AdsClient,
  type: string,
  names: string[] | undefined,
  ok: (r: DecodedResponse) => boolean,
): Promise<DecodedResponse> {
  c.send({ node: ENVOY_NODE, type_url: type, ...(names ? { resource_names: names } : {}) })
  for (;;) {
    const r = await c.next(30_000, type).catch((err: Error) => {
      throw new Error(
        `${err.message} (closed ${c.closed}, ${c.error?.message ?? ''}; pending ${c.pending().map((x) => x.type_url + ' ' + x.names.join(' '))})`,
      )
    })
    c.ack(r, names ?? []) // [] keeps a wildcard subscription
    if (ok(r)) return r
  }
}

t.test("two agents: b reached over mTLS at B's inbound address, with Secrets that complete the handshake", async (t) => {
  const pki = await makePki(t, { cluster: TD, nodes: ['na', 'nb'] })
  const dir = pki.base // removed at teardown with the PKI
  const A = await agent(t, dir, pki.tlsDir('na'), 'na', 'a', 10010)
  const B = await agent(t, dir, pki.tlsDir('nb'), 'nb', 'b', 10011, `127.0.0.1:${A.agent.bound.gossip}`)

  // A's Envoy: b's Cluster carries the match, b's assignment points at B's inbound port.
  const envoyA = envoyOn(t, A.socket)
  const cds = await watchFor(envoyA, TypeUrl.cluster, undefined, (r) => r.names.includes('b:10011'))
  const bc = deepDecode(cds.resources.find((x) => x.name === 'b:10011')) as any
  t.match(bc.transport_socket_matches?.[0]?.transport_socket?.typed_config?.common_tls_context, {
    tls_certificate_sds_secret_configs: [{ name: 'shoal/node/na' }],
    combined_validation_context: {
      default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: `spiffe://${TD}/svc/b` } }] },
      validation_context_sds_secret_config: { name: 'shoal/roots' },
    },
  })
  const eds = await watchFor(envoyA, TypeUrl.endpoint, ['b:10011'], (r) => r.resources.length > 0)
  const eps = (eds.resources[0] as any).endpoints.flatMap((l: any) => l.lb_endpoints)
  t.same(
    eps.map((e: any) => [
      e.endpoint.address.socket_address.port_value,
      e.metadata?.filter_metadata?.['envoy.transport_socket_match']?.fields?.['shoal.mtls']?.boolValue,
    ]),
    [[B.inbound, true]],
    "b's only endpoint is B's inbound port, selected for mTLS",
  )

  // B's Envoy: the inbound Listener on that port, terminating TLS with b's Secret.
  const envoyB = envoyOn(t, B.socket)
  await watchFor(envoyB, TypeUrl.cluster, undefined, (r) => r.names.includes('shoal/local/b-1:10011'))
  const lds = await watchFor(envoyB, TypeUrl.listener, undefined, (r) => r.names.includes('shoal/inbound/b-1:10011'))
  const inb = deepDecode(lds.resources.find((x) => x.name === 'shoal/inbound/b-1:10011')) as any
  t.equal(inb.address.socket_address.port_value, B.inbound, "B's inbound Listener binds the published port")

  // The Secrets each agent gives its own Envoy complete the cross-host handshake.
  const secrets = async (c: AdsClient, names: string[]) => {
    const r = await watchFor(c, TypeUrl.secret, names, (x) => x.resources.length === names.length)
    return new Map(r.resources.map((x) => [x.name as string, x as any]))
  }
  const sb = await secrets(envoyB, ['shoal/svc/b', 'shoal/roots'])
  const sa = await secrets(envoyA, ['shoal/node/na', 'shoal/roots'])
  const pem = (s: any) => ({ cert: s.tls_certificate.certificate_chain.inline_string, key: s.tls_certificate.private_key.inline_string })
  const hs = await tlsServer(t, { ...pem(sb.get('shoal/svc/b')), ca: sb.get('shoal/roots').validation_context.trusted_ca.inline_string })
  const client = { ...pem(sa.get('shoal/node/na')), ca: sa.get('shoal/roots').validation_context.trusted_ca.inline_string }
  t.equal(
    await hs.dial(client, `spiffe://${TD}/svc/b`),
    'ok',
    "A's node leaf and b's leaf, of two intermediates, complete a mutual handshake",
  )
  t.same(hs.peers, [`URI:spiffe://${TD}/node/na`], "B's side sees A's node identity (what its RBAC filter matches)")
  t.match(await hs.dial(client, `spiffe://${TD}/svc/a`), /not spiffe:\/\/sds-e2e\/svc\/a/, 'a SAN check for another service fails')

  // Over A's TCP port, the same Secret is refused.
  const tcp = envoyOn(t, A.agent.bound.xds)
  tcp.send({ node: ENVOY_NODE, type_url: TypeUrl.secret, resource_names: ['shoal/node/na'] })
  await until('the TCP stream ends', () => tcp.closed, 10_000)
  t.equal(tcp.error?.code, 7, 'PERMISSION_DENIED over TCP')
})
