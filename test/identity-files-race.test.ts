// A leaf's certificate and key change together. grpc-js's file_watcher certificate provider
// (the reader a proxyless gRPC process uses, gRFC A29) reads cert.pem and key.pem in
// parallel and never checks that they match: a read that fell between the replacement of the
// key and of the certificate gave it a new key with the old certificate, and it refused every
// new connection until its next read. Before the files were written as one generation
// (files.ts), a reader polling every millisecond through 40 renewals got such a pair in about
// a quarter of its reads; now only a read whose two opens straddle the one rename can.
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import { lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, writeFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { join } from 'node:path'
import { VirtualClock } from '../src/clock.js'
import { IdentityIssuer } from '../src/identity/index.js'
import { silentLogger } from '../src/log.js'
import { makePki } from './lib/identity.js'

const RENEWALS = 40

t.test("grpc-js's file watcher never holds a key with another leaf's certificate across renewals", async (t) => {
  const clock = new VirtualClock({ startWall: Date.now() })
  const pki = await makePki(t, { nodes: ['n1'], now: clock.wallNow() })
  const issuer = new IdentityIssuer(
    { dir: pki.tlsDir('n1'), trustDomain: pki.trustDomain, leafTtlMs: 3_600_000 },
    { logger: silentLogger(), clock },
  )
  t.teardown(() => issuer.stop())
  await issuer.start()
  issuer.setServices(['b'])
  await issuer.settled()
  const dir = join(pki.tlsDir('n1'), 'services', 'b')

  const provider = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: join(dir, 'cert.pem'),
    privateKeyFile: join(dir, 'key.pem'),
    caCertificateFile: join(dir, 'bundle.pem'),
    refreshIntervalMs: 1,
  })
  let reads = 0
  const mismatched: string[] = []
  const listener = (u: grpc.experimental.IdentityCertificateUpdate | null): void => {
    reads++
    try {
      if (!u) throw new Error('no identity read')
      // What grpc-js does with every read: a secure context from the pair.
      createSecureContext({ cert: u.certificate, key: u.privateKey })
    } catch (err) {
      mismatched.push((err as Error).message)
    }
  }
  provider.addIdentityCertificateListener(listener)
  t.teardown(() => provider.removeIdentityCertificateListener(listener))

  for (let i = 0; i < RENEWALS; i++) {
    const renewAt = issuer.identity('b')!.renewAt!
    await clock.advance(renewAt - clock.wallNow() + 1)
    await issuer.settled()
  }
  await new Promise((r) => setTimeout(r, 20))
  t.ok(reads > RENEWALS * 5, `the watcher read the files ${reads} times during ${RENEWALS} renewals`)
  // Two layouts apart: about 25 % of reads mismatched with files replaced one by one, about
  // 0.03 % (one read in thousands, its opens straddling the rename) with generations.
  t.ok(
    mismatched.length <= reads / 50,
    `${mismatched.length} of ${reads} reads got a mismatched pair: ${[...new Set(mismatched)].join('; ')}`,
  )
  t.equal(issuer.identity('b')!.keyPem, readFileSync(join(dir, 'key.pem'), 'utf8'), 'the files hold the current identity')
})

t.test('the three names are symlinks into the current generation; plain files of an earlier layout are adopted', async (t) => {
  const clock = new VirtualClock({ startWall: Date.now() })
  const pki = await makePki(t, { nodes: ['n1'], now: clock.wallNow() })
  const tls = pki.tlsDir('n1')
  // `shoal ca intermediate` wrote its files as a generation too.
  t.equal(readlinkSync(join(tls, 'intermediate.pem')), join('..data', 'intermediate.pem'))
  // A leaf folder as the earlier layout left it: plain files.
  const dir = join(tls, 'services', 'b')
  const issuer = new IdentityIssuer({ dir: tls, trustDomain: pki.trustDomain, leafTtlMs: 3_600_000 }, { logger: silentLogger(), clock })
  t.teardown(() => issuer.stop())
  await issuer.start()
  issuer.setServices(['b'])
  await issuer.settled()
  for (const f of ['cert.pem', 'key.pem', 'bundle.pem']) {
    t.ok(lstatSync(join(dir, f)).isSymbolicLink(), `${f} is a symlink`)
    t.equal(readlinkSync(join(dir, f)), join('..data', f))
  }
  t.equal(lstatSync(join(dir, 'key.pem')).mode & 0o777, 0o777, 'the link itself')
  const gen = readlinkSync(join(dir, '..data'))
  t.equal(lstatSync(join(dir, gen, 'key.pem')).mode & 0o777, 0o600, 'the key in its generation is 0600')

  // Renewals keep the current and the previous generation only.
  for (let i = 0; i < 3; i++) {
    await clock.advance(issuer.identity('b')!.renewAt! - clock.wallNow() + 1)
    await issuer.settled()
  }
  const gens = readdirSync(dir).filter((f) => f.startsWith('..gen-'))
  t.equal(gens.length, 2, `two generations kept: ${gens.join(', ')}`)
  t.ok(gens.includes(readlinkSync(join(dir, '..data'))))
  t.same(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file left',
  )

  // Plain files (an earlier layout): the next write moves them into a generation first.
  const plainDir = join(tls, 'services', 'c')
  mkdirSync(plainDir, { recursive: true })
  writeFileSync(join(plainDir, 'cert.pem'), 'old cert')
  writeFileSync(join(plainDir, 'key.pem'), 'old key')
  issuer.setServices(['b', 'c'])
  await issuer.settled()
  t.ok(lstatSync(join(plainDir, 'cert.pem')).isSymbolicLink(), 'the plain file became a symlink')
  t.match(readFileSync(join(plainDir, 'cert.pem'), 'utf8'), /BEGIN CERTIFICATE/, 'and names the new leaf')
  t.equal(readdirSync(plainDir).filter((f) => f.startsWith('..gen-')).length, 2, 'the adopted plain files are the previous generation')
})
