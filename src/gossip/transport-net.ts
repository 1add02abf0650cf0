/**
 * The real transport: UDP datagrams and TCP streams on the same port number.
 * A stream carries one exchange: the request as a frame (4-byte big-endian length, then
 * the bytes), the response as a frame, then both sides close.
 */
import { bindUdpAndTcp, formatHostPort } from '../address.js'
import dgram from 'node:dgram'
import net from 'node:net'
import { ShoalError } from '../errors.js'
import type { Logger } from '../log.js'
import { streamError } from './failures.js'
import type { Address, PacketHandler, RequestHandler, Transport } from './types.js'

const DEFAULT_MAX_FRAME = 8 * 1024 * 1024
const DEFAULT_IDLE_MS = 10_000
const LENGTH_BYTES = 4

export interface NetTransportOptions {
  bind: Address
  /** Largest stream frame accepted or sent (default 8 MiB). */
  maxFrameBytes?: number
  /** An incoming stream that sends no complete request within this time is closed (default 10 s). */
  idleTimeoutMs?: number
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
}

class OversizeFrame extends Error {}

/** Collects chunks until one whole length-prefixed frame has arrived. */
class FrameReader {
  private chunks: Buffer[] = []
  private have = 0
  private want = -1

  constructor(private readonly max: number) {}

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
  }

  constructor(
    private readonly opts: NetTransportOptions,
    components: { logger: Logger },
  ) {
    this.log = components.logger.child({ component: 'transport-net' })
    this.maxFrame = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME
    this.idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_MS
  }

  stats(): NetTransportStats {
    return { ...this.counters }
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
    tcp.on('error', (err) => this.log.warn({ err }, 'TCP listener error'))
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
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    const udp = this.udp
    const tcp = this.tcp
    this.udp = undefined
    this.tcp = undefined
    await Promise.all([
      udp ? new Promise<void>((r) => udp.close(() => r())) : undefined,
      tcp ? new Promise<void>((r) => tcp.close(() => r())) : undefined,
    ])
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
    this.sockets.add(socket)
    const from = { host: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }
    const peer = fmt(from)
    const reader = new FrameReader(this.maxFrame)
    let got = false
    socket.setTimeout(this.idleMs, () => {
      if (!got) this.counters.streamErrors++
      this.log.debug({ peer }, 'stream idle: closing')
      socket.destroy()
    })
    socket.on('close', () => this.sockets.delete(socket))
    socket.on('error', (err) => this.log.debug({ err, peer }, 'incoming stream error'))
    socket.on('end', () => {
      if (!got) {
        this.counters.streamErrors++
        socket.destroy()
      }
    })
    socket.on('data', (chunk) => {
      if (got) return
      let request: Buffer | undefined
      try {
        request = reader.push(chunk)
      } catch (err) {
        this.counters.oversizeFrames++
        this.counters.streamErrors++
        this.log.debug({ peer, err }, 'request frame too large: closing')
        socket.destroy()
        return
      }
      if (!request) return
      got = true
      this.counters.streamRequestsIn++
      void this.answer(socket, Buffer.from(request), from)
    })
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
