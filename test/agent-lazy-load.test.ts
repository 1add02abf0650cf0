// An agent loads what it uses (README "Memory"): importing the agent (dist/, as the CLI runs
// it) and starting one with no Docker discovery, no static file, no DNS and no identities
// loads neither dockerode, nor ajv (the static file's schema), nor prom-client's index (its
// cluster aggregator, Pushgateway and @opentelemetry/api: src/metrics.ts takes its classes from
// their files), nor dns-packet, nor the X.509 stack, nor a .proto parser (the xDS types come
// from src/xds/descriptors.json). Run in a child process, so that what this test file imports does
// not count.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

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

const script = `
import { createRequire } from 'node:module'
const { Agent } = await import(${JSON.stringify(root + 'dist/agent/agent.js')})
const { parseAgentConfig } = await import(${JSON.stringify(root + 'dist/agent/config.js')})
const { silentLogger } = await import(${JSON.stringify(root + 'dist/log.js')})
const cfg = parseAgentConfig(['--node', 'lazy', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0',
  '--dns', 'off', '--discovery', 'none'], {})
const agent = new Agent(cfg, { logger: silentLogger() })
await agent.start()
const loaded = Object.keys(createRequire(import.meta.url).cache)
await agent.stop()
process.stdout.write(JSON.stringify(loaded))
`

t.test('an agent without Docker discovery, a static file, DNS or identities loads none of their packages', async (t) => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 120_000 })
  t.equal(r.status, 0, `the agent started and stopped (${r.stderr.slice(0, 2000)})`)
  const loaded = JSON.parse(r.stdout || '[]') as string[]
  t.ok(
    loaded.some((p) => p.includes('/@grpc/grpc-js/')),
    'the check sees CommonJS packages the agent loads (grpc-js)',
  )
  for (const h of HEAVY)
    t.same(
      loaded.filter((p) => p.includes(h)),
      [],
      `nothing of ${h}`,
    )
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
