/**
 * The bridge between the catalog and the gossip layer: local changes go out as broadcasts
 * keyed by (host, id); push-pull carries one summary (a hash of every owner's digest); when
 * the peer's summary differs from ours, the bridge asks it for its digest per owner, then
 * pulls only the owners that differ, sending what it holds of them (id and version) so that
 * only newer or missing records come back; membership events drive host visibility. A join's
 * push-pull carries the per-owner digest directly, saving the joiner a round trip.
 */
import { formatHostPort } from '../address.js'
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { MEMBER_EVENTS, type Member, type MemberEvent, type StateDelegate } from '../gossip/types.js'
import { INTERNAL_FAULT, logProblem, problemMessage, type Logger } from '../log.js'
import type { Catalog, OwnerDigest } from './catalog.js'
import { compareVersions } from './hlc.js'
import { isUp, type ServiceRecord } from './types.js'
import {
  cutInLegacyForm,
  decodeMessage,
  encodeMessage,
  encodeRecordsWithin,
  MsgType,
  registryProtocolOf,
  SUMMARY_HASH_BYTES,
  type RegistryMessage,
  type RejectedRecord,
  type WireNotes,
} from './wire.js'

/** Answers to one pull asked for again while they say `more` (a bound, not a target: each round must bring records). */
const MAX_PULL_ROUNDS = 64

/** Gossip broadcast keys are at most 255 bytes; a longer (host, id) is keyed by its hash. */
const MAX_KEY_BYTES = 255

/** The broadcast key of a record: a newer broadcast with the same key replaces a queued one. */
export function broadcastKey(host: string, id: string): string {
  const key = `svc/${host}/${id}`
  if (Buffer.byteLength(key) <= MAX_KEY_BYTES) return key
  return `svc#${createHash('sha256').update(`${host}\u0000${id}`).digest('base64url')}`
}

/**
 * The part of `Gossip` (src/gossip) the bridge uses. Declared here so the registry depends
 * only on this shape.
 */
export interface GossipLike {
  readonly bootId: string
  broadcast(key: string, payload: Uint8Array): void
  onMessage(handler: (payload: Uint8Array, from: string) => void): void
  setDelegate(delegate: StateDelegate): void
  request(node: string, payload: Uint8Array, timeoutMs?: number): Promise<Uint8Array>
  onRequest(handler: (payload: Uint8Array, from: string) => Promise<Uint8Array> | Uint8Array): void
  members(): Member[]
  on(event: MemberEvent, listener: (m: Member) => void): unknown
  off(event: MemberEvent, listener: (m: Member) => void): unknown
}

export interface GossipBridgeOptions {
  /** A record whose encoding is larger goes out as a small reference, fetched over a stream. Default 1000 bytes. */
  maxBroadcastBytes?: number
  /** Timeout of a pull or get request. Default 5000 ms. */
  requestTimeoutMs?: number
  /** Upper bound of records asked for in one pull (owners are batched by their digest count). Default 2000. */
  maxRecordsPerPull?: number
  /** Broadcast the records already held locally at start(). Default true (benchmarks that start converged turn it off). */
  announceOnStart?: boolean
  /**
   * Byte budget of one records answer (pull, get); a larger answer is cut and says `more`, and
   * the puller asks again. Default 4 MiB (half the stream frame limit).
   */
  answerBudgetBytes?: number
  /** Least time between two warnings about rejected records of one owner and reason. Default 60000 ms. */
  warnEveryMs?: number
}

