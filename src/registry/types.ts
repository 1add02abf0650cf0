/**
 * Contracts of the service catalog: the record model, what sources hand in, and what
 * consumers (xDS, HTTP) read. The registry knows nothing about sockets or protobuf.
 */
import type { CheckContext, CheckResult, CheckSpec } from '../health/types.js'
import type { Startable } from '../lifecycle.js'

export const ServiceStatus = {
  alive: 'alive',
  unhealthy: 'unhealthy',
  unknown: 'unknown',
  draining: 'draining',
  tombstone: 'tombstone',
} as const
export type ServiceStatus = (typeof ServiceStatus)[keyof typeof ServiceStatus]

/**
 * Why an owner gives an instance its status, when it says (the record's `reason`): a draining
 * instance is `stopping` (its container got its stop signal: README "Lifecycle"), drained by an
 * `operator` (`shoal drain`), or its agent is leaving (`agent-leaving`); an unhealthy one is
 * `starting` (its health check has not passed yet). A peer may hold a reason a newer release
 * wrote that is not listed here: it is shown as it came.
 */
export const StatusReason = {
  stopping: 'stopping',
  operator: 'operator',
  agentLeaving: 'agent-leaving',
  starting: 'starting',
} as const
export type StatusReason = (typeof StatusReason)[keyof typeof StatusReason]

/**
 * The label of a service's allow-list: the names of the services that may call it, comma
 * separated (Docker label `shoal.allow=svc-a,svc-b`, static-file field `allow`). The xDS server
 * turns it into the RBAC filter of the service's server Listener (README, Service identity).
 */
export const ALLOW_LABEL = 'shoal.allow'

/**
 * The label an agent with `--inbound-ports` puts on its own records: where its Envoy takes
 * mTLS for each ServicePort of the instance, `SERVICEPORT=IP:PORT,...`. Other hosts' Envoys
 * reach the instance there (README, mTLS between Envoy sidecars). Sources cannot set it.
 */
export const INBOUND_LABEL = 'shoal.inbound'

export const ProxyMode = { http: 'http', tcp: 'tcp', ws: 'ws', grpc: 'grpc' } as const
export type ProxyMode = (typeof ProxyMode)[keyof typeof ProxyMode]

/**
 * The node name rule, the one check of `--node` (README "Known limits"): 1 to 128
 * (RecordLimits.host.build, which is NODE_NAME_MAX) characters of [A-Za-z0-9._-], the first a
 * letter or a digit. It lives on the ground floor (src/text.ts), where the identity tooling
 * reaches it too; re-exported here with the contracts, so that the agent's configuration (which
 * every CLI command loads) checks it without loading the registry.
 */
export { nodeNameProblem } from '../text.js'

/**
 * One port of an instance. `servicePort` is cluster-wide. `ip` and `port`, present together,
 * are its host binding: where it is reachable from every host's network (a published port on
 * the advertise IP, or a static entry's address). A Docker port that is not published has no
 * host binding and is reachable only on the container's networks (ServiceRecord.networks, at
 * `containerPort`); read the binding with `hostBinding(p)`.
 */
export interface ServicePortSpec {
  type: 'tcp' | 'udp'
  servicePort: number
  /** Host binding: the port, on `ip`. Absent together with `ip` when the port is not published. */
  port?: number
  /** Host binding: the IP (an IP literal; the advertise IP for a port published on the wildcard). */
  ip?: string
  /**
   * The port inside the container (Docker instances only): the port of the instance's address
   * on each of its networks, and what health-check templates `{{ tcp N }}` look up. Absent for
   * static entries.
   */
  containerPort?: number
  /**
   * Fields after the ones this release knows, as a newer owner wrote them (wire.ts); kept
   * opaque and non-enumerable (out of the JSON API) so that passing the record on loses nothing.
   */
  readonly wireExtra?: readonly unknown[]
}

/** A port's host binding (`ip:port`, reachable from every host's network), or undefined when the port has none. */
export function hostBinding(p: ServicePortSpec): { ip: string; port: number } | undefined {
  return p.ip !== undefined && p.port !== undefined ? { ip: p.ip, port: p.port } : undefined
}

