// Property test of the identity issuer: random histories of local services, time, and an
// intermediate that is rotated (sometimes shorter-lived than a leaf), corrupted or removed,
// on virtual time with real keys, signatures and files. After every step, what a verifier
// and an operator would see holds:
// - with a usable intermediate, every service that is here has files that verify now (leaf ->
//   the current intermediate -> a root of its bundle, its SPIFFE ID, its key) and a leaf that
//   ends no later than the intermediate;
// - the issuer holds an intermediate exactly when the model says a usable one was loaded;
// - a service gone longer than the grace period has no folder; no temporary file is left.
// A failure prints the seed and the step; SHOAL_PROPERTY_SEED replays one seed.
import t, { type Test } from 'tap'
import { X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { VirtualClock } from '../src/clock.js'
import { IdentityIssuer, keyMatches, signedBy } from '../src/identity/index.js'
import { silentLogger } from '../src/log.js'
import { makePki } from './lib/identity.js'
import { seeded } from './lib/random.js'

const MIN = 60_000
const LEAF_TTL = 90 * MIN
const GRACE = 60_000
const POOL = ['web', 'api', 'db', 'cache', 'auth', 'search']
const STEPS = 120
const seeds = process.env.SHOAL_PROPERTY_SEED ? [Number(process.env.SHOAL_PROPERTY_SEED)] : [1, 2, 3]

for (const seed of seeds) {
  t.test(`seed ${seed}: ${STEPS} steps`, async (t) => {
    const random = seeded(seed)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
    const clock = new VirtualClock({ startWall: Date.UTC(2026, 0, 1) })
    const pki = await makePki(t, { now: clock.wallNow() })
    const dir = pki.tlsDir('n1')
    mkdirSync(dir, { recursive: true })
    const issuer = new IdentityIssuer(
      { dir, trustDomain: pki.trustDomain, leafTtlMs: LEAF_TTL, removeAfterMs: GRACE },
      { logger: silentLogger(), clock },
    )
    t.teardown(() => issuer.stop())

    // The model: the intermediate file on disk and the one the issuer should hold.
    let fileNotAfter: number | undefined // a valid file's end, or undefined when broken or absent
    let held: number | undefined
    const rotate = async () => {
      const ttlMs = pick([30 * MIN, 2 * 60 * MIN, 10 * 60 * MIN, 30 * 24 * 60 * MIN])
      await pki.intermediate('n1', { now: clock.wallNow(), ttlMs })
      // X.509 times have whole seconds.
      fileNotAfter = Math.floor((clock.wallNow() + ttlMs) / 1000) * 1000
    }
    const reloaded = () => {
      const now = clock.wallNow()
      if (fileNotAfter !== undefined && now < fileNotAfter) held = fileNotAfter
      else if (held !== undefined && now >= held) held = undefined
    }
    await rotate()
    await issuer.start()
    reloaded()

    const here = new Set<string>()
    const goneAt = new Map<string, number>()
    for (let step = 0; step < STEPS; step++) {
      const op = pick(['services', 'services', 'advance', 'advance', 'advance', 'rotate', 'corrupt', 'remove'] as const)
      const what = `seed ${seed} step ${step} ${op}`
      if (op === 'services') {
        const next = POOL.filter(() => random() < 0.5)
        for (const n of here) if (!next.includes(n)) goneAt.set(n, clock.now())
        for (const n of next) goneAt.delete(n)
        here.clear()
        for (const n of next) here.add(n)
        issuer.setServices(next)
      } else if (op === 'advance') {
        await clock.advance(Math.floor(random() * 100 * MIN))
      } else if (op === 'rotate') {
        await rotate()
        await issuer.reload()
        reloaded()
      } else if (op === 'corrupt') {
        writeFileSync(join(dir, 'intermediate.pem'), pick(['', 'garbage\n', readFileSync(join(dir, 'bundle.pem'), 'utf8')]))
        fileNotAfter = undefined
        await issuer.reload()
        reloaded()
      } else {
        rmSync(join(dir, 'intermediate.pem'), { force: true })
        fileNotAfter = undefined
        await issuer.reload()
        reloaded()
      }
      await issuer.settled()
      // A leaf issued while virtual time ran on (its signing is real async work, slow on a
      // busy machine) may have a renewal already due: let due timers fire, and their work end.
      for (let k = 0; k < 4; k++) {
        await clock.advance(0)
        await issuer.settled()
      }
      // Expiry is noticed by the issuer's own timer at the intermediate's end.
      if (held !== undefined && clock.wallNow() >= held) held = undefined
      check(t, what)
      if (t.counts.fail > 0) break
    }

    function check(t: Test, what: string): void {
      const now = clock.wallNow()
      const status = issuer.status()
      const ok = (cond: boolean, msg: string) => {
        if (!cond) t.fail(`${what}: ${msg}`)
      }
      ok(
        status.intermediate?.notAfter === held,
        `the issuer holds an intermediate ending ${status.intermediate?.notAfter}, the model ${held}`,
      )
      const services = existsSync(join(dir, 'services')) ? readdirSync(join(dir, 'services')) : []
      for (const name of services) {
        const since = goneAt.get(name)
        ok(
          here.has(name) || (since !== undefined && clock.now() - since < GRACE),
          `${name} has a folder though it left ${since === undefined ? 'long' : clock.now() - since} ms ago`,
        )
        ok(
          readdirSync(join(dir, 'services', name)).every((f) => !f.endsWith('.tmp')),
          `${name}: a temporary file is left`,
        )
      }
      if (status.intermediate === undefined) {
        ok(status.problem !== undefined, 'no intermediate and no problem said')
        return
      }
      for (const name of here) {
        const svc = join(dir, 'services', name)
        if (!existsSync(join(svc, 'bundle.pem'))) {
          ok(false, `${name} is here with a usable intermediate but has no files`)
          continue
        }
        const [leafPem, interPem] = readFileSync(join(svc, 'cert.pem'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)
        const leaf = new X509Certificate(leafPem!)
        const inter = new X509Certificate(interPem!)
        const roots = readFileSync(join(svc, 'bundle.pem'), 'utf8')
        ok(signedBy(leaf.raw, inter.raw) && signedBy(inter.raw, new X509Certificate(roots).raw), `${name}: the chain does not verify`)
        ok(
          inter.fingerprint256.replace(/:/g, '').toLowerCase() === status.intermediate.fingerprint,
          `${name}: chain carries an old intermediate`,
        )
        ok(keyMatches(leaf.raw, readFileSync(join(svc, 'key.pem'), 'utf8')), `${name}: key.pem is not the leaf's key`)
        ok(leaf.subjectAltName === `URI:spiffe://${pki.trustDomain}/svc/${name}`, `${name}: SAN ${leaf.subjectAltName}`)
        const from = Date.parse(leaf.validFrom)
        const to = Date.parse(leaf.validTo)
        ok(from <= now && now < to, `${name}: not valid now (${leaf.validFrom} .. ${leaf.validTo})`)
        ok(to <= status.intermediate.notAfter, `${name}: the leaf outlives its intermediate`)
        const id = issuer.identity(name)
        ok(
          id !== undefined && id.renewAt === undefined ? to === status.intermediate.notAfter : (id?.renewAt ?? 0) > now,
          `${name}: renewal overdue`,
        )
      }
    }
    t.pass(`${STEPS} steps checked`)
  })
}
