/**
 * The JSON shapes of the HTTP API, as pure functions of a catalog snapshot and the
 * member list. Shoal's own camelCase with string statuses; the UI and `shoal` client
 * commands read exactly these.
 */
import { formatHostPort } from '../address.js'
import type { KeyUse, Member, MemberState } from '../gossip/types.js'
import type { CheckResult } from '../health/types.js'
import type { ServicePortConflict } from '../registry/index.js'
import type { CatalogEvent, CatalogSnapshot, HostView, LocalInstanceDetails, ServiceRecord, ServiceStatus } from '../registry/types.js'
import { isUp, liveRecords, takesTraffic } from '../registry/types.js'

/**
 * GET /api/state.json: the whole catalog as this agent holds it, each record with `serving`
 * (its status takes new traffic: the registry's `takesTraffic`) and `live`
 * (listed and served: its host up, its boot current, not a tombstone; the registry's
 * `liveRecordsOf`).
 *
 * @example
 *   { cluster: 'default', node: 'a', seq: 12, hosts: [{ name: 'a', address: '10.0.0.1:7946',
 *     state: 'alive', bootId: 'f3…', services: [{ id: 'web-1', name: 'web', status: 'alive', live: true, … }] }] }
 */
export interface StateView {
  cluster: string
  /** The node this agent runs as. */
  node: string
  seq: number
  hosts: Array<Omit<HostView, 'services'> & { services: Array<ServiceRecord & { live: boolean; serving: boolean }> }>
}

/**
 * One live instance as the API shows it: its record, whether it takes traffic, and, on its
 * owner's agent only, what only the owner knows (its last check run, where it came from).
 *
 * @example
 *   { id: 'db-a2', name: 'db', host: 'a', status: 'unhealthy', detail: 'Tcp 10.0.0.5:5432: connection refused',
 *     serving: false, …, check: { type: 'Tcp', target: '10.0.0.5:5432', passed: false, error: 'connection refused', … },
 *     local: { source: 'static', origin: '/etc/shoal/static.json services[1]', checkSpec: { type: 'Tcp', args: '{{ host }}:5432' } } }
 */
export interface InstanceView extends ServiceRecord {
  /** It takes new traffic: `alive` or `unknown` (the registry's `takesTraffic`); `draining` and `unhealthy` take none. */
  serving: boolean
  /** The last run of its health check (owner only; absent before the first run or without a check). */
  check?: CheckResult
  /** Source, origin, container, the check as configured, the drain (owner only). */
  local?: Omit<LocalInstanceDetails, 'check'>
}

/** What only the owner knows of a local instance (LocalServices.details); undefined for others. */
export type LocalDetails = (id: string) => LocalInstanceDetails | undefined

/** One member as the API shows it. `lastChange` is epoch ms of its last state change. */
export interface MemberView {
  name: string
  /** host:port of its gossip socket. */
  address: string
  state: MemberState
  incarnation: number
  bootId: string
  meta: Readonly<Record<string, string>>
  lastChange: number
}

/**
 * GET /api/members.json.
 *
 * @example
 *   { cluster: 'default', node: 'a', members: [{ name: 'b', address: '10.0.0.2:7946',
 *     state: 'suspect', incarnation: 3, bootId: '9c…', meta: { boot: '9c…' }, lastChange: 1717000000000 }] }
 */
export interface MembersView {
  cluster: string
  node: string
  members: MemberView[]
}

/** One service across the cluster: its live instances (owner alive or suspect, not tombstoned). */
export interface ServiceView {
  name: string
  /** Every ServicePort its instances declare, ascending. */
  servicePorts: number[]
  /** Instance count per status (alive, unhealthy, unknown, draining). */
  counts: Partial<Record<ServiceStatus, number>>
  /** Instances that take new traffic (`serving`: alive or unknown). */
  serving: number
  instances: InstanceView[]
  /** ServicePort conflicts this service is part of (as winner or loser). */
  conflicts: ServicePortConflict[]
}

/**
 * GET /api/services.json: services grouped by name, with the cluster members.
 *
 * @example
 *   { cluster: 'default', node: 'a', seq: 12,
 *     services: [{ name: 'web', servicePorts: [10001], counts: { alive: 2 }, instances: [ … ] }],
 *     members: [{ name: 'a', address: '10.0.0.1:7946', state: 'alive', … }] }
 */
export interface ServicesView {
  cluster: string
  node: string
  seq: number
  services: ServiceView[]
  members: MemberView[]
  /** Every ServicePort claimed by more than one service name, by ServicePort. */
  conflicts: ServicePortConflict[]
}

/** GET /api/services/{name}.json: one service, plus where it was read. */
/**
 * `/api/keys.json`: the agent's gossip keys by fingerprint (the first 16 hex digits of the key's
 * SHA-256, never the key) and the live members that seal their traffic with each, for key
 * rotation (`shoal keyring list`).
 *
 * @example
 *   { node: 'a', cluster: 'default', encrypted: true, members: 3,
 *     keys: [{ fingerprint: '3f2a9c0d1e2b4a5f', primary: true, members: ['a', 'b', 'c'] }], unknown: [] }
 */