export interface GossipBridgeStats {
  broadcastsSent: number
  messagesIn: number
  /** Payloads that failed to decode or validate, from any peer. */
  malformed: number
  /** Records a peer sent that this agent's decoder rejected (limits.ts accept limits), by reason; their neighbours were kept. */
  recordsRejected: Record<string, number>
  /** Messages of a type this release does not know (a newer peer's), skipped. */
  unknownMessages: number
  /** Records or ports with fields after the ones this release knows, kept opaque and passed on. */
  unknownFields: number
  /** Records received by broadcast that were news. */
  news: number
  pullsSent: number
  pullsFailed: number
  recordsPulled: number
  requestsServed: number
  /** Size of the last push-pull state we sent (a summary at rest, a digest on join). */
  lastDigestBytes: number
  /** Push-pulls whose summary matched ours: nothing else was exchanged. */
  summariesMatched: number
  /** Per-owner digests fetched because the summaries differed. */
  digestsFetched: number
}

/**
 * Connects a Catalog to the gossip layer. Emits 'synced' once, after the first push-pull
 * whose pulls completed (the agent's warm start waits for it).
 *
 * @example
 *   const bridge = new GossipBridge({}, { catalog, gossip, logger })
 *   bridge.start()
 *   bridge.once('synced', () => ready())
 */
export class GossipBridge extends EventEmitter<{ synced: [] }> {
  readonly stats: GossipBridgeStats = {
    broadcastsSent: 0,
    messagesIn: 0,
    malformed: 0,
    recordsRejected: {},
    unknownMessages: 0,
    unknownFields: 0,
    news: 0,
    pullsSent: 0,
    pullsFailed: 0,
    recordsPulled: 0,
    requestsServed: 0,
    lastDigestBytes: 0,
    summariesMatched: 0,
    digestsFetched: 0,
  }
  private readonly catalog: Catalog
  private readonly gossip: GossipLike
  private readonly log: Logger
  private readonly maxBroadcast: number
  private readonly timeoutMs: number
  private readonly maxPerPull: number
  private readonly announce: boolean
  private readonly answerBudget: number
  private readonly warnEveryMs: number
  private readonly notes: WireNotes = { unknownTypes: 0, extraFields: 0 }
  /** Owners of which a record was rejected since their last clean pull: not synced with them. */
  private readonly rejectedOwners = new Map<string, { count: number; reason: string }>()
  private readonly lastWarned = new Map<string, number>()
  private started = false
  private synced = false
  private unsubscribeLocal: (() => void) | undefined
  private readonly onMember = (m: Member): void => this.memberChanged(m)
  private readonly inflight = new Set<string>()
  /** Owners (and the boot) whose first full state is being pulled for a handover. */
  private readonly handovers = new Set<string>()
  /**
   * Up members of the first release (registry protocol 1, which drops a record of more than 13
   * fields): while there is one, records go out in their 13-field form (wire.ts `legacy`).
   */
  private readonly legacyMembers = new Set<string>()

  constructor(opts: GossipBridgeOptions, components: { catalog: Catalog; gossip: GossipLike; logger: Logger }) {
    super()
    this.catalog = components.catalog
    this.gossip = components.gossip
    this.log = components.logger.child({ component: 'registry-bridge' })
    this.maxBroadcast = opts.maxBroadcastBytes ?? 1000
    this.timeoutMs = opts.requestTimeoutMs ?? 5000
    this.maxPerPull = opts.maxRecordsPerPull ?? 2000
    this.announce = opts.announceOnStart ?? true
    this.answerBudget = opts.answerBudgetBytes ?? 4 * 1024 * 1024
    this.warnEveryMs = opts.warnEveryMs ?? 60_000
  }

  /** Hooks into gossip and the catalog. Idempotent. */
  start(): void {
    if (this.started) return
    this.started = true
    if (this.catalog.bootId === undefined) this.catalog.setLocalBoot(this.gossip.bootId)
    this.gossip.setDelegate({
      localState: (join) => this.localState(join),
      mergeRemoteState: (data, join, from) => this.mergeRemoteState(data, join, from),
    })
    this.gossip.onMessage((payload, from) => this.handleMessage(payload, from))
    this.gossip.onRequest((payload, from) => this.handleRequest(payload, from))
    for (const ev of MEMBER_EVENTS) this.gossip.on(ev, this.onMember)
    for (const m of this.gossip.members()) this.memberChanged(m)
    this.unsubscribeLocal = this.catalog.onLocalChange((rec) => this.broadcast(rec))
    // Announce what we already hold (records written before start).
    if (this.announce) for (const rec of this.catalog.localRecords()) this.broadcast(rec)
  }

