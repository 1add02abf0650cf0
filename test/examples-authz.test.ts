// The example authorization server (examples/authz/server.mjs) as a user runs it: its own
// process, called by a real gRPC client (grpc-js with a stub generated from Envoy's
// external_auth.proto) with allowed and denied requests, by header and by SPIFFE ID; then run
// as a service in the registry: an agent (the built CLI) lists it from a static file, serves
// the protected service's Envoy listener with ext_authz calling its Cluster, and a proxyless
// grpc-js-xds client reaches its Check through xDS (xds:///authz).
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import t, { type Test } from 'tap'
import { parseStaticServices } from '../src/registry/static.js'
import { grpcBootstrap } from '../src/xds/bootstrap.js'
import { GroupIndex } from '../src/xds/groups.js'
import { AgentChild } from './lib/agent-child.js'
import { ensureBuilt, REPO_ROOT } from './lib/cli.js'
import { extAuthzCluster, listenerFilters } from './lib/xds-authz.js'
import { AdsClient, ENVOY_NODE, TypeUrl } from './lib/xds-fixture.js'

const SERVER = join(REPO_ROOT, 'examples', 'authz', 'server.mjs')
const dir = mkdtempSync(join(tmpdir(), 'shoal-authz-example-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const require = createRequire(import.meta.url)
const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps')
const definition = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d)),
})
const Authorization = (grpc.loadPackageDefinition(definition) as any).envoy.service.auth.v3.Authorization as grpc.ServiceClientConstructor

/** Start the example server on a port the kernel picks; stopped (SIGTERM) at teardown. Resolves to its port and its stdout lines. */
async function startExample(t: Test, args: string[]): Promise<{ port: number; lines: string[] }> {
  const child = spawn(process.execPath, [SERVER, '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>((res) => child.once('exit', () => res()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  })
  const lines: string[] = []
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      lines.push(l)
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(l)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', (code) => reject(new Error(`example server exited ${code}: ${stderr}`)))
  })
  return { port, lines }
}

type CheckResult = { status: { code: number; message: string }; denied_response?: { status?: { code: string } }; ok_response?: object }

function check(client: grpc.Client, attributes: object): Promise<CheckResult> {
  return new Promise((resolve, reject) =>
    (client as any).Check({ attributes }, { deadline: Date.now() + 10_000 }, (err: Error | null, res: CheckResult) =>
      err ? reject(err) : resolve(res),
    ),
  )
}

const OK = grpc.status.OK
const PERMISSION_DENIED = grpc.status.PERMISSION_DENIED
const httpRequest = (headers: Record<string, string>) => ({ request: { http: { method: 'GET', host: 'web', path: '/', headers } } })

