// Fuzz test of the files an operator hands the agent and `shoal ca inspect`: mutated
// intermediates, keys and bundles (bytes flipped inside the DER, truncated, blocks swapped,
// random text). Each is refused with a reason and a message naming the file, or accepted when
// the mutation left it valid; nothing throws past the readers, and an issuer over a mutated
// folder keeps running. SHOAL_FUZZ_CASES sets the number of cases per file (default 300).
import t from 'tap'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isShoalError } from '../src/errors.js'
import { IdentityIssuer, inspectChain, loadIntermediate } from '../src/identity/index.js'
import { certificatesPem, pemBlocks } from '../src/identity/x509.js'
import { silentLogger } from '../src/log.js'
import { makePki } from './lib/identity.js'
import { seeded } from './lib/random.js'

const CASES = Number(process.env.SHOAL_FUZZ_CASES ?? 300)
const FILES = ['intermediate.pem', 'intermediate-key.pem', 'bundle.pem'] as const

t.test(`${CASES} mutations of each file of --tls-dir`, async (t) => {
  const pki = await makePki(t, { cluster: 'fuzz', nodes: ['n1'] })
  const good = Object.fromEntries(FILES.map((f) => [f, readFileSync(join(pki.tlsDir('n1'), f), 'utf8')])) as Record<
    (typeof FILES)[number],
    string
  >
  const random = seeded(18)
  const dir = join(pki.base, 'fuzz')
  mkdirSync(dir)
  const reasons = new Map<string, number>()
  let accepted = 0
  for (const file of FILES) {
    for (let i = 0; i < CASES; i++) {
      for (const f of FILES) writeFileSync(join(dir, f), f === file ? mutate(good[f], random) : good[f])
      const what = `${file} case ${i}`
      let r: Awaited<ReturnType<typeof loadIntermediate>>
      try {
        r = await loadIntermediate(dir, 'fuzz', Date.now())
      } catch (err) {
        t.fail(`${what}: loadIntermediate threw ${(err as Error).stack}`)
        continue
      }
      if (r.ok) accepted++
      else {
        reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1)
        if (!r.message.includes(dir)) t.fail(`${what}: the message does not name the file: ${r.message}`)
      }
      if (file !== 'intermediate-key.pem') {
        try {
          await inspectChain(join(dir, file))
        } catch (err) {
          if (!isShoalError(err, 'SHOAL_ERR_PEM') && !isShoalError(err, 'SHOAL_ERR_CA'))
            t.fail(`${what}: inspect threw ${(err as Error).stack}`)
        }
      }
    }
  }
  t.ok(reasons.size >= 3, `refused for several reasons: ${JSON.stringify(Object.fromEntries(reasons))}, ${accepted} accepted`)

  // An issuer over the last mutated folder, and over a folder of random bytes: it runs, says why.
  writeFileSync(join(dir, 'intermediate.pem'), Buffer.from(Array.from({ length: 600 }, () => Math.floor(random() * 256))))
  const issuer = new IdentityIssuer({ dir, trustDomain: 'fuzz' }, { logger: silentLogger() })
  t.teardown(() => issuer.stop())
  await issuer.start()
  issuer.setServices(['web'])
  await issuer.settled()
  t.equal(issuer.status().intermediate, undefined)
  t.ok(issuer.status().problem, `says why: ${issuer.status().problem?.message}`)
  rmSync(join(dir, 'services'), { recursive: true, force: true })
})

/** One mutation of a PEM text: inside the DER of a block, or of the text itself. */
function mutate(pem: string, random: () => number): string {
  const n = (k: number) => Math.floor(random() * k)
  const blocks = pemBlocks(pem, 'fuzz')
  const der = blocks[0]?.der ?? new Uint8Array()
  const tag = blocks[0]?.type ?? 'CERTIFICATE'
  const rewrap = (d: Uint8Array) =>
    tag === 'CERTIFICATE' ? certificatesPem([d]) : `-----BEGIN ${tag}-----\n${Buffer.from(d).toString('base64')}\n-----END ${tag}-----\n`
  switch (n(8)) {
    case 0: {
      // Flip 1 to 4 bytes of the DER: lengths, tags, OIDs, signatures.
      const d = Uint8Array.from(der)
      for (let k = 0, m = 1 + n(4); k < m; k++) {
        const j = n(d.length)
        d[j] = d[j]! ^ (1 << n(8))
      }
      return rewrap(d)
    }
    case 1:
      return rewrap(der.slice(0, n(der.length)))
    case 2: {
      // A byte inserted: every length after it is wrong.
      const at = n(der.length)
      return rewrap(Uint8Array.from([...der.slice(0, at), n(256), ...der.slice(at)]))
    }
    case 3:
      return pem.slice(0, n(pem.length))
    case 4:
      return pem.replace(/[A-Za-z0-9+/]/, (c) => (c === 'A' ? 'B' : 'A')).replace('-----END', '-----END ')
    case 5:
      return (
        '-----BEGIN CERTIFICATE-----\n' +
        Buffer.from(Array.from({ length: n(400) }, () => n(256))).toString('base64') +
        '\n-----END CERTIFICATE-----\n'
      )
    case 6:
      return rewrap(Uint8Array.from(Array.from({ length: n(600) }, () => n(256))))
    default:
      return Array.from({ length: n(300) }, () => String.fromCharCode(n(128))).join('')
  }
}
