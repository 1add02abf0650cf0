/**
 * The real transport: UDP datagrams and TCP streams on the same port number.
 * A stream carries one exchange: the request as a frame (4-byte big-endian length, then
 * the bytes), the response as a frame, then both sides close.
 */
import { bindUdpAndTcp, closeUdpAndTcp, formatHostPort } from '../address.js'
import dgram from 'node:dgram'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { ShoalError } from '../errors.js'
import { LogLimiter, logProblem, type Logger } from '../log.js'
import { streamError } from './failures.js'
import type { Address, PacketHandler, RequestHandler, Transport } from './types.js'

const DEFAULT_MAX_FRAME = 8 * 1024 * 1024
/**
 * The largest push-pull at worst-case field sizes (255-byte names, IPv6 addresses, 512 bytes
 * of meta, the registry's per-owner digest) is 1,157 bytes a member: 1.16 MB at 1,000 hosts
 * (measured with the real encoders, README "Known limits"). 4 MiB leaves room for 3,600 such
 * hosts, or far more with ordinary names. Pull answers (up to 4 MiB, bridge answerBudgetBytes)
 * are responses, limited by maxFrameBytes, not requests.
 */
const DEFAULT_MAX_REQUEST = 4 * 1024 * 1024
const DEFAULT_REQUEST_DEADLINE_MS = 10_000
const DEFAULT_IDLE_MS = 10_000
const DEFAULT_MAX_INCOMING_STREAMS = 128
const DEFAULT_MAX_INCOMING_BYTES = 32 * 1024 * 1024
const LENGTH_BYTES = 4

/** Why an incoming stream was closed before its request arrived (NetTransportStats.streamsRefused). */
export const StreamRefusal = {
  /** Over maxIncomingStreams open at once: closed at accept. */
  streams: 'streams',
  /** Its announced frame would take the in-flight request bytes over maxIncomingBytes. */
  bytes: 'bytes',
  /** Its announced frame is over maxRequestBytes. */
  oversize: 'oversize',
  /** The whole request did not arrive within requestDeadlineMs of the accept. */
  deadline: 'deadline',
} as const
export type StreamRefusal = (typeof StreamRefusal)[keyof typeof StreamRefusal]

const refusalAdvice: Record<StreamRefusal, string> = {
  streams:
    'more gossip streams at once than an honest cluster opens: look at who connects to the gossip port (the NetTransport option is maxIncomingStreams)',
  bytes:
    'more request bytes in flight than an honest cluster sends: look at who connects to the gossip port (the NetTransport option is maxIncomingBytes)',
  oversize:
    'larger than a push-pull of 3,600 hosts at worst-case sizes (README "Known limits"): not a Shoal agent, or a cluster past that limit',
  deadline: 'a peer this slow, or a client that is not a Shoal agent; check what connects to the gossip port',
}

export interface NetTransportOptions {
  bind: Address
  /** Largest stream frame sent, and largest response accepted (default 8 MiB). */
  maxFrameBytes?: number
  /** Largest incoming request frame, checked against its announced length (default 4 MiB, at most maxFrameBytes). */
  maxRequestBytes?: number
  /**
   * Absolute deadline, ms from the accept, for an incoming stream's whole request frame
   * (default 10 s): bytes that keep dribbling do not extend it (memberlist's stream timeout).
   */
  requestDeadlineMs?: number
  /** After the request arrived, the stream is closed after this long without activity (default 10 s). */
  idleTimeoutMs?: number
  /** Incoming streams open at once; the next is closed at accept (default 128). */
  maxIncomingStreams?: number
  /** Sum of the announced lengths of incoming requests still arriving (default 32 MiB). */
  maxIncomingBytes?: number
  /** Least time between two warnings about one peer host and refusal reason (default 60 s). */
  warnEveryMs?: number
}

export interface NetTransportStats {
  packetsIn: number
  packetsOut: number
  bytesIn: number
  bytesOut: number
  /** Datagrams that failed to send (or were sent while stopped). */
  packetErrors: number
  streamRequestsIn: number
  streamRequestsOut: number
  /** Failed stream exchanges, either direction (timeouts, resets, refusals, bad frames). */
  streamErrors: number
  /** Frames over maxFrameBytes, either direction. */
  oversizeFrames: number
  /** Packet or request handlers that threw or rejected. */
  handlerErrors: number
  /** Incoming streams closed before their request arrived, by StreamRefusal. */
  streamsRefused: Record<StreamRefusal, number>
  /** Incoming streams open now. */
  incomingStreams: number
  /** Announced bytes of incoming requests still arriving now. */
  incomingBytes: number
}

