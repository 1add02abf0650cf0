/**
 * Catalog -> xDS resources: pure functions of (catalog snapshot, node kind, options).
 * Resources are plain objects with keepCase field names; a nested Any is written as
 * `{ '@type': url, ...fields }` so that the validator can walk into it and protobufjs
 * packs it with its loaded type.
 */
import { liveRecords, type CatalogSnapshot, type ProxyMode, type ServiceRecord } from '../registry/types.js'
import { ExtUrl } from './protos.js'

/** Who is on the other end of an ADS stream: an Envoy (socket listeners) or a proxyless gRPC client (api listeners). */
export type NodeKind = 'envoy' | 'grpc'

/** The `node` of a DiscoveryRequest, as decoded with keepCase. */
export interface XdsNode {
  id?: string
  cluster?: string
  user_agent_name?: string
  client_features?: string[]
  metadata?: { fields?: Record<string, { string_value?: string; kind?: string }> } | null
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
  const meta = node?.metadata?.fields?.['shoal.node_kind']?.string_value
  if (meta === 'envoy' || meta === 'grpc') return meta
  const ua = (node?.user_agent_name ?? '').toLowerCase()
  if (ua === 'envoy') return 'envoy'
  if (ua.includes('grpc')) return 'grpc'
  const features = node?.client_features ?? []
  if (features.includes('envoy.lb.does_not_support_overprovisioning') || features.includes('xds.config.resource-in-sotw')) return 'grpc'
  return 'envoy'
}

export interface ResourceOptions {
  /** IP the Envoy listeners bind (`--envoy-bind`). */
  envoyBind: string
  /** Upstream connect timeout; default 1000 ms. */
  connectTimeoutMs?: number
}

/** Two or more service names claiming one ServicePort: the smallest name wins. */
export interface ServicePortConflict {
  servicePort: number
  winner: string
  losers: string[]
}

/** The instances of one service on one ServicePort, after conflict resolution. */
export interface ServicePortGroup {
  servicePort: number
  name: string
  mode: ProxyMode
  /** The service has exactly one ServicePort (so it also gets the bare-name api listener). */
  singlePort: boolean
  /** Live records with their port spec for this ServicePort, sorted by host then id. */
  instances: Array<{ host: string; id: string; status: ServiceRecord['status']; ip: string; port: number; mode: ProxyMode }>
}

export interface ResourceSet {
  clusters: Map<string, object>
  endpoints: Map<string, object>
  listeners: Map<string, object>
  routes: Map<string, object>
}

export function clusterName(name: string, servicePort: number): string {
  return `${name}:${servicePort}`
}

/** One instance of a ServicePort group, with the ServicePort it serves. */
export type Instance = ServicePortGroup['instances'][number] & { servicePort: number }
// Instances are derived per record object: an unchanged record yields the identical instance
// objects, so the snapshot cache can compare groups by identity.
const instanceCache = new WeakMap<ServiceRecord, Instance[]>()

/** The instances (tcp ports) of one record, cached per record object. */
export function instancesOf(r: ServiceRecord): Instance[] {
  let list = instanceCache.get(r)
  if (!list) {
    list = r.ports
      .filter((p) => p.type === 'tcp')
      .map((p) => ({ host: r.host, id: r.id, status: r.status, ip: p.ip, port: p.port, mode: r.proxyMode, servicePort: p.servicePort }))
    instanceCache.set(r, list)
  }
  return list
}

/** The order of a group's instances: host, then id, then port. */
export function compareInstances(a: Instance, b: Instance): number {
  return cmp(a.host, b.host) || cmp(a.id, b.id) || a.port - b.port
}

/** Group live records by ServicePort (tcp ports only), resolving name conflicts deterministically. */
export function groupServicePorts(snap: CatalogSnapshot): { groups: ServicePortGroup[]; conflicts: ServicePortConflict[] } {
  const bySp = new Map<number, Map<string, Instance[]>>()
  // Hosts by name, records by id (HostView's order): instances arrive sorted by (host, id).
  const hosts = [...snap.hosts].sort((a, b) => cmp(a.name, b.name))
  for (const r of liveRecords({ ...snap, hosts })) {
    for (const i of instancesOf(r)) {
      const sp = i.servicePort
      let names = bySp.get(sp)
      if (!names) bySp.set(sp, (names = new Map()))
      const list = names.get(r.name)
      if (list) list.push(i)
      else names.set(r.name, [i])
    }
  }
  const conflicts: ServicePortConflict[] = []
  const winners: Array<{ sp: number; name: string; instances: Instance[] }> = []
  const portsPerName = new Map<string, number>()
  for (const [sp, names] of [...bySp].sort((a, b) => a[0] - b[0])) {
    let name: string
    if (names.size === 1) name = names.keys().next().value as string
    else {
      const sorted = [...names.keys()].sort()
      name = sorted[0]!
      conflicts.push({ servicePort: sp, winner: name, losers: sorted.slice(1) })
    }
    const instances = names.get(name)!
    for (let k = 1; k < instances.length; k++) {
      if (compareInstances(instances[k - 1]!, instances[k]!) > 0) {
        instances.sort(compareInstances)
        break
      }
    }
    winners.push({ sp, name, instances })
    portsPerName.set(name, (portsPerName.get(name) ?? 0) + 1)
  }
  const groups = winners.map((w) => ({
    servicePort: w.sp,
    name: w.name,
    // Instances may disagree on the mode; the first by (host, id) decides, so every agent agrees.
    mode: w.instances[0]!.mode,
    singlePort: portsPerName.get(w.name) === 1,
    instances: w.instances,
  }))
  return { groups, conflicts }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 }
}

