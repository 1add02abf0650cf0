/**
 * The CA tooling behind `shoal ca init` and `shoal ca intermediate`: a long-lived root whose
 * key is meant to leave the machine and only signs intermediates, and one short-lived
 * intermediate per node, which the agent on that node signs its leaves with. No server is
 * involved: a verifier follows leaf -> intermediate -> root and trusts the root.
 */
import { access, mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ShoalError } from '../errors.js'
import { nodeNameProblem, quoteText } from '../text.js'
import { keyMatches, readCertificates } from './chain.js'
import { CERT_MODE, INTERMEDIATE_FILES, KEY_MODE, ROOT_FILES, writeAtomic, writeFileSet } from './files.js'
import { parseSpiffeId, trustDomainOf, trustDomainProblem } from './spiffe.js'
import {
  certificatesPem,
  createIntermediate,
  createRoot,
  generateKeyPair,
  importSigningKey,
  privateKeyPem,
  type CertificateInfo,
} from './x509.js'

/** The default lifetimes: a root 10 years, an intermediate 30 days. */
export const DEFAULT_ROOT_TTL_MS = 3650 * 86_400_000
export const DEFAULT_INTERMEDIATE_TTL_MS = 30 * 86_400_000
/** How far notBefore is set back, for verifiers whose clocks are behind (no clock sync is assumed). */
export const BACKDATE_MS = 5 * 60_000

export interface InitCaOptions {
  /** The cluster name (`--cluster` of the agents); lower-cased, it is the SPIFFE trust domain. */
  cluster: string
  outDir: string
  /** Lifetime in ms (default 10 years). */
  ttlMs?: number
  /** Replace an existing root in `outDir` (default: refuse). */
  force?: boolean
  /** Wall time, ms (default Date.now()). */
  now?: number
}

/** What `shoal ca init` wrote. */
export interface InitCaResult {
  trustDomain: string
  certFile: string
  keyFile: string
  root: CertificateInfo
}

/**
 * Makes a self-signed root (EC P-256) and writes `root.pem` and `root-key.pem` (0600) to
 * `outDir`. Throws SHOAL_ERR_CA when a root is there already (without `force`), and
 * SHOAL_ERR_CONFIG for a cluster name that is no trust domain.
 */
export async function initCa(opts: InitCaOptions): Promise<InitCaResult> {
  const trustDomain = trustDomainOf(opts.cluster)
  const bad = trustDomainProblem(trustDomain)
  if (bad || trustDomain.length > 64)
    throw new ShoalError('SHOAL_ERR_CONFIG', `--cluster: "${opts.cluster}": ${bad ?? 'longer than 64 characters'}`)
  const certFile = join(opts.outDir, ROOT_FILES.cert)
  const keyFile = join(opts.outDir, ROOT_FILES.key)
  if (!opts.force) {
    for (const f of [certFile, keyFile]) {
      if (await exists(f))
        throw new ShoalError(
          'SHOAL_ERR_CA',
          `${f} exists: a new root would orphan every intermediate it signed; pass --force to replace it`,
        )
    }
  }
  const now = opts.now ?? Date.now()
  // The root's folder holds its key: private from the start.
  await mkdir(opts.outDir, { recursive: true, mode: 0o700 })
  const keys = await generateKeyPair()
  const der = await createRoot({
    trustDomain,
    keys,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + (opts.ttlMs ?? DEFAULT_ROOT_TTL_MS)),
  })
  await writeAtomic(keyFile, await privateKeyPem(keys.privateKey), KEY_MODE)
  await writeAtomic(certFile, certificatesPem([der]), CERT_MODE)
  const [root] = await readCertificates(certificatesPem([der]), certFile)
  return { trustDomain, certFile, keyFile, root: root! }
}

export interface IntermediateOptions {
  /** The node (`--node` of its agent), named in the certificate's subject. */
  node: string
  /** The folder holding `root.pem` and `root-key.pem`. */
  caDir: string
  /** The node's `--tls-dir`. */
  outDir: string
  /** Lifetime in ms (default 30 days); cut to the root's end. */
  ttlMs?: number
  /** Add a URI name constraint on the trust domain (off by default: many TLS stacks reject it). */
  nameConstraint?: boolean
  now?: number
}

