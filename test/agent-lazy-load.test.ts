// An agent loads what it uses (README "Memory"): importing the agent (dist/, as the CLI runs
// it) and starting one with no Docker discovery, no static file, no DNS and no identities
// loads neither dockerode, nor ajv (the static file's schema), nor prom-client's index (its
// cluster aggregator, Pushgateway and @opentelemetry/api: src/metrics.ts takes its classes from
// their files), nor dns-packet, nor the X.509 stack, nor a .proto parser (the xDS types come
// from src/xds/descriptors.json). Until its first xDS client connects it loads neither grpc-js
// nor the xDS types (src/xds/grpc.ts); that client is served. Run in a child process, so that
// what this test file imports does not count.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loopbackAgentFlags } from './lib/agent-process.js'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Packages an agent without those features must not load, as they appear in module paths. */
const HEAVY = [
  '/dockerode/',
  '/docker-modem/',
  '/ajv/',
  '/prom-client/index.js',
  '/@opentelemetry/',
  '/dns-packet/',
  '/@peculiar/',
  '/@grpc/proto-loader/',
  '/protobufjs/src/parse',
]

/** What an agent loads only once an xDS client has connected (src/xds/grpc.ts, lazyXdsProtos). */
const XDS_ONLY = ['/@grpc/grpc-js/', '/protobufjs/']

const script = `
import { createRequire } from 'node:module'
import { connect } from 'node:http2'
const { Agent } = await import(${JSON.stringify(root + 'dist/agent/agent.js')})
const { parseAgentConfig } = await import(${JSON.stringify(root + 'dist/agent/config.js')})
const { silentLogger } = await import(${JSON.stringify(root + 'dist/log.js')})
const cfg = parseAgentConfig(['--node', 'lazy', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0',
  '--dns', 'off', '--discovery', 'none'], {})
const agent = new Agent(cfg, { logger: silentLogger() })
await agent.start()
const cache = () => Object.keys(createRequire(import.meta.url).cache)
const idle = cache()
// An ADS stream as any gRPC client opens it (HTTP/2 POST, length-prefixed messages), on a plain
// node:http2 session so that the client loads nothing itself. Its one DiscoveryRequest has a
// node.id over the 1,024-character limit: the server ends the stream at once, INVALID_ARGUMENT (3).
const varint = (n) => { const b = []; while (n > 0x7f) { b.push((n & 0x7f) | 0x80); n >>>= 7 } b.push(n); return b }
const field = (tag, body) => Buffer.concat([Buffer.from([tag, ...varint(body.length)]), body])
const request = field(0x12, field(0x0a, Buffer.from('x'.repeat(1100))))
const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), request])
frame.writeUInt32BE(request.length, 1)
const answer = await new Promise((resolve, reject) => {
  const session = connect('http://127.0.0.1:' + agent.bound.xds)
  session.on('error', reject)
  const req = session.request({ ':method': 'POST', ':path': '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources', 'content-type': 'application/grpc', te: 'trailers' })
  req.on('response', (h) => { resolve({ status: h[':status'], grpcStatus: h['grpc-status'] }); req.close(); session.close() })
  req.on('error', reject)
  req.write(frame)
})
const served = cache()
await agent.stop()
process.stdout.write(JSON.stringify({ idle, served, answer }))
`

t.test('an agent without Docker discovery, a static file, DNS, identities or xDS clients loads none of their packages', async (t) => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 120_000 })
  t.equal(r.status, 0, `the agent started and stopped (${r.stderr.slice(0, 2000)})`)
  const { idle = [], served = [], answer } = JSON.parse(r.stdout || '{}') as { idle?: string[]; served?: string[]; answer?: object }
  t.ok(
    idle.some((p) => p.includes('/pino/')),
    'the check sees CommonJS packages the agent loads (pino)',
  )
  for (const h of [...HEAVY, ...XDS_ONLY])
    t.same(
      idle.filter((p) => p.includes(h)),
      [],
      `nothing of ${h}`,
    )
  t.same(
    answer,
    { status: 200, grpcStatus: '3' },
    'the first xDS client is answered by the gRPC server made for it (a node.id over the limit: INVALID_ARGUMENT)',
  )
  for (const h of XDS_ONLY)
    t.ok(
      served.some((p) => p.includes(h)),
      `${h} loaded for it`,
    )
})