  /** Unhooks; handlers already installed on gossip become no-ops. Idempotent. */
  stop(): void {
    if (!this.started) return
    this.started = false
    for (const ev of MEMBER_EVENTS) this.gossip.off(ev, this.onMember)
    this.unsubscribeLocal?.()
    this.unsubscribeLocal = undefined
  }

  /**
   * Owners this replica is not in sync with because a record of theirs was rejected since
   * their last clean pull (the warm start names them when it gives up waiting).
   */
  unsyncedOwners(): string[] {
    return [...this.rejectedOwners.keys()].sort()
  }

  /** The bytes our per-owner digest would take now (for measurement; sent on join and on request). */
  digestBytes(): number {
    return encodeMessage({ type: MsgType.digest, digests: this.catalog.digest() }).length
  }

  /** The bytes of our push-pull state at rest (the summary). */
  summaryBytes(): number {
    return encodeMessage(this.summary()).length
  }

  // ---- outgoing -------------------------------------------------------------------

  private broadcast(rec: ServiceRecord): void {
    if (!this.started) return
    try {
      this.gossip.broadcast(broadcastKey(rec.host, rec.id), this.encodeForBroadcast(rec))
      this.stats.broadcastsSent++
    } catch (err) {
      // Gossip not started yet (or stopping): push-pull carries the record later.
      this.log.debug({ id: rec.id, err: (err as Error).message }, 'broadcast refused by gossip')
    }
  }

  /** How records are written now: see wire.ts EncodeOptions. */
  private get encoding(): { legacy: boolean } {
    return { legacy: this.legacyMembers.size > 0 }
  }

  private encodeForBroadcast(rec: ServiceRecord): Uint8Array {
    const full = encodeMessage({ type: MsgType.record, record: rec }, this.encoding)
    if (full.length <= this.maxBroadcast) return full
    return encodeMessage({ type: MsgType.ref, host: rec.host, id: rec.id, version: rec.version })
  }

  private localState(join: boolean): Uint8Array {
    const bytes = join ? encodeMessage({ type: MsgType.digest, digests: this.catalog.digest() }) : encodeMessage(this.summary())
    this.stats.lastDigestBytes = bytes.length
    return bytes
  }

  /**
   * Every field differingOwners compares, of every owner, in host order (replicas insert
   * hosts in different orders), hashed: equal summaries mean no owner would be pulled.
   */
  private summary(): { type: typeof MsgType.summary; owners: number; records: number; hash: Uint8Array } {
    const digests = [...this.catalog.digest()].sort((x, y) => (x.host < y.host ? -1 : x.host > y.host ? 1 : 0))
    const h = createHash('sha256')
    let records = 0
    for (const d of digests) {
      records += d.count
      h.update(`${d.host}\u0000${d.bootId}\u0000${d.max[0]}:${d.max[1]}\u0000${d.count}\u0000${d.hash}\n`)
    }
    return { type: MsgType.summary, owners: digests.length, records, hash: h.digest().subarray(0, SUMMARY_HASH_BYTES) }
  }

  // ---- incoming -------------------------------------------------------------------

  private decode(payload: Uint8Array, from: string, what: string): Exclude<RegistryMessage, { type: 'unknown' }> | undefined {
    let m: RegistryMessage
    try {
      m = decodeMessage(payload, this.notes)
    } catch (err) {
      this.stats.malformed++
      this.log.debug({ from, bytes: payload.length, err: (err as Error).message }, `malformed registry ${what} dropped`)
      return undefined
    } finally {
      this.stats.unknownMessages = this.notes.unknownTypes
      this.stats.unknownFields = this.notes.extraFields
    }
    if (m.type === 'unknown') {
      this.log.debug({ from, type: m.code }, `registry ${what} of a type this release does not know (a newer peer's) skipped`)
      return undefined
    }
    return m
  }

