/**
 * Contracts of service identity: what the agent holds for each local service, and the
 * `--tls-mode` values. The identity folder knows nothing about the catalog, gossip or xDS:
 * the agent hands it the names of the local services, and readers (files on disk for
 * proxyless gRPC; later an SDS server for Envoy) take the identities it issues.
 */

/**
 * `--tls-mode`: whether xDS still serves plain-text resources. `off`: plain text only;
 * `permissive`: TLS resources where identities exist, plain text still accepted;
 * `strict`: TLS only.
 */
export const TlsMode = { off: 'off', permissive: 'permissive', strict: 'strict' } as const
export type TlsMode = (typeof TlsMode)[keyof typeof TlsMode]

/**
 * One local service's identity: an X509-SVID leaf, its key and the roots. The key is made on
 * this host and never leaves it: it is written to `files.key` (mode 0600) and held here for a
 * local reader (an SDS server serving the local Envoy).
 *
 * @example
 *   issuer.on('change', (id) => log.info({ service: id.service, until: new Date(id.notAfter) }, 'renewed'))
 */
export interface ServiceIdentity {
  /** The service name (normalised, `[a-z0-9._-]`); `node:NAME` for the node's own identity. */
  service: string
  /** Set on the node's own identity (`spiffe://TRUST_DOMAIN/node/NAME`): the node name. */
  node?: string
  /** `spiffe://TRUST_DOMAIN/svc/NAME` (`/node/NAME` for a node), the leaf's only URI SAN. */
  spiffeId: string
  /** PEM: the leaf, then the intermediate that signed it (what a TLS peer must send). */
  certChainPem: string
  /** PEM (PKCS#8): the leaf's private key. */
  keyPem: string
  /** PEM: the roots a peer's chain must reach (`bundle.pem`). */
  bundlePem: string
  /** Validity, epoch ms (notBefore is set back 5 minutes for peers whose clocks are behind). */
  notBefore: number
  notAfter: number
  /** When it was issued and when it will be renewed (two thirds of its life), epoch ms; renewAt is undefined when the leaf ends with the intermediate and only a new intermediate can extend it. */
  issuedAt: number
  renewAt: number | undefined
  /** Where its files are. */
  files: { cert: string; key: string; bundle: string }
}

/** What the issuer says about itself (for logs, /debug and tests). */
export interface IdentityStatus {
  trustDomain: string
  /** The intermediate in use, when there is one. */
  intermediate?: { subject: string; notAfter: number; fingerprint: string }
  /** Why there is none (or why the files on disk were rejected), when that is so. */
  problem?: { reason: string; message: string }
  /** Services with a leaf. */
  services: string[]
}
