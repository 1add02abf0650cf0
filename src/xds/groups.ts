/**
 * ServicePort grouping: live records -> one group per ServicePort (the smallest service name
 * wins a ServicePort two names claim), each instance with every address it has. The GroupIndex
 * keeps the groups up to date from one catalog snapshot to the next by diffing each host's live
 * records by identity, so a change costs work in proportion to the ServicePorts it touched, not
 * to the catalog. Consumers (one per client network) each drain their own set of changed
 * ServicePorts and resolve the groups for their network (resolveGroup: the one address a
 * client there is given per instance, one per address). resources.ts turns a resolved group
 * into Envoy objects.
 */
import { isIP } from 'node:net'
import { canonicalIp } from '../address.js'
import { authzOf, AUTHZ_DEFAULT_TIMEOUT_MS, compareServiceNames, type AuthzRequest, type ServicePortConflict } from '../registry/index.js'
import {
  INBOUND_LABEL,
  hostBinding,
  liveRecordsOf,
  type CatalogSnapshot,
  type HostView,
  type NetworkAddresses,
  type ProxyMode,
  type ServiceRecord,
} from '../registry/types.js'
import { parseInboundLabel } from './inbound-label.js'

/** The name of a ServicePort group's Cluster, ClusterLoadAssignment, Listener and RouteConfiguration: `name:servicePort`. */
export function clusterName(name: string, servicePort: number): string {
  return `${name}:${servicePort}`
}

/** Two or more service names claiming one ServicePort (the registry's rule, `compareServiceNames`, picks the winner). */
export type { ServicePortConflict }

/** One instance (a tcp port of a live record) on the ServicePort it serves, with every address it has. */
export interface Instance {
  host: string
  id: string
  status: ServiceRecord['status']
  /** Host binding: reachable from every host's network. Absent (with `port`) when the port is not published. */
  ip?: string
  port?: number
  /** The port on the instance's networks (Docker instances). */
  containerPort?: number
  /** The instance's IP on each Docker network its owner advertises. */
  networks?: NetworkAddresses
  mode: ProxyMode
  servicePort: number
  /** Its record says `shoal.idempotent=true` (see ServicePortGroup.idempotent). */
  idempotent: boolean
  /** The record's tags and attributes (README "Tags and attributes"): sent as endpoint metadata. */
  tags?: readonly string[]
  attributes?: Readonly<Record<string, string>>
  /** Where the owner's Envoy takes mTLS for this instance (record label `shoal.inbound`), if it does. */
  inbound?: { ip: string; port: number }
}

/**
 * The label that says a service's calls may be repeated (README "Retries"): then a gRPC
 * client retries a call that failed UNAVAILABLE, and Envoy any reset, on another instance.
 */
export const IDEMPOTENT_LABEL = 'shoal.idempotent'

/** An instance with the one address a client is given (`ip:port`): see addressFor. */
export type Endpoint = Instance & { ip: string; port: number }

/**
 * The network an xDS client is on: null for a host's own network (the default, and every
 * Envoy from `shoal envoy-bootstrap`), else the name of the Docker network it declared in its
 * node metadata (`shoal.network`).
 */
export type ClientNetwork = string | null

/** The group fields resources depend on, whatever its instances. */
export interface GroupShape {
  servicePort: number
  name: string
  mode: ProxyMode
  /** The service has exactly one ServicePort (so it also gets the bare-name api listener). */
  singlePort: boolean
  /**
   * Every instance on this ServicePort says `shoal.idempotent=true`: calls that may have
   * reached an application are retried too (only then: a retry of a call that did something
   * could do it twice).
   */
  idempotent: boolean
  /** External authorization the service asks for, resolved against this snapshot's groups (absent: none). */
  authz?: GroupAuthz
}

/** The instances of one service on one ServicePort, after conflict resolution. */
export interface ServicePortGroup extends GroupShape {
  /** Live instances sorted by host, id, port, with every address they have. */
  instances: Instance[]
}

