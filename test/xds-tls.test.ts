// xDS security for proxyless gRPC through a live ADS server and a raw client: which clients get
// the mTLS form (--tls-mode and the node metadata a bootstrap sets, decoded from the wire), the
// Cluster's UpstreamTlsContext, the A36 server Listener with its DownstreamTlsContext and RBAC
// filter, a Listener withheld until its service holds an identity, and bad input (server Listener
// names, allow-lists) refused, logged and counted, including a fuzz of both.
import t from 'tap'
import { Registry } from 'prom-client'
import { VirtualClock } from '../src/clock.js'
import { IdentityIssuer } from '../src/identity/index.js'
import { grpcBootstrap } from '../src/xds/bootstrap.js'
import { loadXdsProtos } from '../src/xds/protos.js'
import { mtlsCapable, nodeService, parseServerListenerName } from '../src/xds/tls.js'
import { capturedLogger } from './lib/log.js'
import { makePki } from './lib/identity.js'
import { seeded } from './lib/random.js'
import { FixtureCatalog, GRPC_NODE, host, rec, startServer, TypeUrl, type AdsClient, type DecodedResponse } from './lib/xds-fixture.js'

const TD = 'prod'

/** The node a `shoal grpc-bootstrap` document gives a process, as its client sends it (Struct values in their JSON spelling). */
function bootstrapNode(o: { service?: string; tlsDir?: string }): object {
  const b = grpcBootstrap({ nodeId: `n-${o.service ?? 'x'}`, xdsAddress: '127.0.0.1:1', ...o }) as {
    node: { id: string; metadata?: Record<string, string> }
  }
  const fields = Object.fromEntries(Object.entries(b.node.metadata ?? {}).map(([k, v]) => [k, { stringValue: v }]))
  return { ...GRPC_NODE, id: b.node.id, metadata: { fields } }
}

function catalog(labels: Record<string, string> = {}): FixtureCatalog {
  const b = { ...rec({ host: 'h1', id: 'b1', name: 'b', servicePort: 10011, port: 9011, mode: 'grpc' }), labels }
  return new FixtureCatalog([
    host('h1', [b]),
    host('h2', [rec({ host: 'h2', id: 'a1', name: 'a', servicePort: 10010, port: 9010, mode: 'grpc' })]),
  ])
}

async function listen(c: AdsClient, node: object, type: string, names: string[]): Promise<DecodedResponse> {
  c.send({ node, type_url: type, resource_names: names })
  return c.next(5000, type)
}

function tlsOf(cluster: Record<string, any> | undefined): any {
  const ts = cluster?.transport_socket
  if (!ts) return null
  const T = loadXdsProtos().typeOf(ts.typed_config.type_url)!
  return T.toObject(T.decode(ts.typed_config.value), { defaults: false, oneofs: false })
}

function hcmFilters(listener: Record<string, any>): any[] {
  const hcm = listener.filter_chains[0].filters[0].typed_config
  const T = loadXdsProtos().typeOf(hcm.type_url)!
  const o = T.toObject(T.decode(hcm.value), { defaults: false }) as any
  return o.http_filters.map((f: any) => {
    const FT = loadXdsProtos().typeOf(f.typed_config.type_url)!
    return { name: f.name, config: FT.toObject(FT.decode(f.typed_config.value), { defaults: false, enums: String }) }
  })
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name)
  const v = m && (await m.get()).values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l))
  return v?.value ?? 0
}

t.test('the node metadata of a bootstrap, decoded from the wire, says who has certificate providers', async (t) => {
  const cat = catalog()
  const { connect, server } = await startServer(t, cat, { tls: { mode: 'permissive', trustDomain: TD } })
  const withTls = connect()
  await listen(withTls, bootstrapNode({ service: 'a', tlsDir: '/etc/shoal/tls' }), TypeUrl.cluster, ['a:10010'])
  const plain = connect()
  await listen(plain, bootstrapNode({ service: 'a' }), TypeUrl.cluster, ['a:10010'])
  const debug = server.debugInfo().clients
  t.match(
    debug.find((c) => c.nodeId === 'n-a' && c.mtls),
    { service: 'a', mtls: true },
    'with --tls-dir: mTLS',
  )
  t.equal(debug.filter((c) => !c.mtls).length, 1, 'without: plain text (permissive)')
  t.equal(mtlsCapable(null), false)
  t.equal(nodeService({ metadata: { fields: { 'shoal.service': { string_value: 'x' } } } }), 'x', 'either spelling of a Struct value')
})

