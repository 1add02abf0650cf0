/**
 * Public API of the DNS interface. Everything not listed here is internal.
 *
 * @example
 *   import { DnsServer } from './dns/index.js'
 */
export { DnsServer } from './server.js'
export type { DnsServerOptions, DnsServerComponents } from './server.js'
