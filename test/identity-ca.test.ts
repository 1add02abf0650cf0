// `shoal ca init | intermediate | inspect` as an operator runs them (the built CLI), and the
// certificates they make read back by OpenSSL (node:crypto): a root, per-node intermediates
// with path length 0, the files and their modes, and the errors that name a file and a remedy.
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeCertificate, pemBlocks } from '../src/identity/x509.js'
import { initCa, inspectChain, makeIntermediate, signedBy } from '../src/identity/index.js'
import { shoal } from './lib/cli.js'

const base = mkdtempSync(join(tmpdir(), 'shoal-ca-'))
t.teardown(() => rmSync(base, { recursive: true, force: true }))
const DAY = 86_400_000

t.test('init, intermediate and inspect from the command line', async (t) => {
  const root = join(base, 'cli-root')
  const tls = join(base, 'cli-tls')
  const init = await shoal(['ca', 'init', '--cluster', 'Prod-EU', '--out', root]).done
  t.equal(init.code, 0, init.stderr)
  t.match(init.stdout, /trust domain prod-eu: root valid until/)
  t.match(init.stdout, /root-key\.pem: the root key; .*move it off this machine/)
  t.equal(statSync(root).mode & 0o777, 0o700, 'the root folder is private')
  t.equal(statSync(join(root, 'root-key.pem')).mode & 0o777, 0o600, 'the root key is 0600')

  const again = await shoal(['ca', 'init', '--cluster', 'prod-eu', '--out', root]).done
  t.equal(again.code, 1, 'a second init refuses')
  t.match(again.stderr, /root\.pem exists: a new root would orphan every intermediate it signed; pass --force/)
  t.equal(again.stderr.trim().split('\n').length, 1, 'in one line')

  const inter = await shoal(['ca', 'intermediate', '--node', 'web-1', '--ca', root, '--out', tls, '--ttl', '7d']).done
  t.equal(inter.code, 0, inter.stderr)
  t.match(inter.stdout, /CN=Shoal node web-1, O=Shoal, OU=prod-eu, trust domain prod-eu: valid until/)
  t.equal(statSync(join(tls, 'intermediate-key.pem')).mode & 0o777, 0o600)

  const seen = await shoal(['ca', 'inspect', join(tls, 'intermediate.pem'), '--bundle', join(tls, 'bundle.pem')]).done
  t.equal(seen.code, 0, seen.stderr)
  t.match(seen.stdout, /\[1\] intermediate \(CA, path length 0\) spiffe:\/\/prod-eu\n/)
  t.match(seen.stdout, /\[2\] root \(CA, path length 1\) spiffe:\/\/prod-eu \(from .*bundle\.pem\)/)
  t.match(seen.stdout, /valid +\S+ to \S+ \(6d 23h left\)|valid +\S+ to \S+ \(7d 0h left\)/)
  t.match(seen.stdout, /signed by +\[2\] \(signature checked\)/)
  t.match(seen.stdout, /chain: \[1\] -> \[2\]: reaches a root of/)

  const key = await shoal(['ca', 'inspect', join(tls, 'intermediate-key.pem')]).done
  t.equal(key.code, 1)
  t.match(key.stderr, /holds a private key and no certificate \(keys are not shown\)/)
})

t.test('usage errors exit 2 with one line naming the flag; help lists the ca commands', async (t) => {
  const r = await shoal(['ca', 'intermediate', '--node', 'n1', '--out', join(base, 'x')]).done
  t.equal(r.code, 2)
  t.equal(r.stderr.trim(), 'shoal ca intermediate: --ca is required; see `shoal ca intermediate --help`')
  const bad = await shoal(['ca', 'init', '--cluster', 'bad/name', '--out', join(base, 'y')]).done
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--cluster: "bad\/name": trust domain "bad\/name" has characters outside \[a-z0-9._-\]/)
  const group = await shoal(['ca', '--help']).done
  t.equal(group.code, 0)
  t.match(group.stdout, /ca init .*\n.*ca intermediate .*\n.*ca inspect FILE/)
  const unknown = await shoal(['ca', 'sign']).done
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /unknown command "ca sign"/)
  const flags = await shoal(['help', 'ca', 'intermediate']).done
  t.match(flags.stdout, /--name-constraint +limit the intermediate to SPIFFE IDs of the trust domain/)
})

