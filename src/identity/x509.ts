/**
 * X.509 for Shoal's identities, on @peculiar/x509 over Node's WebCrypto (no hand-built
 * ASN.1). The only file that imports the library. Three kinds of certificate, all EC P-256
 * with ECDSA SHA-256, shaped by the X509-SVID spec
 * (https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md) and RFC 5280:
 *
 * | kind | basic constraints | key usage (critical) | URI SAN | other |
 * |---|---|---|---|---|
 * | root | CA, path length 1 (critical) | keyCertSign, cRLSign | `spiffe://TD` | self-signed |
 * | intermediate | CA, path length 0 (critical) | keyCertSign, cRLSign | `spiffe://TD` | optional URI name constraint on TD (critical, RFC 5280 4.2.1.10) |
 * | leaf | not a CA (critical) | digitalSignature | `spiffe://TD/svc/NAME`, the only URI | EKU serverAuth + clientAuth |
 *
 * Every certificate carries a subject key identifier; issued ones an authority key
 * identifier. Serial numbers are 16 random bytes, positive (RFC 5280 4.1.2.2).
 */
// The library resolves its parts through tsyringe, which needs the Reflect metadata API
// loaded first (the library's README). ES modules evaluate imports in order.
import 'reflect-metadata'
import { randomBytes, webcrypto } from 'node:crypto'
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  PemConverter,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
  cryptoProvider,
} from '@peculiar/x509'
import { AsnConvert } from '@peculiar/asn1-schema'
import { GeneralName, GeneralSubtree, GeneralSubtrees, NameConstraints, id_ce_nameConstraints } from '@peculiar/asn1-x509'
import { ShoalError } from '../errors.js'
import { trustDomainId } from './spiffe.js'

// The library's types name the DOM's CryptoKey; Node's are the same objects.
type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair
cryptoProvider.set(webcrypto as unknown as Parameters<typeof cryptoProvider.set>[0])

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const

/** An EC P-256 key pair made here; `privateKey` is extractable so it can be written to its file. */
export function generateKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']) as Promise<CryptoKeyPair>
}

/** A private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), what Node's TLS and gRPC C-core read. */
export async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key)
  return PemConverter.encode(der, 'PRIVATE KEY')
}

/**
 * Imports a PKCS#8 PEM EC P-256 private key for signing (not extractable again). Throws
 * SHOAL_ERR_PEM naming `where` when the text holds no such key.
 */
export async function importSigningKey(pem: string, where: string): Promise<CryptoKey> {
  const blocks = pemBlocks(pem, where).filter((b) => b.type === 'PRIVATE KEY')
  const first = blocks[0]
  if (first === undefined) {
    const hint = /BEGIN EC PRIVATE KEY/.test(pem) ? ' (a SEC1 "EC PRIVATE KEY": convert it with `openssl pkcs8 -topk8 -nocrypt`)' : ''
    throw new ShoalError('SHOAL_ERR_PEM', `${where}: holds no PKCS#8 "PRIVATE KEY" block${hint}`)
  }
  try {
    return await webcrypto.subtle.importKey('pkcs8', first.der, KEY_ALGORITHM, false, ['sign'])
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_PEM', `${where}: not an EC P-256 private key (${(err as Error).message})`, { cause: err })
  }
}

/** One PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`) and its DER bytes. */
export interface PemBlock {
  type: string
  der: Uint8Array
}

/** The PEM blocks of `text`, in order. Throws SHOAL_ERR_PEM naming `where` when it is not PEM at all. */
export function pemBlocks(text: string, where: string): PemBlock[] {
  let structs: ReturnType<typeof PemConverter.decodeWithHeaders>
  try {
    structs = PemConverter.decodeWithHeaders(text)
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_PEM', `${where}: not PEM (${(err as Error).message})`, { cause: err })
  }
  return structs.map((s) => ({ type: s.type, der: new Uint8Array(s.rawData) }))
}

/** Certificates as PEM text, one block each, in the given order. */
export function certificatesPem(ders: readonly Uint8Array[]): string {
  return ders.map((d) => PemConverter.encode(d, 'CERTIFICATE')).join('\n') + '\n'
}