/**
 * A group as the clients on one network are given it: at most one served instance (alive,
 * unknown, draining) per address, none without an address reachable there, and none with an
 * address a client cannot use (see endpointFilter).
 */
export interface EndpointGroup extends GroupShape {
  instances: Endpoint[]
}

/**
 * Why an authorization request cannot be served: the authorization service is not in the
 * registry (`missing`), has several ServicePorts and the request names none (`ambiguous`),
 * is not in proxy mode grpc, so Envoy cannot call it (`not_grpc`), or the labels do not read
 * (`invalid`). Envoy then denies everything on the protected listener, unless
 * failure_mode_allow.
 */
export type AuthzProblem = 'missing' | 'ambiguous' | 'not_grpc' | 'invalid'

/** A group's external authorization, resolved against the groups of the same snapshot. */
export interface GroupAuthz {
  /** The request as written: `name` or `name:servicePort` (the raw label value when it does not read). */
  target: string
  failureModeAllow: boolean
  /** Timeout of one Check call, ms. */
  timeoutMs: number
  /** The authorization service's group in this snapshot (its Cluster is `name:servicePort`), or null. */
  upstream: { name: string; servicePort: number } | null
  problem?: AuthzProblem
  /** What is wrong and what to do (with a problem). */
  detail?: string
}

/** An authorization request that cannot be served, for logs, metrics and `/debug/xds`. */
export interface AuthzIssue {
  servicePort: number
  service: string
  target: string
  problem: AuthzProblem
  detail: string
  failureModeAllow: boolean
}

/** Same resolution (so a group whose authorization did not change is not rebuilt). */
export function sameAuthz(a: GroupAuthz | undefined, b: GroupAuthz | undefined): boolean {
  if (a === b) return true
  if (!a || !b) return false
  return (
    a.target === b.target &&
    a.failureModeAllow === b.failureModeAllow &&
    a.timeoutMs === b.timeoutMs &&
    a.problem === b.problem &&
    a.detail === b.detail &&
    a.upstream?.name === b.upstream?.name &&
    a.upstream?.servicePort === b.upstream?.servicePort
  )
}

/**
 * The resolution rule of an authorization request (README, External authorization), given
 * the winning groups of a snapshot and the ServicePorts each name won: `NAME:SERVICEPORT`
 * must be a group of NAME; `NAME` must have exactly one ServicePort; the group must be in
 * proxy mode grpc (ext_authz calls `envoy.service.auth.v3.Authorization/Check` over gRPC,
 * which needs HTTP/2 to the upstream: only grpc Clusters have it).
 */
export function resolveAuthz(
  req: Exclude<AuthzRequest, { kind: 'none' }>,
  groupAt: (servicePort: number) => ServicePortGroup | undefined,
  servicePortsOf: (name: string) => readonly number[],
): GroupAuthz {
  if (req.kind === 'invalid') {
    return {
      target: req.target,
      failureModeAllow: false,
      timeoutMs: AUTHZ_DEFAULT_TIMEOUT_MS,
      upstream: null,
      problem: 'invalid',
      detail: `${req.label}: ${req.problem}`,
    }
  }
  const { service, servicePort, failureModeAllow, timeoutMs } = req.spec
  const target = servicePort === undefined ? service : `${service}:${servicePort}`
  const base = { target, failureModeAllow, timeoutMs }
  const fail = (problem: AuthzProblem, detail: string): GroupAuthz => ({ ...base, upstream: null, problem, detail })
  const sps = [...servicePortsOf(service)].sort((a, b) => a - b)
  let sp = servicePort
  if (sp === undefined) {
    if (sps.length === 0) return fail('missing', `no service ${service} is in the registry; start it, or fix shoal.authz`)
    if (sps.length > 1)
      return fail('ambiguous', `${service} has ServicePorts ${sps.join(', ')}; name one: shoal.authz=${service}:${sps[0]}`)
    sp = sps[0]!
  } else if (!sps.includes(sp)) {
    const has = sps.length ? ` (it has ServicePort${sps.length > 1 ? 's' : ''} ${sps.join(', ')})` : ''
    return fail('missing', `no service ${service} on ServicePort ${sp} is in the registry${has}; start it, or fix shoal.authz`)
  }
  const g = groupAt(sp)!
  if (g.mode !== 'grpc')
    return fail(
      'not_grpc',
      `${service}:${sp} is in proxy mode ${g.mode}; Envoy calls an authorization service over gRPC: give it proxy mode grpc`,
    )
  return { ...base, upstream: { name: service, servicePort: sp } }
}