class OversizeFrame extends Error {}

/** Collects chunks until one whole length-prefixed frame has arrived. */
class FrameReader {
  private chunks: Buffer[] = []
  private have = 0
  private want = -1

  constructor(private readonly max: number) {}

  /** The announced length, or -1 before the 4-byte header has arrived. */
  get length(): number {
    return this.want
  }

  /** The frame once complete; throws OversizeFrame as soon as the length says too big. */
  push(chunk: Buffer): Buffer | undefined {
    this.chunks.push(chunk)
    this.have += chunk.length
    if (this.want < 0 && this.have >= LENGTH_BYTES) {
      const head = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)
      this.chunks = [head]
      this.want = head.readUInt32BE(0)
      if (this.want > this.max) throw new OversizeFrame(`frame of ${this.want} bytes exceeds the ${this.max}-byte limit`)
    }
    if (this.want >= 0 && this.have >= LENGTH_BYTES + this.want) {
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)
      this.chunks = []
      return all.subarray(LENGTH_BYTES, LENGTH_BYTES + this.want)
    }
    return undefined
  }
}

function frame(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_BYTES + data.length)
  out.writeUInt32BE(data.length, 0)
  out.set(data, LENGTH_BYTES)
  return out
}

const fmt = formatHostPort

/**
 * @example
 *   const t = new NetTransport({ bind: { host: '127.0.0.1', port: 0 } }, { logger })
 *   const addr = await t.start()
 *   t.onRequest(async (data) => reply(data))
 *   await t.stop()
 */
export class NetTransport implements Transport {
  private readonly log: Logger
  private readonly maxFrame: number
  private readonly idleMs: number
  private readonly maxRequest: number
  private readonly deadlineMs: number
  private readonly maxStreams: number
  private readonly maxBytes: number
  private readonly warnLimit: LogLimiter
  private readonly incoming = new Set<net.Socket>()
  private incomingBytes = 0
  private udp: dgram.Socket | undefined
  private tcp: net.Server | undefined
  private bound: Address | undefined
  private starting: Promise<Address> | undefined
  private stopping: Promise<void> | undefined
  private stopped = false
  private packetHandler: PacketHandler | undefined
  private requestHandler: RequestHandler | undefined
  private readonly sockets = new Set<net.Socket>()
  private readonly aborts = new Set<(err: Error) => void>()
  private readonly counters: NetTransportStats = {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    packetErrors: 0,
    streamRequestsIn: 0,
    streamRequestsOut: 0,
    streamErrors: 0,
    oversizeFrames: 0,
    handlerErrors: 0,
    streamsRefused: { streams: 0, bytes: 0, oversize: 0, deadline: 0 },
    incomingStreams: 0,
    incomingBytes: 0,
  }

  constructor(
    private readonly opts: NetTransportOptions,
    components: { logger: Logger },
  ) {
    this.log = components.logger.child({ component: 'transport-net' })
    this.maxFrame = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME
    this.idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_MS
    this.maxRequest = Math.min(opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST, this.maxFrame)
    this.deadlineMs = opts.requestDeadlineMs ?? DEFAULT_REQUEST_DEADLINE_MS
    this.maxStreams = opts.maxIncomingStreams ?? DEFAULT_MAX_INCOMING_STREAMS
    this.maxBytes = opts.maxIncomingBytes ?? DEFAULT_MAX_INCOMING_BYTES
    this.warnLimit = new LogLimiter({ windowMs: opts.warnEveryMs }, { clock: performance })
  }

  stats(): NetTransportStats {
    return {
      ...this.counters,
      streamsRefused: { ...this.counters.streamsRefused },
      incomingStreams: this.incoming.size,
      incomingBytes: this.incomingBytes,
    }
  }

  /** The bound address, once started. */
  address(): Address | undefined {
    return this.bound ? { ...this.bound } : undefined
  }

  start(): Promise<Address> {
    if (this.stopped)
      return Promise.reject(new ShoalError('SHOAL_ERR_BIND', `transport ${fmt(this.opts.bind)} was stopped; create a new one`))
    this.starting ??= this.bind()
    return this.starting
  }

  stop(): Promise<void> {
    this.stopped = true
    this.stopping ??= this.close()
    return this.stopping
  }

