/**
 * The bridge between the catalog and the gossip layer (docs/gossip.md, "The registry on
 * gossip"). Local changes go out as one per-owner version notice ("I am now at version V",
 * with the changed records inline while they are a handful, else without them); a receiver
 * that does not hold the owner's records up to V pulls them over a stream from the member that
 * told it, and passes the notice on only once it holds them, so the cost of a burst grows with
 * the owners that changed rather than with the records. While a member that is up speaks an
 * older registry protocol, every record goes out as its own broadcast instead, as release 2
 * did. Push-pull carries one summary (a hash of every owner's digest); when the peer's summary
 * differs from ours, the bridge asks it for its digest per owner, then pulls only the owners
 * that differ, sending what it holds of them (id and version) so that only newer or missing
 * records come back; membership events drive host visibility. A join's push-pull carries the
 * per-owner digest directly, saving the joiner a round trip.
 */
import { formatHostPort } from '../address.js'
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { MEMBER_EVENTS, type Member, type MemberEvent, type MessageHandler, type StateDelegate } from '../gossip/types.js'
import type { Timer } from '../clock.js'
import { INTERNAL_FAULT, LogLimiter, logProblem, problemMessage, type Logger } from '../log.js'
import type { Catalog, Coverage, OwnerDigest } from './catalog.js'
import { compareVersions } from './hlc.js'
import { PullQueue } from './pulls.js'
import { isUp, type ServiceRecord, type Version } from './types.js'
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

/** The gossip key of an owner's notices (the gossip layer keys by origin too): a newer notice replaces a queued one. */
const NOTICE_KEY = 'v'

/** The registry protocol that has notices and pulls since a version (wire.ts REGISTRY_PROTOCOL 3). */
const NOTICE_PROTOCOL = 3

/** A burst, for the catch-up: notices of this many owners that needed a pull since the last catch-up. */
const BURST_OWNERS = 4

/** Catch-ups in a row (each after the previous one still found records missing). */
const MAX_CATCH_UPS = 8

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
  /** The gossip interval paces the catch-up after a burst (`Gossip.timing`). */
  readonly timing?: { readonly gossipIntervalMs: number }
  broadcast(key: string, payload: Uint8Array, onDone?: (sent: boolean) => void): void
  onMessage(handler: MessageHandler): void
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
  /** Least time between two warnings about rejected records of one owner and reason (and between two first-release lines of one kind), on the catalog's clock. Default 60000 ms. */
  warnEveryMs?: number
  /**
   * An owner's notice carries its changed records inline while they are at most this many
   * (and fit `maxBroadcastBytes`); beyond, receivers pull them. Default 2: a single change, or an
   * instance replaced (one record removed, one added), spreads with its records; a burst as notices.
   */
  inlineRecords?: number
  /** Pulls after notices in flight at once. Default 4. */
  pullConcurrency?: number
  /** Owners asked for in one pull after notices. Default 64. */
  pullMaxOwners?: number
  /**
   * After notices of several owners needed pulls, this much later the bridge compares digests
   * with one random peer and pulls what it still lacks: the few notices a burst's random
   * push did not bring. Default 2 gossip intervals (lan 400 ms), else 1000 ms.
   */
  catchUpMs?: number
}

