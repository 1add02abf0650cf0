/**
 * Public API of the debug endpoint. Everything not listed here is internal.
 *
 * @example
 *   import { HttpServer, registerGossipMetrics } from './http/index.js'
 */
export { HttpServer } from './server.js'
export type { HttpServerOptions, HttpServerComponents, MembershipView, LocalControl } from './server.js'
export { registerGossipMetrics, registerCatalogMetrics, registerRegistryMetrics, registerBuildInfo, metricsTable } from './metrics.js'
export type { RegistryMetricsSource } from './metrics.js'
export type { StateView, MemberView, MembersView, InstanceView, ServiceView, ServicesView, OneServiceView, KeysView } from './views.js'