/**
 * The container's address on each Docker network it joined that the owner advertises
 * (`--docker-network`): network name -> IP literal. An instance is reachable on network N at
 * `networks[N]:containerPort`, from containers attached to N only (a Swarm overlay spans
 * hosts; the host's own network has no route to it).
 */
export type NetworkAddresses = Readonly<Record<string, string>>

/** The owner's hybrid logical clock: [wall ms, counter]; compared only between records of one owner. */
export type Version = readonly [wallMs: number, counter: number]

/**
 * One service instance as the catalog holds it. Written only by its owner (`host`).
 *
 * Sidecar counterparts (for the README): `Service.ID` -> id, `Name` -> name (normalised),
 * `Image` -> image, `Created` -> created, `Hostname` -> host, `Ports` -> ports, `Updated` ->
 * updated (informational; ordering uses `version`), `ProxyMode` -> proxyMode, `Status`
 * (0 alive, 1 tombstone, 2 unhealthy, 3 unknown, 4 draining) -> status; `Port.Type/Port/
 * ServicePort/IP` -> ServicePortSpec; `Server.Name/Services/LastUpdated/LastChanged` ->
 * HostView name/services (and the owner's versions); `ServicesState.Servers` ->
 * CatalogSnapshot.hosts, `ClusterName` -> cluster, `Hostname` -> Catalog.self. New here:
 * bootId, labels, tags and attributes (Registrator's `Tags` and `Attrs`), HostView.state and
 * address (from membership).
 */
export interface ServiceRecord {
  /** Instance id: 12 hex digits of a container id, or a static entry's stable id. */
  id: string
  /** Normalised to [a-z0-9._-]. */
  name: string
  image: string
  /** Creation time, epoch ms (informational). */
  created: number
  /** Owner node name. */
  host: string
  /** Owner's boot id when it wrote this record. */
  bootId: string
  ports: ServicePortSpec[]
  proxyMode: ProxyMode
  status: ServiceStatus
  version: Version
  /** Owner's wall time of the last write, epoch ms (informational only). */
  updated: number
  labels: Record<string, string>
  /**
   * Why the owner gives it its status (StatusReason: `stopping`, `operator`, `agent-leaving`
   * for `draining`, `starting` for `unhealthy`); absent when there is nothing to say, and on
   * records of owners of earlier releases. Any string a newer owner wrote is kept.
   */
  reason?: string
  /**
   * Tags (Registrator's `SERVICE_TAGS`, `shoal.tags`, the static file's `tags`): at most 32
   * distinct strings of 1-128 characters without control characters, in the order written
   * (limits.ts, tags.ts). Absent when there are none, and on records of earlier releases. DNS
   * filters by them (`TAG.NAME.service.DOMAIN`); xDS sends them as endpoint metadata.
   *
   * @example ['blue', 'canary']
   */
  tags?: readonly string[]
  /**
   * Attributes (Registrator's `SERVICE_<attr>`, `shoal.attr.<key>`, the static file's
   * `attributes`): at most 32, keys of 1-64 characters of [a-z0-9_.-] (a letter or digit first),
   * values of at most 512 characters, sorted by key. Absent when there are none.
   *
   * @example { region: 'us-east', sni: 'enabled' }
   */
  attributes?: Readonly<Record<string, string>>
  /**
   * The owner's account of the status in one short line (at most `RecordLimits.detail`, issue
   * 15): the check result that set it (`Tcp 10.0.0.5:5432: connection refused`), `no health
   * check`, the text an operator gave with a drain. The owner changes it only with the status
   * (or a new check), so check output never rewrites a record. Absent on records of owners of
   * earlier releases.
   */
  detail?: string
  /** Addresses on Docker networks (absent: none advertised); see NetworkAddresses. */
  networks?: NetworkAddresses
  /** Fields after the ones this release knows, as a newer owner wrote them; see ServicePortSpec.wireExtra. */
  readonly wireExtra?: readonly unknown[]
}

/**
 * What a local source (Docker, static file) hands in: a record before the owner stamps
 * host, boot, status and version.
 */
