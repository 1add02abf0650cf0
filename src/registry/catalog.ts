/**
 * The catalog: every owner's records, keyed (owner, instance id), merged by the owner's
 * version, with visibility driven by membership (docs/architecture.md "Boot id and visibility").
 *
 * A restart is a handover: when membership names a new boot of a host whose records are on
 * view, this replica keeps showing the earlier boot's records until the new boot's first full
 * state has arrived (the bridge pulls it from the owner and calls `completeHandover`), at most
 * `handoverMs`; then it shows the new boot's records in one step. Records of the earlier boot
 * that the new state lacks vanish then, and the owner tombstones them when it sees them.
 *
 * A replica keeps in its main store only records of the boot that membership says is the
 * host's current one; records of any other boot wait aside (a boot we have not heard of
 * yet) or are refused (a boot we saw replaced). So versions are never compared across
 * boots, and a host whose clock stepped back across a restart still has its new records
 * accepted everywhere.
 */
import { ShoalError } from '../errors.js'
import type { Clock, Timer } from '../clock.js'
import { INTERNAL_FAULT, logProblem, type Logger } from '../log.js'
import { compareVersions, Hlc } from './hlc.js'
import { RecentWrites } from './recent.js'
import {
  isUp,
  type CatalogEvent,
  type CatalogSnapshot,
  type CatalogView,
  type HostState,
  type HostView,
  type ServicePortSpec,
  type ServiceRecord,
  type Version,
} from './types.js'

/** What a local writer hands to `upsertLocal`: the owner stamps host, boot, version and time. */
export type LocalRecord = Omit<ServiceRecord, 'host' | 'bootId' | 'version' | 'updated'>

/**
 * A compact summary of one owner's records as this replica holds them, exchanged on
 * push-pull. Only records that are not tombstones count: tombstones are collected at
 * different moments on different replicas and must not make digests differ.
 */
export interface OwnerDigest {
  host: string
  bootId: string
  /** Highest version among the counted records ([0, 0] when none). */
  max: Version
  count: number
  /** Order-independent 32-bit hash of (id, version) of the counted records. */
  hash: number
}

/**
 * One owner's boot and a version. As coverage (`Catalog.coverage`, a records answer's
 * `covered`): this replica holds every record of that boot at the owner's version as of
 * `version` or later, tombstones included; so a peer that held everything up to a version S
 * and takes every record above S from here holds everything up to `version`. As a request
 * (`since`): the records above `version` are wanted.
 */
export interface Coverage {
  owner: string
  bootId: string
  version: Version
}

export interface CatalogOptions {
  cluster: string
  /** This node's name: the only host whose records this catalog writes. */
  self: string
  /** Own gossip address, for the snapshot. */
  address?: string
  /** How long a tombstone is kept. Default 1 h. */
  tombstoneTtlMs?: number
  /** How long the records of a dead or left host are kept (hidden). Default 1 h. */
  reapAfterMs?: number
  /** Period of the collection sweep while started. Default min(ttl, reap) / 10, within 1 s..60 s. */
  sweepIntervalMs?: number
  /**
   * Longest time the records of a host's earlier boot stay on view after membership names a
   * new boot, waiting for the new boot's first full state. Default 2000 ms.
   */
  handoverMs?: number
}

export interface CatalogComponents {
  clock: Clock
  logger: Logger
}

export interface CatalogStats {
  /** Remote records stored (news). */
  accepted: number
  /** Remote records not newer than what is held. */
  stale: number
  /** Remote records of a boot that was replaced, or of a host reaped. */
  refused: number
  /** Remote records parked until membership confirms their boot. */
  parked: number
  /** Tombstones written by this owner for records of its own earlier boot or collected tombstones seen again. */
  ownerTombstones: number
  /** New boots shown once their first full state arrived. */
  handoversCompleted: number
  /** New boots shown when `handoverMs` ran out first. */
  handoversTimedOut: number
  tombstonesCollected: number
  recordsReaped: number
}

interface Entry {
  rec: ServiceRecord
  /** clock.now() when this replica first held it as a tombstone. */
  tombAt?: number
}

interface Parked {
  at: number
  records: Map<string, ServiceRecord>
  /** Coverage of this boot (see `Coverage`), carried into the main store with the records. */
  covered?: Version
}

