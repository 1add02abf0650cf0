/**
 * ServicePort group -> xDS resources: pure functions of (group, node kind, options); the
 * grouping itself is groups.ts.
 * Resources are plain objects with keepCase field names; a nested Any is written as
 * `{ '@type': url, ...fields }` so that the validator can walk into it and protobufjs
 * packs it with its loaded type.
 */
import { RecordLimits } from '../registry/index.js'
import { clusterName, type ClientNetwork, type Endpoint, type EndpointGroup, type GroupShape, type Instance } from './groups.js'
import { authzHttpFilters, authzNetworkFilters } from './authz.js'
import { ExtUrl, protoDuration, TypeUrl } from './protos.js'

/** Who is on the other end of an ADS stream: an Envoy (socket listeners) or a proxyless gRPC client (api listeners). */
export type NodeKind = 'envoy' | 'grpc'

/** The `node` of a DiscoveryRequest, as decoded with keepCase. */
export interface XdsNode {
  id?: string
  cluster?: string
  user_agent_name?: string
  client_features?: string[]
  metadata?: { fields?: Record<string, MetadataValue> } | null
}

/**
 * A google.protobuf.Value of node metadata as decoded. The loader registers the well-known
 * types with protobufjs's camelCase names (`stringValue`, oneof `kind` "stringValue"), unlike
 * the keepCase Envoy types; `string_value` is accepted too (objects built by hand).
 */
export interface MetadataValue {
  stringValue?: string
  string_value?: string
  kind?: string
}

/** Node metadata `key`: its string, or its kind when it is not a string; undefined when absent. */
function metadataString(node: XdsNode | undefined | null, key: string): { value: string } | { notString: string } | undefined {
  const v = node?.metadata?.fields?.[key]
  if (v === undefined || v === null) return undefined
  const s = v.stringValue ?? v.string_value
  if (typeof s === 'string' && (v.kind === undefined || v.kind === 'stringValue' || v.kind === 'string_value')) return { value: s }
  return { notString: v.kind ?? 'non-string' }
}

/** A non-empty string value of the node's metadata, or undefined (absent, empty or not a string). */
export function nodeMetaString(node: XdsNode | undefined | null, key: string): string | undefined {
  const m = metadataString(node, key)
  return m && 'value' in m && m.value !== '' ? m.value : undefined
}

/**
 * The node-kind rule, in order:
 * 1. metadata `shoal.node_kind` (string "envoy" or "grpc") decides when present;
 * 2. `user_agent_name` "envoy" -> envoy;
 * 3. `user_agent_name` containing "grpc" (any case: "gRPC Node Pure JS", "gRPC Go", "grpc-java")
 *    -> grpc;
 * 4. a gRPC-only client feature (`envoy.lb.does_not_support_overprovisioning`,
 *    `xds.config.resource-in-sotw`) -> grpc;
 * 5. otherwise envoy (Envoy is what `shoal envoy-bootstrap` configures).
 */
export function nodeKindOf(node: XdsNode | undefined | null): NodeKind {
  const meta = nodeMetaString(node, 'shoal.node_kind')
  if (meta === 'envoy' || meta === 'grpc') return meta
  const ua = (node?.user_agent_name ?? '').toLowerCase()
  if (ua === 'envoy') return 'envoy'
  if (ua.includes('grpc')) return 'grpc'
  const features = node?.client_features ?? []
  if (features.includes('envoy.lb.does_not_support_overprovisioning') || features.includes('xds.config.resource-in-sotw')) return 'grpc'
  return 'envoy'
}

/** The most characters of a declared network name: what a record may carry (limits.ts `networkName`). */
const NETWORK_NAME_MAX = RecordLimits.networkName.accept

/**
 * The network rule: which network a client is on, so that it is given addresses it can reach
 * (groups.ts addressFor). Node metadata `shoal.network` (a string: a Docker network name, as
 * `shoal envoy-bootstrap --network` and `shoal grpc-bootstrap --network` write it) names it;
 * absent, empty or `host` (Docker's name for a host's own network) means a host's network, the
 * default. A value that is not a string of 1..256 characters is an error (the client is then
 * served as on a host's network).
 *
 * @example
 *   clientNetworkOf({ metadata: { fields: { 'shoal.network': { string_value: 'shoal-apps' } } } }) // { network: 'shoal-apps' }
 */