export interface KeysView extends KeyUse {
  node: string
  cluster: string
  /** False when the agent has no keys (gossip in clear). */
  encrypted: boolean
  /** Live members, this agent included. */
  members: number
}

/**
 * The view of `use`. Without keys (gossip in clear) no member has a key to be heard from with:
 * `unknown` is empty and `members` still counts the live members.
 */
export function keysView(cluster: string, node: string, use: KeyUse): KeysView {
  const encrypted = use.keys.length > 0
  // Without keys this agent is in no key's list and `unknown` (gossip's keyUse) holds the others.
  const members = encrypted ? use.keys.reduce((n, k) => n + k.members.length, 0) + use.unknown.length : use.unknown.length + 1
  return { node, cluster, encrypted, members, keys: use.keys, unknown: encrypted ? use.unknown : [] }
}

export interface OneServiceView extends ServiceView {
  cluster: string
  node: string
  seq: number
}

export function stateView(snap: CatalogSnapshot, node: string): StateView {
  const hosts = snap.hosts.map((h) => {
    const up = isUp(h.state)
    return {
      ...h,
      services: h.services.map((r) => ({
        ...r,
        live: up && r.status !== 'tombstone' && r.bootId === h.bootId,
        serving: takesTraffic(r.status),
      })),
    }
  })
  return { cluster: snap.cluster, node, seq: snap.seq, hosts }
}

/**
 * `stateChangedAt` is on the membership clock (monotonic); `toWall` turns it into epoch ms
 * so that people and scripts can read it.
 */
export function memberView(m: Member, toWall: (monotonicMs: number) => number): MemberView {
  return {
    name: m.name,
    address: formatHostPort({ host: m.addr, port: m.port }),
    state: m.state,
    incarnation: m.incarnation,
    bootId: m.bootId,
    meta: m.meta,
    lastChange: Math.round(toWall(m.stateChangedAt)),
  }
}

export function membersView(cluster: string, node: string, members: Member[], toWall: (ms: number) => number): MembersView {
  const list = members.map((m) => memberView(m, toWall)).sort((a, b) => a.name.localeCompare(b.name))
  return { cluster, node, members: list }
}

/** A live record as the API shows it; `details` adds what the owner knows when `node` owns it. */
export function instanceView(r: ServiceRecord, node: string, details?: LocalDetails): InstanceView {
  const v: InstanceView = { ...r, serving: takesTraffic(r.status) }
  const d = r.host === node ? details?.(r.id) : undefined
  if (d) {
    const { check, ...local } = d
    if (check) v.check = check
    v.local = local
  }
  return v
}

/**
 * Live records grouped by service name, sorted by name; instances sorted by host then id.
 * `only` keeps one name (the others are not built).
 */
export function groupServices(
  snap: CatalogSnapshot,
  node: string,
  opts: { details?: LocalDetails; conflicts?: readonly ServicePortConflict[]; only?: string } = {},
): ServiceView[] {
  const byName = new Map<string, ServiceRecord[]>()
  for (const r of liveRecords(snap)) {
    if (opts.only !== undefined && r.name !== opts.only) continue
    let list = byName.get(r.name)
    if (!list) byName.set(r.name, (list = []))
    list.push(r)
  }
  const out: ServiceView[] = []
  for (const [name, records] of byName) {
    records.sort((a, b) => a.host.localeCompare(b.host) || a.id.localeCompare(b.id))
    const ports = new Set<number>()
    const counts: Partial<Record<ServiceStatus, number>> = {}
    let serving = 0
    const instances = records.map((r) => {
      for (const p of r.ports) if (p.servicePort > 0) ports.add(p.servicePort)
      counts[r.status] = (counts[r.status] ?? 0) + 1
      const v = instanceView(r, node, opts.details)
      if (v.serving) serving++
      return v
    })
    const conflicts = (opts.conflicts ?? []).filter((c) => c.winner === name || c.losers.includes(name))
    out.push({ name, servicePorts: [...ports].sort((a, b) => a - b), counts, serving, instances, conflicts })
  }
  return out.sort((a, b) => a.name.localeCompare(b.name))
}

export function servicesView(
  snap: CatalogSnapshot,
  node: string,
  members: MemberView[],
  opts: { details?: LocalDetails; conflicts?: readonly ServicePortConflict[] } = {},
): ServicesView {
  const conflicts = [...(opts.conflicts ?? [])]
  return { cluster: snap.cluster, node, seq: snap.seq, services: groupServices(snap, node, opts), members, conflicts }
}

/** One service, or undefined when no live instance carries that name. */
export function oneServiceView(
  snap: CatalogSnapshot,
  node: string,
  name: string,
  opts: { details?: LocalDetails; conflicts?: readonly ServicePortConflict[] } = {},
): OneServiceView | undefined {
  const [svc] = groupServices(snap, node, { ...opts, only: name })
  return svc && { cluster: snap.cluster, node, seq: snap.seq, ...svc }
}

/**
 * A catalog change as /api/watch sends it: records carry `serving` (the registry's
 * `takesTraffic`), so that clients such as the UI never restate the rule.
 */
export function watchCatalogEvent(ev: CatalogEvent): CatalogEvent {
  if (!('record' in ev)) return ev
  const out = { ...ev, record: { ...ev.record, serving: takesTraffic(ev.record.status) } }
  return out
}
