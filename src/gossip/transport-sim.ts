/**
 * An in-memory network on virtual time: thousands of transports in one process, with
 * latency, jitter, loss, partitions, crashed hosts and a per-packet filter to delay,
 * duplicate or drop. Every delivery is a VirtualClock timer.
 */
import { formatHostPort } from '../address.js'
import { ShoalError } from '../errors.js'
import type { Logger } from '../log.js'
import type { VirtualClock } from '../clock.js'
import type { Address, PacketHandler, RequestHandler, Transport } from './types.js'
import { streamError } from './failures.js'

export type SimTrafficKind = 'packet' | 'request' | 'response'
export type SimTap = (from: Address, to: Address, data: Uint8Array, kind: SimTrafficKind) => void
/** Decides the fate of one packet: drop it, delay it further, or send extra copies. */
export type SimFilter = (
  from: Address,
  to: Address,
  data: Uint8Array,
) => { drop?: boolean; delayMs?: number; duplicate?: number } | undefined

export interface SimHostStats {
  packetsSent: number
  packetsReceived: number
  bytesSent: number
  bytesReceived: number
  /** Packets this host sent that never arrived (loss, partition, filter, crash, no listener). */
  packetsDropped: number
  requestsSent: number
  requestsReceived: number
  streamBytesSent: number
  streamBytesReceived: number
  /** Handlers that threw or rejected. */
  handlerErrors: number
}

export interface SimNetworkOptions {
  latencyMs?: number
  jitterMs?: number
  loss?: number
  random?: () => number
  maxFrameBytes?: number
  logger?: Logger
}

const DEFAULT_PORT = 7946
const EPHEMERAL_BASE = 40_000

function emptyStats(): SimHostStats {
  return {
    packetsSent: 0,
    packetsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    packetsDropped: 0,
    requestsSent: 0,
    requestsReceived: 0,
    streamBytesSent: 0,
    streamBytesReceived: 0,
    handlerErrors: 0,
  }
}

interface SimHost {
  crashed: boolean
  nextPort: number
  stats: SimHostStats
}

const key = (a: Address): string => formatHostPort(a)

/**
 * @example
 *   const clock = new VirtualClock()
 *   const net = new SimNetwork(clock, { latencyMs: 2, jitterMs: 1, loss: 0.01 })
 *   const a = net.transport('10.0.0.1'), b = net.transport('10.0.0.2')
 *   await a.start(); await b.start()
 *   net.partition(['10.0.0.1'], ['10.0.0.2']); await clock.advance(5000); net.heal()
 */
export class SimNetwork {
  private latencyMs: number
  private jitterMs: number
  private loss: number
  private readonly random: () => number
  readonly maxFrameBytes: number
  readonly logger: Logger | undefined
  private readonly endpoints = new Map<string, SimTransport>()
  private readonly hosts = new Map<string, SimHost>()
  private partitions: Array<{ a: Set<string>; b: Set<string> }> = []
  private taps: SimTap[] = []
  private filter: SimFilter | undefined

  constructor(
    readonly clock: VirtualClock,
    opts: SimNetworkOptions = {},
  ) {
    this.latencyMs = opts.latencyMs ?? 1
    this.jitterMs = opts.jitterMs ?? 0
    this.loss = opts.loss ?? 0
    this.random = opts.random ?? Math.random
    this.maxFrameBytes = opts.maxFrameBytes ?? 8 * 1024 * 1024
    this.logger = opts.logger?.child({ component: 'transport-sim' })
  }

  /** A transport for `host`; `port` 0 picks a free port on start(). */
  transport(host: string, port = DEFAULT_PORT): Transport {
    this.host(host)
    return new SimTransport(this, { host, port })
  }

  setLoss(p: number): void {
    this.loss = p
  }

  setLatency(ms: number, jitter = 0): void {
    this.latencyMs = ms
    this.jitterMs = jitter
  }

  /** Drops all traffic between the two groups of hosts, both ways, until heal(). */
  partition(groupA: string[], groupB: string[]): void {
    this.partitions.push({ a: new Set(groupA), b: new Set(groupB) })
  }

  heal(): void {
    this.partitions = []
  }

  /** The host's transports stop sending and receiving, silently (like kill -9 or a pulled cable). */
  crash(host: string): void {
    this.host(host).crashed = true
  }

  restore(host: string): void {
    this.host(host).crashed = false
  }

  isCrashed(host: string): boolean {
    return this.hosts.get(host)?.crashed ?? false
  }

