/**
 * SPIFFE IDs as Shoal uses them (SPIFFE-ID spec,
 * https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md):
 * the trust domain is the cluster name in lower case; a service's ID is
 * `spiffe://TRUST_DOMAIN/svc/NAME`; a signing certificate (root, intermediate) carries the
 * trust domain's ID, `spiffe://TRUST_DOMAIN`, with no path (X509-SVID spec, section 3.2).
 *
 * @example
 *   trustDomainOf('Prod-EU')            // 'prod-eu'
 *   spiffeIdOf('prod-eu', 'web')         // 'spiffe://prod-eu/svc/web'
 *   parseSpiffeId('spiffe://prod-eu/svc/web') // { trustDomain: 'prod-eu', path: '/svc/web' }
 */

/** A parsed SPIFFE ID; `path` is '' for a trust domain's own ID. */
export interface SpiffeId {
  trustDomain: string
  path: string
}

/** Trust domain characters (SPIFFE-ID spec 2.1): lower-case letters, digits, dots, dashes, underscores. */
const TRUST_DOMAIN = /^[a-z0-9._-]+$/
/** Path segment characters (SPIFFE-ID spec 2.2): letters, digits, dots, dashes, underscores. */
const SEGMENT = /^[A-Za-z0-9._-]+$/
/** The spec's limit on a SPIFFE ID as a URI, in bytes. */
const MAX_ID_BYTES = 2048

/** The trust domain of a cluster: its name (`--cluster`, `[A-Za-z0-9._-]{1,64}`) in lower case. */
export function trustDomainOf(cluster: string): string {
  return cluster.toLowerCase()
}

/** `spiffe://TRUST_DOMAIN/svc/NAME`: the identity of a service (a normalised name, `[a-z0-9._-]`). */
export function spiffeIdOf(trustDomain: string, service: string): string {
  return `spiffe://${trustDomain}/svc/${service}`
}

/** `spiffe://TRUST_DOMAIN/node/NAME`: the identity of a node itself (its Envoy), apart from its services. */
export function nodeSpiffeIdOf(trustDomain: string, node: string): string {
  return `spiffe://${trustDomain}/node/${node}`
}

/** `spiffe://TRUST_DOMAIN`: the ID of a signing certificate. */
export function trustDomainId(trustDomain: string): string {
  return `spiffe://${trustDomain}`
}

/** Why `td` is not a trust domain, or undefined when it is one. */
export function trustDomainProblem(td: string): string | undefined {
  if (td === '') return 'the trust domain is empty'
  if (!TRUST_DOMAIN.test(td)) return `trust domain "${td}" has characters outside [a-z0-9._-]`
  return undefined
}

/** Why `name` cannot be the last segment of a service's SPIFFE ID, or undefined when it can. */
export function serviceNameProblem(name: string): string | undefined {
  if (!SEGMENT.test(name)) return `service name "${name}" has characters outside [A-Za-z0-9._-] or is empty`
  if (name === '.' || name === '..') return `service name "${name}" is a relative path segment`
  return undefined
}

/**
 * Parses a SPIFFE ID. Returns a readable reason instead when `uri` breaks a rule of the
 * SPIFFE-ID spec (scheme, trust domain characters, no port, user info, query or fragment;
 * path segments of [A-Za-z0-9._-], none empty, `.` or `..`; no trailing slash; at most 2048 bytes).
 */
export function parseSpiffeId(uri: string): SpiffeId | string {
  if (Buffer.byteLength(uri) > MAX_ID_BYTES) return `longer than ${MAX_ID_BYTES} bytes`
  if (!uri.startsWith('spiffe://')) return `"${uri}" does not start with spiffe://`
  const rest = uri.slice('spiffe://'.length)
  const slash = rest.indexOf('/')
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash)
  const path = slash < 0 ? '' : rest.slice(slash)
  const td = trustDomainProblem(trustDomain)
  if (td) return `"${uri}": ${td}`
  if (path === '') return { trustDomain, path }
  const segments = path.slice(1).split('/')
  for (const s of segments) {
    if (s === '') return `"${uri}": empty path segment (or a trailing slash)`
    if (s === '.' || s === '..') return `"${uri}": relative path segment "${s}"`
    if (!SEGMENT.test(s)) return `"${uri}": path segment "${s}" has characters outside [A-Za-z0-9._-]`
  }
  return { trustDomain, path }
}