t.test('the certificates have the shape the X509-SVID spec asks for', async (t) => {
  const rootDir = join(base, 'shape-root')
  const r = await initCa({ cluster: 'shape', outDir: rootDir })
  const i = await makeIntermediate({ node: 'n1', caDir: rootDir, outDir: join(base, 'shape-tls'), nameConstraint: true })
  const root = new X509Certificate(readFileSync(r.certFile))
  const inter = new X509Certificate(readFileSync(i.certFile))
  t.ok(root.ca && inter.ca, 'both are CAs (OpenSSL reads them so)')
  t.ok(signedBy(root.raw, root.raw), 'the root is self-signed')
  t.ok(signedBy(inter.raw, root.raw), 'the intermediate is signed by the root')
  t.equal(root.subjectAltName, 'URI:spiffe://shape', 'a signing certificate carries the trust domain ID, no path (X509-SVID 3.2)')
  t.equal(inter.subjectAltName, 'URI:spiffe://shape')
  const info = await describeCertificate(pemBlocks(readFileSync(i.certFile, 'utf8'), i.certFile)[0]!.der, i.certFile)
  t.equal(info.pathLength, 0, 'the intermediate signs leaves only')
  t.same(info.keyUsage, ['keyCertSign', 'cRLSign'])
  t.same(info.permittedUris, ['shape'], 'the optional URI name constraint names the trust domain host')
  t.equal(Date.parse(inter.validTo) - Date.now() > 29 * DAY, true, 'default lifetime 30 days')
})

t.test("an intermediate never outlives its root, and a root's key must be the root's", async (t) => {
  const rootDir = join(base, 'short-root')
  await initCa({ cluster: 'short', outDir: rootDir, ttlMs: DAY })
  const i = await makeIntermediate({ node: 'n1', caDir: rootDir, outDir: join(base, 'short-tls') })
  t.ok(i.cutToRoot, 'cut to the root')
  t.ok(i.intermediate.notAfter.getTime() <= Date.now() + DAY)
  const other = join(base, 'other-root')
  await initCa({ cluster: 'short', outDir: other })
  writeFileSync(join(rootDir, 'root-key.pem'), readFileSync(join(other, 'root-key.pem')))
  await t.rejects(makeIntermediate({ node: 'n1', caDir: rootDir, outDir: join(base, 'short-tls') }), {
    code: 'SHOAL_ERR_CA',
    message: /root-key\.pem is not the key of .*root\.pem/,
  })
  await t.rejects(makeIntermediate({ node: 'n1', caDir: join(base, 'nowhere'), outDir: join(base, 'short-tls') }), {
    code: 'SHOAL_ERR_CA',
    message: /nowhere\/root\.pem: cannot read the root certificate \(from `shoal ca init`\): ENOENT/,
  })
})

t.test('inspect names what is wrong: expired, and a chain that reaches no root of the bundle', async (t) => {
  const rootDir = join(base, 'old-root')
  const past = Date.now() - 40 * DAY
  await initCa({ cluster: 'old', outDir: rootDir, now: past })
  const i = await makeIntermediate({ node: 'n1', caDir: rootDir, outDir: join(base, 'old-tls'), now: past })
  const r = await inspectChain(i.certFile, { bundleFile: i.bundleFile })
  t.notOk(r.ok)
  t.match(r.text, /\(expired 9d 23h ago\)|\(expired 10d 0h ago\)/)
  t.match(r.text, /problem +expired at /)
  const stranger = join(base, 'stranger-root')
  const s = await initCa({ cluster: 'old', outDir: stranger })
  const r2 = await inspectChain(i.certFile, { bundleFile: s.certFile })
  t.notOk(r2.ok)
  t.match(r2.text, /chain: \[1\]: does not reach a root of .*stranger-root\/root\.pem/)
  writeFileSync(join(base, 'junk.pem'), 'hello\n')
  await t.rejects(inspectChain(join(base, 'junk.pem')), { code: 'SHOAL_ERR_PEM', message: /junk\.pem holds no certificate/ })
})