export interface GossipBridgeStats {
  /** Record broadcasts (release 2's way, while an older member is up). */
  broadcastsSent: number
  /** Version notices of this owner handed to gossip. */
  noticesSent: number
  /** Notices of other owners received (first copies). */
  noticesIn: number
  /** Notices whose inline records this replica applied at once. */
  noticesApplied: number
  /** Pulls after notices (`since` requests) sent, and those that failed. */
  sincePulls: number
  sincePullsFailed: number
  /** Digest comparisons with a random peer after a burst, and the records they brought. */
  catchUps: number
  catchUpRecords: number
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
    noticesSent: 0,
    noticesIn: 0,
    noticesApplied: 0,
    sincePulls: 0,
    sincePullsFailed: 0,
    catchUps: 0,
    catchUpRecords: 0,
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
  /** Warnings about rejected records (per owner and reason) and the first-release lines: one a minute per key (warnEveryMs). */
  private readonly warnLimit: LogLimiter
  private readonly notes: WireNotes = { unknownTypes: 0, extraFields: 0 }
  /** Owners of which a record was rejected since their last clean pull: not synced with them. */
  private readonly rejectedOwners = new Map<string, { count: number; reason: string }>()
  private started = false
  private synced = false
  private unsubscribeLocal: (() => void) | undefined
  private readonly onMember = (m: Member): void => this.memberChanged(m)
  /** Digest requests in flight, by `peer\0#digest`. */
  private readonly inflight = new Set<string>()
  /** Pulls in flight, by `peer\0owner`: a second exchange with the peer waits for them (pullDiffering). */
  private readonly pullsInFlight = new Map<string, Promise<boolean>>()
  /** Owners (and the boot) whose first full state is being pulled for a handover. */
  private readonly handovers = new Set<string>()
  /**
   * Up members of the first release (registry protocol 1, which drops a record of more than 13
   * fields): while there is one, records go out in their 13-field form (wire.ts `legacy`).
   */
  private readonly legacyMembers = new Set<string>()
  private readonly inlineRecords: number
  private readonly pullMaxOwners: number
  private readonly pulls: PullQueue
  /** The registry protocol of every other member that is up, and those of them that lack notices. */
  private readonly protocols = new Map<string, number>()
  private readonly olderPeers = new Set<string>()
  /** The changes this owner's queued notice covers: from `base` (what peers are presumed to hold) to `to`. */
  private episode: { base: Version; to: Version; at: number } | undefined
  /** After this long in the queue a notice has gone out at least once (early rounds send within 20 ms). */
  private readonly outAfterMs: number
  /** `to` of this owner's last notice that gossip finished sending. */
  private announced: Version = [0, 0]
  /** The newest notice passed on per owner: an older one that completes its pull later is not. */
  private readonly relayed = new Map<string, { bootId: string; to: Version }>()
  private readonly catchUpMs: number
  private readonly random: () => number
  /** Owners pulled after notices since the last catch-up, the catch-up timer, and catch-ups in a row. */
  private readonly burstOwners = new Set<string>()
  private catchUpTimer: Timer | undefined
  private catchUpsInRow = 0

  constructor(
    opts: GossipBridgeOptions,
    components: {
      catalog: Catalog
      gossip: GossipLike
      logger: Logger
      /** Picks the catch-up peer; Math.random by default (simulations pass a seeded one). */
      random?: () => number
    },
  ) {
    super()
    this.catalog = components.catalog
    this.gossip = components.gossip
    this.log = components.logger.child({ component: 'registry-bridge' })
    this.maxBroadcast = opts.maxBroadcastBytes ?? 1000
    this.timeoutMs = opts.requestTimeoutMs ?? 5000
    this.maxPerPull = opts.maxRecordsPerPull ?? 2000
    this.announce = opts.announceOnStart ?? true
    this.answerBudget = opts.answerBudgetBytes ?? 4 * 1024 * 1024
    this.warnLimit = new LogLimiter({ windowMs: opts.warnEveryMs ?? 60_000 }, { clock: components.catalog.clock })
    this.inlineRecords = opts.inlineRecords ?? 2
    const interval = components.gossip.timing?.gossipIntervalMs
    this.catchUpMs = opts.catchUpMs ?? (interval !== undefined ? 2 * interval : 1000)
    this.outAfterMs = interval ?? 200
    this.random = components.random ?? Math.random
    this.pullMaxOwners = opts.pullMaxOwners ?? 64
    this.pulls = new PullQueue(
      { concurrency: opts.pullConcurrency ?? 4, maxOwners: this.pullMaxOwners },
      {
        fetch: (peer, owners) => this.pullSince(peer, owners),
        holds: (owner, bootId, to) => {
          const c = this.catalog.coverage(owner)
          return c !== undefined && c.bootId === bootId && compareVersions(c.version, to) >= 0
        },
      },
    )
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
    this.gossip.onMessage((payload, from, via) => this.handleMessage(payload, from, via))
    this.gossip.onRequest((payload, from) => this.handleRequest(payload, from))
    for (const ev of MEMBER_EVENTS) this.gossip.on(ev, this.onMember)
    for (const m of this.gossip.members()) this.memberChanged(m)
    this.unsubscribeLocal = this.catalog.onLocalChange((rec) => this.broadcast(rec))
    // Announce what we already hold (records written before start); without, peers are
    // presumed to hold it.
    if (!this.announce) this.announced = this.catalog.coverage(this.catalog.self)?.version ?? [0, 0]
    else if (this.olderPeers.size > 0) for (const rec of this.catalog.localRecords()) this.broadcast(rec)
    else this.notice()
  }