/** Why an instance is left out of its ServicePort's ClusterLoadAssignment (for the clients of one network). */
export type DropReason = 'duplicate_address' | 'not_an_ip' | 'port_out_of_range' | 'no_reachable_address'

/**
 * An instance left out of a ClusterLoadAssignment. Both gRPC clients NACK a
 * ClusterLoadAssignment that lists one address twice (gRPC C-core: "duplicate endpoint
 * address", grpc-js-xds: "address is a duplicate of another address"), and every client
 * rejects a socket address that is not an IP literal with a port in 1-65535 (Envoy's
 * SocketAddress rules): one such record must not take the whole service down.
 */
export interface DroppedEndpoint {
  servicePort: number
  service: string
  host: string
  id: string
  status: ServiceRecord['status']
  /** The network of the clients it is left out for; null: clients on a host's network. */
  network: ClientNetwork
  /** `ip:port` as the record spells it (`[ip]:port` for IPv6); '' when it has no address reachable there. */
  address: string
  /** For `no_reachable_address`: the networks the instance does have an address on (none: it has no address at all). */
  networks?: string[]
  reason: DropReason
  /** For a duplicate: the instance served at that address instead. */
  keptBy?: { host: string; id: string; status: ServiceRecord['status'] }
}

/** The statuses a client is given, best first: which of two instances at one address is served. */
const SERVED_RANK: Partial<Record<ServiceRecord['status'], number>> = { alive: 0, unknown: 1, draining: 2 }