/** What `shoal ca intermediate` wrote. */
export interface IntermediateResultFiles {
  trustDomain: string
  certFile: string
  keyFile: string
  bundleFile: string
  intermediate: CertificateInfo
  /** The lifetime asked for did not fit before the root's end: the certificate ends with the root. */
  cutToRoot: boolean
}

/**
 * Signs a per-node intermediate with the root in `caDir` and writes `intermediate.pem`,
 * `intermediate-key.pem` (0600) and `bundle.pem` (the root) to `outDir`, replaced together as
 * one generation (files.ts), so a running agent that watches the folder picks them up.
 * Throws SHOAL_ERR_PEM or SHOAL_ERR_CA naming the root's files when they are unusable.
 */
export async function makeIntermediate(opts: IntermediateOptions): Promise<IntermediateResultFiles> {
  const nodeProblem = nodeNameProblem(opts.node)
  if (nodeProblem !== undefined) throw new ShoalError('SHOAL_ERR_CONFIG', `--node: ${quoteText(opts.node)} ${nodeProblem}`)
  const rootFile = join(opts.caDir, ROOT_FILES.cert)
  const rootKeyFile = join(opts.caDir, ROOT_FILES.key)
  const rootText = await readText(rootFile, 'the root certificate (from `shoal ca init`)')
  const rootKeyText = await readText(rootKeyFile, 'the root key (from `shoal ca init`; bring it back from offline storage)')
  const [root] = await readCertificates(rootText, rootFile)
  if (root === undefined) throw new ShoalError('SHOAL_ERR_PEM', `${rootFile} holds no certificate`)
  if (!root.ca) throw new ShoalError('SHOAL_ERR_CA', `${rootFile} (${root.subject}) is not a CA certificate`)
  if (!keyMatches(root.der, rootKeyText)) throw new ShoalError('SHOAL_ERR_CA', `${rootKeyFile} is not the key of ${rootFile}`)
  const trustDomain = root.uris.map(parseSpiffeId).find((id) => typeof id !== 'string' && id.path === '')
  if (trustDomain === undefined || typeof trustDomain === 'string') {
    throw new ShoalError(
      'SHOAL_ERR_CA',
      `${rootFile} names no trust domain (a URI SAN spiffe://TRUST_DOMAIN): make the root with \`shoal ca init\``,
    )
  }
  const now = opts.now ?? Date.now()
  if (now >= root.notAfter.getTime())
    throw new ShoalError('SHOAL_ERR_CA', `${rootFile} expired at ${root.notAfter.toISOString()}: make a new root`)
  const wanted = now + (opts.ttlMs ?? DEFAULT_INTERMEDIATE_TTL_MS)
  const notAfter = Math.min(wanted, root.notAfter.getTime())
  const rootKey = await importSigningKey(rootKeyText, rootKeyFile)
  const keys = await generateKeyPair()
  const der = await createIntermediate({
    trustDomain: trustDomain.trustDomain,
    node: opts.node,
    publicKey: keys.publicKey,
    issuer: { der: root.der, key: rootKey },
    nameConstraint: opts.nameConstraint === true,
    notBefore: new Date(Math.max(now - BACKDATE_MS, root.notBefore.getTime())),
    notAfter: new Date(notAfter),
  })
  const certFile = join(opts.outDir, INTERMEDIATE_FILES.cert)
  const keyFile = join(opts.outDir, INTERMEDIATE_FILES.key)
  const bundleFile = join(opts.outDir, INTERMEDIATE_FILES.bundle)
  // One generation (files.ts): a running agent never reads the new key with the old certificate.
  await writeFileSet(opts.outDir, [
    { name: INTERMEDIATE_FILES.key, data: await privateKeyPem(keys.privateKey), mode: KEY_MODE },
    { name: INTERMEDIATE_FILES.cert, data: certificatesPem([der]), mode: CERT_MODE },
    { name: INTERMEDIATE_FILES.bundle, data: certificatesPem([root.der]), mode: CERT_MODE },
  ])
  const [intermediate] = await readCertificates(certificatesPem([der]), certFile)
  return { trustDomain: trustDomain.trustDomain, certFile, keyFile, bundleFile, intermediate: intermediate!, cutToRoot: notAfter < wanted }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_CA', `${path}: cannot read ${what}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      cause: err,
    })
  }
}