  /**
   * Counts and reports records a peer sent that this decoder rejected, and marks their owners
   * not synced. The warning names the owner, the instance and the limit, at most once per
   * `warnEveryMs` per owner and reason; the rest go to debug.
   */
  private rejected(list: readonly RejectedRecord[], from: string): void {
    for (const r of list) {
      this.stats.recordsRejected[r.reason] = (this.stats.recordsRejected[r.reason] ?? 0) + 1
      const owner = r.host ?? `(unknown owner, from ${from})`
      const prev = this.rejectedOwners.get(owner)
      this.rejectedOwners.set(owner, { count: (prev?.count ?? 0) + 1, reason: r.reason })
      const key = `${owner}\u0000${r.reason}`
      const now = Date.now()
      const line = { owner, id: r.id, from, reason: r.reason, err: r.message }
      const problem = {
        what: `record rejected: ${r.message}`,
        input: owner,
        fix: `its neighbours were kept, and this agent is not in sync with ${owner} until a clean pull (upgrade ${owner}'s agent if it is older, or look at its sources)`,
      }
      if (now - (this.lastWarned.get(key) ?? -Infinity) >= this.warnEveryMs) {
        this.lastWarned.set(key, now)
        logProblem(this.log, 'warn', problem, line)
      } else this.log.debug(line, problemMessage(problem))
    }
  }

  private handleMessage(payload: Uint8Array, from: string): void {
    if (!this.started) return
    this.stats.messagesIn++
    const m = this.decode(payload, from, 'broadcast')
    if (!m) return
    try {
      // The gossip layer passes every broadcast on itself (keyed by origin and key), so the
      // bridge only merges here.
      if (m.type === MsgType.record) {
        if ('rejected' in m) this.rejected([m.rejected], from)
        else if (this.catalog.mergeRemote(m.record)) this.stats.news++
      } else if (m.type === MsgType.ref) {
        if (m.host === this.catalog.self) return
        const held = this.catalog.versionOf(m.host, m.id)
        if (held && compareVersions(m.version, held) <= 0) return
        void this.fetchOne(m.host, m.id)
      } else {
        this.stats.malformed++
        this.log.debug({ from, type: m.type }, 'registry broadcast of an unexpected type dropped')
      }
    } catch (err) {
      logProblem(
        this.log,
        'warn',
        { what: `registry broadcast from ${from} could not be handled (${(err as Error).message})`, input: from, fix: INTERNAL_FAULT },
        { err, from },
      )
    }
  }

  private async fetchOne(host: string, id: string): Promise<void> {
    try {
      const reply = await this.gossip.request(host, encodeMessage({ type: MsgType.get, host, id }), this.timeoutMs)
      const m = this.decode(reply, host, 'get reply')
      if (m?.type !== MsgType.records) return
      this.rejected(m.rejected, host)
      for (const r of m.records) if (r.host === host && this.catalog.mergeRemote(r)) this.stats.news++
    } catch (err) {
      this.log.debug({ host, id, err: (err as Error).message }, 'fetching a large record failed; push-pull will bring it')
    }
  }

