/**
 * The SWIM + Lifeguard membership protocol: lifecycle and public API, probing with
 * indirect probes, nacks and a stream fallback; dissemination by piggybacking and gossip
 * rounds; push-pull anti-entropy; join, leave, reconnect; packet and stream dispatch.
 * The member table is members.ts; what each message does to it (the rule table of
 * docs/gossip.md, suspicion and refutation) is state.ts. Time and network arrive injected.
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { formatHostPort, parseHostPort } from '../address.js'
import { isErrorCode, isShoalError, ShoalError } from '../errors.js'
import { Buckets } from '../histogram.js'
import { INTERNAL_FAULT, logProblem, type Logger } from '../log.js'
import { Awareness } from './awareness.js'
import { DEFAULT_MTU, MAX_META_BYTES, pushPullInterval, resolveTiming, type Timing } from './config.js'
import { REFUSAL_TEXT, isConnectionRefused, joinFailureReason } from './failures.js'
import type { Keyring } from './keyring.js'
import { MemberTable, isLive, type MemberEntry } from './members.js'
import {
  COMPOUND_HEADER,
  COMPOUND_PART_OVERHEAD,
  GOSSIP_PROTOCOL,
  MessageType,
  MessageTypeName,
  decodeMessage,
  decodeNotes,
  decodePacket,
  encodeCompound,
  encodeMessage,
  metaSize,
  type IndirectPingMsg,
  type Message,
  type PingMsg,
  type PushPullMsg,
  type UserMsg,
} from './messages.js'
import { BroadcastQueue } from './queue.js'
import { MembershipRules, memberKey } from './state.js'
import {
  MemberState,
  type Address,
  type Clock,
  type GossipEvents,
  type GossipStats,
  type JoinAttempt,
  type JoinBackResult,
  type KeyUse,
  type Member,
  type RejectReason,
  type SeedFailure,
  type MessageHandler,
  type StateDelegate,
  type Timer,
  type Transport,
} from './types.js'
import { Wire, WireError, decodeRefusal, encodeRefusal, rejectReasonOf } from './wire.js'

/**
 * @example
 *   const g = new Gossip({ name: 'web-1', cluster: 'prod', profile: 'lan' },
 *     { transport: new NetTransport({ bind: { host: '0.0.0.0', port: 7946 } }, { logger }), clock: new RealClock(), logger })
 *   await g.start()
 *   await g.join(['10.0.0.2:7946'], { retry: true })
 */
export interface GossipOptions {
  name: string
  cluster: string
  profile?: 'lan' | 'local' | 'wan'
  timing?: Partial<Timing>
  /** Address others use to reach us; defaults to the bound address. */
  advertise?: Address
  meta?: Record<string, string>
  keyring?: Keyring
  /** Datagram limit including every header and the encryption overhead (default 1400). */
  mtu?: number
}

export interface GossipComponents {
  transport: Transport
  clock: Clock
  logger: Logger
  /** Source of randomness for protocol choices (probe order, targets, jitter); Math.random by default. */
  random?: () => number
}

/** Options of Gossip.join. */
export interface JoinOptions {
  signal?: AbortSignal
  /** Try again with jittered backoff until a seed answers. */
  retry?: boolean
  /** Called after every round with what each seed that did not answer failed with. */
  onAttempt?: (attempt: JoinAttempt) => void
}

interface AckHandler {
  onAck: () => void
  onNack: () => void
}

const SEEN_TTL_MS = 5 * 60_000
const MAX_SEQ = 2 ** 32 - 1
const PUSH_PULL_MAX_INFLIGHT = 64
const STREAM_FANOUT_CONCURRENCY = 8

function addrKey(a: { addr?: string; host?: string; port: number }): string {
  return formatHostPort({ host: (a.addr ?? a.host)!, port: a.port })
}

/** "host:port" or an Address; IPv6 as "[::1]:7946". Throws SHOAL_ERR_ADDRESS. */
export function parseAddress(s: Address | string): Address {
  if (typeof s !== 'string') {
    if (typeof s?.host === 'string' && Number.isInteger(s.port) && s.port > 0 && s.port < 65536) return s
    throw new ShoalError('SHOAL_ERR_ADDRESS', `address ${JSON.stringify(s)} is not { host, port }`)
  }
  return parseHostPort(s, 'gossip address')
}

/** Seconds; a probe's ack comes back within a probe timeout (350 ms on lan) or via indirect probes. */
const RTT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
/** Seconds; a push-pull is one stream exchange of the member list and the registry's state. */
const PUSH_PULL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** A count per message type name (and `total`), all at zero. */
function zeroByType(): Record<string, number> {
  const out: Record<string, number> = { total: 0 }
  for (const name of Object.values(MessageTypeName)) out[name] = 0
  return out
}

/** An error a peer answered with: its code when it is one of ours, else a decode error naming it. */
function remoteError(code: string, message: string): ShoalError {
  return isErrorCode(code)
    ? new ShoalError(code, message)
    : new ShoalError('SHOAL_ERR_DECODE', `${message} (unknown code ${JSON.stringify(code)})`)
}

export class Gossip extends EventEmitter<GossipEvents> {
  /** Random per start; carried as meta.boot. */
  readonly bootId: string
  readonly timing: Timing
  private readonly opts: GossipOptions
  private readonly transport: Transport
  private readonly clock: Clock
  private readonly log: Logger
  private readonly random: () => number
  private readonly mtu: number
  private readonly wire: Wire
  private keyring: Keyring | undefined
  private readonly awareness: Awareness
  private readonly queue: BroadcastQueue
  private readonly table: MemberTable
  private readonly rules: MembershipRules

