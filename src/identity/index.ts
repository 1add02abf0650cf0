/**
 * Public API of service identity: the CA tooling (`shoal ca`), the agent's issuer and the
 * SPIFFE ID rules. Everything not listed here is internal.
 *
 * @example
 *   import { IdentityIssuer, initCa, makeIntermediate, inspectChain, spiffeIdOf } from './identity/index.js'
 */
export { IdentityIssuer, DEFAULT_LEAF_TTL_MS } from './issuer.js'
export type { IdentityIssuerOptions, IdentityIssuerComponents, IdentityIssuerEvents } from './issuer.js'
export { initCa, makeIntermediate, DEFAULT_ROOT_TTL_MS, DEFAULT_INTERMEDIATE_TTL_MS } from './ca.js'
export type { InitCaOptions, InitCaResult, IntermediateOptions, IntermediateResultFiles } from './ca.js'
export { inspectChain } from './inspect.js'
export type { InspectResult } from './inspect.js'
export { IntermediateProblem, loadIntermediate, signedBy, keyMatches, readCertificates } from './chain.js'
export type { Intermediate, IntermediateResult } from './chain.js'
// What needs no X.509 stack (names.ts: imported by xDS and the agent without loading @peculiar),
// re-exported whole so that the two lists cannot drift apart.
export * from './names.js'