interface HostEntry {
  name: string
  address: string
  /** undefined until membership tells us about the host. */
  state: HostState | undefined
  bootId: string | undefined
  downSince: number | undefined
  reaped: boolean
  records: Map<string, Entry>
  parked: Map<string, Parked>
  retired: string[]
  digest: OwnerDigest | undefined
  /** Coverage of the current boot (see `Coverage`); undefined: [0, 0], nothing proven. */
  covered: Version | undefined
  /** A new boot named by membership while the earlier boot's records stay on view (the handover). */
  pending: { bootId: string; timer: Timer } | undefined
}

const MAX_RETIRED = 16
const MAX_PARKED_BOOTS = 4
/** This node's latest records held by its index (RecentWrites): localChangedSince answers up to this many without a pass. */
const RECENT_OWN_KEPT = 16

/** FNV-1a, 32 bits. */
export function hash32(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** Copies a newer release's opaque fields (non-enumerable, so a spread would lose them). */
function withExtra<T extends object>(copy: T, from: { readonly wireExtra?: readonly unknown[] }): T {
  if (from.wireExtra) Object.defineProperty(copy, 'wireExtra', { value: from.wireExtra, enumerable: false })
  return copy
}

/** A record frozen all the way down (as this module makes them): safe to share, not copied again. */
function isFrozenRecord(r: ServiceRecord): boolean {
  return (
    Object.isFrozen(r) &&
    Object.isFrozen(r.ports) &&
    Object.isFrozen(r.labels) &&
    Object.isFrozen(r.version) &&
    r.ports.every((p) => Object.isFrozen(p))
  )
}

function freezeRecord(r: ServiceRecord): ServiceRecord {
  // Another catalog's record (a simulation, a bench) is shared rather than copied.
  if (isFrozenRecord(r)) return r
  const ports: ServicePortSpec[] = r.ports.map((p) => Object.freeze(withExtra({ ...p }, p)))
  const rec: ServiceRecord = {
    id: r.id,
    name: r.name,
    image: r.image,
    created: r.created,
    host: r.host,
    bootId: r.bootId,
    ports: Object.freeze(ports) as ServicePortSpec[],
    proxyMode: r.proxyMode,
    status: r.status,
    version: Object.freeze([r.version[0], r.version[1]] as const),
    updated: r.updated,
    labels: Object.freeze({ ...r.labels }),
  }
  if (r.reason !== undefined) rec.reason = r.reason
  if (r.tags?.length) rec.tags = Object.freeze([...r.tags])
  if (r.attributes && Object.keys(r.attributes).length > 0) rec.attributes = Object.freeze({ ...r.attributes })
  if (r.networks && Object.keys(r.networks).length > 0) rec.networks = Object.freeze({ ...r.networks })
  if (r.detail !== undefined) rec.detail = r.detail
  return Object.freeze(withExtra(rec, r))
}

function sameStrings(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  if (ka.length !== kb.length) return false
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i] || a[ka[i]!] !== b[kb[i]!]) return false
  return true
}

function sameContent(a: LocalRecord, b: LocalRecord): boolean {
  if (a.name !== b.name || a.image !== b.image || a.created !== b.created) return false
  if (a.proxyMode !== b.proxyMode || a.status !== b.status || a.reason !== b.reason || a.detail !== b.detail) return false
  if (JSON.stringify(a.ports) !== JSON.stringify(b.ports)) return false
  if (JSON.stringify(a.networks ?? {}) !== JSON.stringify(b.networks ?? {})) return false
  if (JSON.stringify(a.tags ?? []) !== JSON.stringify(b.tags ?? [])) return false
  return sameStrings(a.labels, b.labels) && sameStrings(a.attributes ?? {}, b.attributes ?? {})
}

function visibleMap(h: HostEntry): Map<string, ServiceRecord> {
  const m = new Map<string, ServiceRecord>()
  if (!isUp(h.state) || h.reaped) return m
  for (const [id, e] of h.records) if (e.rec.status !== 'tombstone') m.set(id, e.rec)
  return m
}

/**
 * The service catalog of one agent.
 *
 * @example
 *   const catalog = new Catalog({ cluster: 'default', self: 'node-a' }, { clock, logger })
 *   catalog.setLocalBoot(gossip.bootId)
 *   catalog.upsertLocal({ id: 'abc123def456', name: 'web', image: 'web:1', created: Date.now(),
 *     ports: [{ type: 'tcp', port: 8080, servicePort: 10080, ip: '10.0.0.5' }],
 *     proxyMode: 'http', status: 'alive', labels: {} })
 *   catalog.subscribe((ev) => console.log(ev.type))
 *   liveRecords(catalog.snapshot())
 */
