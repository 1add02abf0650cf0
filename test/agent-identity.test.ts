// An agent with --tls-dir gives each local service name a leaf under DIR/services/NAME/ and
// shows it in /metrics. Started without an intermediate it still runs, says so in one error
// line and a metric, and issues the leaves once `shoal ca intermediate` writes one into the
// folder it watches.
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { shoal } from './lib/cli.js'
import { capturedLogger } from './lib/log.js'
import { makePki } from './lib/identity.js'
import { loopbackAgentFlags } from './lib/agent-process.js'
import { waitFor } from './lib/wait.js'

function writeStatic(path: string, names: string[]): void {
  // Two instances of the first name: one identity per service name, not per instance.
  const services = names.map((name, i) => ({ id: `${name}-1`, name, ports: [{ port: 8000 + i, servicePort: 10000 + i }] }))
  services.push({ id: `${names[0]}-2`, name: names[0]!, ports: [{ port: 8100, servicePort: 10000 }] })
  writeFileSync(path + '.tmp', JSON.stringify({ services }))
  renameSync(path + '.tmp', path)
}

const flags = (tlsDir: string, staticFile: string) => [
  ...loopbackAgentFlags('id-1'),
  '--cluster',
  'Prod',
  '--discovery',
  'static',
  '--static',
  staticFile,
  '--tls-dir',
  tlsDir,
]

t.test('a leaf per local service name, in files and in /metrics', async (t) => {
  const pki = await makePki(t, { cluster: 'prod', nodes: ['id-1'] })
  const staticFile = join(pki.base, 'static.json')
  writeStatic(staticFile, ['web', 'api'])
  const { logger } = capturedLogger()
  const agent = new Agent(parseAgentConfig(flags(pki.tlsDir('id-1'), staticFile), {}), { logger })
  t.teardown(() => agent.stop({ leave: false }))
  await agent.start()
  const services = join(pki.tlsDir('id-1'), 'services')
  await waitFor('two leaves', () => agent.identityStatus()?.services.length === 2)
  t.same(readdirSync(services).sort(), ['api', 'web'])
  const leaf = new X509Certificate(readFileSync(join(services, 'web', 'cert.pem')))
  t.equal(leaf.subjectAltName, 'URI:spiffe://prod/svc/web', 'the trust domain is the cluster name in lower case')
  const metrics = await (await fetch(`http://127.0.0.1:${agent.bound.http}/metrics`)).text()
  t.match(metrics, /^shoal_identity_leaves 2$/m)
  t.match(metrics, /^shoal_identity_intermediate_valid 1$/m)
  t.match(metrics, /^shoal_identity_leaf_expiry_timestamp_seconds\{service="web"\} \d+$/m)
  writeStatic(staticFile, ['web', 'api', 'db'])
  await waitFor('a leaf for the new service', () => existsSync(join(services, 'db', 'bundle.pem')))
})

t.test(
  'no intermediate yet: the agent runs, one error line and a metric; `shoal ca intermediate` into the folder issues the leaves',
  async (t) => {
    const pki = await makePki(t, { cluster: 'prod' })
    const tlsDir = pki.tlsDir('id-1')
    mkdirSync(tlsDir)
    const staticFile = join(pki.base, 'static.json')
    writeStatic(staticFile, ['web'])
    const { logger, lines } = capturedLogger()
    const agent = new Agent(parseAgentConfig(flags(tlsDir, staticFile), {}), { logger })
    t.teardown(() => agent.stop({ leave: false }))
    await agent.start()
    const ready = await fetch(`http://127.0.0.1:${agent.bound.http}/healthz`)
    t.equal(ready.status, 200, 'the agent serves')
    const errors = lines.filter((l) => l.level >= 50)
    t.equal(errors.length, 1, 'one error line')
    t.match(
      errors[0]?.msg,
      /intermediate\.pem is missing: make one with `shoal ca intermediate --node NODE --ca ROOT_DIR --out .*tls-id-1`; local services get no new identity until then/,
    )
    const metrics = await (await fetch(`http://127.0.0.1:${agent.bound.http}/metrics`)).text()
    t.match(metrics, /^shoal_identity_intermediate_valid 0$/m)
    t.match(metrics, /^shoal_identity_intermediate_problems_total\{reason="missing"\} 1$/m)
    const made = await shoal(['ca', 'intermediate', '--node', 'id-1', '--ca', pki.rootDir, '--out', tlsDir]).done
    t.equal(made.code, 0, made.stderr)
    await waitFor('the leaf, from the folder watch', () => existsSync(join(tlsDir, 'services', 'web', 'bundle.pem')))
    t.ok(
      lines.some((l) => l.msg === 'intermediate loaded'),
      'the agent says it loaded the intermediate',
    )
    t.equal(lines.filter((l) => l.level >= 50).length, 1, 'no further error line')
  },
)

t.test('a burst of local changes hands the issuer one name list per turn, not one per record', async (t) => {
  const pki = await makePki(t, { cluster: 'prod', nodes: ['id-1'] })
  const staticFile = join(pki.base, 'static.json')
  writeStatic(staticFile, ['web'])
  const { logger } = capturedLogger()
  const agent = new Agent(parseAgentConfig(flags(pki.tlsDir('id-1'), staticFile), {}), { logger })
  t.teardown(() => agent.stop({ leave: false }))
  await agent.start()
  await waitFor('the first leaf', () => agent.identityStatus()?.services.length === 1)
  // The issuer is private: count its calls by wrapping the method on the instance.
  const issuer = (agent as unknown as { identity: { setServices(n: Iterable<string>): void } }).identity
  const calls: number[] = []
  const setServices = issuer.setServices.bind(issuer)
  issuer.setServices = (names) => {
    const list = [...names]
    calls.push(list.length)
    setServices(list)
  }
  const names = Array.from({ length: 200 }, (_, i) => `svc-${i}`)
  writeStatic(staticFile, names)
  await waitFor('every name handed to the issuer', () => calls.at(-1) === 201)
  t.ok(calls.length <= 3, `one call per turn of the burst (${calls.length} calls for 200 new records)`)
})
