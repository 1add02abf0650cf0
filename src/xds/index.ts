/**
 * Public API of the xDS server. Everything not listed here is internal.
 *
 * @example
 *   import { XdsServer, envoyBootstrap } from './xds/index.js'
 */
export { XdsServer } from './server.js'
export { setGrpcLogger } from './grpc.js'
export type { XdsServerOptions, XdsServerComponents, XdsDebugInfo, XdsClientDebug, XdsTypeDebug, IdentityView } from './server.js'
export { envoyBootstrap, grpcBootstrap } from './bootstrap.js'
export { nodeKindOf, clusterName } from './resources.js'
export { validateResource } from './validate.js'
export { formatInboundLabel, parseInboundLabel } from './inbound-label.js'