export interface LocalServiceSpec {
  id: string
  name: string
  image: string
  created: number
  ports: ServicePortSpec[]
  proxyMode: ProxyMode
  labels: Record<string, string>
  /** Tags as the source found them; the owner's fit (fit.ts) checks, trims and de-duplicates them. */
  tags?: string[]
  /** Attributes as the source found them; the owner's fit checks and trims them and sorts them by key. */
  attributes?: Record<string, string>
  /** Addresses on Docker networks (Docker instances with `--docker-network`); see NetworkAddresses. */
  networks?: NetworkAddresses
  check?: CheckSpec
  /**
   * Where the agent itself reaches the instance for `check` (what `{{ host }}` and `{{ tcp N }}`
   * expand to), when the source knows better than the default (the first host binding's IP,
   * else the advertise IP, with the host-binding ports).
   */
  checkTarget?: CheckContext
  /** Container id (full) for Docker instances: the `Docker` check and `{{ container }}` use it. */
  containerId?: string
  /** The source that found it (`docker`, `static`, ...): LocalServices keeps one set per source. */
  source: string
  /** Where it came from, for log lines: `container web (3f2a9c1b0d4e)`, `/etc/shoal/static.json services[2]`. */
  origin?: string
  /**
   * The instance is shutting down (Docker: its container got its stop signal): it drains, with
   * reason `stopping`, until the source withdraws it or says it runs on.
   */
  stopping?: boolean
}

/**
 * What only the owner knows of one of its instances, shown beside its record by the owner's
 * API (`local` of an instance in `/api/services/{name}.json`).
 *
 * @example
 *   { source: 'static', origin: '/etc/shoal/static.json services[1]',
 *     checkSpec: { type: 'Tcp', args: '{{ host }}:5432' },
 *     check: { type: 'Tcp', target: '10.0.0.5:5432', outcome: 'fail', passed: false, error: 'connection refused', ... },
 *     drain: { at: 1717000000000, reason: 'maintenance' } }
 */
export interface LocalInstanceDetails {
  /** The discovery source: `docker`, `static`. */
  source: string
  /** Where it came from: `container web (3f2a9c1b0d4e)`, `/etc/shoal/static.json services[2]`. */
  origin?: string
  /** The full container id (Docker instances). */
  containerId?: string
  /** The health check as configured (templates not filled in); absent without one. */
  checkSpec?: CheckSpec
  /** The check's last run; absent before it ran, or without a check. */
  check?: CheckResult
  /** Set while an operator drains it: since when (epoch ms) and the reason given. */
  drain?: { at: number; reason?: string }
}

/**
 * A discovery source (the Docker engine, the static file, the next ones): what it says
 * runs on this host, and a `change` event with the whole new set whenever that changes.
 * The agent starts each source after its servers and stops it before them, and announces its
 * boot only once every source's `firstSync()` resolved (bounded).
 *
 * @example
 *   source.on('change', (specs) => local.setSource(source.source, specs))
 *   await source.start()
 *   local.setSource(source.source, source.services())
 */
export interface ServiceSource extends Startable {
  /** The source's name, the `source` field of its specs. */
  readonly source: string
  /** What the source says runs here now. */
  services(): LocalServiceSpec[]
  on(event: 'change', listener: (specs: LocalServiceSpec[]) => void): unknown
  /**
   * Resolves once the source has reported its first full view (after the 'change' it caused,
   * if any); pending while it cannot (an engine slow or away). The agent announces its boot
   * and serves xDS only after every source's, with a bound (README "Warm start").
   */
  firstSync(): Promise<void>
  /** How the source is doing, for /api/sources.json and the UI; sources without one are listed by name only. */
  status?(): SourceStatus
}

/**
 * A source's health as an operator reads it (GET /api/sources.json).
 *
 * @example
 *   { source: 'static', where: '/etc/shoal/static.json', ok: false, services: 2, loads: 3, rejected: 1,
 *     error: { message: '/etc/shoal/static.json: services[0].chek: unknown field; did you mean "check"?', at: '2026-11-30T21:00:00.000Z' } }
 *   { source: 'static', where: '/etc/shoal/static.json', ok: false, services: 1, loads: 1, rejected: 0,
 *     entries: [{ id: 'many', origin: '/etc/shoal/static.json services[1]', action: 'refused', limit: 'ports', message: '…' }] }
 */
