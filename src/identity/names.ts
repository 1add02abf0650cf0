/**
 * The part of service identity that needs no X.509 stack: SPIFFE IDs, where the identity
 * files live, `--tls-mode` and the contract types. xDS, the bootstraps and the agent's
 * configuration import these from here, so that a process loads @peculiar/x509 and its ASN.1
 * stack (a few MiB) only when it issues or reads certificates: the agent with `--tls-dir`
 * (a dynamic import of index.ts) and `shoal ca` (README "Memory"). index.ts re-exports all of it.
 *
 * @example
 *   import { leafPaths, spiffeIdOf, trustDomainOf } from '../identity/names.js'
 *   leafPaths('/run/shoal/tls', 'web').cert // '/run/shoal/tls/services/web/cert.pem'
 */
export { INTERMEDIATE_FILES, LEAF_FILES, NODE_DIR, ROOT_FILES, SERVICES_DIR, leafPaths, nodePaths } from './files.js'
export { nodeSpiffeIdOf, parseSpiffeId, spiffeIdOf, trustDomainId, trustDomainOf, trustDomainProblem } from './spiffe.js'
export type { SpiffeId } from './spiffe.js'
export { TlsMode } from './types.js'
export type { IdentityStatus, ServiceIdentity } from './types.js'
