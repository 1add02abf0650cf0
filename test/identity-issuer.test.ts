// The agent's identity issuer on virtual time, with real keys, signatures and files: a leaf
// per local service that chains to the root, renewal at two thirds of its life, removal after
// a grace period, and an intermediate that is missing, expires, is replaced or is corrupted.
import t, { type Test } from 'tap'
import { X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { VirtualClock } from '../src/clock.js'
import { IdentityIssuer, keyMatches, signedBy } from '../src/identity/index.js'
import { capturedLogger } from './lib/log.js'
import { makePki, type Pki } from './lib/identity.js'

const MIN = 60_000
const HOUR = 60 * MIN

interface Setup {
  pki: Pki
  clock: VirtualClock
  registry: Registry
  issuer: IdentityIssuer
  lines: ReturnType<typeof capturedLogger>['lines']
  dir: string
}

async function setup(
  t: Test,
  o: { leafTtlMs?: number; intermediate?: boolean; intermediateTtlMs?: number; trustDomain?: string } = {},
): Promise<Setup> {
  const clock = new VirtualClock({ startWall: Date.UTC(2026, 0, 1) })
  const pki = await makePki(t, { now: clock.wallNow() })
  const dir = pki.tlsDir('n1')
  mkdirSync(dir, { recursive: true })
  if (o.intermediate !== false) await pki.intermediate('n1', { ttlMs: o.intermediateTtlMs })
  const registry = new Registry()
  const { logger, lines } = capturedLogger('debug')
  const issuer = new IdentityIssuer(
    { dir, trustDomain: o.trustDomain ?? pki.trustDomain, leafTtlMs: o.leafTtlMs ?? 90 * MIN },
    { logger, clock, registry },
  )
  t.teardown(() => issuer.stop())
  await issuer.start()
  return { pki, clock, registry, issuer, lines, dir }
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name)
  if (!m) return 0
  const v = (await m.get()).values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l))
  return v?.value ?? 0
}

/** What a verifier checks of a service's files: leaf -> intermediate -> a root of the bundle, the SPIFFE ID, the key. */
function checkFiles(t: Test, dir: string, service: string, trustDomain: string, atMs: number): X509Certificate {
  const svc = join(dir, 'services', service)
  const chain = readFileSync(join(svc, 'cert.pem'), 'utf8')
  const key = readFileSync(join(svc, 'key.pem'), 'utf8')
  const bundle = readFileSync(join(svc, 'bundle.pem'), 'utf8')
  const [leafPem, interPem] = chain.split(/(?<=-----END CERTIFICATE-----\n)/)
  const leaf = new X509Certificate(leafPem!)
  const inter = new X509Certificate(interPem!)
  const root = new X509Certificate(bundle)
  t.ok(signedBy(leaf.raw, inter.raw), `${service}: the leaf is signed by the intermediate`)
  t.ok(signedBy(inter.raw, root.raw), `${service}: the intermediate is signed by the bundle's root`)
  t.equal(leaf.subjectAltName, `URI:spiffe://${trustDomain}/svc/${service}`, `${service}: its SPIFFE ID is the only SAN`)
  t.equal(leaf.ca, false, `${service}: not a CA`)
  t.ok(keyMatches(leaf.raw, key), `${service}: key.pem is the leaf's key`)
  t.equal(statSync(join(svc, 'key.pem')).mode & 0o777, 0o600, `${service}: key.pem is 0600`)
  t.ok(Date.parse(leaf.validFrom) <= atMs && atMs < Date.parse(leaf.validTo), `${service}: valid now`)
  t.same(
    readdirSync(svc).filter((f) => f.endsWith('.tmp')),
    [],
    `${service}: no temporary file left`,
  )
  return leaf
}

t.test('each local service gets a leaf that chains to the root, with its SPIFFE ID', async (t) => {
  const s = await setup(t)
  s.issuer.setServices(['web', 'api'])
  await s.issuer.settled()
  for (const svc of ['web', 'api']) checkFiles(t, s.dir, svc, s.pki.trustDomain, s.clock.wallNow())
  t.same(
    s.issuer.identities().map((i) => i.service),
    ['api', 'web'],
  )
  const web = s.issuer.identity('web')!
  t.equal(web.notAfter - web.issuedAt, 90 * MIN, 'the leaf lives its lifetime')
  t.equal(web.renewAt! - web.issuedAt, 60 * MIN, 'renewal is due at two thirds of it')
  t.equal(s.clock.wallNow() - web.notBefore, 5 * MIN, 'notBefore set back 5 minutes for peers whose clocks are behind')
  t.equal(await metric(s.registry, 'shoal_identity_leaves'), 2)
  t.equal(await metric(s.registry, 'shoal_identity_leaves_issued_total', { reason: 'new' }), 2)
  t.equal(await metric(s.registry, 'shoal_identity_intermediate_valid'), 1)
})