export interface SourceStatus {
  source: string
  /** What it reads: a file path, a Docker endpoint. */
  where: string
  /** False while its last attempt failed (the previous services stay in force meanwhile). */
  ok: boolean
  /** Services it announces now. */
  services: number
  /** Successful loads since start: file reads taken, Docker resyncs completed. */
  loads: number
  /**
   * Failed loads since start: file reads refused (bad content, unreadable); for Docker, failed
   * connection attempts to the engine (each reconnect attempt counts, so an absent engine keeps counting).
   */
  rejected: number
  /** The last failure while it lasts: the message names the input and the fix, `at` is ISO 8601. */
  error?: { message: string; at: string }
  /**
   * Entries the record limits refused or trimmed (README "Known limits"), while they stay so;
   * absent when every entry fits. A refused entry is not served and makes `ok` false.
   */
  entries?: SourceEntryProblem[]
}

/**
 * One entry of a source that does not fit the record limits as written (registry/fit.ts).
 *
 * @example
 *   { id: 'many', origin: '/etc/shoal/static.json services[1]', action: 'refused', limit: 'ports',
 *     message: '65 ports, at most 64; the record is not served' }
 */
export interface SourceEntryProblem {
  /** The instance id as the source gives it. */
  id: string
  /** Where it comes from: a file entry (`FILE services[N]`) or a container. */
  origin: string
  /** `refused`: not served; `trimmed`: served without what was cut. */
  action: 'refused' | 'trimmed'
  /** The limit met, as the metrics label it (`ports`, `label-value`, ...). */
  limit: string
  message: string
}

export type HostState = 'alive' | 'suspect' | 'dead' | 'left'

/** One host as a consumer sees it. */
export interface HostView {
  name: string
  /** Gossip address host:port. */
  address: string
  state: HostState
  bootId: string
  /** Records of the host's current boot, tombstones included, sorted by id. */
  services: ServiceRecord[]
}

/** An immutable, consistent view of the catalog. */
export interface CatalogSnapshot {
  cluster: string
  /** Local sequence number, raised on every change. */
  seq: number
  hosts: HostView[]
}

export type CatalogEvent =
  | { type: 'service-added'; record: ServiceRecord }
  | { type: 'service-updated'; record: ServiceRecord; previous: ServiceRecord }
  | { type: 'service-removed'; record: ServiceRecord }
  | { type: 'host-up'; host: string }
  | { type: 'host-down'; host: string; state: HostState }

/** What consumers read: a snapshot accessor and change events. */
export interface CatalogView {
  snapshot(): CatalogSnapshot
  /** Returns an unsubscribe. */
  subscribe(listener: (ev: CatalogEvent) => void): () => void
}

/**
 * The liveness rule (docs/architecture.md "Visibility"), the one place it is written: a host
 * is up while membership says it is alive or suspect.
 */
export function isUp(state: HostState | undefined): boolean {
  return state === 'alive' || state === 'suspect'
}

/**
 * Whether an instance takes new traffic: `alive`, or `unknown` (no check, or none decided
 * yet: served, like Envoy's UNKNOWN). `draining`, `unhealthy` and `tombstone` take none. The
 * DNS interface answers only these; xDS sends `draining` too, as DRAINING, so that Envoy
 * finishes what it has.
 */
export function takesTraffic(status: ServiceStatus): boolean {
  return status === 'alive' || status === 'unknown'
}

/** A host's live records: the host is up, the record is of its current boot and not a tombstone. */
export function liveRecordsOf(h: HostView): ServiceRecord[] {
  if (!isUp(h.state)) return []
  const out: ServiceRecord[] = []
  for (const r of h.services) if (r.status !== 'tombstone' && r.bootId === h.bootId) out.push(r)
  return out
}

/** Records that are served and listed as live, over every host (liveRecordsOf each). */
export function liveRecords(snap: CatalogSnapshot): ServiceRecord[] {
  const out: ServiceRecord[] = []
  for (const h of snap.hosts) for (const r of liveRecordsOf(h)) out.push(r)
  return out
}