export class Catalog implements CatalogView {
  readonly cluster: string
  readonly self: string
  readonly stats: CatalogStats = {
    accepted: 0,
    stale: 0,
    refused: 0,
    parked: 0,
    ownerTombstones: 0,
    handoversCompleted: 0,
    handoversTimedOut: 0,
    tombstonesCollected: 0,
    recordsReaped: 0,
  }
  private readonly ttl: number
  private readonly reapAfter: number
  private readonly sweepEvery: number
  private readonly handoverMs: number
  /** The time source of this catalog; the bridge shares it. */
  readonly clock: Clock
  private readonly log: Logger
  private readonly hlc: Hlc
  private readonly hosts = new Map<string, HostEntry>()
  /**
   * This node's latest records and highest version (coverage(self), localChangedSince), kept as
   * they are stored; built again by one pass after one is dropped. The bridge asks on every
   * local change, so a pass each time made a burst of N changes cost N x N.
   */
  private readonly own = new RecentWrites(RECENT_OWN_KEPT)
  private readonly listeners = new Set<(ev: CatalogEvent) => void>()
  private readonly localListeners = new Set<(rec: ServiceRecord) => void>()
  private localBoot: string | undefined
  private seq = 0
  private cached: CatalogSnapshot | undefined
  private timer: Timer | undefined
  private started = false

  constructor(opts: CatalogOptions, components: CatalogComponents) {
    this.cluster = opts.cluster
    this.self = opts.self
    this.ttl = opts.tombstoneTtlMs ?? 3_600_000
    this.reapAfter = opts.reapAfterMs ?? 3_600_000
    this.sweepEvery = opts.sweepIntervalMs ?? Math.min(60_000, Math.max(1000, Math.min(this.ttl, this.reapAfter) / 10))
    this.handoverMs = opts.handoverMs ?? 2000
    this.clock = components.clock
    this.log = components.logger.child({ component: 'catalog' })
    this.hlc = new Hlc(() => this.clock.wallNow())
    this.hosts.set(this.self, this.newHost(this.self, opts.address ?? ''))
    const me = this.hosts.get(this.self)!
    me.state = 'alive'
  }

  /** Starts the periodic collection of tombstones and reaping of dead hosts. Idempotent. */
  start(): void {
    if (this.started) return
    this.started = true
    const tick = (): void => {
      if (!this.started) return
      this.sweep()
      this.timer = this.clock.setTimer(this.sweepEvery, tick)
    }
    this.timer = this.clock.setTimer(this.sweepEvery, tick)
  }

  /** Stops the sweep timer and pending handovers' timers (their earlier boots stay on view). Idempotent. */
  stop(): void {
    this.started = false
    this.timer?.cancel()
    this.timer = undefined
    for (const h of this.hosts.values()) h.pending?.timer.cancel()
  }

  // ---- local side ---------------------------------------------------------------

  /** This agent's boot id; records written later carry it. A second, different boot re-stamps the local records. */
  setLocalBoot(bootId: string): void {
    if (!bootId) throw new ShoalError('SHOAL_ERR_BOOT_ID', 'setLocalBoot: empty boot id')
    if (this.localBoot === bootId) return
    const me = this.hosts.get(this.self)!
    const previous = [...me.records.values()].map((e) => e.rec)
    this.localBoot = bootId
    me.bootId = bootId
    me.records.clear()
    me.digest = undefined
    this.own.clear()
    this.changed()
    for (const r of previous) this.writeLocal(r)
  }

  get bootId(): string | undefined {
    return this.localBoot
  }

  /**
   * Writes (or rewrites) one local record at a new version. Returns the record held; an
   * identical rewrite keeps the current version and emits nothing.
   */
  upsertLocal(rec: LocalRecord): ServiceRecord {
    if (this.localBoot === undefined) throw new ShoalError('SHOAL_ERR_BOOT_ID', `upsertLocal(${rec.id}): setLocalBoot() was not called`)
    const cur = this.hosts.get(this.self)!.records.get(rec.id)
    if (cur && sameContent(cur.rec, rec)) return cur.rec
    return this.writeLocal(rec)
  }

  /** Turns a local record into a tombstone (gossiped, collected after the TTL). False when there is none. */
  removeLocal(id: string): boolean {
    const cur = this.hosts.get(this.self)!.records.get(id)
    if (!cur || cur.rec.status === 'tombstone') return false
    this.writeLocal({ ...cur.rec, status: 'tombstone' })
    return true
  }