  private running = false
  private startPromise: Promise<void> | undefined
  private stopped = false
  /** Message sequence numbers; the first is random (from `random`, so that a seeded simulation is the same every run). */
  private seq: number
  private readonly acks = new Map<number, AckHandler>()
  private readonly timers = new Set<Timer>()
  private readonly seenUser = new Map<string, number>()
  private readonly messageHandlers: MessageHandler[] = []
  private requestHandler: ((payload: Uint8Array, from: string) => Promise<Uint8Array> | Uint8Array) | undefined
  private delegate: StateDelegate | undefined
  private lastRoundAt = -Infinity
  /**
   * The periodic gossip round's timer, armed only while the queue holds a broadcast: an idle
   * agent then wakes for probes alone (about 1.4 a second at lan instead of 6.4). Rounds keep
   * one phase across idle gaps: they run at roundPhase + k x gossipIntervalMs, as if the timer
   * had never stopped, so a broadcast waits for the next slot exactly as before.
   */
  private roundTimer: Timer | undefined
  private roundPhase = 0
  private earlyTimer: Timer | undefined
  private earlyTokens: number
  private earlyTokensAt = 0
  private pushPullInflight = 0
  /** A push-pull with a peer completed (either direction) since start: see joinBack. */
  private exchanged = false
  private joinBackInflight = false
  private lastJoinBackAt = -Infinity
  private readonly counters = {
    // Every message type from the start, at zero, so that each series exists before its first packet.
    packetsIn: zeroByType(),
    packetsOut: zeroByType(),
    bytesIn: zeroByType(),
    bytesOut: zeroByType(),
    probeRtt: new Buckets(RTT_BUCKETS),
    pushPullDuration: new Buckets(PUSH_PULL_BUCKETS),
    probes: 0,
    probesFailed: 0,
    suspicions: 0,
    refutations: 0,
    nameConflicts: 0,
    refusedDeaths: 0,
    decodeErrors: 0,
    rejected: {} as Record<string, number>,
    joinFailures: {} as Record<string, number>,
    joinBacks: { joined: 0, conflict: 0, failed: 0 } as Record<JoinBackResult, number>,
    pushPulls: 0,
    pushPullsFailed: 0,
  }
  /** Unknown message types and fields met while decoding (a newer peer's), and malformed compound parts. */
  private readonly notes = decodeNotes()
  /** The fingerprint of the key each member's own traffic (ping, push-pull, request) was sealed with: its primary. */
  private readonly memberKeys = new Map<string, string>()

  constructor(opts: GossipOptions, components: GossipComponents) {
    super()
    if (typeof opts.name !== 'string' || opts.name.length === 0 || Buffer.byteLength(opts.name) > 255) {
      throw new ShoalError('SHOAL_ERR_NODE_NAME', `node name ${JSON.stringify(opts.name)} must be 1..255 bytes`)
    }
    this.opts = opts
    this.timing = resolveTiming(opts.profile ?? 'lan', opts.timing)
    this.transport = components.transport
    this.clock = components.clock
    this.random = components.random ?? Math.random
    this.seq = Math.floor(this.random() * 1000)
    this.log = components.logger.child({ component: 'gossip', node: opts.name })
    this.mtu = opts.mtu ?? DEFAULT_MTU
    this.wire = new Wire(opts.keyring ? { label: opts.cluster, keyring: opts.keyring } : { label: opts.cluster })
    this.keyring = opts.keyring
    if (this.mtu < this.wire.overhead + 200) {
      throw new ShoalError('SHOAL_ERR_MTU', `mtu ${this.mtu} leaves too little room after the ${this.wire.overhead}-byte envelope`)
    }
    this.awareness = new Awareness(this.timing.awarenessMax)
    this.table = new MemberTable({ clock: this.clock, random: this.random })
    this.queue = new BroadcastQueue(
      this.timing.retransmitMult,
      () => this.table.size,
      () => this.armRound(),
    )
    this.rules = new MembershipRules({
      timing: this.timing,
      table: this.table,
      queue: this.queue,
      awareness: this.awareness,
      clock: this.clock,
      log: this.log,
      counters: this.counters,
      emit: (event, ...args) => this.emitSafe(event, ...args),
      running: () => this.running,
    })
    this.earlyTokens = this.timing.earlyGossipBurst
    this.bootId = randomBytes(8).toString('hex')
    this.checkMeta(this.fullMeta(opts.meta ?? {}))
  }

  /** This node's own entry (set at start). */
  private get self(): MemberEntry {
    return this.table.self
  }

  // ---------------------------------------------------------------- lifecycle

  /** Bind the transport and start probing, gossiping and push-pull. Idempotent. */
  start(): Promise<void> {
    this.startPromise ??= this.startNow()
    return this.startPromise
  }

  private async startNow(): Promise<void> {
    const bound = await this.transport.start()
    // An advertised port 0 means "the port the transport bound" (tests bind port 0).
    const adv = this.opts.advertise ? { host: this.opts.advertise.host, port: this.opts.advertise.port || bound.port } : bound
    this.table.addSelf({
      name: this.opts.name,
      addr: adv.host,
      port: adv.port,
      meta: this.fullMeta(this.opts.meta ?? {}),
      incarnation: 1,
      state: MemberState.alive,
      stateChangedAt: this.clock.now(),
      idx: -1,
    })
    this.transport.onPacket((data, from) => this.onPacket(data, from))
    this.transport.onRequest((data, from) => this.onStream(data, from))
    this.running = true
    const t = this.timing
    this.every(
      () => this.awareness.scale(t.probeIntervalMs),
      () => this.probeTick(),
      t.probeIntervalMs,
    )
    // The gossip round runs only while a broadcast is queued (armRound); its first slot is
    // spread over one interval, as `every` spreads the other tasks.
    this.roundPhase = this.clock.now() + this.random() * t.gossipIntervalMs
    this.armRound()
    this.every(
      () => pushPullInterval(t.pushPullIntervalMs, this.table.size),
      () => this.pushPullTick(),
      t.pushPullIntervalMs,
    )
    this.every(
      () => t.reconnectIntervalMs,
      () => this.reconnectTick(),
      t.reconnectIntervalMs,
    )
    this.log.debug({ addr: addrKey(this.self), bootId: this.bootId }, 'gossip started')
  }

  /** Broadcast that we leave, then wait (bounded) until it has been sent to some members. */
  async leave(timeoutMs = 2000): Promise<void> {
    if (!this.running || this.rules.leaving) return
    this.rules.leaving = true
    this.table.setState(this.self, MemberState.left)
    const key = memberKey(this.self.name)
    this.queue.queue(key, encodeMessage({ type: MessageType.dead, name: this.self.name, inc: this.self.incarnation, from: this.self.name }))
    const others =
      this.table.count(MemberState.alive) + this.table.count(MemberState.suspect) - (this.self.state === MemberState.alive ? 1 : 0)
    if (others <= 0) return
    const want = Math.min(this.timing.gossipFanout, others)
    this.gossipRound()
    const deadline = this.clock.now() + timeoutMs
    await new Promise<void>((resolve) => {
      const check = (): void => {
        const n = this.queue.transmitsOf(key)
        if (!this.running || n === undefined || n >= want || this.clock.now() >= deadline) return resolve()
        this.after(Math.min(10, this.timing.gossipIntervalMs), check)
      }
      check()
    })
    // Datagrams handed to the socket may still be in flight; give them one gossip interval
    // (and one more round) before the caller closes the sockets.
    const grace = Math.min(this.timing.gossipIntervalMs, Math.max(0, deadline - this.clock.now()))
    if (grace > 0 && this.running) await this.sleep(grace)
  }