t.test('Clusters: the UpstreamTlsContext names the providers and the target SPIFFE ID; plain for the others', async (t) => {
  for (const mode of ['off', 'permissive', 'strict'] as const) {
    const { lines, logger } = capturedLogger('warn')
    const { connect, server } = await startServer(t, catalog(), { tls: { mode, trustDomain: TD } }, { logger })
    const capable = await listen(connect(), bootstrapNode({ service: 'a', tlsDir: '/d' }), TypeUrl.cluster, ['b:10011'])
    const other = await listen(connect(), bootstrapNode({}), TypeUrl.cluster, ['b:10011'])
    const want = {
      common_tls_context: {
        tls_certificate_provider_instance: { instance_name: 'shoal-identity' },
        validation_context: {
          ca_certificate_provider_instance: { instance_name: 'shoal-roots' },
          match_subject_alt_names: [{ exact: `spiffe://${TD}/svc/b` }],
        },
      },
    }
    t.same(tlsOf(capable.resources[0]), mode === 'off' ? null : want, `${mode}: a client with providers`)
    t.same(tlsOf(other.resources[0]), mode === 'strict' ? want : null, `${mode}: a client without`)
    t.equal(
      lines.some((l) => /strict serves it mTLS resources, which it will NACK/.test(l.msg)),
      mode === 'strict',
      `${mode}: a client without providers ${mode === 'strict' ? 'is' : 'is not'} warned about`,
    )
    t.same(server.debugInfo().invalid, [], `${mode}: every Cluster passed the PGV rules`)
  }
})

t.test('server Listeners (gRFC A36): address, mTLS, RBAC per mode and allow-list', async (t) => {
  const name = 'shoal/server/b/127.0.0.1:9011'
  const cases = [
    { mode: 'off', labels: {}, mtls: false, rbac: null },
    { mode: 'off', labels: { 'shoal.allow': 'a' }, mtls: false, rbac: null },
    { mode: 'permissive', labels: {}, mtls: true, rbac: null },
    { mode: 'permissive', labels: { 'shoal.allow': 'a, c' }, mtls: true, rbac: { exact: ['a', 'c'] } },
    { mode: 'strict', labels: {}, mtls: true, rbac: { prefix: `spiffe://${TD}/` } },
    { mode: 'strict', labels: { 'shoal.allow': 'c' }, mtls: true, rbac: { exact: ['c'] } },
    { mode: 'permissive', labels: { 'shoal.allow': '' }, mtls: true, rbac: { exact: [] } },
  ] as const
  for (const c of cases) {
    const registry = new Registry()
    const { logger, lines } = capturedLogger('warn')
    const { connect } = await startServer(
      t,
      catalog(c.labels),
      { tls: { mode: c.mode, trustDomain: TD }, localHost: 'h1' },
      { logger, registry },
    )
    const r = await listen(connect(), bootstrapNode({ service: 'b', tlsDir: '/d' }), TypeUrl.listener, [name])
    const what = `${c.mode} ${JSON.stringify(c.labels)}`
    const l = r.resources[0]!
    t.same(l.address.socket_address, { ...l.address.socket_address, address: '127.0.0.1', port_value: 9011 }, `${what}: the bound address`)
    const ts = l.filter_chains[0].transport_socket
    t.equal(ts !== null, c.mtls, `${what}: DownstreamTlsContext ${c.mtls ? 'present' : 'absent'}`)
    if (ts) {
      const T = loadXdsProtos().typeOf(ts.typed_config.type_url)!
      t.match(T.toObject(T.decode(ts.typed_config.value), { defaults: false }), {
        require_client_certificate: { value: true },
        common_tls_context: { tls_certificate_provider_instance: { instance_name: 'shoal-identity' } },
      })
    }
    const filters = hcmFilters(l)
    t.equal(filters.at(-1).name, 'envoy.filters.http.router', `${what}: the router last`)
    const rbac = filters.find((f) => f.name === 'envoy.filters.http.rbac')
    if (c.rbac === null) t.notOk(rbac, `${what}: no RBAC filter`)
    else {
      const policies = rbac.config.rules.policies ?? {}
      const principals = (Object.values(policies)[0] as any)?.principals ?? []
      const got = principals.map((p: any) => p.authenticated.principal_name)
      if ('prefix' in c.rbac) t.same(got, [{ prefix: c.rbac.prefix }], `${what}: any caller of the trust domain`)
      else
        t.same(
          got,
          c.rbac.exact.map((s) => ({ exact: `spiffe://${TD}/svc/${s}` })),
          `${what}: the allow-list, exactly`,
        )
      t.equal(rbac.config.rules.action ?? 'ALLOW', 'ALLOW')
    }
    if (c.mode === 'off' && 'shoal.allow' in c.labels) {
      t.ok(
        lines.some((x) => /is not enforced with --tls-mode off/.test(x.msg)),
        `${what}: says the list is not enforced`,
      )
      t.equal(await metric(registry, 'shoal_xds_allow_problems_total', { reason: 'not_enforced' }), 1)
    }
  }
})