export function clientNetworkOf(node: XdsNode | undefined | null): { network: ClientNetwork; error?: string } {
  const m = metadataString(node, 'shoal.network')
  if (m === undefined) return { network: null }
  if ('notString' in m)
    return { network: null, error: `node metadata shoal.network is a ${m.notString}, not a string naming a Docker network` }
  const s = m.value
  if (s.length > NETWORK_NAME_MAX)
    return { network: null, error: `node metadata shoal.network is ${s.length} characters long, at most ${NETWORK_NAME_MAX}` }
  return { network: s === '' || s === 'host' ? null : s }
}

export interface ResourceOptions {
  /** IP the Envoy listeners bind (`--envoy-bind`). */
  envoyBind: string
  /** Upstream connect timeout; default 1000 ms. */
  connectTimeoutMs?: number
  /** Outlier detection interval (how often ejection is decided); default 10 000 ms, Envoy's default. */
  outlierIntervalMs?: number
}

export interface ResourceSet {
  clusters: Map<string, object>
  endpoints: Map<string, object>
  listeners: Map<string, object>
  routes: Map<string, object>
}

/** Each field of a ResourceSet with the type URL of what it holds. */
export const RESOURCE_SETS = [
  ['clusters', TypeUrl.cluster],
  ['endpoints', TypeUrl.endpoint],
  ['listeners', TypeUrl.listener],
  ['routes', TypeUrl.route],
] as const satisfies ReadonlyArray<readonly [keyof ResourceSet, TypeUrl]>

export { clusterName }

const ROUTER_FILTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ExtUrl.router } }

/**
 * Outlier detection for both consumers. Envoy ejects on `consecutive_5xx`; gRPC reads only
 * success-rate and failure-percentage ejection (gRFC A50), and success-rate ejection needs 5
 * hosts and can never eject one of two (the mean and stdev of two rates never put one below
 * mean - 1.9 stdev). So failure-percentage ejection is on: an instance with at least 20 calls
 * in an interval, 85 % or more of them failed, is ejected when the ServicePort has 2 or more
 * instances; at most half of them are ejected at once (`max_ejection_percent`).
 */
function outlierDetection(intervalMs: number): object {
  return {
    consecutive_5xx: { value: 5 },
    interval: protoDuration(intervalMs),
    base_ejection_time: { seconds: 30, nanos: 0 },
    max_ejection_percent: { value: 50 },
    // Envoy's defaults, spelled out: grpc-js reads an unset success_rate_minimum_hosts as
    // "no minimum" and its success-rate check then throws on an empty list every interval.
    enforcing_success_rate: { value: 100 },
    success_rate_minimum_hosts: { value: 5 },
    success_rate_request_volume: { value: 100 },
    success_rate_stdev_factor: { value: 1900 },
    // Envoy's default enforcement is 0 (off); gRFC A50 ejects only when it is above 0.
    enforcing_failure_percentage: { value: 100 },
    failure_percentage_minimum_hosts: { value: 2 },
    failure_percentage_request_volume: { value: 20 },
    failure_percentage_threshold: { value: 85 },
  }
}

/**
 * Retries of calls that raced with a drain or a stopping instance (README "Retries").
 *
 * Envoy retries what cannot have reached the application, for every service: a connection
 * that failed (`connect-failure`), a stream the upstream refused (`refused-stream`, HTTP/2
 * REFUSED_STREAM, which a server sends for streams it will not start after its GOAWAY), and a
 * reset before the request went out (`reset-before-request`) (Envoy's router filter,
 * x-envoy-retry-on). For a service whose every instance says `shoal.idempotent=true`, also any
 * reset and, for gRPC, UNAVAILABLE (x-envoy-retry-grpc-on). The cluster's retry budget bounds
 * them (see buildCluster).
 *
 * gRPC clients retry calls that never reached the server application by themselves (gRFC A6
 * transparent retries: no configuration); a route retry policy is their A6 `retryPolicy`
 * (gRFC A44: only the gRPC status names of retry_on count, num_retries + 1 attempts,
 * retry_back_off), so it is given only to an idempotent service: UNAVAILABLE, twice, 25 ms
 * doubling to 250 ms.
 */