// The static file is checked by validators generated ahead from its schema (npm run schema,
// src/registry/static-validate.cjs): an agent that reads one loads no part of ajv.
t.test('an agent with a static file loads no part of ajv, and the file is checked', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-lazy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'static.json')
  writeFileSync(file, JSON.stringify({ services: [{ name: 'web', ports: [{ port: 8080, servicePort: 10080, tpye: 'tcp' }] }] }))
  const probe = `
import { createRequire } from 'node:module'
const { Agent } = await import(${JSON.stringify(root + 'dist/agent/agent.js')})
const { parseAgentConfig } = await import(${JSON.stringify(root + 'dist/agent/config.js')})
const { silentLogger } = await import(${JSON.stringify(root + 'dist/log.js')})
const cfg = parseAgentConfig(['--node', 'lazy', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0',
  '--dns', 'off', '--discovery', 'static', '--static', ${JSON.stringify(file)}], {})
const agent = new Agent(cfg, { logger: silentLogger() })
let err = ''
await agent.start().catch((e) => { err = e.message })
const loaded = Object.keys(createRequire(import.meta.url).cache)
await agent.stop()
process.stdout.write(JSON.stringify({ loaded, err }))
`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: root, encoding: 'utf8', timeout: 120_000 })
  t.equal(r.status, 0, `the agent ran and stopped (${r.stderr.slice(0, 2000)})`)
  const { loaded = [], err = '' } = JSON.parse(r.stdout || '{}') as { loaded?: string[]; err?: string }
  t.ok(
    loaded.some((p) => p.endsWith('/static-validate.cjs')),
    'the generated validators are loaded',
  )
  t.same(
    loaded.filter((p) => p.includes('/ajv/')),
    [],
    'nothing of ajv',
  )
  t.match(
    err,
    /services\[0\]\.ports\[0\]\.tpye: unknown field; did you mean "type"/,
    'the file is checked by them (a bad file at start stops the agent)',
  )
})

// What the first xDS client loads is checked when the agent starts: an install without the xDS
// descriptors (a build that skipped scripts/copy-assets.mjs) fails at once, not when Envoy connects.
t.test('a build without the xDS descriptors fails at start, naming the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-lazy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true })
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
  rmSync(join(dir, 'dist', 'xds', 'descriptors.json'))
  const r = spawnSync(process.execPath, [join(dir, 'dist', 'cli.js'), 'agent', ...loopbackAgentFlags('broken'), '--discovery', 'none'], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  t.not(r.status, 0, 'the agent does not run')
  t.match(r.stdout + r.stderr, /descriptors\.json is missing: the build did not copy the xDS descriptors/)
})

// Every CLI command (`shoal keygen`, `shoal ca`, `shoal --help`) imports the agent's
// configuration for its flags: that file checks names with the registry's contracts (types.ts),
// not its index, which would load msgpackr, prom-client and pino before any command ran (ajv
// loads only with the first static file, which the test above checks).
t.test("the agent's configuration, which every CLI command loads, loads none of the registry's packages", async (t) => {
  const probe = `
import { createRequire } from 'node:module'
const cache = () => Object.keys(createRequire(import.meta.url).cache)
await import(${JSON.stringify(root + 'dist/agent/config.js')})
const config = cache()
await import(${JSON.stringify(root + 'dist/registry/index.js')})
process.stdout.write(JSON.stringify({ config, registry: cache() }))
`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: root, encoding: 'utf8', timeout: 120_000 })
  t.equal(r.status, 0, `imported (${r.stderr.slice(0, 2000)})`)
  const { config = [], registry = [] } = JSON.parse(r.stdout || '{}') as { config?: string[]; registry?: string[] }
  for (const h of ['/msgpackr', '/prom-client/', '/pino/']) {
    t.ok(
      registry.some((p) => p.includes(h)),
      `the check sees ${h} once the registry's index is imported`,
    )
    t.same(
      config.filter((p) => p.includes(h)),
      [],
      `the configuration alone loads nothing of ${h}`,
    )
  }
})