/** What Shoal reads out of a certificate: for verification, for the agent's log and for `shoal ca inspect`. */
export interface CertificateInfo {
  der: Uint8Array
  subject: string
  issuer: string
  /** Hexadecimal. */
  serial: string
  notBefore: Date
  notAfter: Date
  /** Every URI SAN, in order (an X509-SVID has exactly one, its SPIFFE ID). */
  uris: string[]
  /** Every other SAN as `type:value`. */
  otherNames: string[]
  /** Basic constraints: a CA, and its path length limit when set. */
  ca: boolean
  pathLength?: number
  /** Key usage names (`keyCertSign`, `digitalSignature`, ...); empty when the extension is absent. */
  keyUsage: string[]
  /** Extended key usage names or OIDs. */
  extKeyUsage: string[]
  /** Permitted URI name constraints (hosts), when the certificate carries name constraints. */
  permittedUris?: string[]
  /** Extensions marked critical that Shoal does not read (a verifier that does not know them must refuse the chain). */
  unknownCritical: string[]
  /** `EC P-256`, `RSA 2048`, ... */
  keyAlgorithm: string
  /** SHA-256 of the DER, hexadecimal. */
  fingerprint: string
}

const KNOWN_EXTENSIONS = new Set(['2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.17', '2.5.29.14', '2.5.29.35', id_ce_nameConstraints])
const EKU_NAMES: Record<string, string> = { [ExtendedKeyUsage.serverAuth]: 'serverAuth', [ExtendedKeyUsage.clientAuth]: 'clientAuth' }

/** Reads a DER certificate. Throws SHOAL_ERR_PEM naming `where` when it does not parse. */
export async function describeCertificate(der: Uint8Array, where: string): Promise<CertificateInfo> {
  let cert: X509Certificate
  try {
    cert = new X509Certificate(der)
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_PEM', `${where}: not an X.509 certificate (${(err as Error).message})`, { cause: err })
  }
  try {
    const info: CertificateInfo = {
      der,
      subject: cert.subject,
      issuer: cert.issuer,
      serial: cert.serialNumber,
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      uris: [],
      otherNames: [],
      ca: false,
      keyUsage: [],
      extKeyUsage: [],
      unknownCritical: [],
      keyAlgorithm: keyAlgorithmOf(cert.publicKey.algorithm),
      fingerprint: Buffer.from(await webcrypto.subtle.digest('SHA-256', der)).toString('hex'),
    }
    for (const ext of cert.extensions) {
      if (ext instanceof BasicConstraintsExtension) {
        info.ca = ext.ca
        if (ext.pathLength !== undefined) info.pathLength = ext.pathLength
      } else if (ext instanceof KeyUsagesExtension) {
        info.keyUsage = Object.entries(KeyUsageFlags)
          .filter(([, bit]) => typeof bit === 'number' && (ext.usages & bit) !== 0)
          .map(([name]) => name)
      } else if (ext instanceof ExtendedKeyUsageExtension) {
        info.extKeyUsage = ext.usages.map((u) => EKU_NAMES[String(u)] ?? String(u))
      } else if (ext instanceof SubjectAlternativeNameExtension) {
        for (const n of ext.names.items) {
          if (n.type === 'url') info.uris.push(n.value)
          else info.otherNames.push(`${n.type}:${n.value}`)
        }
      } else if (ext.type === id_ce_nameConstraints) {
        const nc = AsnConvert.parse(ext.value, NameConstraints)
        info.permittedUris = (nc.permittedSubtrees ?? []).flatMap((s) =>
          s.base.uniformResourceIdentifier !== undefined ? [s.base.uniformResourceIdentifier] : [],
        )
      } else if (ext.critical && !KNOWN_EXTENSIONS.has(ext.type)) {
        info.unknownCritical.push(ext.type)
      }
    }
    return info
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_PEM', `${where}: a certificate extension does not parse (${(err as Error).message})`, { cause: err })
  }
}

function keyAlgorithmOf(alg: { name: string; namedCurve?: string; modulusLength?: number }): string {
  if (alg.name === 'ECDSA' || alg.name === 'ECDH') return `EC ${alg.namedCurve ?? '?'}`
  if (alg.modulusLength !== undefined) return `RSA ${alg.modulusLength}`
  return alg.name
}

/** A positive 128-bit serial number in hexadecimal (RFC 5280 4.1.2.2: positive, at most 20 octets). */
function serialNumber(): string {
  const b = randomBytes(16)
  b[0] = (b[0]! & 0x7f) | 0x01
  return b.toString('hex')
}