export function retryPolicy(g: GroupShape, kind: NodeKind): object | undefined {
  const backOff = { base_interval: protoDuration(25), max_interval: protoDuration(250) }
  if (kind === 'grpc') return g.idempotent ? { retry_on: 'unavailable', num_retries: { value: 2 }, retry_back_off: backOff } : undefined
  const on = ['connect-failure', 'refused-stream', 'reset-before-request']
  if (g.idempotent) on.push('reset', ...(g.mode === 'grpc' ? ['unavailable'] : []))
  return { retry_on: on.join(','), num_retries: { value: 2 }, retry_back_off: backOff }
}

/**
 * Envoy's retry budget for a ServicePort: retries at most 20 % of the active requests (at
 * least 3 at once), so retries during a roll never pile onto the instances left (Envoy's
 * circuit breaker `retry_budget`). gRPC clients do not read it (gRFC A44 leaves retry circuit
 * breaking out): their Clusters go without.
 */
const RETRY_BUDGET = {
  thresholds: [{ priority: 'DEFAULT', retry_budget: { budget_percent: { value: 20 }, min_retry_concurrency: { value: 3 } } }],
}

/** The Cluster of one ServicePort: EDS over ADS, round robin, outlier detection; Envoy's with a retry budget. */
export function buildCluster(g: GroupShape, opts: ResourceOptions, kind: NodeKind = 'envoy'): object {
  const name = clusterName(g.name, g.servicePort)
  const cluster: Record<string, unknown> = {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
    connect_timeout: protoDuration(opts.connectTimeoutMs ?? 1000),
    lb_policy: 'ROUND_ROBIN',
    outlier_detection: outlierDetection(opts.outlierIntervalMs ?? 10_000),
  }
  if (kind === 'envoy') cluster.circuit_breakers = RETRY_BUDGET
  if (g.mode === 'grpc') {
    cluster.typed_extension_protocol_options = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': ExtUrl.httpProtocolOptions,
        explicit_http_config: { http2_protocol_options: {} },
      },
    }
  }
  return cluster
}

const HEALTH = { alive: 'HEALTHY', unknown: 'UNKNOWN', draining: 'DRAINING' } as const

/**
 * The ClusterLoadAssignment: one locality per host, weighted by its routable (alive or
 * unknown) instances. Draining instances stay in for Envoy (it drains them gracefully); a
 * gRPC client ignores them anyway, so they are left out there, with localities left empty.
 */
export function buildLoadAssignment(g: EndpointGroup, kind: NodeKind): object {
  const byHost = new Map<string, Endpoint[]>()
  for (const i of g.instances) {
    if (i.status !== 'alive' && i.status !== 'unknown' && i.status !== 'draining') continue
    if (kind === 'grpc' && i.status === 'draining') continue
    let l = byHost.get(i.host)
    if (!l) byHost.set(i.host, (l = []))
    l.push(i)
  }
  const endpoints = [...byHost].map(([host, list]) => {
    const routable = list.filter((i) => i.status !== 'draining').length
    return {
      locality: { zone: host },
      // A weight is required (a locality without one is dropped by gRPC) and must be >= 1.
      load_balancing_weight: { value: Math.max(1, routable) },
      lb_endpoints: list.map((i) => {
        const e: Record<string, unknown> = {
          endpoint: { address: { socket_address: { address: i.ip, port_value: i.port } } },
          health_status: HEALTH[i.status as keyof typeof HEALTH],
        }
        const metadata = endpointMetadata(i)
        if (metadata) e.metadata = metadata
        return e
      }),
    }
  })
  return { cluster_name: clusterName(g.name, g.servicePort), endpoints }
}

// google.protobuf.Value as protobufjs defines it (camelCase field names: a `string_value` would be dropped silently).
const stringValue = (v: string) => ({ stringValue: v })
const stringList = (l: readonly string[]) => ({ listValue: { values: l.map(stringValue) } })

/**
 * An LbEndpoint's metadata (config.core.v3.Metadata) for an instance's tags and attributes:
 * `filter_metadata.shoal` = { tags: [..], attributes: { key: value } }, and the tags again as
 * `filter_metadata["envoy.lb"].tags`, the namespace Envoy's subset load balancer matches
 * (Envoy docs, "Load Balancer Subsets"; a list matches any of its values with `list_as_any`).
 * Undefined when the instance has neither, so such endpoints stay as they were.
 *
 * @example endpointMetadata({ ..., tags: ['blue'] })
 *   // { filter_metadata: { shoal: { fields: { tags: { listValue: ... } } }, 'envoy.lb': { fields: { tags: ... } } } }
 */