  private handleRequest(payload: Uint8Array, from: string): Uint8Array {
    const empty = (): Uint8Array => encodeMessage({ type: MsgType.records, records: [], more: false })
    if (!this.started) return empty()
    const m = this.decode(payload, from, 'request')
    if (!m) return empty()
    this.stats.requestsServed++
    if (m.type === MsgType.pull) return encodeRecordsWithin(this.catalog.recordsFor(m.wants), this.answerBudget, this.encoding).bytes
    if (m.type === MsgType.get) {
      const r = this.catalog.get(m.host, m.id)
      return encodeRecordsWithin(r ? [r] : [], this.answerBudget, this.encoding).bytes
    }
    if (m.type === MsgType.digestGet) return encodeMessage({ type: MsgType.digest, digests: this.catalog.digest() })
    this.stats.malformed++
    this.log.debug({ from, type: m.type }, 'registry request of an unexpected type')
    return empty()
  }

  private mergeRemoteState(data: Uint8Array, _join: boolean, from: Member): void {
    if (!this.started) return
    const m = this.decode(data, from.name, 'push-pull state')
    if (!m) return
    if (m.type === MsgType.digest) {
      void this.pullDiffering(from.name, m.digests).then((clean) => this.markSynced(clean, from.name))
      return
    }
    if (m.type !== MsgType.summary) {
      this.stats.malformed++
      this.log.debug({ from: from.name, type: m.type }, 'push-pull state of an unexpected type')
      return
    }
    const mine = this.summary()
    if (mine.owners === m.owners && mine.records === m.records && Buffer.compare(mine.hash, m.hash) === 0) {
      this.stats.summariesMatched++
      // We hold what the peer holds, of every owner: nothing rejected is missing any more.
      this.rejectedOwners.clear()
      this.markSynced(true, from.name)
      return
    }
    void this.fetchDigest(from.name)
  }

  /** Asks a peer whose summary differs from ours for its per-owner digest, then pulls what differs. */
  private async fetchDigest(peer: string): Promise<void> {
    const key = `${peer}\u0000#digest`
    if (this.inflight.has(key)) return
    this.inflight.add(key)
    let digests: OwnerDigest[]
    try {
      const reply = await this.gossip.request(peer, encodeMessage({ type: MsgType.digestGet }), this.timeoutMs)
      if (!this.started) return
      const m = this.decode(reply, peer, 'digest reply')
      if (m?.type !== MsgType.digest) {
        this.stats.pullsFailed++
        return
      }
      this.stats.digestsFetched++
      digests = m.digests
    } catch (err) {
      this.stats.pullsFailed++
      this.log.debug({ peer, err: (err as Error).message }, 'digest request failed; the next push-pull retries')
      return
    } finally {
      this.inflight.delete(key)
    }
    this.markSynced(await this.pullDiffering(peer, digests), peer)
  }

  /**
   * Pulls from a peer the owners whose digest differs from ours, in batches. Resolves true
   * when every pull completed and no record was rejected (we then hold what the peer holds).
   */
  private async pullDiffering(peer: string, digests: readonly OwnerDigest[]): Promise<boolean> {
    const differing = this.catalog.differingOwners(digests)
    // Owners whose digest equals the peer's: whatever was rejected of them is held now.
    const same = new Set(digests.map((d) => d.host))
    for (const o of differing) same.delete(o)
    for (const o of same) this.rejectedOwners.delete(o)
    const owners = differing.filter((o) => !this.inflight.has(`${peer}\u0000${o}`))
    if (owners.length === 0) return true
    const counts = new Map(digests.map((d) => [d.host, d.count]))
    const batches: string[][] = []
    let batch: string[] = []
    let n = 0
    for (const o of owners) {
      // Tombstones are not counted in the digest: leave room for them.
      const c = (counts.get(o) ?? 0) * 2 + 1
      if (batch.length > 0 && n + c > this.maxPerPull) {
        batches.push(batch)
        batch = []
        n = 0
      }
      batch.push(o)
      n += c
    }
    if (batch.length > 0) batches.push(batch)
    const results = await Promise.all(batches.map((b) => this.pull(peer, b)))
    return results.every(Boolean)
  }