  /** Counters of one host, or summed over every host. */
  stats(host?: string): SimHostStats {
    if (host !== undefined) return { ...(this.hosts.get(host)?.stats ?? emptyStats()) }
    const sum = emptyStats()
    for (const h of this.hosts.values()) {
      for (const k of Object.keys(sum) as Array<keyof SimHostStats>) sum[k] += h.stats[k]
    }
    return sum
  }

  /** Observes every packet, request and response as it is sent; returns an undo function. */
  tap(fn: SimTap): () => void {
    this.taps.push(fn)
    return () => {
      this.taps = this.taps.filter((f) => f !== fn)
    }
  }

  /** One filter for packets (not streams); undefined removes it. */
  setFilter(fn: SimFilter | undefined): void {
    this.filter = fn
  }

  // ---- used by SimTransport ----

  host(name: string): SimHost {
    let h = this.hosts.get(name)
    if (!h) {
      h = { crashed: false, nextPort: EPHEMERAL_BASE, stats: emptyStats() }
      this.hosts.set(name, h)
    }
    return h
  }

  bind(t: SimTransport, want: Address): Address {
    const h = this.host(want.host)
    let port = want.port
    if (port === 0) {
      do port = h.nextPort++
      while (this.endpoints.has(`${want.host}:${port}`))
    }
    const addr = { host: want.host, port }
    const k = key(addr)
    const holder = this.endpoints.get(k)
    if (holder && holder !== t) throw new ShoalError('SHOAL_ERR_BIND', `simulated address ${k} is already in use`)
    this.endpoints.set(k, t)
    return addr
  }

  unbind(t: SimTransport, addr: Address): void {
    const k = key(addr)
    if (this.endpoints.get(k) === t) this.endpoints.delete(k)
  }

  blocked(a: string, b: string): boolean {
    if (this.hosts.get(a)?.crashed || this.hosts.get(b)?.crashed) return true
    for (const p of this.partitions) {
      if ((p.a.has(a) && p.b.has(b)) || (p.a.has(b) && p.b.has(a))) return true
    }
    return false
  }

  private lost(): boolean {
    return this.loss > 0 && this.random() < this.loss
  }

  private delay(): number {
    return this.latencyMs + (this.jitterMs > 0 ? this.random() * this.jitterMs : 0)
  }

  private observe(from: Address, to: Address, data: Uint8Array, kind: SimTrafficKind): void {
    for (const fn of this.taps) fn(from, to, data, kind)
  }

  sendPacket(from: Address, to: Address, data: Uint8Array): void {
    const src = this.host(from.host)
    if (src.crashed) return
    src.stats.packetsSent++
    src.stats.bytesSent += data.length
    this.observe(from, to, data, 'packet')
    const verdict = this.filter?.(from, to, data)
    if (verdict?.drop || this.lost()) {
      src.stats.packetsDropped++
      return
    }
    const copies = 1 + Math.max(0, Math.floor(verdict?.duplicate ?? 0))
    const extra = Math.max(0, verdict?.delayMs ?? 0)
    const bytes = new Uint8Array(data)
    for (let i = 0; i < copies; i++) {
      this.clock.setTimer(this.delay() + extra, () => this.deliverPacket(from, to, i === 0 ? bytes : new Uint8Array(bytes)))
    }
  }

  private deliverPacket(from: Address, to: Address, data: Uint8Array): void {
    const src = this.host(from.host)
    const target = this.endpoints.get(key(to))
    if (!target || this.blocked(from.host, to.host)) {
      src.stats.packetsDropped++
      return
    }
    const dst = this.host(to.host)
    dst.stats.packetsReceived++
    dst.stats.bytesReceived += data.length
    target.receivePacket(Buffer.from(data.buffer, data.byteOffset, data.byteLength), from)
  }