t.test('a plain-text server with an allow-list refuses every call, and says why', async (t) => {
  const registry = new Registry()
  const { logger, lines } = capturedLogger('warn')
  const { connect } = await startServer(
    t,
    catalog({ 'shoal.allow': 'a' }),
    { tls: { mode: 'permissive', trustDomain: TD }, localHost: 'h1' },
    { logger, registry },
  )
  const r = await listen(connect(), bootstrapNode({ service: 'b' }), TypeUrl.listener, ['shoal/server/b/0.0.0.0:9011'])
  t.equal(r.resources[0]!.filter_chains[0].transport_socket, null, 'plain text')
  t.ok(
    hcmFilters(r.resources[0]!).some((f) => f.name === 'envoy.filters.http.rbac'),
    'the list is still applied',
  )
  t.ok(lines.some((l) => /refuses every call/.test(l.msg)))
  t.equal(await metric(registry, 'shoal_xds_allow_problems_total', { reason: 'plain_text_server' }), 1)
})

t.test('an mTLS server Listener waits for its identity and goes with it', async (t) => {
  const clock = new VirtualClock({ startWall: Date.now() })
  const pki = await makePki(t, { cluster: TD, nodes: ['h1'], now: clock.wallNow() })
  const { logger } = capturedLogger('warn')
  const issuer = new IdentityIssuer({ dir: pki.tlsDir('h1'), trustDomain: TD, removeAfterMs: 1000 }, { logger, clock })
  t.teardown(() => issuer.stop())
  await issuer.start()
  const { connect } = await startServer(
    t,
    catalog(),
    { tls: { mode: 'strict', trustDomain: TD }, localHost: 'h1', minPushIntervalMs: 0 },
    { identities: issuer },
  )
  const c = connect()
  const name = 'shoal/server/b/127.0.0.1:9011'
  const first = await listen(c, bootstrapNode({ service: 'b', tlsDir: pki.tlsDir('h1') }), TypeUrl.listener, [name])
  t.same(first.names, [], 'no identity for b yet: no Listener')
  c.ack(first, [name])
  issuer.setServices(['b'])
  await issuer.settled()
  const second = await c.next(5000, TypeUrl.listener)
  t.same(second.names, [name], 'b holds a leaf: its Listener is served')
  c.ack(second, [name])
  issuer.setServices([])
  await clock.advance(1000)
  await issuer.settled()
  const third = await c.next(5000, TypeUrl.listener)
  t.same(third.names, [], 'b left this host: its Listener is withdrawn')
})