  onPacket(handler: PacketHandler): void {
    this.packetHandler = handler
  }

  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler
  }

  sendPacket(to: Address, data: Uint8Array): void {
    const udp = this.udp
    if (!udp || this.stopped) {
      this.counters.packetErrors++
      this.log.debug({ to: fmt(to), bytes: data.length }, 'packet not sent: transport not running')
      return
    }
    // dgram sends asynchronously; the caller may reuse its buffer right away.
    const copy = Buffer.from(data)
    try {
      udp.send(copy, to.port, to.host, (err) => {
        if (err) {
          this.counters.packetErrors++
          this.log.debug({ err, to: fmt(to), bytes: copy.length }, 'packet send failed')
        }
      })
      this.counters.packetsOut++
      this.counters.bytesOut += copy.length
    } catch (err) {
      this.counters.packetErrors++
      this.log.debug({ err, to: fmt(to), bytes: copy.length }, 'packet send failed')
    }
  }

  request(to: Address, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const peer = fmt(to)
    const fail = (msg: string, cause?: Error | string) => streamError(`stream to ${peer}: ${msg}`, cause)
    if (this.stopped) {
      this.counters.streamErrors++
      return Promise.reject(fail('transport stopped'))
    }
    if (data.length > this.maxFrame) {
      this.counters.oversizeFrames++
      this.counters.streamErrors++
      return Promise.reject(fail(`request of ${data.length} bytes exceeds the ${this.maxFrame}-byte frame limit`))
    }
    this.counters.streamRequestsOut++
    return new Promise<Uint8Array>((resolve, reject) => {
      const reader = new FrameReader(this.maxFrame)
      let done = false
      const socket = net.connect({ host: to.host, port: to.port })
      this.sockets.add(socket)
      const finish = (err: Error | undefined, reply?: Buffer) => {
        if (done) return
        done = true
        clearTimeout(timer)
        this.aborts.delete(abort)
        this.sockets.delete(socket)
        socket.destroy()
        if (err) {
          this.counters.streamErrors++
          this.log.debug({ peer, err: err.message }, 'stream request failed')
          reject(err)
        } else resolve(reply!)
      }
      const abort = (err: Error) => finish(err)
      this.aborts.add(abort)
      const timer = setTimeout(() => finish(fail(`no answer within ${timeoutMs} ms`, 'ETIMEDOUT')), Math.max(0, timeoutMs))
      timer.unref()
      socket.on('connect', () => socket.write(frame(data)))
      socket.on('data', (chunk) => {
        try {
          const reply = reader.push(chunk)
          if (reply) finish(undefined, Buffer.from(reply))
        } catch (err) {
          this.counters.oversizeFrames++
          this.log.debug({ peer, err }, 'response frame too large: closing')
          finish(fail((err as Error).message))
        }
      })
      socket.on('end', () => finish(fail('closed without an answer', 'ECLOSED')))
      socket.on('close', () => finish(fail('closed without an answer', 'ECLOSED')))
      socket.on('error', (err) => finish(fail(err.message, err)))
    })
  }

  private async bind(): Promise<Address> {
    const wanted = this.opts.bind
    const { tcp, udp, port } = await bindUdpAndTcp(wanted, '', {
      tcp: () => net.createServer((socket) => this.serve(socket)),
      udp: () => dgram.createSocket(net.isIPv6(wanted.host) ? 'udp6' : 'udp4'),
    })
    tcp.on('error', (err) =>
      logProblem(
        this.log,
        'warn',
        {
          what: `gossip TCP listener error (${err.message})`,
          input: `--bind ${fmt(wanted)}`,
          fix: 'the listener keeps serving if it can; restart the agent if push-pulls with this node fail',
        },
        { err },
      ),
    )
    udp.on('error', (err) => {
      this.counters.packetErrors++
      this.log.debug({ err }, 'UDP socket error')
    })
    udp.on('message', (msg, rinfo) => this.receive(msg, { host: rinfo.address, port: rinfo.port }))
    this.tcp = tcp
    this.udp = udp
    this.bound = { host: wanted.host, port }
    // If stop() was called meanwhile, it waits for this bind and then closes both sockets.
    this.log.debug({ addr: fmt(this.bound) }, 'listening on UDP and TCP')
    return { ...this.bound }
  }

  private async close(): Promise<void> {
    if (this.starting) await this.starting.catch(() => undefined)
    for (const abort of [...this.aborts]) abort(new ShoalError('SHOAL_ERR_STREAM', 'transport stopped'))
    const { udp, tcp } = this
    this.udp = this.tcp = undefined
    await closeUdpAndTcp({ udp, tcp }, this.sockets)
  }

  private receive(msg: Buffer, from: Address): void {
    this.counters.packetsIn++
    this.counters.bytesIn += msg.length
    const handler = this.packetHandler
    if (!handler) return
    try {
      handler(msg, from)
    } catch (err) {
      this.counters.handlerErrors++
      this.log.debug({ err, from: fmt(from) }, 'packet handler threw')
    }
  }

  private serve(socket: net.Socket): void {
    if (this.stopped) {
      socket.destroy()
      return
    }
    const from = { host: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }
    const peer = fmt(from)
    // Every limit below holds before any authentication: anyone can open these streams.
    if (this.incoming.size >= this.maxStreams) {
      this.refuse(socket, from, StreamRefusal.streams, `${this.incoming.size} incoming streams already open (limit ${this.maxStreams})`)
      return
    }
    this.sockets.add(socket)
    this.incoming.add(socket)
    const reader = new FrameReader(this.maxRequest)
    let got = false
    let reserved = 0
    const release = () => {
      this.incomingBytes -= reserved
      reserved = 0
    }
    const deadline = setTimeout(() => {
      if (got || socket.destroyed) return
      const have = socket.bytesRead
      const want = reader.length < 0 ? 'a length' : `${reader.length + LENGTH_BYTES} bytes`
      this.refuse(
        socket,
        from,
        StreamRefusal.deadline,
        `${have} bytes of ${want} arrived within the ${this.deadlineMs} ms request deadline`,
      )
    }, this.deadlineMs)
    deadline.unref()
    socket.setTimeout(this.idleMs, () => {
      if (!got) this.counters.streamErrors++
      this.log.debug({ peer }, 'stream idle: closing')
      socket.destroy()
    })
    socket.on('close', () => {
      clearTimeout(deadline)
      release()
      this.sockets.delete(socket)
      this.incoming.delete(socket)
    })
    socket.on('error', (err) => this.log.debug({ err, peer }, 'incoming stream error'))
    socket.on('end', () => {
      if (!got) {
        this.counters.streamErrors++
        socket.destroy()
      }
    })
    socket.on('data', (chunk) => {
      if (got || socket.destroyed) return
      let request: Buffer | undefined
      try {
        request = reader.push(chunk)
      } catch (err) {
        this.counters.oversizeFrames++
        this.refuse(socket, from, StreamRefusal.oversize, `${(err as Error).message}`)
        return
      }
      if (reserved === 0 && reader.length > 0 && !request) {
        if (this.incomingBytes + reader.length > this.maxBytes) {
          this.refuse(
            socket,
            from,
            StreamRefusal.bytes,
            `a ${reader.length}-byte request would take the incoming requests in flight from ${this.incomingBytes} over ${this.maxBytes} bytes`,
          )
          return
        }
        reserved = reader.length
        this.incomingBytes += reserved
      }
      if (!request) return
      got = true
      clearTimeout(deadline)
      release()
      this.counters.streamRequestsIn++
      void this.answer(socket, Buffer.from(request), from)
    })
  }

  /** Close an incoming stream before its request: counted by reason, warned at most once a minute per peer host and reason. */
  private refuse(socket: net.Socket, from: Address, reason: StreamRefusal, what: string): void {
    socket.destroy()
    this.counters.streamErrors++
    this.counters.streamsRefused[reason]++
    const peer = fmt(from)
    const held = this.warnLimit.admit(`${from.host}|${reason}`)
    if (held === undefined) {
      this.log.debug({ peer, reason }, `gossip stream from ${peer} closed: ${what}`)
      return
    }
    logProblem(
      this.log,
      'warn',
      {
        what: `gossip stream from ${peer} closed (${reason}): ${what}`,
        input: peer,
        fix: `${refusalAdvice[reason]}${LogLimiter.suffix(held)}`,
      },
      { peer, reason, suppressed: held },
    )
  }

  private async answer(socket: net.Socket, request: Buffer, from: Address): Promise<void> {
    const peer = fmt(from)
    let reply: Uint8Array | undefined
    try {
      const handler = this.requestHandler
      reply = handler ? await handler(request, from) : undefined
    } catch (err) {
      this.counters.handlerErrors++
      this.log.debug({ err, peer }, 'request handler failed')
      reply = undefined
    }
    if (socket.destroyed) return
    if (reply === undefined) {
      socket.end()
      return
    }
    if (reply.length > this.maxFrame) {
      this.counters.oversizeFrames++
      this.counters.streamErrors++
      this.log.debug({ peer, bytes: reply.length }, 'response larger than the frame limit: closing')
      socket.destroy()
      return
    }
    socket.end(frame(reply))
  }
}
