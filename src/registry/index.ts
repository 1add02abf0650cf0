/**
 * Public API of the service catalog. Everything not listed here is internal.
 *
 * @example
 *   import { Catalog, GossipBridge, LocalServices, StaticSource } from './registry/index.js'
 */
export { Catalog } from './catalog.js'
export type { CatalogOptions, CatalogComponents, LocalRecord, OwnerDigest } from './catalog.js'
export { GossipBridge } from './bridge.js'
export type { GossipLike, GossipBridgeOptions, GossipBridgeStats } from './bridge.js'
export { LocalServices } from './local.js'
export type { HealthLike, LocalServicesOptions, LocalServicesStats } from './local.js'
export { ServicePortConflicts, compareServiceNames } from './conflicts.js'
export type { ServicePortConflict } from './conflicts.js'
export { RecordLimits, limitLabel } from './limits.js'
export type { RecordLimit, RecordLimitName } from './limits.js'
export { fitSpec, fitDetail } from './fit.js'
export type { FitResult, LimitProblem } from './fit.js'
export { REGISTRY_PROTOCOL, registryProtocolOf } from './wire.js'
export { StaticSource, parseStaticServices } from './static.js'
export type { StaticSourceOptions } from './static.js'
export { STATIC_FILE_SCHEMA, staticSchemaProblems } from './static-schema.js'
export { imageName, normaliseName, staticInstanceId } from './names.js'
export { portClashes } from './ports.js'
export type { PortClash, PortOfInstance } from './ports.js'
export { AuthzLabel, AUTHZ_DEFAULT_TIMEOUT_MS, authzLabels, authzOf } from './authz.js'
export type { AuthzRequest, AuthzSpec } from './authz.js'
export {
  ALLOW_LABEL,
  INBOUND_LABEL,
  ServiceStatus,
  StatusReason,
  ProxyMode,
  hostBinding,
  isUp,
  nodeNameProblem,
  liveRecords,
  liveRecordsOf,
  takesTraffic,
} from './types.js'
export type {
  ServicePortSpec,
  NetworkAddresses,
  Version,
  ServiceRecord,
  LocalServiceSpec,
  LocalInstanceDetails,
  ServiceSource,
  SourceStatus,
  SourceEntryProblem,
  HostState,
  HostView,
  CatalogSnapshot,
  CatalogEvent,
  CatalogView,
} from './types.js'