  /**
   * Writes again, at a new version, every live local record that `which` selects, unchanged:
   * so that peers holding an older form of it (one cut for an agent of the first release, see
   * wire.ts `legacy`) take it whole. Returns how many were written.
   */
  rewriteLocal(which: (rec: ServiceRecord) => boolean): number {
    let n = 0
    for (const e of [...this.hosts.get(this.self)!.records.values()]) {
      if (e.rec.status === 'tombstone' || !which(e.rec)) continue
      this.writeLocal(e.rec)
      n++
    }
    return n
  }

  /** The local records of the current boot, tombstones included. */
  localRecords(): ServiceRecord[] {
    return [...this.hosts.get(this.self)!.records.values()].map((e) => e.rec)
  }

  /**
   * This node's records of a version above `base` (tombstones included), when there are at
   * most `limit`; undefined when there are more. What a version notice carries inline
   * (GossipBridge.notice): answered from the latest writes, without a pass over every record,
   * for a `limit` up to RECENT_OWN_KEPT.
   */
  localChangedSince(base: Version, limit: number): ServiceRecord[] | undefined {
    if (limit <= this.own.keep) return this.own.since(base, limit, this.allOwn)
    const out: ServiceRecord[] = []
    for (const r of this.ownRecords()) if (compareVersions(r.version, base) > 0 && out.push(r) > limit) return undefined
    return out
  }

  /** This node's records, read in place (no copy). */
  private *ownRecords(): Generator<ServiceRecord> {
    for (const e of this.hosts.get(this.self)!.records.values()) yield e.rec
  }

  /** ownRecords, for the index to read when it is built again. */
  private readonly allOwn = (): Iterable<ServiceRecord> => this.ownRecords()

  /** Called with every record this owner writes (the bridge broadcasts it). Returns an unsubscribe. */
  onLocalChange(fn: (rec: ServiceRecord) => void): () => void {
    this.localListeners.add(fn)
    return () => this.localListeners.delete(fn)
  }

  // ---- remote side --------------------------------------------------------------

  /**
   * Merges a record received from another node. Returns true when it was news (stored,
   * possibly parked until membership confirms its boot): the bridge then passes it on.
   */
  mergeRemote(incoming: ServiceRecord): boolean {
    if (incoming.host === this.self) {
      this.mergeOwn(incoming)
      return false
    }
    const h = this.host(incoming.host)
    if (h.retired.includes(incoming.bootId)) {
      this.stats.refused++
      return false
    }
    if (h.bootId !== incoming.bootId) return this.park(h, incoming)
    if (h.reaped || (h.downSince !== undefined && this.clock.now() - h.downSince >= this.reapAfter)) {
      this.stats.refused++
      return false
    }
    const cur = h.records.get(incoming.id)
    if (cur && compareVersions(incoming.version, cur.rec.version) <= 0) {
      this.stats.stale++
      return false
    }
    const before = cur?.rec
    const rec = freezeRecord(incoming)
    this.store(h, rec, cur)
    this.stats.accepted++
    this.changed()
    if (isUp(h.state)) this.emitDiff(before, rec)
    return true
  }

  /** The version held for (host, id) in the main store, if any. */
  versionOf(host: string, id: string): Version | undefined {
    return this.hosts.get(host)?.records.get(id)?.rec.version
  }

  /** The record held for (host, id) in the main store (tombstones included), if any. */
  get(host: string, id: string): ServiceRecord | undefined {
    return this.hosts.get(host)?.records.get(id)?.rec
  }

  /** Every held record with this instance id, on any host (ids are only unique per host). */
  findById(id: string): ServiceRecord[] {
    const out: ServiceRecord[] = []
    for (const h of this.hosts.values()) {
      const e = h.records.get(id)
      if (e) out.push(e.rec)
    }
    return out
  }