const ROUTER_FILTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ExtUrl.router } }

/** The Cluster of one ServicePort: EDS over ADS, round robin, outlier detection. */
export function buildCluster(g: ServicePortGroup, opts: ResourceOptions): object {
  const name = clusterName(g.name, g.servicePort)
  const cluster: Record<string, unknown> = {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
    connect_timeout: duration(opts.connectTimeoutMs ?? 1000),
    lb_policy: 'ROUND_ROBIN',
    outlier_detection: {
      consecutive_5xx: { value: 5 },
      interval: { seconds: 10, nanos: 0 },
      base_ejection_time: { seconds: 30, nanos: 0 },
      max_ejection_percent: { value: 50 },
      // Envoy's defaults, spelled out: grpc-js reads an unset success_rate_minimum_hosts as
      // "no minimum" and its success-rate check then throws on an empty list every interval.
      enforcing_success_rate: { value: 100 },
      success_rate_minimum_hosts: { value: 5 },
      success_rate_request_volume: { value: 100 },
      success_rate_stdev_factor: { value: 1900 },
    },
  }
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
export function buildLoadAssignment(g: ServicePortGroup, kind: NodeKind): object {
  const byHost = new Map<string, ServicePortGroup['instances']>()
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
      lb_endpoints: list.map((i) => ({
        endpoint: { address: { socket_address: { address: i.ip, port_value: i.port } } },
        health_status: HEALTH[i.status as keyof typeof HEALTH],
      })),
    }
  })
  return { cluster_name: clusterName(g.name, g.servicePort), endpoints }
}

function routeAction(g: ServicePortGroup, kind: NodeKind): object {
  const action: Record<string, unknown> = { cluster: clusterName(g.name, g.servicePort) }
  // Long-lived streams (websockets, gRPC streams) must not be cut by Envoy's 15 s default.
  if (kind === 'envoy' && (g.mode === 'ws' || g.mode === 'grpc')) action.timeout = { seconds: 0, nanos: 0 }
  return action
}

function routeConfig(g: ServicePortGroup, kind: NodeKind, domains: string[]): object {
  const name = clusterName(g.name, g.servicePort)
  return {
    name,
    virtual_hosts: [{ name, domains, routes: [{ match: { prefix: '/' }, route: routeAction(g, kind) }] }],
  }
}

/** Envoy's socket listener on envoyBind:ServicePort (tcp_proxy, or HCM + RDS). */
export function buildEnvoyListener(g: ServicePortGroup, opts: ResourceOptions): object {
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
    http_filters: [ROUTER_FILTER],
  }
  if (g.mode === 'ws') hcm.upgrade_configs = [{ upgrade_type: 'websocket' }]
  return {
    name,
    address,
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }] }],
  }
}

/** A gRPC api listener named `listenerName` with an inline route config matching `name` and `name:port`. */
export function buildApiListener(g: ServicePortGroup, listenerName: string): object {
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
export function buildGroupResources(g: ServicePortGroup, kind: NodeKind, opts: ResourceOptions): ResourceSet {
  const name = clusterName(g.name, g.servicePort)
  const out: ResourceSet = { clusters: new Map(), endpoints: new Map(), listeners: new Map(), routes: new Map() }
  out.clusters.set(name, buildCluster(g, opts))
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

/**
 * Every resource for a node kind, keyed by resource name.
 *
 * @example
 *   const { clusters, endpoints, listeners, routes } = buildResources(catalog.snapshot(), 'grpc', { envoyBind: '127.0.0.1' })
 *   listeners.get('echo:10001') // api listener for xds:///echo:10001
 */
export function buildResources(
  snap: CatalogSnapshot,
  kind: NodeKind,
  opts: ResourceOptions,
): ResourceSet & { conflicts: ServicePortConflict[] } {
  const { groups, conflicts } = groupServicePorts(snap)
  const out: ResourceSet = { clusters: new Map(), endpoints: new Map(), listeners: new Map(), routes: new Map() }
  for (const g of groups) {
    const r = buildGroupResources(g, kind, opts)
    for (const k of ['clusters', 'endpoints', 'listeners', 'routes'] as const) for (const [n, v] of r[k]) out[k].set(n, v)
  }
  return { ...out, conflicts }
}