t.test('bad server Listener names and allow-lists are refused, logged once and counted (fuzz)', async (t) => {
  const random = seeded(Number(process.env.SHOAL_FUZZ_SEED ?? 18))
  const registry = new Registry()
  const { logger, lines } = capturedLogger('warn')
  const cat = catalog({ 'shoal.allow': 'a' })
  const { connect, server } = await startServer(
    t,
    cat,
    { tls: { mode: 'strict', trustDomain: TD }, localHost: 'h1', minPushIntervalMs: 0 },
    { logger, registry },
  )
  const c = connect()
  const node = bootstrapNode({ service: 'b', tlsDir: '/d' })
  const alphabet = 'ab/:.[]9%-_ A\u00e9\u0000'
  const mutate = (s: string): string => {
    const i = Math.floor(random() * (s.length + 1))
    const op = random()
    const ch = alphabet[Math.floor(random() * alphabet.length)]!
    return op < 0.4 ? s.slice(0, i) + ch + s.slice(i) : op < 0.7 ? s.slice(0, i) + s.slice(i + 1) : s.slice(0, i) + ch + s.slice(i + 1)
  }
  // Names: 150 mutations of a good name in one request; exactly those that parse are served.
  const names = new Set<string>(['shoal/server/b/127.0.0.1:9011'])
  for (let i = 0; i < 150; i++) {
    let name = 'shoal/server/b/127.0.0.1:9011'
    for (let k = 1 + Math.floor(random() * 3); k > 0; k--) name = mutate(name)
    names.add(name)
  }
  const good = [...names].filter((n) => {
    const p = parseServerListenerName(n)
    return p !== null && typeof p !== 'string'
  })
  const badNames = [...names].filter((n) => typeof parseServerListenerName(n) === 'string').length
  const first = await listen(c, node, TypeUrl.listener, [...names])
  t.same(
    [...first.names].sort(),
    good.sort(),
    `the ${good.length} names that parse are served, none of the ${names.size - good.length} others`,
  )
  c.ack(first, [...names])

  // Allow-lists: 100 mutations of "a,c"; the RBAC principals are exactly the valid entries.
  const principalsOf = (r: DecodedResponse): string[] => {
    const rbac = hcmFilters(r.resources.find((l) => l.name === good[0])!).find((f) => f.name === 'envoy.filters.http.rbac')
    const p = (Object.values(rbac.config.rules.policies ?? {})[0] as any)?.principals ?? []
    return p.map((x: any) => x.authenticated.principal_name.exact as string)
  }
  let last = principalsOf(first)
  let served = 0
  for (let round = 0; round < 100; round++) {
    let label = 'a,c'
    for (let k = Math.floor(random() * 4); k > 0; k--) label = mutate(label)
    const want =
      label.trim() === '' ? [] : [...new Set(label.split(',').map((x) => x.trim()))].filter((x) => /^[a-z0-9._-]{1,128}$/.test(x))
    const ids = want.map((x) => `spiffe://${TD}/svc/${x}`)
    cat.set([
      host('h1', [
        { ...rec({ host: 'h1', id: 'b1', name: 'b', servicePort: 10011, port: 9011, mode: 'grpc' }), labels: { 'shoal.allow': label } },
      ]),
    ])
    if (JSON.stringify(ids) === JSON.stringify(last)) continue
    const r = await c.next(5000, TypeUrl.listener)
    c.ack(r, [...names])
    served++
    last = principalsOf(r)
    t.same(last, ids, `the valid entries of ${JSON.stringify(label)}, no more`)
  }
  t.ok(served > 10 && badNames > 10, `${served} changed Listeners served, ${badNames} bad names sent`)
  t.ok((await metric(registry, 'shoal_xds_bad_requests_total', { reason: 'server_listener_name' })) > 0, 'bad names counted')
  t.ok((await metric(registry, 'shoal_xds_allow_problems_total', { reason: 'bad_name' })) > 0, 'bad entries counted')
  t.ok(
    lines.some((l) => /server Listener not served/.test(l.msg) && l.listener !== undefined),
    'a bad name is logged with it',
  )
  t.ok(
    lines.some((l) => /is not a service name/.test(l.msg) && l.service === 'b'),
    'a bad entry is logged with its service',
  )
  t.same(server.debugInfo().invalid, [], 'nothing built was invalid')
})

t.test('grpc bootstrap: providers over the files of --tls-dir, the server template, refusals', async (t) => {
  const b = grpcBootstrap({ nodeId: 'w', xdsAddress: '127.0.0.1:7776', service: 'web', tlsDir: '/etc/shoal/tls', refreshSeconds: 5 }) as any
  t.same(b.certificate_providers, {
    'shoal-identity': {
      plugin_name: 'file_watcher',
      config: {
        certificate_file: '/etc/shoal/tls/services/web/cert.pem',
        private_key_file: '/etc/shoal/tls/services/web/key.pem',
        refresh_interval: '5s',
      },
    },
    'shoal-roots': {
      plugin_name: 'file_watcher',
      config: { ca_certificate_file: '/etc/shoal/tls/services/web/bundle.pem', refresh_interval: '5s' },
    },
  })
  t.equal(b.server_listener_resource_name_template, 'shoal/server/web/%s')
  t.same(b.node.metadata, { 'shoal.service': 'web', 'shoal.certificate_providers': 'shoal-identity,shoal-roots' })
  t.throws(() => grpcBootstrap({ nodeId: 'w', xdsAddress: '127.0.0.1:1', tlsDir: '/d' }), {
    code: 'SHOAL_ERR_CONFIG',
    message: /--tls-dir: needs --service/,
  })
  t.throws(() => grpcBootstrap({ nodeId: 'w', xdsAddress: '127.0.0.1:1', service: 'Web' }), {
    code: 'SHOAL_ERR_CONFIG',
    message: /--service: "Web"/,
  })
  t.same(parseServerListenerName('shoal/server/web/[::]:50051'), { service: 'web', host: '::', port: 50051 })
  t.match(parseServerListenerName('shoal/server/web/localhost:1'), /IP/)
  t.equal(parseServerListenerName('web:10001'), null)
})