  /**
   * Membership says what a host is: its state, current boot and address. A down host's
   * records vanish from views at once and are dropped after `reapAfterMs`. A new boot of a
   * host with records on view starts a handover (see the header): the earlier boot stays on
   * view until `completeHandover` or `handoverMs`. A boot seen replaced before (a late event)
   * is followed at once.
   */
  setHost(name: string, info: { state: HostState; bootId: string; address: string }): void {
    if (name === this.self) {
      if (info.address && info.address !== this.hosts.get(name)!.address) {
        this.hosts.get(name)!.address = info.address
        this.changed()
      }
      return
    }
    const h = this.host(name)
    if (info.bootId && info.bootId !== h.bootId) {
      const down = info.state === 'dead' || info.state === 'left'
      const onView = isUp(h.state) && !h.reaped && [...h.records.values()].some((e) => e.rec.status !== 'tombstone')
      if (h.bootId !== undefined && onView && !down && !h.retired.includes(info.bootId)) {
        this.beginHandover(h, info.bootId)
        this.applyHost(h, { ...info, bootId: h.bootId })
        return
      }
    }
    if (h.pending) this.endHandover(h)
    this.applyHost(h, info)
  }

  /** The new boot a host is handing over to (its earlier boot still on view), if any. */
  pendingBoot(name: string): string | undefined {
    return this.hosts.get(name)?.pending?.bootId
  }

  /**
   * The first full state of `bootId` has arrived (or can no longer be waited for): show its
   * records in place of the earlier boot's, in one step. False when no such handover is pending.
   */
  completeHandover(name: string, bootId: string): boolean {
    const h = this.hosts.get(name)
    if (!h?.pending || h.pending.bootId !== bootId) return false
    this.endHandover(h)
    this.stats.handoversCompleted++
    this.applyHost(h, { state: h.state!, bootId, address: h.address })
    return true
  }

  private beginHandover(h: HostEntry, bootId: string): void {
    if (h.pending?.bootId === bootId) return
    // A second new boot during a handover keeps the first one's deadline: the wait stays bounded.
    const timer =
      h.pending?.timer ??
      this.clock.setTimer(this.handoverMs, () => {
        const p = h.pending
        if (!p) return
        this.log.debug({ host: h.name, bootId: p.bootId, waitedMs: this.handoverMs }, 'new boot shown without its full state')
        this.endHandover(h)
        this.stats.handoversTimedOut++
        this.applyHost(h, { state: h.state!, bootId: p.bootId, address: h.address })
      })
    h.pending = { bootId, timer }
    this.log.debug({ host: h.name, from: h.bootId, to: bootId }, 'new boot: the earlier one stays on view until its full state arrives')
  }

  private endHandover(h: HostEntry): void {
    h.pending?.timer.cancel()
    h.pending = undefined
  }

  private applyHost(h: HostEntry, info: { state: HostState; bootId: string; address: string }): void {
    const name = h.name
    const wasUp = isUp(h.state) && !h.reaped
    const before = visibleMap(h)
    let dirty = false
    if (info.bootId && info.bootId !== h.bootId) {
      if (h.bootId !== undefined) {
        h.retired.push(h.bootId)
        if (h.retired.length > MAX_RETIRED) h.retired.shift()
        // Membership is the authority, but a late event can name an old boot for a moment:
        // keep the replaced boot's records aside (invisible) so that flipping back costs no pull.
        if (h.records.size > 0 && !h.reaped) {
          if (h.parked.size >= MAX_PARKED_BOOTS) h.parked.delete(h.parked.keys().next().value!)
          const aside: Parked = { at: this.clock.now(), records: new Map([...h.records].map(([id, e]) => [id, e.rec])) }
          if (h.covered) aside.covered = h.covered
          h.parked.set(h.bootId, aside)
        }
      }
      // Following membership back to a boot it named before un-retires that boot.
      h.retired = h.retired.filter((b) => b !== info.bootId)
      h.bootId = info.bootId
      h.records.clear()
      h.digest = undefined
      h.covered = undefined
      h.reaped = false
      const parked = h.parked.get(info.bootId)
      if (parked) {
        h.parked.delete(info.bootId)
        for (const r of parked.records.values()) this.store(h, r, undefined)
        h.covered = parked.covered
      }
      dirty = true
    }
    if (info.state !== h.state) {
      const down = info.state === 'dead' || info.state === 'left'
      if (down && h.downSince === undefined) h.downSince = this.clock.now()
      if (!down) {
        h.downSince = undefined
        h.reaped = false
      }
      h.state = info.state
      dirty = true
    }
    if (info.address && info.address !== h.address) {
      h.address = info.address
      dirty = true
    }
    if (!dirty) return
    // State first, events after: a listener that takes a snapshot sees the whole change.
    this.changed()
    const nowUp = isUp(h.state) && !h.reaped
    if (!wasUp && nowUp) this.emit({ type: 'host-up', host: name })
    if (wasUp && !nowUp) this.emit({ type: 'host-down', host: name, state: h.state! })
    const after = visibleMap(h)
    for (const [id, r] of before) {
      const n = after.get(id)
      if (!n) this.emit({ type: 'service-removed', record: r })
      else if (n !== r) this.emit({ type: 'service-updated', record: n, previous: r })
    }
    for (const [id, r] of after) if (!before.has(id)) this.emit({ type: 'service-added', record: r })
  }