export function endpointMetadata(i: Pick<Instance, 'tags' | 'attributes'>): object | undefined {
  const tags = i.tags ?? []
  const attributes = Object.entries(i.attributes ?? {})
  if (tags.length === 0 && attributes.length === 0) return undefined
  const shoal: Record<string, unknown> = {}
  if (tags.length > 0) shoal.tags = stringList(tags)
  if (attributes.length > 0) {
    const fields: Record<string, unknown> = {}
    for (const [k, v] of attributes)
      Object.defineProperty(fields, k, { value: stringValue(v), enumerable: true, writable: true, configurable: true })
    shoal.attributes = { structValue: { fields } }
  }
  const filter_metadata: Record<string, unknown> = { shoal: { fields: shoal } }
  if (tags.length > 0) filter_metadata['envoy.lb'] = { fields: { tags: stringList(tags) } }
  return { filter_metadata }
}

function routeAction(g: EndpointGroup, kind: NodeKind): object {
  const action: Record<string, unknown> = { cluster: clusterName(g.name, g.servicePort) }
  // Long-lived streams (websockets, gRPC streams) must not be cut by Envoy's 15 s default.
  if (kind === 'envoy' && (g.mode === 'ws' || g.mode === 'grpc')) action.timeout = { seconds: 0, nanos: 0 }
  const retry = retryPolicy(g, kind)
  if (retry) action.retry_policy = retry
  return action
}

function routeConfig(g: EndpointGroup, kind: NodeKind, domains: string[]): object {
  const name = clusterName(g.name, g.servicePort)
  return {
    name,
    virtual_hosts: [{ name, domains, routes: [{ match: { prefix: '/' }, route: routeAction(g, kind) }] }],
  }
}

/** Envoy's socket listener on envoyBind:ServicePort (tcp_proxy, or HCM + RDS). */
export function buildEnvoyListener(g: EndpointGroup, opts: ResourceOptions): object {
  const name = clusterName(g.name, g.servicePort)
  const address = { socket_address: { address: opts.envoyBind, port_value: g.servicePort } }
  const stat = `shoal_${g.servicePort}`
  if (g.mode === 'tcp') {
    return {
      name,
      address,
      filter_chains: [
        {
          filters: [
            ...authzNetworkFilters(g),
            { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': ExtUrl.tcpProxy, stat_prefix: stat, cluster: name } },
          ],
        },
      ],
    }
  }
  const hcm: Record<string, unknown> = {
    '@type': ExtUrl.hcm,
    stat_prefix: stat,
    codec_type: 'AUTO',
    rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: name },
    http_filters: [...authzHttpFilters(g), ROUTER_FILTER],
  }
  if (g.mode === 'ws') hcm.upgrade_configs = [{ upgrade_type: 'websocket' }]
  return {
    name,
    address,
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }] }],
  }
}

/**
 * A gRPC api listener named `listenerName` with an inline route config matching `name` and
 * `name:port`. It carries no authorization filter even when the service asks for one
 * (authz.ts): gRPC's xDS clients implement none and would NACK the Listener.
 */
export function buildApiListener(g: EndpointGroup, listenerName: string): object {
  const domains = [g.name, clusterName(g.name, g.servicePort)]
  return {
    name: listenerName,
    api_listener: {
      api_listener: {
        '@type': ExtUrl.hcm,
        stat_prefix: `shoal_${g.servicePort}`,
        route_config: routeConfig(g, 'grpc', domains),
        http_filters: [ROUTER_FILTER],
      },
    },
  }
}

/** All resources of one ServicePort group for one node kind. */
export function buildGroupResources(g: EndpointGroup, kind: NodeKind, opts: ResourceOptions): ResourceSet {
  const name = clusterName(g.name, g.servicePort)
  const out: ResourceSet = { clusters: new Map(), endpoints: new Map(), listeners: new Map(), routes: new Map() }
  out.clusters.set(name, buildCluster(g, opts, kind))
  out.endpoints.set(name, buildLoadAssignment(g, kind))
  if (kind === 'envoy') {
    out.listeners.set(name, buildEnvoyListener(g, opts))
    if (g.mode !== 'tcp') out.routes.set(name, routeConfig(g, 'envoy', ['*']))
  } else {
    out.listeners.set(name, buildApiListener(g, name))
    if (g.singlePort) out.listeners.set(g.name, buildApiListener(g, g.name))
  }
  return out
}