t.test('renewed at two thirds of its life, not before; a new key each time', async (t) => {
  const s = await setup(t)
  s.issuer.setServices(['web'])
  await s.issuer.settled()
  const first = readFileSync(join(s.dir, 'services/web/cert.pem'), 'utf8')
  const firstKey = readFileSync(join(s.dir, 'services/web/key.pem'), 'utf8')
  await s.clock.advance(59 * MIN)
  await s.issuer.settled()
  t.equal(readFileSync(join(s.dir, 'services/web/cert.pem'), 'utf8'), first, 'unchanged at 59 of 90 minutes')
  await s.clock.advance(2 * MIN)
  await s.issuer.settled()
  const second = readFileSync(join(s.dir, 'services/web/cert.pem'), 'utf8')
  t.not(second, first, 'renewed by 61 minutes')
  t.not(readFileSync(join(s.dir, 'services/web/key.pem'), 'utf8'), firstKey, 'with a new key')
  checkFiles(t, s.dir, 'web', s.pki.trustDomain, s.clock.wallNow())
  t.equal(await metric(s.registry, 'shoal_identity_leaves_issued_total', { reason: 'renewal' }), 1)
  // Ten more lifetimes: one renewal each, and the leaf is never found expired.
  for (let i = 0; i < 10; i++) {
    await s.clock.advance(30 * MIN)
    await s.issuer.settled()
    checkFiles(t, s.dir, 'web', s.pki.trustDomain, s.clock.wallNow())
  }
  t.equal(await metric(s.registry, 'shoal_identity_leaves_issued_total', { reason: 'renewal' }), 6, 'one renewal per 60 minutes')
})

t.test('a service that leaves keeps its files for the grace period; one that comes back keeps its leaf', async (t) => {
  const s = await setup(t)
  s.issuer.setServices(['web', 'api'])
  await s.issuer.settled()
  const apiLeaf = s.issuer.identity('api')!.certChainPem
  s.issuer.setServices(['web'])
  await s.clock.advance(30_000)
  await s.issuer.settled()
  t.ok(existsSync(join(s.dir, 'services/api/cert.pem')), 'still there after 30 s')
  s.issuer.setServices(['web', 'api'])
  await s.issuer.settled()
  t.equal(s.issuer.identity('api')!.certChainPem, apiLeaf, 'back within the grace period: the same leaf')
  await s.clock.advance(60 * MIN) // 60.5 minutes after issuance, renewal due at 60
  await s.issuer.settled()
  t.not(s.issuer.identity('api')!.certChainPem, apiLeaf, 'and still renewed on its schedule')
  checkFiles(t, s.dir, 'api', s.pki.trustDomain, s.clock.wallNow())
  s.issuer.setServices(['web'])
  await s.clock.advance(61_000)
  await s.issuer.settled()
  t.notOk(existsSync(join(s.dir, 'services/api')), 'gone 61 s after it left')
  t.equal(s.issuer.identity('api'), undefined)
  t.equal(await metric(s.registry, 'shoal_identity_leaves'), 1)
  s.issuer.setServices(['web', 'api'])
  await s.issuer.settled()
  t.not(s.issuer.identity('api')!.certChainPem, apiLeaf, 'after removal it comes back with a new leaf')
})

t.test("an earlier run's folders go after the grace period unless their service is here", async (t) => {
  const clock = new VirtualClock({ startWall: Date.UTC(2026, 0, 1) })
  const pki = await makePki(t, { now: clock.wallNow(), nodes: ['n1'] })
  const dir = pki.tlsDir('n1')
  const { logger } = capturedLogger()
  const before = new IdentityIssuer({ dir, trustDomain: pki.trustDomain }, { logger, clock })
  await before.start()
  before.setServices(['old', 'kept'])
  await before.settled()
  await before.stop()
  t.ok(existsSync(join(dir, 'services/old/cert.pem')), 'files stay when the agent stops')
  const after = new IdentityIssuer({ dir, trustDomain: pki.trustDomain }, { logger, clock })
  t.teardown(() => after.stop())
  await after.start()
  after.setServices(['kept'])
  await after.settled()
  await clock.advance(61_000)
  await after.settled()
  t.notOk(existsSync(join(dir, 'services/old')), 'a service not seen since the restart loses its files')
  checkFiles(t, dir, 'kept', pki.trustDomain, clock.wallNow())
})

t.test('a missing intermediate: one error line naming the file and the remedy, a count, no leaf; leaves once it arrives', async (t) => {
  const s = await setup(t, { intermediate: false })
  s.issuer.setServices(['web'])
  await s.issuer.settled()
  await s.issuer.reload()
  await s.clock.advance(31_000) // the re-check after retryMs
  await s.issuer.settled()
  const errors = s.lines.filter((l) => l.level === 50)
  t.equal(errors.length, 1, 'one error line, not one per attempt')
  t.match(errors[0]?.msg, /intermediate\.pem is missing: make one with `shoal ca intermediate --node NODE --ca ROOT_DIR --out .*tls-n1`/)
  t.equal(await metric(s.registry, 'shoal_identity_intermediate_valid'), 0)
  t.equal(await metric(s.registry, 'shoal_identity_intermediate_problems_total', { reason: 'missing' }), 1)
  t.equal(s.issuer.status().problem?.reason, 'missing')
  t.notOk(existsSync(join(s.dir, 'services/web')), 'no leaf without an intermediate')
  await s.pki.intermediate('n1', { now: s.clock.wallNow() })
  await s.issuer.reload()
  checkFiles(t, s.dir, 'web', s.pki.trustDomain, s.clock.wallNow())
  t.equal(await metric(s.registry, 'shoal_identity_intermediate_valid'), 1)
  t.equal(s.issuer.status().problem, undefined)
  t.ok(
    s.lines.some((l) => l.msg === 'intermediate loaded'),
    'says when it loaded one',
  )
})