  // ---- collection -----------------------------------------------------------------

  /** Collects expired tombstones, reaps long-dead hosts, drops stale parked records. Runs on a timer while started. */
  sweep(): void {
    const now = this.clock.now()
    let dirty = false
    for (const h of this.hosts.values()) {
      for (const [id, e] of h.records) {
        if (e.tombAt !== undefined && now - e.tombAt >= this.ttl) {
          h.records.delete(id)
          if (h.name === this.self) this.own.dropped()
          this.stats.tombstonesCollected++
          dirty = true
        }
      }
      if (h.name !== this.self && h.downSince !== undefined && !h.reaped && now - h.downSince >= this.reapAfter) {
        this.stats.recordsReaped += h.records.size
        h.records.clear()
        h.parked.clear()
        h.reaped = true
        h.digest = undefined
        h.covered = undefined
        dirty = true
      }
      for (const [b, p] of h.parked) if (now - p.at >= this.reapAfter) h.parked.delete(b)
    }
    if (dirty) {
      this.log.debug({ tombstonesCollected: this.stats.tombstonesCollected, reaped: this.stats.recordsReaped }, 'sweep')
      this.changed()
    }
  }

  // ---- push-pull support ------------------------------------------------------------

  /** One digest per owner that is up (and this node), for push-pull. */
  digest(): OwnerDigest[] {
    const out: OwnerDigest[] = []
    for (const h of this.hosts.values()) {
      if (h.bootId === undefined || !isUp(h.state) || h.reaped) continue
      if (!h.digest) {
        let count = 0
        let hash = 0
        let max: Version = [0, 0]
        for (const [id, e] of h.records) {
          if (e.rec.status === 'tombstone') continue
          count++
          const v = e.rec.version
          hash = (hash + hash32(`${id}\u0000${v[0]}:${v[1]}`)) >>> 0
          if (compareVersions(v, max) > 0) max = v
        }
        h.digest = { host: h.name, bootId: h.bootId, max, count, hash }
      }
      out.push(h.digest)
    }
    return out
  }

  /**
   * The owners whose records should be pulled from a peer that sent `remote`: those whose
   * digest differs from ours, skipping boots we know were replaced and hosts we know are down.
   */
  differingOwners(remote: readonly OwnerDigest[]): string[] {
    const mine = new Map(this.digest().map((d) => [d.host, d]))
    const out: string[] = []
    for (const d of remote) {
      const h = this.hosts.get(d.host)
      if (h && d.host !== this.self) {
        if (h.retired.includes(d.bootId)) continue
        if (h.bootId === d.bootId && (h.state === 'dead' || h.state === 'left')) continue
      }
      const m = mine.get(d.host)
      if (m && m.bootId === d.bootId && m.count === d.count && m.hash === d.hash && compareVersions(m.max, d.max) === 0) continue
      out.push(d.host)
    }
    return out
  }

  /** What this replica holds of one owner, for a pull: the boot it knows and each id's version (tombstones included). */
  holdings(owner: string): { bootId: string; have: Array<[string, number, number]> } {
    const h = this.hosts.get(owner)
    if (!h || h.reaped || h.bootId === undefined) return { bootId: '', have: [] }
    return { bootId: h.bootId, have: [...h.records.values()].map((e) => [e.rec.id, e.rec.version[0], e.rec.version[1]]) }
  }

  /**
   * For a peer's pull: per owner, the records (tombstones included) that are newer than what
   * the peer holds or that it lacks; everything when the peer knows another boot.
   */
  recordsFor(
    wants: ReadonlyArray<{ owner: string; bootId: string; have: ReadonlyArray<readonly [string, number, number]> }>,
  ): ServiceRecord[] {
    const out: ServiceRecord[] = []
    for (const w of wants) {
      const h = this.hosts.get(w.owner)
      if (!h || h.reaped) continue
      if (h.bootId !== w.bootId) {
        for (const e of h.records.values()) out.push(e.rec)
        continue
      }
      const have = new Map(w.have.map((x) => [x[0], [x[1], x[2]] as const]))
      for (const e of h.records.values()) {
        const v = have.get(e.rec.id)
        if (!v || compareVersions(e.rec.version, v) > 0) out.push(e.rec)
      }
    }
    return out
  }