  /** Stop timers, drop pending work and close the transport. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.startPromise) await this.startPromise.catch(() => undefined)
    this.running = false
    for (const t of this.timers) t.cancel()
    this.timers.clear()
    this.earlyTimer?.cancel()
    this.roundTimer = undefined
    this.rules.stop()
    this.acks.clear()
    this.queue.clear()
    await this.transport.stop()
  }

  // ---------------------------------------------------------------- public API

  localMember(): Member {
    return this.table.snapshot(this.self)
  }

  /** Every known member, self included (dead and left ones until reaped). */
  members(): Member[] {
    return this.table.members()
  }

  /** Members in state alive, self included. */
  numAlive(): number {
    return this.table.count(MemberState.alive)
  }

  /** Replace the metadata (boot is kept); spreads as a new alive message. */
  setMeta(meta: Record<string, string>): void {
    const full = this.fullMeta(meta)
    this.checkMeta(full)
    this.opts.meta = { ...meta }
    if (!this.table.hasSelf()) return
    this.self.meta = full
    this.self.incarnation++
    this.rules.queueAlive()
  }

  /**
   * Spread an application message to every member. A newer broadcast with the same key
   * replaces a queued one. One too big for a datagram goes over streams to live members.
   * `onDone` is called once when the broadcast leaves this node's queue: `true` after its last
   * transmit (or its last stream), `false` when a newer broadcast of the same key replaced it or
   * gossip stopped.
   */
  broadcast(key: string, payload: Uint8Array, onDone?: (sent: boolean) => void): void {
    if (!this.running) throw new ShoalError('SHOAL_ERR_NOT_STARTED', 'gossip: broadcast() before start()')
    if (typeof key !== 'string' || Buffer.byteLength(key) > 255)
      throw new ShoalError('SHOAL_ERR_BROADCAST_KEY', `broadcast key ${JSON.stringify(key)} must be a string of at most 255 bytes`)
    const msg: UserMsg = { type: MessageType.user, origin: this.self.name, id: this.newId(), key, payload }
    this.markSeen(msg)
    const enc = encodeMessage(msg)
    if (enc.length + COMPOUND_HEADER + COMPOUND_PART_OVERHEAD > this.maxPayload()) {
      this.streamToAll(enc, onDone)
      return
    }
    this.queue.queue(this.userKey(msg), enc, onDone)
    this.scheduleEarlyRound()
  }

  /** Receives every application broadcast of another member, once; what it returns decides the relay (`MessageHandler`). */
  onMessage(handler: MessageHandler): void {
    this.messageHandlers.push(handler)
  }

  setDelegate(d: StateDelegate): void {
    this.delegate = d
  }

  /** One application request over a stream to a member; resolves to its handler's answer. */
  async request(node: string, payload: Uint8Array, timeoutMs = this.timing.streamTimeoutMs): Promise<Uint8Array> {
    const n = this.table.get(node)
    if (!this.running || !n || n === this.self) throw new ShoalError('SHOAL_ERR_UNKNOWN_NODE', `request: no member "${node}" to ask`)
    const resp = await this.streamRequest(n, encodeMessage({ type: MessageType.appRequest, from: this.self.name, payload }), timeoutMs)
    if (resp.type === MessageType.appResponse) return resp.payload
    if (resp.type === MessageType.error) throw remoteError(resp.code, `request to ${node}: ${resp.message}`)
    throw new ShoalError('SHOAL_ERR_DECODE', `request to ${node}: unexpected answer ${MessageTypeName[resp.type]}`)
  }

  onRequest(handler: (payload: Uint8Array, from: string) => Promise<Uint8Array> | Uint8Array): void {
    this.requestHandler = handler
  }

  setKeyring(k: Keyring | undefined): void {
    this.wire.setKeyring(k)
    this.keyring = k
  }

  /**
   * Which key of this node's ring each live member seals its traffic with (its primary), as
   * learnt from the pings, push-pulls and requests it sent us. A member is listed under a key
   * once it was heard from; this node itself under its primary (nowhere without a keyring).
   */
  keyUse(): KeyUse {
    const fingerprints = this.keyring?.fingerprints() ?? []
    const keys = fingerprints.map((fingerprint, i) => ({ fingerprint, primary: i === 0, members: [] as string[] }))
    const unknown: string[] = []
    for (const m of this.table.entries()) {
      if (!isLive(m)) continue
      const fp = m === this.self ? fingerprints[0] : this.memberKeys.get(m.name)
      const slot = keys.find((k) => k.fingerprint === fp)
      if (slot) slot.members.push(m.name)
      // `unknown` means not heard from yet; this node never is (without a ring it uses no key).
      else if (m !== this.self) unknown.push(m.name)
    }
    for (const k of keys) k.members.sort()
    return { keys, unknown: unknown.sort() }
  }

  stats(): GossipStats {
    const c = this.counters
    return {
      packetsIn: { ...c.packetsIn },
      packetsOut: { ...c.packetsOut },
      bytesIn: { ...c.bytesIn },
      bytesOut: { ...c.bytesOut },
      probes: c.probes,
      probesFailed: c.probesFailed,
      suspicions: c.suspicions,
      refusedDeaths: c.refusedDeaths,
      refutations: c.refutations,
      nameConflicts: c.nameConflicts,
      decodeErrors: c.decodeErrors + this.notes.malformedParts,
      unknownMessages: this.notes.unknownTypes,
      unknownFields: this.notes.extraFields,
      rejected: { ...c.rejected },
      joinFailures: { ...c.joinFailures },
      joinBacks: { ...c.joinBacks },
      queueDepth: this.queue.size(),
      awareness: this.awareness.health(),
      pushPulls: c.pushPulls,
      pushPullsFailed: c.pushPullsFailed,
      probeRttSeconds: c.probeRtt.snapshot(),
      pushPullSeconds: c.pushPullDuration.snapshot(),
    }
  }

