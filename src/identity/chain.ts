/**
 * Reading and checking chains: who signed whom (OpenSSL through node:crypto), and the
 * agent's intermediate with its key and root bundle, checked the way a verifier will check
 * the leaves it signs (RFC 5280 6.1 in the small: validity, CA and key usage, signature by a
 * root of the bundle; plus the SPIFFE trust domain and that the key is the certificate's).
 */
import { X509Certificate as NodeX509, createPrivateKey, createPublicKey } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { INTERMEDIATE_FILES } from './files.js'
import { parseSpiffeId } from './spiffe.js'
import { describeCertificate, importSigningKey, pemBlocks, type CertificateInfo } from './x509.js'
import { isShoalError } from '../errors.js'
import type { webcrypto } from 'node:crypto'

/** True when `parent`'s key signed `child` and `parent`'s subject is `child`'s issuer. */
export function signedBy(child: Uint8Array, parent: Uint8Array): boolean {
  try {
    const c = new NodeX509(child)
    const p = new NodeX509(parent)
    return c.checkIssued(p) && c.verify(p.publicKey)
  } catch {
    return false
  }
}

/** True when the PKCS#8 PEM private key `keyPem` is the key of certificate `der`. */
export function keyMatches(der: Uint8Array, keyPem: string): boolean {
  try {
    const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' })
    const fromCert = new NodeX509(der).publicKey.export({ type: 'spki', format: 'der' })
    return fromKey.equals(fromCert)
  } catch {
    return false
  }
}

/** Every certificate of a PEM text, read. Throws SHOAL_ERR_PEM naming `where`. */
export async function readCertificates(text: string, where: string): Promise<CertificateInfo[]> {
  const blocks = pemBlocks(text, where).filter((b) => b.type === 'CERTIFICATE')
  return Promise.all(blocks.map((b, i) => describeCertificate(b.der, blocks.length > 1 ? `${where} certificate ${i + 1}` : where)))
}

/** Why the agent's intermediate is unusable: the label of `shoal_identity_intermediate_problems_total`. */
export const IntermediateProblem = {
  missing: 'missing',
  unreadable: 'unreadable',
  invalid: 'invalid',
  expired: 'expired',
  notYetValid: 'not-yet-valid',
  notACa: 'not-a-ca',
  wrongTrustDomain: 'wrong-trust-domain',
  notSignedByBundle: 'not-signed-by-bundle',
  keyMismatch: 'key-mismatch',
} as const
export type IntermediateProblem = (typeof IntermediateProblem)[keyof typeof IntermediateProblem]

/** A usable intermediate: what the agent signs leaves with. */
export interface Intermediate {
  trustDomain: string
  cert: CertificateInfo
  /** The signing key (not extractable). */
  key: webcrypto.CryptoKey
  /** The roots of `bundle.pem` (at least one, and one of them signed `cert`). */
  roots: CertificateInfo[]
  /** `bundle.pem` as read. */
  bundlePem: string
}

export type IntermediateResult = { ok: true; intermediate: Intermediate } | { ok: false; reason: IntermediateProblem; message: string }

const fail = (reason: IntermediateProblem, message: string): IntermediateResult => ({ ok: false, reason, message })
const isFailure = (x: unknown): x is IntermediateResult =>
  typeof x === 'object' && x !== null && 'ok' in x && (x as { ok: unknown }).ok === false

const iso = (d: Date) => d.toISOString().replace('.000Z', 'Z')

/**
 * Reads and checks `DIR/intermediate.pem`, `intermediate-key.pem` and `bundle.pem` for
 * `trustDomain` at wall time `nowMs`. Never throws: a problem comes back as a reason and one
 * message naming the file and what to do.
 */