  /**
   * What this replica covers of `owner` (see `Coverage`): the current boot as membership names
   * it, and [0, 0] until a pull or a notice proved more; for this node, its own latest
   * version. Undefined for a host of no known boot, or reaped.
   */
  coverage(owner: string): Coverage | undefined {
    if (owner === this.self) {
      if (this.localBoot === undefined) return undefined
      return { owner, bootId: this.localBoot, version: this.own.highest(this.allOwn) }
    }
    const h = this.hosts.get(owner)
    if (!h || h.reaped || h.bootId === undefined) return undefined
    return { owner, bootId: h.bootId, version: h.covered ?? [0, 0] }
  }

  /**
   * Records that this replica holds every record of (owner, bootId) up to `version`: after a
   * pull answer's `covered`, or a notice whose records filled the gap. Kept with the records of
   * that boot (the current one, or one waiting aside); ignored for any other boot and for this
   * node. Coverage only grows.
   */
  cover(owner: string, bootId: string, version: Version): void {
    if (owner === this.self) return
    const h = this.hosts.get(owner)
    if (!h || h.reaped) return
    const raise = (cur: Version | undefined): Version => (cur && compareVersions(cur, version) >= 0 ? cur : version)
    if (h.bootId === bootId) h.covered = raise(h.covered)
    else {
      const p = h.parked.get(bootId)
      if (p) p.covered = raise(p.covered)
    }
  }

  /**
   * For a peer's `since` request: per owner, the records (tombstones included) with a version
   * above the one asked for, in version order, or every record when the peer names another
   * boot; and what this replica covers of each of those owners.
   */
  recordsSince(wants: readonly Coverage[]): { records: ServiceRecord[]; covered: Coverage[] } {
    const records: ServiceRecord[] = []
    const covered: Coverage[] = []
    for (const w of wants) {
      const h = this.hosts.get(w.owner)
      const cov = this.coverage(w.owner)
      if (!h || !cov) continue
      const same = h.bootId === w.bootId
      const mine = [...h.records.values()].map((e) => e.rec).filter((r) => !same || compareVersions(r.version, w.version) > 0)
      records.push(...mine.sort((a, b) => compareVersions(a.version, b.version)))
      covered.push(cov)
    }
    return { records, covered }
  }

  /** Every record of the current boot of these owners (tombstones included). */
  recordsOf(owners: readonly string[]): ServiceRecord[] {
    const out: ServiceRecord[] = []
    for (const o of owners) {
      const h = this.hosts.get(o)
      if (!h || h.reaped) continue
      for (const e of h.records.values()) out.push(e.rec)
    }
    return out
  }

  // ---- consumers ----------------------------------------------------------------

  snapshot(): CatalogSnapshot {
    if (this.cached && this.cached.seq === this.seq) return this.cached
    const hosts: HostView[] = []
    for (const h of this.hosts.values()) {
      if (h.state === undefined || h.reaped) continue
      const services = isUp(h.state)
        ? [...h.records.values()].map((e) => e.rec).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        : []
      hosts.push(
        Object.freeze({
          name: h.name,
          address: h.address,
          state: h.state,
          bootId: h.bootId ?? '',
          services: Object.freeze(services) as ServiceRecord[],
        }),
      )
    }
    hosts.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    this.cached = Object.freeze({ cluster: this.cluster, seq: this.seq, hosts: Object.freeze(hosts) as HostView[] })
    return this.cached
  }

  subscribe(listener: (ev: CatalogEvent) => void): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  // ---- internals ------------------------------------------------------------------

  private newHost(name: string, address: string): HostEntry {
    return {
      name,
      address,
      state: undefined,
      bootId: undefined,
      downSince: undefined,
      reaped: false,
      records: new Map(),
      parked: new Map(),
      retired: [],
      digest: undefined,
      covered: undefined,
      pending: undefined,
    }
  }

  private host(name: string): HostEntry {
    let h = this.hosts.get(name)
    if (!h) {
      h = this.newHost(name, '')
      this.hosts.set(name, h)
    }
    return h
  }