  /**
   * Join through seeds: a push-pull with the join flag to each. Resolves to the number of
   * seeds that answered. With `retry`, tries again with jittered backoff (probe interval x
   * 2^attempt, at most 30 s, x 0.5..1.5) until one answers; `onAttempt` hears every round,
   * with the reason of each seed that did not answer (counted in stats().joinFailures).
   * Rejects SHOAL_ERR_NAME_CONFLICT when a live node at another address holds our name, and
   * without `retry` SHOAL_ERR_JOIN naming every seed and its failure.
   */
  async join(seeds: Array<Address | string>, opts: JoinOptions = {}): Promise<number> {
    if (!this.running) throw new ShoalError('SHOAL_ERR_NOT_STARTED', 'gossip: join() before start()')
    const addrs = seeds.map(parseAddress).filter((a) => !(a.host === this.self.addr && a.port === this.self.port))
    if (addrs.length === 0) return 0
    for (let attempt = 0; ; attempt++) {
      opts.signal?.throwIfAborted()
      const results = await Promise.allSettled(addrs.map((a) => this.pushPull(a, true)))
      const conflict = results.find((r) => r.status === 'rejected' && (r.reason as ShoalError)?.code === 'SHOAL_ERR_NAME_CONFLICT')
      if (conflict) throw (conflict as PromiseRejectedResult).reason
      const ok = results.filter((r) => r.status === 'fulfilled').length
      const failures: SeedFailure[] = []
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') return
        const reason = joinFailureReason(r.reason)
        this.counters.joinFailures[reason] = (this.counters.joinFailures[reason] ?? 0) + 1
        failures.push({
          seed: addrKey(addrs[i]!),
          reason,
          refusedBySeed: isShoalError(r.reason, 'SHOAL_ERR_REFUSED'),
          message: (r.reason as Error)?.message ?? String(r.reason),
        })
      })
      const retryInMs =
        ok === 0 && opts.retry && this.running
          ? Math.round(Math.min(30_000, this.timing.probeIntervalMs * 2 ** Math.min(attempt, 10)) * (0.5 + this.random()))
          : undefined
      this.reportAttempt(opts, { attempt, answered: ok, failures, ...(retryInMs !== undefined ? { retryInMs } : {}) })
      if (ok > 0) return ok
      const reasons = failures.map((f) => f.message).join('; ')
      if (!opts.retry) throw new ShoalError('SHOAL_ERR_JOIN', `join: no seed answered (${reasons})`)
      if (retryInMs === undefined) throw new ShoalError('SHOAL_ERR_NOT_STARTED', 'gossip: stopped while joining')
      this.log.debug({ attempt, delayMs: retryInMs, reasons }, 'join: no seed answered, retrying')
      await this.sleep(retryInMs, opts.signal)
    }
  }

  private reportAttempt(opts: JoinOptions, attempt: JoinAttempt): void {
    if (!opts.onAttempt) return
    try {
      opts.onAttempt(attempt)
    } catch (err) {
      logProblem(
        this.log,
        'error',
        { what: `the join's onAttempt callback threw (${(err as Error).message})`, input: 'join', fix: INTERNAL_FAULT },
        { err },
      )
    }
  }

  /**
   * Adds members as known and alive without broadcasting them, so a simulation can start
   * from a converged cluster instead of replaying thousands of joins. Known names are skipped.
   */
  seedMembers(members: Array<Pick<Member, 'name' | 'addr' | 'port' | 'meta' | 'incarnation'>>): void {
    if (!this.running) throw new ShoalError('SHOAL_ERR_NOT_STARTED', 'gossip: seedMembers() before start()')
    for (const m of members) {
      if (this.table.get(m.name)) continue
      this.table.add({
        name: m.name,
        addr: m.addr,
        port: m.port,
        meta: m.meta as Record<string, string>,
        incarnation: m.incarnation,
        state: MemberState.alive,
        stateChangedAt: this.clock.now(),
        idx: -1,
      })
    }
  }

  // ---------------------------------------------------------------- metadata and events

  /** The application's metadata with ours: the boot id and the message protocol version (`proto`). */
  private fullMeta(meta: Record<string, string>): Record<string, string> {
    return { ...meta, boot: this.bootId, proto: String(GOSSIP_PROTOCOL) }
  }

  private checkMeta(meta: Record<string, string>): void {
    for (const [k, v] of Object.entries(meta)) {
      if (typeof v !== 'string') throw new ShoalError('SHOAL_ERR_META', `metadata "${k}" is not a string`)
    }
    const n = metaSize(meta)
    if (n > MAX_META_BYTES) throw new ShoalError('SHOAL_ERR_META', `metadata is ${n} bytes encoded, at most ${MAX_META_BYTES}`)
  }

  private emitSafe<K extends keyof GossipEvents>(event: K, ...args: GossipEvents[K]): void {
    try {
      ;(this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args)
    } catch (err) {
      logProblem(
        this.log,
        'error',
        { what: `a gossip ${event} listener threw (${(err as Error).message})`, input: event, fix: INTERNAL_FAULT },
        { err, event },
      )
    }
  }

  private userKey(m: UserMsg): string {
    return 'u:' + m.origin + '\0' + m.key
  }

  // ---------------------------------------------------------------- timers

  private after(ms: number, fn: () => void): Timer {
    const t = this.clock.setTimer(ms, () => {
      this.timers.delete(t)
      if (this.running) fn()
    })
    this.timers.add(t)
    return {
      cancel: () => {
        t.cancel()
        this.timers.delete(t)
      },
    }
  }

  /** A periodic task; the first run is spread over one period so nodes do not tick in step. */
  private every(period: () => number, fn: () => void, firstWithin: number): void {
    const run = (): void => {
      try {
        fn()
      } catch (err) {
        logProblem(
          this.log,
          'error',
          { what: `a gossip periodic task failed (${(err as Error).message})`, input: this.self.name, fix: INTERNAL_FAULT },
          { err },
        )
      }
      this.after(period(), run)
    }
    this.after(this.random() * firstWithin, run)
  }

  private sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        t.cancel()
        reject(signal!.reason ?? new ShoalError('SHOAL_ERR_ABORTED', 'aborted'))
      }
      const t = this.clock.setTimer(ms, () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      })
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  private nextSeq(): number {
    this.seq = this.seq >= MAX_SEQ ? 0 : this.seq + 1
    return this.seq
  }

  private newId(): number {
    return Math.floor(this.random() * 2 ** 32) * 2 ** 20 + Math.floor(this.random() * 2 ** 20)
  }

  // ---------------------------------------------------------------- probing

  private probeTick(): void {
    this.armRound() // after a round that found nobody to send to (armRound)
    const target = this.table.nextProbeTarget()
    if (target) this.probe(target)
  }

  private probe(target: MemberEntry): void {
    const seq = this.nextSeq()
    const interval = this.awareness.scale(this.timing.probeIntervalMs)
    const timeout = this.awareness.scale(this.timing.probeTimeoutMs)
    const addr = { host: target.addr, port: target.port }
    this.counters.probes++
    const sentAt = this.clock.now()
    let done = false
    let nacks = 0
    let expectedNacks = 0
    // The stream ping got a TCP reset: the host is up and nothing listens on the gossip port.
    let refused = false
    let indirectTimer: Timer | undefined = undefined
    let endTimer: Timer | undefined = undefined
    const finish = (ok: boolean): void => {
      if (done) return
      done = true
      this.acks.delete(seq)
      indirectTimer?.cancel()
      endTimer?.cancel()
      if (ok) {
        this.counters.probeRtt.observe((this.clock.now() - sentAt) / 1000)
        this.awareness.apply(-1)
        return
      }
      this.counters.probesFailed++
      // With indirect probes out, missing nacks say whether the fault is ours; a healthy
      // node probing a dead one gets its nacks and stays at 0. Without peers: +1.
      this.awareness.apply(expectedNacks > 0 ? Math.max(0, expectedNacks - nacks) : 1)
      if (isLive(target)) {
        this.log.debug({ member: target.name, refused }, 'probe failed, suspecting')
        this.rules.applySuspect({ name: target.name, inc: target.incarnation, from: this.self.name, ...(refused && { refused }) })
      }
    }
    this.acks.set(seq, {
      onAck: () => finish(true),
      onNack: () => {
        nacks++
      },
    })
    const ping: PingMsg = {
      type: MessageType.ping,
      seq,
      target: target.name,
      from: this.self.name,
      addr: this.self.addr,
      port: this.self.port,
    }
    const extra =
      target.state === MemberState.suspect
        ? [encodeMessage({ type: MessageType.suspect, name: target.name, inc: target.incarnation, from: this.self.name })]
        : []
    this.sendPiggybacked(addr, encodeMessage(ping), extra)
    indirectTimer = this.after(timeout, () => {
      if (done) return
      const peers = this.table.randomNodes(this.timing.indirectChecks, (n) => n !== target && n.state === MemberState.alive)
      expectedNacks = peers.length
      const req: IndirectPingMsg = {
        type: MessageType.indirectPing,
        seq,
        target: target.name,
        addr: target.addr,
        port: target.port,
        from: this.self.name,
        fromAddr: this.self.addr,
        fromPort: this.self.port,
        nack: true,
      }
      const enc = encodeMessage(req)
      for (const p of peers) this.sendPiggybacked({ host: p.addr, port: p.port }, enc)
      const left = interval - timeout
      if (left > 0) {
        this.streamRequest(target, encodeMessage({ type: MessageType.streamPing, seq, target: target.name }), left)
          .then((r) => {
            if (r.type === MessageType.ack && r.seq === seq && this.running) finish(true)
          })
          .catch((err) => {
            refused = isConnectionRefused(err)
            this.log.debug({ member: target.name, err: (err as Error).message, refused }, 'stream ping failed')
          })
      }
    })
    endTimer = this.after(interval, () => finish(false))
  }

  private onPing(m: PingMsg): void {
    if (m.target !== this.self.name) {
      this.log.debug({ target: m.target, from: m.from }, 'ping for another node name, ignored')
      return
    }
    this.sendPiggybacked({ host: m.addr, port: m.port }, encodeMessage({ type: MessageType.ack, seq: m.seq }))
    this.joinBack(m.from, { host: m.addr, port: m.port })
  }

  /**
   * A "join back": a member we do not know probes us while we are alone (no exchange since
   * start, or no other live member). That is a restarted node nobody told it of its cluster
   * (the first agent, started without --join), whose peers still probe its old address; so
   * push-pull with the prober at once, as a join, instead of waiting for some peer's periodic
   * push-pull (30 s on lan). SWIM peers probe every member in turn, so this makes a restarted
   * seed whole within about one probe interval. At most one in flight and one per probe
   * interval: the sender's address comes from the ping, which only a key holder can forge.
   */
  private joinBack(name: string, addr: Address): void {
    if (name === this.self.name || this.table.get(name) || this.joinBackInflight) return
    const alone = this.table.count(MemberState.alive) + this.table.count(MemberState.suspect) <= 1
    if (this.exchanged && !alone) return
    const now = this.clock.now()
    if (now - this.lastJoinBackAt < this.timing.probeIntervalMs) return
    this.lastJoinBackAt = now
    this.joinBackInflight = true
    this.pushPull(addr, true)
      .then(() => {
        this.counters.joinBacks.joined++
        this.log.info({ peer: name, addr: addrKey(addr) }, 'joined back through a peer that probed this node')
      })
      .catch((err: unknown) => {
        if (isShoalError(err, 'SHOAL_ERR_NAME_CONFLICT')) {
          this.counters.joinBacks.conflict++
          logProblem(
            this.log,
            'warn',
            {
              what: `join back through ${name} refused: ${(err as Error).message}`,
              input: name,
              fix: 'give each node its own --node name',
            },
            { peer: name, err: (err as Error).message },
          )
        } else {
          this.counters.joinBacks.failed++
          this.log.debug({ peer: name, addr: addrKey(addr), err: (err as Error).message }, 'join back failed; the next probe retries')
        }
      })
      .finally(() => {
        this.joinBackInflight = false
      })
  }

  private onIndirectPing(m: IndirectPingMsg): void {
    this.joinBack(m.from, { host: m.fromAddr, port: m.fromPort })
    const seq = this.nextSeq()
    const back = { host: m.fromAddr, port: m.fromPort }
    let answered = false
    // The nack must reach the prober before its probe interval ends (it sent this request
    // one probe timeout into the interval): answer after 80% of a probe timeout.
    const timer = this.after(this.timing.probeTimeoutMs * 0.8, () => {
      this.acks.delete(seq)
      if (!answered && m.nack) this.sendPiggybacked(back, encodeMessage({ type: MessageType.nack, seq: m.seq }))
    })
    this.acks.set(seq, {
      onAck: () => {
        if (answered) return
        answered = true
        timer.cancel()
        this.acks.delete(seq)
        this.sendPiggybacked(back, encodeMessage({ type: MessageType.ack, seq: m.seq }))
      },
      onNack: () => undefined,
    })
    const ping: PingMsg = {
      type: MessageType.ping,
      seq,
      target: m.target,
      from: this.self.name,
      addr: this.self.addr,
      port: this.self.port,
    }
    this.sendPiggybacked({ host: m.addr, port: m.port }, encodeMessage(ping))
  }

  // ---------------------------------------------------------------- dissemination

  private maxPayload(): number {
    return this.mtu - this.wire.overhead
  }

  /** Send `first` (+ `extra`) to `to`, filling the rest of the datagram with queued broadcasts. */
  private sendPiggybacked(to: Address, first: Uint8Array, extra: Uint8Array[] = []): void {
    const parts = [first, ...extra]
    const used = COMPOUND_HEADER + parts.reduce((s, p) => s + p.length + COMPOUND_PART_OVERHEAD, 0)
    parts.push(...this.queue.take(this.maxPayload() - used, COMPOUND_PART_OVERHEAD))
    this.sendPacket(to, parts)
  }

  private sendPacket(to: Address, parts: Uint8Array[]): void {
    const packet = this.wire.seal(encodeCompound(parts))
    const c = this.counters
    for (const p of parts) {
      const t = MessageTypeName[p[1]!] ?? 'unknown'
      c.packetsOut[t] = (c.packetsOut[t] ?? 0) + 1
      c.bytesOut[t] = (c.bytesOut[t] ?? 0) + p.length
    }
    c.packetsOut.total = (c.packetsOut.total ?? 0) + 1
    c.bytesOut.total = (c.bytesOut.total ?? 0) + packet.length
    try {
      this.transport.sendPacket(to, packet)
    } catch (err) {
      this.log.debug({ to: addrKey(to), err: (err as Error).message }, 'send failed')
    }
  }

  /** The last round slot at or before `now` (a round ran then, or would have with a broadcast queued). */
  private lastSlotAt(now: number): number {
    const iv = this.timing.gossipIntervalMs
    return now < this.roundPhase ? -Infinity : this.roundPhase + Math.floor((now - this.roundPhase) / iv) * iv
  }

  /** Arm the round timer for the next slot after now, if a broadcast is queued and none is armed. */
  private armRound(): void {
    if (this.roundTimer || !this.running || this.queue.size() === 0) return
    const now = this.clock.now()
    const next = now < this.roundPhase ? this.roundPhase : this.lastSlotAt(now) + this.timing.gossipIntervalMs
    this.roundTimer = this.after(next - now, () => {
      this.roundTimer = undefined
      // The next slots count from when this one ran (a late timer moves the phase, as a
      // periodic timer re-armed after each run does).
      this.roundPhase = this.clock.now()
      // A round with nobody to send to (an agent alone, or whose peers are all long dead) does
      // not re-arm: the broadcasts wait, and the next probe tick (probeTick) or queue() arms the
      // round again, so such an agent wakes for its probes alone.
      let again = true
      try {
        again = this.gossipRound()
      } catch (err) {
        logProblem(
          this.log,
          'error',
          { what: `a gossip round failed (${(err as Error).message})`, input: this.self.name, fix: INTERNAL_FAULT },
          { err },
        )
      }
      if (again) this.armRound()
    })
  }

  /** One gossip round; false when broadcasts are queued but no member is there to send them to. */
  private gossipRound(): boolean {
    this.lastRoundAt = this.clock.now()
    if (this.queue.size() === 0) return true
    const now = this.clock.now()
    const targets = this.table.randomNodes(
      this.timing.gossipFanout,
      (n) => isLive(n) || now - n.stateChangedAt < this.timing.gossipToTheDeadMs,
    )
    const budget = this.maxPayload() - COMPOUND_HEADER
    for (const t of targets) {
      const parts = this.queue.take(budget, COMPOUND_PART_OVERHEAD)
      if (parts.length === 0) break
      this.sendPacket({ host: t.addr, port: t.port }, parts)
    }
    return targets.length > 0
  }

  /** An early gossip round for a new application broadcast: >= earlyGossipGapMs apart, token bucket. */
  private scheduleEarlyRound(): void {
    if (this.earlyTimer || !this.running) return
    const t = this.timing
    const now = this.clock.now()
    this.earlyTokens = Math.min(t.earlyGossipBurst, this.earlyTokens + ((now - this.earlyTokensAt) * t.earlyGossipPerSec) / 1000)
    this.earlyTokensAt = now
    if (this.earlyTokens < 1) return
    this.earlyTokens -= 1
    const wait = Math.max(0, Math.max(this.lastRoundAt, this.lastSlotAt(now)) + t.earlyGossipGapMs - now)
    this.earlyTimer = this.after(wait, () => {
      this.earlyTimer = undefined
      this.gossipRound()
    })
  }

  private markSeen(m: UserMsg): boolean {
    const id = m.origin + '\0' + m.id
    const now = this.clock.now()
    for (const [k, exp] of this.seenUser) {
      if (exp > now) break
      this.seenUser.delete(k)
    }
    if (this.seenUser.has(id)) return false
    this.seenUser.set(id, now + SEEN_TTL_MS)
    return true
  }

  /**
   * An application broadcast of another member, first seen: handed to the handlers, then
   * relayed unless one of them says not to, or once all of them that answered with a promise
   * resolved true (docs/gossip.md, Dissemination). One that came over a stream is not relayed.
   */
  private onUser(m: UserMsg, viaStream: boolean, from: Address): void {
    if (m.origin === this.self.name || !this.markSeen(m)) return
    const via = this.table.byAddress(from.host, from.port)?.name
    let relay = !viaStream
    const waits: Array<Promise<boolean>> = []
    for (const h of this.messageHandlers) {
      try {
        const r = h(m.payload, m.origin, via)
        if (r === false) relay = false
        else if (r instanceof Promise) waits.push(r)
      } catch (err) {
        logProblem(
          this.log,
          'error',
          {
            what: `a user message handler threw on a message from ${m.origin} (${(err as Error).message})`,
            input: m.origin,
            fix: INTERNAL_FAULT,
          },
          { err, origin: m.origin },
        )
      }
    }
    if (!relay) return
    if (waits.length === 0) return this.relay(m)
    Promise.all(waits).then(
      (oks) => {
        if (this.running && oks.every(Boolean)) this.relay(m)
      },
      (err: unknown) =>
        logProblem(
          this.log,
          'error',
          {
            what: `a user message handler failed on a message from ${m.origin} (${(err as Error).message}); the message was not relayed`,
            input: m.origin,
            fix: INTERNAL_FAULT,
          },
          { err, origin: m.origin },
        ),
    )
  }

  private relay(m: UserMsg): void {
    this.queue.queue(this.userKey(m), encodeMessage(m))
    this.scheduleEarlyRound()
  }

  /** A broadcast too big for a datagram: a stream to every live member, a few at a time. */
  private streamToAll(enc: Uint8Array, onDone?: (sent: boolean) => void): void {
    const targets = this.table.entries().filter((n) => n !== this.self && isLive(n))
    let i = 0
    let open = 0
    const next = (): void => {
      if (!this.running || i >= targets.length) {
        if (open === 0 && onDone) {
          const done = onDone
          onDone = undefined
          done(this.running)
        }
        return
      }
      open++
      const n = targets[i++]!
      this.streamRequest(n, enc, this.timing.streamTimeoutMs)
        .catch((err) => this.log.debug({ member: n.name, err: (err as Error).message }, 'oversized broadcast not delivered'))
        .finally(() => {
          open--
          next()
        })
    }
    for (let k = 0; k < STREAM_FANOUT_CONCURRENCY; k++) next()
  }

  // ---------------------------------------------------------------- streams and push-pull

  private async streamRequest(
    to: MemberEntry | Address,
    payload: Uint8Array,
    timeoutMs: number,
  ): Promise<Exclude<Message, { type: typeof MessageType.compound }>> {
    const addr = 'host' in to ? to : { host: to.addr, port: to.port }
    const resp = await this.transport.request(addr, this.wire.seal(payload), timeoutMs)
    const refused = decodeRefusal(resp)
    if (refused) throw new WireError('SHOAL_ERR_REFUSED', refused, `${addrKey(addr)} refused our stream: ${REFUSAL_TEXT[refused]}`)
    let m: Message
    try {
      m = decodeMessage(this.wire.open(resp), this.notes)
    } catch (err) {
      if ((err as ShoalError).code === 'SHOAL_ERR_UNKNOWN_TYPE') throw err
      this.counters.decodeErrors++
      const reason = this.rejected(addr, 'stream', err)
      throw new WireError((err as ShoalError).code ?? 'SHOAL_ERR_DECODE', reason, `answer from ${addrKey(addr)}: ${(err as Error).message}`)
    }
    if (m.type === MessageType.compound) throw new ShoalError('SHOAL_ERR_DECODE', `stream answer from ${addrKey(addr)} is a compound`)
    return m
  }

  private async pushPull(to: Address, join: boolean): Promise<void> {
    this.counters.pushPulls++
    const began = this.clock.now()
    try {
      const req: PushPullMsg = {
        type: MessageType.pushPull,
        join,
        from: this.self.name,
        members: this.table.records(),
        state: this.delegate ? this.delegate.localState(join) : null,
      }
      const resp = await this.streamRequest(to, encodeMessage(req), this.timing.streamTimeoutMs)
      if (!this.running) return
      if (resp.type === MessageType.conflict) {
        const remote = `${resp.otherAddr}:${resp.otherPort}`
        this.rules.conflict(this.self.name, addrKey(this.self), remote)
        throw new ShoalError(
          'SHOAL_ERR_NAME_CONFLICT',
          `node name "${this.self.name}" is already held by a live node at ${remote}; this node at ${addrKey(this.self)} cannot join with it`,
        )
      }
      if (resp.type === MessageType.error) throw remoteError(resp.code, `push-pull with ${addrKey(to)}: ${resp.message}`)
      if (resp.type !== MessageType.pushPull)
        throw new ShoalError('SHOAL_ERR_DECODE', `push-pull with ${addrKey(to)}: answer is ${MessageTypeName[resp.type]}`)
      this.rules.mergeRemote(resp.members, resp.from)
      this.mergeDelegate(resp, join)
      this.counters.pushPullDuration.observe((this.clock.now() - began) / 1000)
      this.exchanged = true
    } catch (err) {
      this.counters.pushPullsFailed++
      throw err
    }
  }

  private mergeDelegate(m: PushPullMsg, join: boolean): void {
    const from = this.table.get(m.from)
    if (!this.delegate || !m.state || !from) return
    try {
      this.delegate.mergeRemoteState(m.state, join, this.table.snapshot(from))
    } catch (err) {
      logProblem(
        this.log,
        'warn',
        { what: `merging the state of ${m.from} failed (${(err as Error).message})`, input: m.from, fix: INTERNAL_FAULT },
        { err, from: m.from },
      )
    }
  }

  private pushPullTick(): void {
    const [peer] = this.table.randomNodes(1, (n) => n.state === MemberState.alive)
    if (!peer || this.pushPullInflight >= PUSH_PULL_MAX_INFLIGHT) return
    this.pushPullInflight++
    this.pushPull({ host: peer.addr, port: peer.port }, false)
      .catch((err) => this.log.debug({ member: peer.name, err: (err as Error).message }, 'push-pull failed'))
      .finally(() => {
        this.pushPullInflight--
      })
  }

  private reconnectTick(): void {
    const now = this.clock.now()
    for (const n of [...this.table.entries()]) {
      if ((n.state === MemberState.dead || n.state === MemberState.left) && now - n.stateChangedAt > this.timing.reapAfterMs) {
        this.table.remove(n)
        this.memberKeys.delete(n.name)
      }
    }
    const [peer] = this.table.randomNodes(1, (n) => n.state === MemberState.dead)
    if (!peer) return
    this.pushPull({ host: peer.addr, port: peer.port }, false).catch((err) =>
      this.log.debug({ member: peer.name, err: (err as Error).message }, 'reconnect push-pull failed'),
    )
  }

  private async handlePushPull(m: PushPullMsg): Promise<Uint8Array> {
    if (m.join) {
      const rec = m.members.find((r) => r.name === m.from)
      const holder = this.table.get(m.from)
      if (rec && holder && isLive(holder) && (holder.addr !== rec.addr || holder.port !== rec.port)) {
        this.rules.conflict(m.from, addrKey(holder), addrKey(rec))
        if (holder !== this.self) {
          this.sendPacket({ host: holder.addr, port: holder.port }, [
            encodeMessage({ type: MessageType.conflict, name: m.from, otherAddr: rec.addr, otherPort: rec.port }),
          ])
        }
        return encodeMessage({ type: MessageType.conflict, name: m.from, otherAddr: holder.addr, otherPort: holder.port })
      }
    }
    if (this.pushPullInflight >= PUSH_PULL_MAX_INFLIGHT) {
      return encodeMessage({ type: MessageType.error, code: 'SHOAL_ERR_BUSY', message: 'too many push-pulls in flight' })
    }
    this.pushPullInflight++
    try {
      const reply = encodeMessage({
        type: MessageType.pushPull,
        join: false,
        from: this.self.name,
        members: this.table.records(),
        state: this.delegate ? this.delegate.localState(m.join) : null,
      })
      this.rules.mergeRemote(m.members, m.from)
      this.mergeDelegate(m, m.join)
      this.exchanged = true
      return reply
    } finally {
      this.pushPullInflight--
    }
  }

  private async onStream(data: Uint8Array, from: Address): Promise<Uint8Array | undefined> {
    if (!this.running) return undefined
    let m: Message
    try {
      const opened = this.wire.openWithKey(data)
      m = decodeMessage(opened.payload, this.notes)
      if (opened.key !== undefined && (m.type === MessageType.pushPull || m.type === MessageType.appRequest))
        this.memberKeys.set(m.from, opened.key)
    } catch (err) {
      if ((err as ShoalError).code === 'SHOAL_ERR_UNKNOWN_TYPE') {
        // A newer peer's request: say so at once rather than let it wait for its timeout.
        this.log.debug({ from: addrKey(from), err: (err as Error).message }, 'stream request of an unknown type')
        return this.wire.seal(encodeMessage({ type: MessageType.error, code: 'SHOAL_ERR_UNKNOWN_TYPE', message: (err as Error).message }))
      }
      this.counters.decodeErrors++
      // The sender hears why (a joining node logs it); see wire.ts for what a refusal reveals.
      return encodeRefusal(this.rejected(from, 'stream', err))
    }
    this.countIn(MessageTypeName[m.type] ?? 'unknown', data.length)
    try {
      let out: Uint8Array
      switch (m.type) {
        case MessageType.pushPull:
          out = await this.handlePushPull(m)
          break
        case MessageType.streamPing:
          if (m.target !== this.self.name) {
            out = encodeMessage({
              type: MessageType.error,
              code: 'SHOAL_ERR_WRONG_NODE',
              message: `this is ${this.self.name}, not ${m.target}`,
            })
          } else {
            out = encodeMessage({ type: MessageType.ack, seq: m.seq })
          }
          break
        case MessageType.user:
          this.onUser(m, true, from)
          out = encodeMessage({ type: MessageType.ack, seq: 0 })
          break
        case MessageType.conflict:
          this.onConflictNotice(m.name, `${m.otherAddr}:${m.otherPort}`)
          out = encodeMessage({ type: MessageType.ack, seq: 0 })
          break
        case MessageType.appRequest: {
          if (!this.requestHandler) {
            out = encodeMessage({ type: MessageType.error, code: 'SHOAL_ERR_NO_HANDLER', message: 'no request handler' })
            break
          }
          try {
            const payload = await this.requestHandler(m.payload, m.from)
            out = encodeMessage({ type: MessageType.appResponse, payload })
          } catch (err) {
            const code = err instanceof ShoalError ? err.code : 'SHOAL_ERR_REQUEST_HANDLER'
            out = encodeMessage({ type: MessageType.error, code, message: (err as Error)?.message ?? String(err) })
          }
          break
        }
        default:
          this.counters.decodeErrors++
          this.log.debug({ from: addrKey(from), type: MessageTypeName[m.type] }, 'unexpected stream request dropped')
          return undefined
      }
      if (!this.running) return undefined
      return this.wire.seal(out)
    } catch (err) {
      logProblem(
        this.log,
        'warn',
        { what: `a stream request from ${addrKey(from)} failed (${(err as Error).message})`, input: addrKey(from), fix: INTERNAL_FAULT },
        { from: addrKey(from), err },
      )
      return undefined
    }
  }

  private onConflictNotice(name: string, other: string): void {
    if (name !== this.self.name) return
    this.rules.conflict(name, addrKey(this.self), other)
  }

  // ---------------------------------------------------------------- packets

  /** Count, log at debug and raise `rejected` for traffic that could not be opened or decoded; returns the reason. */
  private rejected(from: Address, via: 'packet' | 'stream', err: unknown): RejectReason {
    const reason = rejectReasonOf(err)
    this.counters.rejected[reason] = (this.counters.rejected[reason] ?? 0) + 1
    const message = (err as Error)?.message ?? String(err)
    this.log.debug({ from: addrKey(from), via, reason, err: message }, 'gossip traffic rejected')
    if (this.listenerCount('rejected') > 0) this.emitSafe('rejected', { from: addrKey(from), via, reason, message })
    return reason
  }

  private countIn(type: string, bytes: number): void {
    const c = this.counters
    c.packetsIn[type] = (c.packetsIn[type] ?? 0) + 1
    c.bytesIn[type] = (c.bytesIn[type] ?? 0) + bytes
  }

  private onPacket(data: Uint8Array, from: Address): void {
    if (!this.running) return
    let msgs: ReturnType<typeof decodePacket>
    let key: string | undefined
    try {
      const opened = this.wire.openWithKey(data)
      key = opened.key
      msgs = decodePacket(opened.payload, this.notes)
    } catch (err) {
      this.counters.decodeErrors++
      // Never answered: a datagram's source can be forged, and an answer would be a reflection.
      this.rejected(from, 'packet', err)
      return
    }
    this.countIn('total', data.length)
    for (const m of msgs) {
      this.countIn(MessageTypeName[m.type] ?? 'unknown', 0)
      if (key !== undefined && (m.type === MessageType.ping || m.type === MessageType.indirectPing)) this.memberKeys.set(m.from, key)
      try {
        this.handle(m, from)
      } catch (err) {
        logProblem(
          this.log,
          'warn',
          {
            what: `handling a message from ${addrKey(from)} failed (${(err as Error).message})`,
            input: addrKey(from),
            fix: INTERNAL_FAULT,
          },
          { from: addrKey(from), err },
        )
      }
    }
  }

  private handle(m: Exclude<Message, { type: typeof MessageType.compound }>, from: Address): void {
    switch (m.type) {
      case MessageType.ping:
        return this.onPing(m)
      case MessageType.indirectPing:
        return this.onIndirectPing(m)
      case MessageType.ack:
        this.acks.get(m.seq)?.onAck()
        return
      case MessageType.nack:
        this.acks.get(m.seq)?.onNack()
        return
      case MessageType.alive:
        this.rules.applyAlive(m)
        return
      case MessageType.suspect:
        this.rules.applySuspect(m)
        return
      case MessageType.dead:
        this.rules.applyDead(m)
        return
      case MessageType.user:
        return this.onUser(m, false, from)
      case MessageType.conflict:
        return this.onConflictNotice(m.name, `${m.otherAddr}:${m.otherPort}`)
      default:
        this.counters.decodeErrors++
        this.log.debug({ from: addrKey(from), type: MessageTypeName[m.type] }, 'stream-only message in a packet dropped')
    }
  }
}