t.test('Check allows by header or SPIFFE ID and denies the rest (a real grpc-js client)', async (t) => {
  const { port, lines } = await startExample(t, ['--allow-header', 'X-Team=payments', '--allow-spiffe', 'spiffe://test/svc/web'])
  t.match(lines[0], /allows header x-team=payments, SPIFFE ID spiffe:\/\/test\/svc\/web$/, 'the start line says each rule in full')
  const client = new Authorization(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  t.teardown(() => client.close())
  const cases: Array<[string, object, number]> = [
    ['the allowed header', httpRequest({ 'x-team': 'payments' }), OK],
    ['the header with another value', httpRequest({ 'x-team': 'marketing' }), PERMISSION_DENIED],
    ['no header', httpRequest({}), PERMISSION_DENIED],
    ['the allowed SPIFFE ID', { source: { principal: 'spiffe://test/svc/web' }, ...httpRequest({}) }, OK],
    ['another SPIFFE ID', { source: { principal: 'spiffe://test/svc/api' }, ...httpRequest({}) }, PERMISSION_DENIED],
    ['the allowed SPIFFE ID on a TCP connection (no HTTP request)', { source: { principal: 'spiffe://test/svc/web' } }, OK],
    ['an empty request', {}, PERMISSION_DENIED],
  ]
  for (const [what, attributes, code] of cases) {
    const res = await check(client, attributes)
    t.equal(res.status.code, code, `${what}: ${code === OK ? 'OK' : 'PERMISSION_DENIED'}`)
    if (code === OK) t.ok(res.ok_response, 'an OK response for HTTP')
    else t.equal(res.denied_response?.status?.code, 'Forbidden', 'a 403 for HTTP')
  }
  // The decision lines come over a pipe, possibly after the answers.
  const seen = async (re: RegExp) => {
    for (let waited = 0; waited < 10_000 && !lines.some((l) => re.test(l)); waited += 50) await new Promise((r) => setTimeout(r, 50))
    return lines.some((l) => re.test(l))
  }
  t.ok(await seen(/^deny connection from \?: no allowed header or SPIFFE ID$/), 'each decision is one line')
  t.ok(await seen(/^allow GET web\/ from \?: header x-team$/), 'an allowed request names its rule')
  t.ok(
    await seen(/^deny GET web\/ from \?: SPIFFE ID spiffe:\/\/test\/svc\/api is not allowed and no allowed header$/),
    'a denied one says why',
  )
})

t.test('bad flags stop the example with exit 2 and a line naming the flag', async (t) => {
  for (const [args, says] of [
    [[], /nothing would ever be allowed/],
    [['--allow-spiffe', 'web'], /--allow-spiffe: "web" is not a SPIFFE ID/],
    [['--allow-header', 'x-team'], /--allow-header: "x-team" is not NAME=VALUE/],
    [['--allow-header', 'a=b', '--listen', 'nowhere'], /--listen: "nowhere" is not HOST:PORT/],
    [['--allow-header', 'a=b', '--bogus'], /Unknown option '--bogus'/],
  ] as const) {
    const r = spawnSync(process.execPath, [SERVER, ...args], { encoding: 'utf8', timeout: 30_000 })
    t.equal(r.status, 2, `${args.join(' ') || '(no flags)'}: exit 2`)
    t.match(r.stderr.split('\n')[0], says)
  }
})

t.test('run as a service in the registry: the protected listener calls it, and xds:///authz reaches it', async (t) => {
  const built = ensureBuilt()
  if (built) throw new Error(built)
  const { port } = await startExample(t, ['--allow-header', 'x-team=payments'])
  const staticFile = join(dir, 'static.json')
  writeFileSync(
    staticFile,
    JSON.stringify({
      services: [
        {
          name: 'authz',
          ports: [{ port, servicePort: 10191, ip: '127.0.0.1' }],
          proxyMode: 'grpc',
          check: { type: 'Tcp', args: `{{ host }}:${port}`, intervalMs: 200, rise: 1 },
        },
        { name: 'web', ports: [{ port: 1, servicePort: 10080, ip: '127.0.0.1' }], authz: { service: 'authz', timeout: '250ms' } },
      ],
    }),
  )
  const agent = await AgentChild.start(t, { node: 'authz-example', staticFile, logFile: join(dir, 'agent.log') })

  // Envoy's view: the Cluster of the authorization service (HTTP/2), and web's listener calling it.
  const ads = new AdsClient(agent.ports.xds)
  t.teardown(() => ads.close())
  ads.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE })
  const cds = await ads.next(30_000, TypeUrl.cluster)
  t.same(cds.names.sort(), ['authz:10191', 'web:10080'])
  ads.ack(cds, [])
  ads.send({ type_url: TypeUrl.listener })
  const lds = await ads.next(30_000, TypeUrl.listener)
  const filters = listenerFilters(lds.resources.find((l) => l.name === 'web:10080')!)
  t.equal(extAuthzCluster(filters), 'authz:10191', "web's listener calls the example through its Cluster")
  t.match(filters[0]!.config.grpc_service.timeout, { seconds: '0', nanos: 250_000_000 })

  // A proxyless gRPC client finds the example in the registry by name and calls Check.
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(grpcBootstrap({ nodeId: 'authz-example-client', xdsAddress: agent.xdsAddress }))
  const xds = await import('@grpc/grpc-js-xds')
  xds.register()
  const viaXds = new Authorization('xds:///authz', grpc.credentials.createInsecure())
  t.teardown(() => viaXds.close())
  let allowed: CheckResult | null = null
  const deadline = Date.now() + 30_000
  while (!allowed && Date.now() < deadline) {
    allowed = await check(viaXds, httpRequest({ 'x-team': 'payments' })).catch(() => null)
    if (!allowed) await new Promise((r) => setTimeout(r, 200))
  }
  t.equal(allowed?.status.code, OK, 'allowed through xds:///authz')
  t.equal((await check(viaXds, httpRequest({ 'x-team': 'other' }))).status.code, PERMISSION_DENIED, 'denied through xds:///authz')
})

t.test('examples/authz/static.json: the example server as a service, and a service it protects', async (t) => {
  const file = join(REPO_ROOT, 'examples', 'authz', 'static.json')
  const specs = parseStaticServices(readFileSync(file, 'utf8'), file, '127.0.0.1')
  const records = specs.map((s) => ({ ...s, host: 'h1', bootId: 'b', status: 'alive' as const, version: [1, 0] as const, updated: 0 }))
  const index = new GroupIndex()
  index.update({ cluster: 'c', seq: 1, hosts: [{ name: 'h1', address: '127.0.0.1:7946', state: 'alive', bootId: 'b', services: records }] })
  const authz = [...index.groups.values()].filter((g) => g.authz)
  t.same(
    authz.map((g) => [g.name, g.authz!.upstream]),
    [['shoal-debug', { name: 'authz', servicePort: 10191 }]],
    'the protected service resolves to the example server',
  )
  t.same(index.authzIssues, [])
})