export async function loadIntermediate(dir: string, trustDomain: string, nowMs: number): Promise<IntermediateResult> {
  const path = (f: string) => join(dir, f)
  const remedy = `make one with \`shoal ca intermediate --node NODE --ca ROOT_DIR --out ${dir}\``
  const texts: Record<keyof typeof INTERMEDIATE_FILES, string> = { cert: '', key: '', bundle: '' }
  for (const k of ['cert', 'key', 'bundle'] as const) {
    try {
      texts[k] = await readFile(path(INTERMEDIATE_FILES[k]), 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return fail('missing', `${path(INTERMEDIATE_FILES[k])} is missing: ${remedy}`)
      return fail('unreadable', `${path(INTERMEDIATE_FILES[k])} cannot be read (${(err as Error).message})`)
    }
  }
  // Each file read on its own, so a failure names it and the remedy that fits it.
  const bundleRemedy = "copy root.pem from the root's folder (`shoal ca intermediate` writes it)"
  const parse = async <T>(read: () => Promise<T>, remedyFor: string): Promise<T | IntermediateResult> => {
    try {
      return await read()
    } catch (err) {
      // Our readers name the file; anything else thrown by the parsers still gets the folder.
      const what = isShoalError(err) ? err.message : `${dir}: ${(err as Error).message}`
      return fail('invalid', `${what}: ${remedyFor}`)
    }
  }
  const certs = await parse(() => readCertificates(texts.cert, path(INTERMEDIATE_FILES.cert)), remedy)
  if (isFailure(certs)) return certs
  const roots = await parse(() => readCertificates(texts.bundle, path(INTERMEDIATE_FILES.bundle)), bundleRemedy)
  if (isFailure(roots)) return roots
  const key = await parse(() => importSigningKey(texts.key, path(INTERMEDIATE_FILES.key)), remedy)
  if (isFailure(key)) return key
  const cert = certs[0]
  const certFile = path(INTERMEDIATE_FILES.cert)
  if (cert === undefined) return fail('invalid', `${certFile} holds no certificate: ${remedy}`)
  if (roots.length === 0) return fail('invalid', `${path(INTERMEDIATE_FILES.bundle)} holds no certificate: ${bundleRemedy}`)
  if (!keyMatches(cert.der, texts.key)) {
    return fail(
      'key-mismatch',
      `${path(INTERMEDIATE_FILES.key)} is not the key of ${certFile}: write both from one \`shoal ca intermediate\` run`,
    )
  }
  if (!cert.ca || (cert.keyUsage.length > 0 && !cert.keyUsage.includes('keyCertSign'))) {
    return fail('not-a-ca', `${certFile} (${cert.subject}) is not a CA certificate that may sign: ${remedy}`)
  }
  if (nowMs >= cert.notAfter.getTime()) {
    return fail('expired', `${certFile} (${cert.subject}) expired at ${iso(cert.notAfter)}: ${remedy}`)
  }
  if (nowMs < cert.notBefore.getTime()) {
    return fail('not-yet-valid', `${certFile} (${cert.subject}) is valid only from ${iso(cert.notBefore)}: check this host's clock`)
  }
  const td = trustDomainProblem(cert, trustDomain)
  if (td) return fail('wrong-trust-domain', `${certFile}: ${td}`)
  const signer = roots.find((r) => signedBy(cert.der, r.der))
  if (signer === undefined) {
    return fail(
      'not-signed-by-bundle',
      `${certFile} (issuer ${cert.issuer}) is not signed by a root of ${path(INTERMEDIATE_FILES.bundle)}: put the root that signed it there`,
    )
  }
  if (nowMs >= signer.notAfter.getTime()) {
    return fail(
      'expired',
      `the root ${signer.subject} in ${path(INTERMEDIATE_FILES.bundle)} expired at ${iso(signer.notAfter)}: make a new root and intermediates`,
    )
  }
  return { ok: true, intermediate: { trustDomain, cert, key, roots, bundlePem: texts.bundle } }
}

/** Why `cert` may not sign for `trustDomain`: its own SPIFFE ID or its URI name constraints name another one. */
function trustDomainProblem(cert: CertificateInfo, trustDomain: string): string | undefined {
  const remedy = `the agent's --cluster gives trust domain "${trustDomain}"; use a root made with \`shoal ca init --cluster ${trustDomain}\` or run the agent with that root's cluster`
  for (const uri of cert.uris) {
    const id = parseSpiffeId(uri)
    if (typeof id !== 'string' && id.trustDomain !== trustDomain) return `it is for trust domain "${id.trustDomain}"; ${remedy}`
  }
  // RFC 5280 4.2.1.10: a URI constraint names a host; one with a leading period any host below it.
  const permitted = cert.permittedUris ?? []
  const allows = (c: string) => (c.startsWith('.') ? trustDomain.endsWith(c) : trustDomain === c)
  if (permitted.length > 0 && !permitted.some(allows)) {
    return `its name constraints permit only URIs of ${permitted.join(', ')}; ${remedy}`
  }
  return undefined
}