  /**
   * Carries one stream exchange. The request and the response each take latency+jitter and
   * each can be lost; `settle` is called at most once per outcome the requester can see
   * (a response, a refusal, a close without answer). Silence leaves the requester to its timeout.
   */
  sendRequest(from: Address, to: Address, data: Uint8Array, settle: (err: Error | undefined, reply?: Buffer) => void): void {
    const src = this.host(from.host)
    if (src.crashed) return
    src.stats.requestsSent++
    src.stats.streamBytesSent += data.length
    this.observe(from, to, data, 'request')
    if (this.lost()) return
    const bytes = new Uint8Array(data)
    this.clock.setTimer(this.delay(), () => {
      if (this.blocked(from.host, to.host)) return
      const target = this.endpoints.get(key(to))
      if (!target) {
        // The host is up but nothing listens: a refusal comes back after one more hop.
        this.clock.setTimer(this.delay(), () => {
          if (!this.blocked(from.host, to.host)) settle(streamError(`stream to ${key(to)}: connection refused`, 'ECONNREFUSED'))
        })
        return
      }
      const dst = this.host(to.host)
      dst.stats.requestsReceived++
      dst.stats.streamBytesReceived += bytes.length
      target.receiveRequest(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), from).then(
        (reply) => this.sendResponse(to, from, reply, settle),
        () => this.sendResponse(to, from, undefined, settle),
      )
    })
  }

  private sendResponse(
    from: Address,
    to: Address,
    reply: Uint8Array | undefined,
    settle: (err: Error | undefined, reply?: Buffer) => void,
  ): void {
    const src = this.host(from.host)
    if (src.crashed || !this.endpoints.has(key(from))) return
    if (reply !== undefined) {
      if (reply.length > this.maxFrameBytes) {
        this.logger?.debug({ from: key(from), to: key(to), bytes: reply.length }, 'response larger than the frame limit: closing')
        reply = undefined
      } else {
        src.stats.streamBytesSent += reply.length
        this.observe(from, to, reply, 'response')
      }
    }
    if (this.lost()) return
    const bytes = reply === undefined ? undefined : new Uint8Array(reply)
    this.clock.setTimer(this.delay(), () => {
      if (this.blocked(from.host, to.host)) return
      if (bytes === undefined) {
        settle(streamError(`stream to ${key(from)}: closed without an answer`, 'ECLOSED'))
        return
      }
      this.host(to.host).stats.streamBytesReceived += bytes.length
      settle(undefined, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    })
  }

  countHandlerError(host: string): void {
    this.host(host).stats.handlerErrors++
  }
}

/** One node's view of the simulated network; see SimNetwork.transport(). */
class SimTransport implements Transport {
  private addr: Address
  private started = false
  private packetHandler: PacketHandler | undefined
  private requestHandler: RequestHandler | undefined
  private readonly pending = new Set<(err: Error) => void>()

  constructor(
    private readonly net: SimNetwork,
    private readonly want: Address,
  ) {
    this.addr = { ...want }
  }

  async start(): Promise<Address> {
    if (!this.started) {
      this.addr = this.net.bind(this, this.want)
      this.started = true
    }
    return { ...this.addr }
  }

  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.net.unbind(this, this.addr)
    const aborts = [...this.pending]
    this.pending.clear()
    for (const abort of aborts) abort(new ShoalError('SHOAL_ERR_STREAM', `transport ${key(this.addr)} stopped`))
  }

  sendPacket(to: Address, data: Uint8Array): void {
    if (!this.started) return
    this.net.sendPacket(this.addr, to, data)
  }

  onPacket(handler: PacketHandler): void {
    this.packetHandler = handler
  }

  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler
  }

  request(to: Address, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (!this.started)
      return Promise.reject(new ShoalError('SHOAL_ERR_STREAM', `stream to ${key(to)}: transport ${key(this.addr)} is not started`))
    if (data.length > this.net.maxFrameBytes) {
      return Promise.reject(
        new ShoalError(
          'SHOAL_ERR_STREAM',
          `stream to ${key(to)}: request of ${data.length} bytes exceeds the ${this.net.maxFrameBytes}-byte frame limit`,
        ),
      )
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      let done = false
      const finish = (err: Error | undefined, reply?: Uint8Array) => {
        if (done) return
        done = true
        timer.cancel()
        this.pending.delete(finish)
        if (err) reject(err)
        else resolve(reply!)
      }
      const timer = this.net.clock.setTimer(timeoutMs, () =>
        finish(streamError(`stream to ${key(to)}: no answer within ${timeoutMs} ms`, 'ETIMEDOUT')),
      )
      this.pending.add(finish)
      this.net.sendRequest(this.addr, to, data, (err, reply) => {
        // A reply to a crashed or stopped requester is lost, as its socket is gone.
        if (!this.started || this.net.isCrashed(this.addr.host)) return
        finish(err, reply)
      })
    })
  }

  receivePacket(data: Buffer, from: Address): void {
    if (!this.started || !this.packetHandler) return
    try {
      this.packetHandler(data, from)
    } catch (err) {
      this.net.countHandlerError(this.addr.host)
      this.net.logger?.debug({ err, from: key(from), to: key(this.addr) }, 'packet handler threw')
    }
  }

  async receiveRequest(data: Buffer, from: Address): Promise<Uint8Array | undefined> {
    if (!this.requestHandler) return undefined
    try {
      return await this.requestHandler(data, from)
    } catch (err) {
      this.net.countHandlerError(this.addr.host)
      this.net.logger?.debug({ err, from: key(from), to: key(this.addr) }, 'request handler failed')
      return undefined
    }
  }
}