t.test(
  'an intermediate ending before a leaf would: leaves end with it, one error line when it expires, a new one renews them',
  async (t) => {
    const s = await setup(t, { leafTtlMs: 24 * HOUR, intermediateTtlMs: 2 * HOUR })
    s.issuer.setServices(['web'])
    await s.issuer.settled()
    const web = s.issuer.identity('web')!
    t.equal(web.notAfter, s.issuer.status().intermediate!.notAfter, "the leaf is cut to the intermediate's end")
    t.equal(web.renewAt, undefined, 'and not renewed before a new intermediate (it would gain nothing)')
    t.ok(
      s.lines.some((l) => l.level === 40 && /cut to the intermediate's end/.test(l.msg)),
      'a warning says so',
    )
    await s.clock.advance(2 * HOUR + MIN)
    await s.issuer.settled()
    const errors = s.lines.filter((l) => l.level === 50)
    t.equal(errors.length, 1, 'one error line')
    t.match(errors[0]?.msg, /intermediate\.pem \(CN=Shoal node n1.*\) expired at .*: make one with `shoal ca intermediate/)
    t.equal(await metric(s.registry, 'shoal_identity_intermediate_problems_total', { reason: 'expired' }), 1)
    t.equal(await metric(s.registry, 'shoal_identity_intermediate_valid'), 0)
    await s.clock.advance(10 * MIN)
    await s.issuer.settled()
    t.equal(s.lines.filter((l) => l.level === 50).length, 1, 'still one line ten minutes later')
    await s.pki.intermediate('n1', { now: s.clock.wallNow() })
    await s.issuer.reload()
    checkFiles(t, s.dir, 'web', s.pki.trustDomain, s.clock.wallNow())
    t.equal(await metric(s.registry, 'shoal_identity_leaves_issued_total', { reason: 'new-intermediate' }), 1)
  },
)

t.test('a bad file while a valid intermediate is loaded: the loaded one stays, with a warning', async (t) => {
  const s = await setup(t)
  writeFileSync(join(s.dir, 'intermediate.pem'), 'not a certificate\n')
  await s.issuer.reload()
  const warn = s.lines.find((l) => l.level === 40 && l.reason === 'invalid')
  t.match(warn?.msg, /intermediate\.pem holds no certificate: make one .*; keeping the intermediate loaded before \(valid until /)
  t.equal(await metric(s.registry, 'shoal_identity_intermediate_valid'), 1)
  t.equal(await metric(s.registry, 'shoal_identity_intermediate_problems_total', { reason: 'invalid' }), 1)
  s.issuer.setServices(['web'])
  await s.issuer.settled()
  checkFiles(t, s.dir, 'web', s.pki.trustDomain, s.clock.wallNow())
})

t.test('an intermediate of another trust domain is refused, naming both', async (t) => {
  const s = await setup(t, { trustDomain: 'prod' })
  const err = s.lines.find((l) => l.level === 50)
  t.match(err?.msg, /it is for trust domain "test"; the agent's --cluster gives trust domain "prod"/)
  t.equal(await metric(s.registry, 'shoal_identity_intermediate_problems_total', { reason: 'wrong-trust-domain' }), 1)
})

t.test('a name outside the SPIFFE path rules: no leaf, one error line and a count; the others get theirs', async (t) => {
  const s = await setup(t)
  s.issuer.setServices(['web', 'bad/name', '..'])
  s.issuer.setServices(['web', 'bad/name', '..'])
  await s.issuer.settled()
  checkFiles(t, s.dir, 'web', s.pki.trustDomain, s.clock.wallNow())
  t.equal(s.lines.filter((l) => l.level === 50).length, 2, 'one line per bad name')
  t.equal(await metric(s.registry, 'shoal_identity_leaf_failures_total', { reason: 'name' }), 2)
  t.same(readdirSync(join(s.dir, 'services')), ['web'])
})

t.test('a leaf that cannot be written is retried', async (t) => {
  const s = await setup(t)
  // A file where the services folder should be: every write fails.
  writeFileSync(join(s.dir, 'services'), '')
  s.issuer.setServices(['web'])
  await s.issuer.settled()
  t.equal(await metric(s.registry, 'shoal_identity_leaf_failures_total', { reason: 'write' }), 1)
  t.match(
    s.lines.find((l) => l.level === 50)?.msg,
    /cannot write the leaf's files of web in .*; make the folder writable by the agent; retrying in 30 s/,
  )
  rmSync(join(s.dir, 'services'))
  await s.clock.advance(31_000)
  await s.issuer.settled()
  checkFiles(t, s.dir, 'web', s.pki.trustDomain, s.clock.wallNow())
})