  /**
   * Pulls these owners' records from a peer, again while its answer says `more` and brings
   * something new. Resolves true when it completed with no record rejected.
   */
  private async pull(peer: string, owners: string[]): Promise<boolean> {
    const keys = owners.map((o) => `${peer}\u0000${o}`)
    for (const k of keys) this.inflight.add(k)
    const wanted = new Set(owners)
    let clean = true
    try {
      for (let round = 0; round < MAX_PULL_ROUNDS; round++) {
        this.stats.pullsSent++
        const wants = owners.map((owner) => ({ owner, ...this.catalog.holdings(owner) }))
        const reply = await this.gossip.request(peer, encodeMessage({ type: MsgType.pull, wants }), this.timeoutMs)
        if (!this.started) return false
        const m = this.decode(reply, peer, 'pull reply')
        if (m?.type !== MsgType.records) return false
        if (m.rejected.length > 0) {
          clean = false
          this.rejected(
            m.rejected.filter((r) => r.host === undefined || wanted.has(r.host)),
            peer,
          )
        }
        let taken = 0
        for (const r of m.records) {
          if (!wanted.has(r.host)) continue
          this.stats.recordsPulled++
          this.catalog.mergeRemote(r)
          taken++
        }
        // A cut answer: ask again with what we hold now, unless it brought nothing we could take.
        if (!m.more || taken === 0) break
      }
      if (clean) for (const o of owners) this.rejectedOwners.delete(o)
      return clean
    } catch (err) {
      this.stats.pullsFailed++
      this.log.debug({ peer, owners: owners.length, err: (err as Error).message }, 'pull failed; the next push-pull retries')
      return false
    } finally {
      for (const k of keys) this.inflight.delete(k)
    }
  }

  /**
   * The warm start's signal: the first exchange with a peer after which we hold what it holds.
   * An exchange that failed or rejected records does not count; the next one may.
   */
  private markSynced(clean: boolean, peer: string): void {
    if (this.synced) return
    if (!clean) {
      this.log.info({ peer, unsynced: this.unsyncedOwners() }, 'first exchange with a peer incomplete; not synced yet')
      return
    }
    this.synced = true
    this.emit('synced')
  }

  private memberChanged(m: Member): void {
    if (!this.started) return
    const hadLegacy = this.legacyMembers.size > 0
    if (m.name !== this.catalog.self && isUp(m.state) && registryProtocolOf(m.meta) < 2) this.legacyMembers.add(m.name)
    else this.legacyMembers.delete(m.name)
    if (!hadLegacy && this.legacyMembers.size > 0)
      this.log.info(
        { member: m.name },
        'an agent of the first release is a member: records go out in their 13-field form (without status reasons, tags and attributes) until none is left',
      )
    if (hadLegacy && this.legacyMembers.size === 0) {
      // Peers may hold our records in the cut form: write the ones it cut again, so they go out whole.
      const n = this.catalog.rewriteLocal(cutInLegacyForm)
      if (n > 0) this.log.info({ records: n }, 'no agent of the first release is left: local records sent again with every field')
    }
    const bootId = m.meta.boot ?? m.bootId
    this.catalog.setHost(m.name, { state: m.state, bootId, address: formatHostPort({ host: m.addr, port: m.port }) })
    if (this.catalog.pendingBoot(m.name) === bootId) void this.handover(m.name, bootId)
  }

  /**
   * A restarted owner (a new boot while its earlier boot's records are on view): pull its
   * first full state from the owner itself (what we hold names the earlier boot, so it
   * answers with everything), then let the catalog show it in one step. The catalog's own
   * timer bounds the wait; a failed pull ends it at once.
   */
  private async handover(owner: string, bootId: string): Promise<void> {
    const key = `${owner}\u0000${bootId}`
    if (this.handovers.has(key)) return
    this.handovers.add(key)
    try {
      await this.pull(owner, [owner])
    } finally {
      this.handovers.delete(key)
      if (this.started) this.catalog.completeHandover(owner, bootId)
    }
  }
}