type NameParts = Array<Record<string, string[]>>

function name(cn: string, trustDomain: string): NameParts {
  return [{ CN: [cn] }, { O: ['Shoal'] }, { OU: [trustDomain] }]
}

/** What every certificate made here needs: its validity and, for issued ones, the issuer. */
interface Validity {
  notBefore: Date
  notAfter: Date
}

/** The issuer of a certificate: its certificate (DER) and its private key. */
export interface Issuer {
  der: Uint8Array
  key: CryptoKey
}

/** A self-signed root for a trust domain; returns its DER. */
export async function createRoot(opts: Validity & { trustDomain: string; keys: CryptoKeyPair }): Promise<Uint8Array> {
  const cert = await X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: name(`Shoal root CA ${opts.trustDomain}`, opts.trustDomain),
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    keys: opts.keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new BasicConstraintsExtension(true, 1, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      new SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(opts.trustDomain) }]),
      await SubjectKeyIdentifierExtension.create(opts.keys.publicKey),
    ],
  })
  return new Uint8Array(cert.rawData)
}

/**
 * A per-node intermediate CA (path length 0) signed by `issuer`; returns its DER. With
 * `nameConstraint`, it may only sign SPIFFE IDs of its trust domain (a URI name constraint,
 * which many TLS stacks reject: off by default, per the X509-SVID spec 4.2).
 */
export async function createIntermediate(
  opts: Validity & { trustDomain: string; node: string; publicKey: CryptoKey; issuer: Issuer; nameConstraint: boolean },
): Promise<Uint8Array> {
  const extensions: Extension[] = [
    new BasicConstraintsExtension(true, 0, true),
    new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
    new SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(opts.trustDomain) }]),
  ]
  if (opts.nameConstraint) {
    // RFC 5280 4.2.1.10: a URI constraint names the host part; `spiffe://TD/...` has host TD.
    const nc = new NameConstraints({
      permittedSubtrees: new GeneralSubtrees([
        new GeneralSubtree({ base: new GeneralName({ uniformResourceIdentifier: opts.trustDomain }) }),
      ]),
    })
    extensions.push(new Extension(id_ce_nameConstraints, true, AsnConvert.serialize(nc)))
  }
  return issue(opts, name(`Shoal node ${opts.node}`, opts.trustDomain), extensions)
}

/** A leaf (an X509-SVID) for one service, signed by `issuer`; returns its DER. */
export async function createLeaf(
  opts: Validity & { trustDomain: string; service: string; spiffeId: string; publicKey: CryptoKey; issuer: Issuer },
): Promise<Uint8Array> {
  return issue(opts, name(opts.service, opts.trustDomain), [
    new BasicConstraintsExtension(false, undefined, true),
    new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
    new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth]),
    new SubjectAlternativeNameExtension([{ type: 'url', value: opts.spiffeId }]),
  ])
}

type IssuerParts = { name: X509Certificate['subjectName']; aki: AuthorityKeyIdentifierExtension }
/** What every certificate an issuer signs takes from it, parsed once per issuer (a rotation signs 100 leaves). */
const issuerParts = new WeakMap<Uint8Array, Promise<IssuerParts>>()

function partsOf(der: Uint8Array): Promise<IssuerParts> {
  let p = issuerParts.get(der)
  if (p === undefined) {
    const cert = new X509Certificate(der)
    // The issuer's name exactly as encoded in its certificate: verifiers match it byte for byte.
    p = AuthorityKeyIdentifierExtension.create(cert.publicKey).then((aki) => ({ name: cert.subjectName, aki }))
    issuerParts.set(der, p)
  }
  return p
}

async function issue(
  opts: Validity & { publicKey: CryptoKey; issuer: Issuer },
  subject: NameParts,
  extensions: Extension[],
): Promise<Uint8Array> {
  const issuer = await partsOf(opts.issuer.der)
  const cert = await X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject,
    issuer: issuer.name,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    publicKey: opts.publicKey,
    signingKey: opts.issuer.key,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [...extensions, await SubjectKeyIdentifierExtension.create(opts.publicKey), issuer.aki],
  })
  return new Uint8Array(cert.rawData)
}