  private store(h: HostEntry, rec: ServiceRecord, cur: Entry | undefined): void {
    const entry: Entry = { rec }
    if (rec.status === 'tombstone') entry.tombAt = cur?.tombAt ?? this.clock.now()
    h.records.set(rec.id, entry)
    h.digest = undefined
    if (h.name === this.self) this.own.stored(rec)
  }

  /** A record of a boot membership has not confirmed: kept aside, invisible, until it does. */
  private park(h: HostEntry, rec: ServiceRecord): boolean {
    let p = h.parked.get(rec.bootId)
    if (!p) {
      if (h.parked.size >= MAX_PARKED_BOOTS) {
        this.stats.refused++
        return false
      }
      p = { at: this.clock.now(), records: new Map() }
      h.parked.set(rec.bootId, p)
    }
    const cur = p.records.get(rec.id)
    if (cur && compareVersions(rec.version, cur.version) <= 0) {
      this.stats.stale++
      return false
    }
    p.records.set(rec.id, freezeRecord(rec))
    this.stats.parked++
    return true
  }

  /**
   * A record about this node seen elsewhere. Of an earlier boot, or of this boot but no
   * longer held here (a collected tombstone come back): the owner tombstones it at a higher
   * version, so that it can never be revived.
   */
  private mergeOwn(rec: ServiceRecord): void {
    if (this.localBoot === undefined) return
    this.hlc.observe(rec.version)
    const cur = this.hosts.get(this.self)!.records.get(rec.id)
    if (cur) {
      if (rec.bootId === this.localBoot && compareVersions(rec.version, cur.rec.version) > 0) {
        // Someone holds a newer version of ours than we do (should not happen): re-assert ours above it.
        this.writeLocal(cur.rec)
      }
      return
    }
    if (rec.status === 'tombstone') return
    this.stats.ownerTombstones++
    this.log.debug({ id: rec.id, boot: rec.bootId, version: rec.version }, 'tombstoning a stale record of ours seen elsewhere')
    this.writeLocal({ ...rec, status: 'tombstone' })
  }

  private writeLocal(fields: LocalRecord): ServiceRecord {
    const me = this.hosts.get(this.self)!
    const cur = me.records.get(fields.id)
    const rec = freezeRecord({
      id: fields.id,
      name: fields.name,
      image: fields.image,
      created: fields.created,
      host: this.self,
      bootId: this.localBoot!,
      ports: fields.ports,
      proxyMode: fields.proxyMode,
      status: fields.status,
      version: this.hlc.now(),
      updated: this.clock.wallNow(),
      labels: fields.labels,
      // A tombstone says nothing more than that it is gone.
      ...(fields.reason !== undefined && fields.status !== 'tombstone' ? { reason: fields.reason } : {}),
      ...(fields.tags ? { tags: fields.tags } : {}),
      ...(fields.attributes ? { attributes: fields.attributes } : {}),
      ...(fields.networks ? { networks: fields.networks } : {}),
      ...(fields.detail !== undefined && fields.status !== 'tombstone' ? { detail: fields.detail } : {}),
    })
    this.store(me, rec, cur?.rec.status === 'tombstone' && rec.status === 'tombstone' ? cur : undefined)
    this.changed()
    this.emitDiff(cur?.rec, rec)
    for (const fn of this.localListeners) {
      try {
        fn(rec)
      } catch (err) {
        logProblem(
          this.log,
          'warn',
          { what: `a local change listener threw on ${rec.id} (${(err as Error).message})`, input: rec.id, fix: INTERNAL_FAULT },
          { err, id: rec.id },
        )
      }
    }
    return rec
  }

  private emitDiff(before: ServiceRecord | undefined, after: ServiceRecord): void {
    const wasLive = before !== undefined && before.status !== 'tombstone'
    const isLive = after.status !== 'tombstone'
    if (!wasLive && isLive) this.emit({ type: 'service-added', record: after })
    else if (wasLive && !isLive) this.emit({ type: 'service-removed', record: after })
    else if (wasLive && isLive) this.emit({ type: 'service-updated', record: after, previous: before! })
  }

  private changed(): void {
    this.seq++
  }

  private emit(ev: CatalogEvent): void {
    for (const l of this.listeners) {
      try {
        l(ev)
      } catch (err) {
        logProblem(
          this.log,
          'warn',
          { what: `a catalog listener threw on ${ev.type} (${(err as Error).message})`, input: ev.type, fix: INTERNAL_FAULT },
          { err, event: ev.type },
        )
      }
    }
  }
}