  /** Unhooks; handlers already installed on gossip become no-ops. Idempotent. */
  stop(): void {
    if (!this.started) return
    this.started = false
    for (const ev of MEMBER_EVENTS) this.gossip.off(ev, this.onMember)
    this.unsubscribeLocal?.()
    this.unsubscribeLocal = undefined
    this.pulls.stop()
    this.catchUpTimer?.cancel()
    this.catchUpTimer = undefined
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
    if (this.olderPeers.size === 0) return this.notice()
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

  /**
   * This owner's version notice: from the version peers are presumed to hold (the last notice
   * gossip finished sending, or the one queued at least a gossip interval ago) to the current one, with the records changed in between when they
   * are at most `inlineRecords` and fit a broadcast. A newer notice replaces a queued one.
   */
  private notice(): void {
    const own = this.catalog.coverage(this.catalog.self)
    if (!own) return
    // Changes one after another (not one burst): the queued notice has gone out, so most peers
    // hold its `to`; the next one starts there, and its record goes inline. A peer that missed
    // the earlier notice holds less than `from` and pulls, as it would anyway.
    const now = this.catalog.clock.now()
    const prev = this.episode
    const base = prev ? (now - prev.at >= this.outAfterMs ? prev.to : prev.base) : this.announced
    if (compareVersions(own.version, base) <= 0) return
    // Only whether they are at most `inlineRecords` matters; the catalog answers from its latest writes.
    const inline = this.catalog.localChangedSince(base, this.inlineRecords) ?? []
    let payload = encodeMessage({ type: MsgType.notice, bootId: own.bootId, from: base, to: own.version, records: inline })
    if (inline.length > 0 && payload.length > this.maxBroadcast)
      payload = encodeMessage({ type: MsgType.notice, bootId: own.bootId, from: base, to: own.version, records: [] })
    const ep = { base, to: own.version, at: prev && base === prev.base ? prev.at : now }
    this.episode = ep
    try {
      this.gossip.broadcast(NOTICE_KEY, payload, (sent) => {
        if (!sent || this.episode !== ep) return
        this.announced = ep.to
        this.episode = undefined
      })
      this.stats.noticesSent++
    } catch (err) {
      // Gossip not started yet (or stopping): push-pull carries the records later.
      this.episode = undefined
      this.log.debug({ err: (err as Error).message }, 'notice refused by gossip')
    }
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
   * `warnEveryMs` per owner and reason (the next warning counting those held back); the rest go to debug.
   */
  private rejected(list: readonly RejectedRecord[], from: string): void {
    for (const r of list) {
      this.stats.recordsRejected[r.reason] = (this.stats.recordsRejected[r.reason] ?? 0) + 1
      const owner = r.host ?? `(unknown owner, from ${from})`
      const prev = this.rejectedOwners.get(owner)
      this.rejectedOwners.set(owner, { count: (prev?.count ?? 0) + 1, reason: r.reason })
      const held = this.warnLimit.admit(`rejected|${owner}\u0000${r.reason}`)
      const line = { owner, id: r.id, from, reason: r.reason, err: r.message }
      const problem = {
        what: `record rejected: ${r.message}`,
        input: owner,
        fix: `its neighbours were kept, and this agent is not in sync with ${owner} until a clean pull (upgrade ${owner}'s agent if it is older, or look at its sources)`,
      }
      if (held !== undefined)
        logProblem(this.log, 'warn', { ...problem, fix: `${problem.fix}${LogLimiter.suffix(held)}` }, { ...line, suppressed: held })
      else this.log.debug(line, problemMessage(problem))
    }
  }

  /**
   * A broadcast of another owner. Records are merged and passed on at once (gossip relays
   * them); a notice is passed on (the returned value) only once this replica holds what it
   * announces, pulled first when needed.
   */
  private handleMessage(payload: Uint8Array, from: string, via: string | undefined): boolean | Promise<boolean> | undefined {
    if (!this.started) return false
    this.stats.messagesIn++
    const m = this.decode(payload, from, 'broadcast')
    if (!m) return undefined
    try {
      if (m.type === MsgType.notice) return this.onNotice(m, from, via)
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
    return undefined
  }

  /**
   * Owner `owner` says it is at version `to`. Inline records are merged; when this replica then
   * holds the owner's records up to `to` (it held them up to `from`, or already up to `to`),
   * the notice is passed on at once; else they are pulled from `via` (which holds them: it
   * passes notices on only then), or the owner, and the notice is passed on once they are in.
   * A boot membership has not named here is left to the handover and to push-pull.
   */
  private onNotice(
    m: Extract<RegistryMessage, { type: typeof MsgType.notice }>,
    owner: string,
    via: string | undefined,
  ): boolean | Promise<boolean> {
    this.stats.noticesIn++
    if (owner === this.catalog.self) return false
    if (m.rejected.length > 0) this.rejected(m.rejected, via ?? owner)
    let whole = m.rejected.length === 0
    for (const r of m.records) {
      if (r.host !== owner || r.bootId !== m.bootId) {
        // Only an owner writes its records: a notice carrying another's is malformed.
        this.stats.malformed++
        whole = false
        continue
      }
      if (this.catalog.mergeRemote(r)) this.stats.news++
    }
    const cov = this.catalog.coverage(owner)
    if (!cov || cov.bootId !== m.bootId) return false
    if (compareVersions(cov.version, m.to) >= 0) return this.passOn(owner, m.bootId, m.to)
    if (whole && m.records.length > 0 && compareVersions(cov.version, m.from) >= 0) {
      this.catalog.cover(owner, m.bootId, m.to)
      this.stats.noticesApplied++
      return this.passOn(owner, m.bootId, m.to)
    }
    const tellers = via !== undefined && via !== owner && this.speaksNotices(via) ? [via, owner] : [owner]
    this.noteBurst(owner)
    return this.pulls.want(owner, m.bootId, m.to, tellers).then((held) => held && this.started && this.passOn(owner, m.bootId, m.to))
  }

  /** True (pass the notice on) unless a newer notice of this owner was passed on already. */
  private passOn(owner: string, bootId: string, to: Version): boolean {
    const last = this.relayed.get(owner)
    if (last && last.bootId === bootId && compareVersions(last.to, to) >= 0) return false
    this.relayed.set(owner, { bootId, to })
    return true
  }

  /**
   * A burst's random push leaves a few replicas without a few notices until some member sends
   * them once more, seconds later. So once notices of BURST_OWNERS owners needed pulls, a
   * catch-up follows `catchUpMs` later.
   */
  private noteBurst(owner: string): void {
    this.burstOwners.add(owner)
    if (this.catchUpTimer || this.burstOwners.size < BURST_OWNERS) return
    this.scheduleCatchUp()
  }

  private scheduleCatchUp(): void {
    this.catchUpTimer = this.catalog.clock.setTimer(this.catchUpMs, () => {
      this.catchUpTimer = undefined
      void this.catchUp()
    })
  }

  /**
   * Compares digests with one random member that speaks notices and pulls, above what this
   * replica covers, every owner whose digest differs; again after `catchUpMs` while that brought
   * records (at most MAX_CATCH_UPS in a row).
   */
  private async catchUp(): Promise<void> {
    if (!this.started) return
    this.burstOwners.clear()
    const peers = [...this.protocols].filter(([, reg]) => reg >= NOTICE_PROTOCOL).map(([name]) => name)
    const peer = peers[Math.floor(this.random() * peers.length)]
    if (peer === undefined) return
    this.stats.catchUps++
    let brought = 0
    try {
      const reply = await this.gossip.request(peer, encodeMessage({ type: MsgType.digestGet }), this.timeoutMs)
      const m = this.started ? this.decode(reply, peer, 'digest reply') : undefined
      if (m?.type !== MsgType.digest) return
      const owners = this.catalog.differingOwners(m.digests).filter((o) => o !== this.catalog.self)
      for (let i = 0; i < owners.length && this.started; i += this.pullMaxOwners) {
        const before = this.stats.recordsPulled
        await this.pullSince(peer, owners.slice(i, i + this.pullMaxOwners))
        brought += this.stats.recordsPulled - before
      }
    } catch (err) {
      this.log.debug({ peer, err: (err as Error).message }, 'catch-up after a burst failed; push-pull repairs the rest')
    } finally {
      this.stats.catchUpRecords += brought
      this.catchUpsInRow = brought > 0 ? this.catchUpsInRow + 1 : 0
      if (this.started && brought > 0 && !this.catchUpTimer && this.catchUpsInRow < MAX_CATCH_UPS) this.scheduleCatchUp()
    }
  }

  private speaksNotices(member: string): boolean {
    return (this.protocols.get(member) ?? 1) >= NOTICE_PROTOCOL
  }

  /**
   * Pulls from `peer` the records of `owners` above what this replica covers of each, and takes
   * in its answer (records and coverage). Rejects when the peer did not answer.
   */
  private async pullSince(peer: string, owners: readonly string[]): Promise<void> {
    const wants = owners.map((o) => this.catalog.coverage(o)).filter((c): c is Coverage => c !== undefined)
    if (wants.length === 0) return
    this.stats.sincePulls++
    try {
      const reply = await this.gossip.request(peer, encodeMessage({ type: MsgType.since, wants }), this.timeoutMs)
      if (!this.started) return
      const m = this.decode(reply, peer, 'since reply')
      if (m?.type !== MsgType.records) throw new Error('no records answer')
      this.takeRecords(peer, new Set(owners), m)
    } catch (err) {
      this.stats.sincePullsFailed++
      this.log.debug({ peer, owners: owners.length, err: (err as Error).message }, 'pull after a notice failed; the next teller is asked')
      throw err
    }
  }

  /**
   * Takes in a records answer of `peer` for `wanted` owners: their records merged, rejected ones
   * reported, and the peer's coverage adopted for each owner none of whose records was
   * rejected. Returns how many records were taken and whether none was rejected.
   */
  private takeRecords(
    peer: string,
    wanted: ReadonlySet<string>,
    m: Extract<RegistryMessage, { type: typeof MsgType.records }>,
  ): { taken: number; clean: boolean } {
    const spoiled = new Set<string>()
    if (m.rejected.length > 0) {
      const mine = m.rejected.filter((r) => r.host === undefined || wanted.has(r.host))
      for (const r of mine) spoiled.add(r.host ?? '')
      this.rejected(mine, peer)
    }
    let taken = 0
    for (const r of m.records) {
      if (!wanted.has(r.host)) continue
      this.stats.recordsPulled++
      this.catalog.mergeRemote(r)
      taken++
    }
    if (!spoiled.has(''))
      for (const c of m.covered) if (wanted.has(c.owner) && !spoiled.has(c.owner)) this.catalog.cover(c.owner, c.bootId, c.version)
    return { taken, clean: m.rejected.length === 0 }
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
    if (m.type === MsgType.pull) {
      const covered = m.wants.map((w) => this.catalog.coverage(w.owner)).filter((c): c is Coverage => c !== undefined)
      return encodeRecordsWithin(this.catalog.recordsFor(m.wants), this.answerBudget, this.encoding, covered).bytes
    }
    if (m.type === MsgType.since) {
      const { records, covered } = this.catalog.recordsSince(m.wants)
      return encodeRecordsWithin(records, this.answerBudget, this.encoding, covered).bytes
    }
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
    // An owner whose pull from this peer is in flight (another exchange's) is not asked twice,
    // but this exchange is clean only once that pull is: claiming it before the records are
    // in made a restarted agent ready, and serve an empty view, while its join's pull was on the way.
    const waits: Array<Promise<boolean>> = []
    const owners: string[] = []
    for (const o of differing) {
      const running = this.pullsInFlight.get(`${peer}\u0000${o}`)
      if (running) waits.push(running)
      else owners.push(o)
    }
    if (owners.length === 0) return (await Promise.all(waits)).every(Boolean)
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
    const results = await Promise.all([...waits, ...batches.map((b) => this.pull(peer, b))])
    return results.every(Boolean)
  }

  /**
   * Pulls these owners' records from a peer, again while its answer says `more` and brings
   * something new. Resolves true when it completed with no record rejected.
   */
  private pull(peer: string, owners: string[]): Promise<boolean> {
    const keys = owners.map((o) => `${peer}\u0000${o}`)
    const running = this.pullOwners(peer, owners)
    for (const k of keys) this.pullsInFlight.set(k, running)
    void running.finally(() => {
      for (const k of keys) if (this.pullsInFlight.get(k) === running) this.pullsInFlight.delete(k)
    })
    return running
  }

  private async pullOwners(peer: string, owners: string[]): Promise<boolean> {
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
        const got = this.takeRecords(peer, wanted, m)
        if (!got.clean) clean = false
        const taken = got.taken
        // A cut answer: ask again with what we hold now, unless it brought nothing we could take.
        if (!m.more || taken === 0) break
      }
      if (clean) for (const o of owners) this.rejectedOwners.delete(o)
      return clean
    } catch (err) {
      this.stats.pullsFailed++
      this.log.debug({ peer, owners: owners.length, err: (err as Error).message }, 'pull failed; the next push-pull retries')
      return false
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
    this.trackProtocol(m)
    if (!hadLegacy && this.legacyMembers.size > 0) {
      // A first-release member that flaps would otherwise write both lines at every flap.
      const held = this.warnLimit.admit('legacy|in')
      if (held !== undefined)
        this.log.info(
          { member: m.name, suppressed: held },
          `an agent of the first release is a member: records go out in their 13-field form (without status reasons, tags and attributes) until none is left${LogLimiter.suffix(held)}`,
        )
    }
    if (hadLegacy && this.legacyMembers.size === 0) {
      // Peers may hold our records in the cut form: write the ones it cut again, so they go out whole.
      const n = this.catalog.rewriteLocal(cutInLegacyForm)
      const held = n > 0 ? this.warnLimit.admit('legacy|out') : undefined
      if (held !== undefined)
        this.log.info(
          { records: n, suppressed: held },
          `no agent of the first release is left: local records sent again with every field${LogLimiter.suffix(held)}`,
        )
    }
    const bootId = m.meta.boot ?? m.bootId
    this.catalog.setHost(m.name, { state: m.state, bootId, address: formatHostPort({ host: m.addr, port: m.port }) })
    if (this.catalog.pendingBoot(m.name) === bootId) void this.handover(m.name, bootId)
  }

  /** Keeps the registry protocol of the members that are up, and which of them are older (no notices, or the first release). */
  private trackProtocol(m: Member): void {
    if (m.name === this.catalog.self) return
    this.protocols.delete(m.name)
    this.olderPeers.delete(m.name)
    this.legacyMembers.delete(m.name)
    if (!isUp(m.state)) {
      // A member down passes no notice on until it is back (with its records pulled anew):
      // the map stays as large as the members up.
      this.relayed.delete(m.name)
      return
    }
    const reg = registryProtocolOf(m.meta)
    this.protocols.set(m.name, reg)
    if (reg < NOTICE_PROTOCOL) this.olderPeers.add(m.name)
    if (reg < 2) this.legacyMembers.add(m.name)
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