function addressText(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`
}

/**
 * The address a client on `network` is given for an instance: the instance's IP on that
 * network with its container port, when it has one there; else its host binding, reachable from
 * every host's network (and through the host from a Docker network); undefined when it has
 * neither. An instance given by its host binding is returned as is.
 *
 * @example
 *   addressFor({ ...i, ip: '10.0.0.5', port: 32768, containerPort: 8080, networks: { apps: '10.1.0.7' } }, 'apps')
 *   // { ...i, ip: '10.1.0.7', port: 8080 }
 */
export function addressFor(i: Instance, network: ClientNetwork): Endpoint | undefined {
  const nets = i.networks
  // hasOwn: a network called `constructor` is not the object's prototype.
  if (network !== null && i.containerPort !== undefined && nets && Object.hasOwn(nets, network))
    return { ...i, ip: nets[network]!, port: i.containerPort }
  return i.ip !== undefined && i.port !== undefined ? (i as Endpoint) : undefined
}

/**
 * The endpoint rule of one group for the clients on `network` (null: a host's network): from
 * instances sorted by (host, id, port), take each one's address there (addressFor), drop
 * those that have none and those whose address no client accepts, and keep one served
 * instance per address (canonical IP and port): the best status (alive, then unknown, then
 * draining), then the first in order, so every agent chooses the same one. Instances that are
 * not served (unhealthy) never displace a served one and stay in the list (resources.ts leaves
 * them out).
 *
 * @example
 *   endpointFilter(10001, 'echo', [a, b]) // { kept: [a], dropped: [{ ...b, reason: 'duplicate_address', keptBy: a }] }
 */
export function endpointFilter(
  servicePort: number,
  service: string,
  instances: Instance[],
  network: ClientNetwork = null,
): { kept: Endpoint[]; dropped: DroppedEndpoint[] } {
  const dropped: DroppedEndpoint[] = []
  const drop = (i: Instance, reason: DropReason, address: string, keptBy?: Instance): void => {
    dropped.push({
      servicePort,
      service,
      host: i.host,
      id: i.id,
      status: i.status,
      network,
      address,
      ...(reason === 'no_reachable_address' ? { networks: Object.keys(i.networks ?? {}).sort() } : {}),
      reason,
      ...(keptBy ? { keptBy: { host: keptBy.host, id: keptBy.id, status: keptBy.status } } : {}),
    })
  }
  const best = new Map<string, Endpoint>()
  const usable: Endpoint[] = []
  for (const i of instances) {
    const e = addressFor(i, network)
    if (!e) {
      drop(i, 'no_reachable_address', '')
      continue
    }
    const ip = canonicalIp(e.ip)
    // The one rule for advertised addresses (address.ts advertisedIpProblem): not an IP, a zone ID, the unspecified address.
    if (ip === null) drop(e, 'not_an_ip', addressText(e.ip, e.port))
    else if (!(Number.isInteger(e.port) && e.port > 0 && e.port < 65536)) drop(e, 'port_out_of_range', addressText(e.ip, e.port))
    else {
      usable.push(e)
      const rank = SERVED_RANK[e.status]
      if (rank === undefined) continue
      const key = `${ip}|${e.port}`
      const cur = best.get(key)
      if (!cur || rank < SERVED_RANK[cur.status]!) best.set(key, e)
    }
  }
  if (best.size === usable.filter((e) => SERVED_RANK[e.status] !== undefined).length) return { kept: usable, dropped }
  const kept: Endpoint[] = []
  for (const e of usable) {
    const rank = SERVED_RANK[e.status]
    const winner = rank === undefined ? e : best.get(`${canonicalIp(e.ip)}|${e.port}`)!
    if (winner === e) kept.push(e)
    else drop(e, 'duplicate_address', addressText(e.ip, e.port), winner)
  }
  return { kept, dropped }
}

// Resolved per group object and network: an unchanged group yields the identical resolution.
const resolvedCache = new WeakMap<ServicePortGroup, Map<string, { group: EndpointGroup; dropped: DroppedEndpoint[] }>>()

/**
 * A group as the clients on `network` are given it (endpointFilter), with the instances left
 * out for them; cached per group object, so every consumer of one network shares one result.
 */
export function resolveGroup(g: ServicePortGroup, network: ClientNetwork): { group: EndpointGroup; dropped: DroppedEndpoint[] } {
  let byNet = resolvedCache.get(g)
  if (!byNet) resolvedCache.set(g, (byNet = new Map()))
  // A network name can be any string: keep the host network's key apart from every name.
  const key = network === null ? '' : '=' + network
  let r = byNet.get(key)
  if (!r) {
    const { kept, dropped } = endpointFilter(g.servicePort, g.name, g.instances, network)
    const group: EndpointGroup = {
      servicePort: g.servicePort,
      name: g.name,
      mode: g.mode,
      singlePort: g.singlePort,
      idempotent: g.idempotent,
      instances: kept,
    }
    if (g.authz) group.authz = g.authz
    r = { group, dropped }
    byNet.set(key, r)
  }
  return r
}

interface HostState {
  state: HostView['state']
  bootId: string
  services: readonly ServiceRecord[]
  /** Live records of this host (alive or suspect host, not tombstoned, of its current boot). */
  live: ServiceRecord[]
}

function sameList(a: readonly ServiceRecord[], b: readonly ServiceRecord[]): boolean {
  if (a.length !== b.length) return false
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false
  return true
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

// Instances are derived per record object: an unchanged record yields the identical instance
// objects, so the snapshot cache can compare groups by identity.
const instanceCache = new WeakMap<ServiceRecord, Instance[]>()
const recordOfInstance = new WeakMap<Instance, ServiceRecord>()
const authzCache = new WeakMap<ServiceRecord, AuthzRequest>()

/**
 * The authorization request of a group's instances: the first instance (by host, id) whose
 * record asks for one decides, so a service some instances protect is protected (a rolling
 * update that adds authorization closes the door at its first instance, not its last).
 */
export function authzRequestOf(instances: readonly Instance[]): AuthzRequest {
  for (const i of instances) {
    const r = recordOfInstance.get(i)
    if (!r) continue
    let req = authzCache.get(r)
    if (!req) authzCache.set(r, (req = authzOf(r.labels)))
    if (req.kind !== 'none') return req
  }
  return { kind: 'none' }
}

/** The instances (tcp ports) of one record, with every address, cached per record object. */
export function instancesOf(r: ServiceRecord): Instance[] {
  let list = instanceCache.get(r)
  if (!list) {
    const inbound = parseInboundLabel(r.labels[INBOUND_LABEL])
    list = r.ports
      .filter((p) => p.type === 'tcp')
      .map((p) => {
        const i: Instance = {
          host: r.host,
          id: r.id,
          status: r.status,
          mode: r.proxyMode,
          servicePort: p.servicePort,
          idempotent: r.labels[IDEMPOTENT_LABEL]?.trim().toLowerCase() === 'true',
        }
        const b = hostBinding(p)
        if (b) [i.ip, i.port] = [b.ip, b.port]
        if (p.containerPort !== undefined) i.containerPort = p.containerPort
        if (r.networks) i.networks = r.networks
        if (r.tags?.length) i.tags = r.tags
        if (r.attributes && Object.keys(r.attributes).length > 0) i.attributes = r.attributes
        const at = inbound.get(p.servicePort)
        if (at) i.inbound = at
        return i
      })
    for (const i of list) recordOfInstance.set(i, r)
    instanceCache.set(r, list)
  }
  return list
}

/** The order of a group's instances: host, then id, then port (host port, else container port). */
export function compareInstances(a: Instance, b: Instance): number {
  return cmp(a.host, b.host) || cmp(a.id, b.id) || (a.port ?? a.containerPort ?? 0) - (b.port ?? b.containerPort ?? 0)
}

/**
 * @example
 *   const index = new GroupIndex()
 *   const changes = index.consumer()
 *   index.update(catalog.snapshot())
 *   for (const sp of changes) index.groups.get(sp) // new group, or undefined: gone
 *   changes.clear()
 */
export class GroupIndex {
  /** Current groups by ServicePort. A group object is replaced (never mutated) when it changes. */
  readonly groups = new Map<number, ServicePortGroup>()
  private hosts = new Map<string, HostState>()
  /** Live records with at least one tcp port on the ServicePort. */
  private bySp = new Map<number, Set<ServiceRecord>>()
  private spsOfName = new Map<string, Set<number>>()
  private conflictBySp = new Map<number, ServicePortConflict>()
  private conflictList: ServicePortConflict[] = []
  /** Authorization requests of the groups that make one, by ServicePort. */
  private authzReqBySp = new Map<number, Exclude<AuthzRequest, { kind: 'none' }>>()
  /** ServicePorts whose request names a service, by that name: they are re-resolved when its groups change. */
  private authzDependents = new Map<string, Set<number>>()
  private authzIssueBySp = new Map<number, AuthzIssue>()
  private authzIssueList: AuthzIssue[] = []
  private consumers: Array<Set<number>> = []
  private applied: { snap: CatalogSnapshot; seq: number } | undefined

  /** Conflicts sorted by ServicePort; a new array only when they changed. */
  get conflicts(): ServicePortConflict[] {
    return this.conflictList
  }

  /** Authorization requests that cannot be served, by ServicePort; a new array only when they changed. */
  get authzIssues(): AuthzIssue[] {
    return this.authzIssueList
  }

  /** A set that collects every ServicePort whose group changed (or went) from now on; the consumer clears it. */
  consumer(): Set<number> {
    const s = new Set<number>(this.groups.keys())
    this.consumers.push(s)
    return s
  }

  /** Stop feeding a consumer's set. */
  release(consumer: Set<number>): void {
    this.consumers = this.consumers.filter((c) => c !== consumer)
  }

  /** Bring the groups up to `snap`. Cheap when `snap` is the one applied last. */
  update(snap: CatalogSnapshot): void {
    if (this.applied && this.applied.snap === snap && this.applied.seq === snap.seq) return
    this.applied = { snap, seq: snap.seq }
    const touched = new Set<number>()
    const seen = new Set<string>()
    for (const h of snap.hosts) {
      seen.add(h.name)
      const prev = this.hosts.get(h.name)
      if (prev && prev.services === h.services && prev.state === h.state && prev.bootId === h.bootId) continue
      const live = liveRecordsOf(h)
      const old = prev?.live ?? []
      this.hosts.set(h.name, { state: h.state, bootId: h.bootId, services: h.services, live })
      if (sameList(old, live)) continue
      const now = new Set(live)
      const before = new Set(old)
      for (const r of old) if (!now.has(r)) this.remove(r, touched)
      for (const r of live) if (!before.has(r)) this.add(r, touched)
    }
    for (const [name, prev] of this.hosts) {
      if (seen.has(name)) continue
      this.hosts.delete(name)
      for (const r of prev.live) this.remove(r, touched)
    }
    if (touched.size) this.regroup(touched)
  }

  private add(r: ServiceRecord, touched: Set<number>): void {
    for (const i of instancesOf(r)) {
      let set = this.bySp.get(i.servicePort)
      if (!set) this.bySp.set(i.servicePort, (set = new Set()))
      set.add(r)
      touched.add(i.servicePort)
    }
  }

  private remove(r: ServiceRecord, touched: Set<number>): void {
    for (const i of instancesOf(r)) {
      const set = this.bySp.get(i.servicePort)
      if (!set) continue
      set.delete(r)
      if (set.size === 0) this.bySp.delete(i.servicePort)
      touched.add(i.servicePort)
    }
  }

  private regroup(touched: Set<number>): void {
    const changed = new Set<number>()
    const namesChanged = new Set<string>()
    /** Names whose groups were rebuilt, appeared or went: requests naming them are resolved again. */
    const affected = new Set<string>()
    let conflictsChanged = false
    for (const sp of touched) {
      const prev = this.groups.get(sp)
      const records = this.bySp.get(sp)
      let next: { name: string; instances: Instance[]; mode: ProxyMode; losers: string[]; idempotent: boolean } | undefined
      if (records) {
        const names = new Map<string, Instance[]>()
        for (const r of records) {
          for (const i of instancesOf(r)) {
            if (i.servicePort !== sp) continue
            const list = names.get(r.name)
            if (list) list.push(i)
            else names.set(r.name, [i])
          }
        }
        const sorted = [...names.keys()].sort(compareServiceNames)
        const name = sorted[0]!
        const all = names.get(name)!.sort(compareInstances)
        // Instances may disagree on the mode; the first by (host, id) decides, so every agent agrees.
        next = { name, instances: all, mode: all[0]!.mode, losers: sorted.slice(1), idempotent: all.every((i) => i.idempotent) }
        this.setAuthzRequest(sp, authzRequestOf(all))
      } else {
        this.setAuthzRequest(sp, { kind: 'none' })
      }
      const hadConflict = this.conflictBySp.get(sp)
      if (next && next.losers.length) {
        const cf = { servicePort: sp, winner: next.name, losers: next.losers }
        if (!hadConflict || hadConflict.winner !== cf.winner || hadConflict.losers.join() !== cf.losers.join()) {
          this.conflictBySp.set(sp, cf)
          conflictsChanged = true
        }
      } else if (hadConflict) {
        this.conflictBySp.delete(sp)
        conflictsChanged = true
      }
      if (prev?.name !== next?.name) {
        if (prev) {
          const s = this.spsOfName.get(prev.name)!
          s.delete(sp)
          if (s.size === 0) this.spsOfName.delete(prev.name)
          namesChanged.add(prev.name)
        }
        if (next) {
          let s = this.spsOfName.get(next.name)
          if (!s) this.spsOfName.set(next.name, (s = new Set()))
          s.add(sp)
          namesChanged.add(next.name)
        }
      }
      if (prev) affected.add(prev.name)
      if (next) affected.add(next.name)
      if (!next) {
        if (prev) {
          this.groups.delete(sp)
          changed.add(sp)
        }
        continue
      }
      const g: ServicePortGroup = {
        servicePort: sp,
        name: next.name,
        mode: next.mode,
        singlePort: this.spsOfName.get(next.name)!.size === 1,
        idempotent: next.idempotent,
        instances: next.instances,
      }
      this.groups.set(sp, g)
      changed.add(sp)
    }
    // A name that won or lost a ServicePort may change singlePort on its other groups.
    for (const name of namesChanged) {
      const sps = this.spsOfName.get(name)
      if (!sps) continue
      const single = sps.size === 1
      for (const sp of sps) {
        const g = this.groups.get(sp)!
        if (g.singlePort !== single) {
          this.groups.set(sp, { ...g, singlePort: single })
          changed.add(sp)
        }
      }
    }
    this.resolveAuthzRequests(changed, affected)
    if (conflictsChanged) this.conflictList = [...this.conflictBySp.values()].sort((a, b) => a.servicePort - b.servicePort)
    for (const c of this.consumers) for (const sp of changed) c.add(sp)
  }

  private setAuthzRequest(sp: number, req: AuthzRequest): void {
    const prev = this.authzReqBySp.get(sp)
    if (prev?.kind === 'spec') {
      const deps = this.authzDependents.get(prev.spec.service)
      deps?.delete(sp)
      if (deps?.size === 0) this.authzDependents.delete(prev.spec.service)
    }
    if (req.kind === 'none') {
      this.authzReqBySp.delete(sp)
      return
    }
    this.authzReqBySp.set(sp, req)
    if (req.kind === 'spec') {
      let deps = this.authzDependents.get(req.spec.service)
      if (!deps) this.authzDependents.set(req.spec.service, (deps = new Set()))
      deps.add(sp)
    }
  }

  /**
   * Resolve the authorization requests of the groups rebuilt in this round and of every group
   * whose request names a service whose groups changed (appeared, went, changed mode), once
   * every group of the round is final: a protected service and its authorization service may
   * change in one snapshot. A group whose resolution changed is replaced and marked changed.
   */
  private resolveAuthzRequests(changed: Set<number>, affected: Set<string>): void {
    const todo = new Set<number>()
    for (const sp of changed) todo.add(sp)
    for (const name of affected) for (const sp of this.authzDependents.get(name) ?? []) todo.add(sp)
    let issuesChanged = false
    const groupAt = (sp: number) => this.groups.get(sp)
    const servicePortsOf = (name: string) => [...(this.spsOfName.get(name) ?? [])]
    for (const sp of todo) {
      const g = this.groups.get(sp)
      const req = this.authzReqBySp.get(sp)
      const authz = g && req ? resolveAuthz(req, groupAt, servicePortsOf) : undefined
      if (g && !sameAuthz(g.authz, authz)) {
        const next: ServicePortGroup = { ...g }
        if (authz) next.authz = authz
        else delete next.authz
        this.groups.set(sp, next)
        changed.add(sp)
      }
      const issue: AuthzIssue | undefined =
        g && authz?.problem
          ? {
              servicePort: sp,
              service: g.name,
              target: authz.target,
              problem: authz.problem,
              detail: authz.detail!,
              failureModeAllow: authz.failureModeAllow,
            }
          : undefined
      const had = this.authzIssueBySp.get(sp)
      if (JSON.stringify(had) !== JSON.stringify(issue)) {
        issuesChanged = true
        if (issue) this.authzIssueBySp.set(sp, issue)
        else this.authzIssueBySp.delete(sp)
      }
    }
    if (issuesChanged) this.authzIssueList = [...this.authzIssueBySp.values()].sort((a, b) => a.servicePort - b.servicePort)
  }
}
