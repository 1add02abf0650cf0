/**
 * The `/api/watch` change stream: Server-Sent Events to any number of readers. Each event
 * is serialised once for all readers. A reader that stops reading is dropped as soon as
 * the bytes queued for it pass a bound, so one stalled reader can never grow the agent's
 * memory without limit. The first event (the catalog snapshot, as large as the catalog) is
 * always written whole: the bound counts what is queued beyond it, so a catalog larger than
 * the bound never turns every reader away.
 */
import type { ServerResponse } from 'node:http'
import { logProblem, type Logger } from '../log.js'

export interface WatchHubOptions {
  /** Bytes queued for one reader (in Node and the socket) before it is dropped. */
  maxBufferBytes: number
  /** Interval of the `: heartbeat` comment that keeps proxies and idle timeouts away. */
  heartbeatMs: number
}

export interface WatchHubHooks {
  /** A reader was dropped for not reading. */
  onDropped(peer: string): void
  /** The number of open streams changed. */
  onClients(n: number): void
}

interface Reader {
  res: ServerResponse
  peer: string
  /** Bytes that may be queued for it: the bound, plus its first event until the kernel has taken that. */
  allowance: number
}

/**
 * @example
 *   const hub = new WatchHub(logger, { maxBufferBytes: 1 << 20, heartbeatMs: 15_000 }, hooks)
 *   hub.start()
 *   hub.add(res, peer, 'snapshot', snapshotObject)
 *   hub.publish('catalog', { type: 'service-added', record })
 *   hub.stop()
 */
export class WatchHub {
  private readonly readers = new Set<Reader>()
  private timer: NodeJS.Timeout | undefined
  private nextId = 1

  constructor(
    private readonly logger: Logger,
    private readonly opts: WatchHubOptions,
    private readonly hooks: WatchHubHooks,
  ) {}

  get size(): number {
    return this.readers.size
  }

  start(): void {
    if (this.timer) return
    this.timer = setInterval(() => this.writeAll(': heartbeat\n\n'), this.opts.heartbeatMs)
    this.timer.unref()
  }

  /** Ends every stream and the heartbeat. Idempotent. */
  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    for (const r of [...this.readers]) {
      this.remove(r, false)
      r.res.end()
    }
  }

  /** Takes over a response: writes SSE headers and the first event, then keeps it open. */
  add(res: ServerResponse, peer: string, firstEvent: string, firstData: unknown): void {
    this.addJson(res, peer, firstEvent, JSON.stringify(firstData))
  }

  /** As `add`, with the first event's data already serialised (JSON text, no raw newline): shared by readers that get the same. */
  addJson(res: ServerResponse, peer: string, firstEvent: string, firstJson: string): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    const first = 'retry: 2000\n\n' + this.frameJson(firstEvent, firstJson)
    const firstBytes = Buffer.byteLength(first)
    const reader: Reader = { res, peer, allowance: this.opts.maxBufferBytes + firstBytes }
    this.readers.add(reader)
    this.hooks.onClients(this.readers.size)
    res.on('close', () => this.remove(reader, false))
    // Once the snapshot has left Node's and the socket's queues, the plain bound applies again.
    if (res.write(first)) reader.allowance = this.opts.maxBufferBytes
    else res.once('drain', () => (reader.allowance = this.opts.maxBufferBytes))
  }

  /** Sends one event to every reader. */
  publish(event: string, data: unknown): void {
    if (this.readers.size === 0) return
    this.writeAll(this.frame(event, data))
  }

  private frame(event: string, data: unknown): string {
    return this.frameJson(event, JSON.stringify(data))
  }

  private frameJson(event: string, json: string): string {
    // JSON.stringify never emits a raw newline, so one `data:` line is always enough.
    return `id: ${this.nextId++}\nevent: ${event}\ndata: ${json}\n\n`
  }

  private writeAll(chunk: string): void {
    const bytes = Buffer.byteLength(chunk)
    for (const r of [...this.readers]) this.write(r, chunk, bytes)
  }

  private write(r: Reader, chunk: string, bytes = Buffer.byteLength(chunk)): void {
    if (r.res.destroyed) return this.remove(r, false)
    // writableLength covers Node's own queue and the socket's: everything the kernel has not taken.
    if (r.res.writableLength + bytes > r.allowance) {
      logProblem(
        this.logger,
        'warn',
        {
          what: `watch reader ${r.peer} is not reading (its queue passed ${r.allowance} bytes); dropping it`,
          input: r.peer,
          fix: 'a client that reconnects gets a fresh snapshot; a client that keeps falling behind must read its stream faster',
        },
        { peer: r.peer, queuedBytes: r.res.writableLength, limit: r.allowance },
      )
      this.hooks.onDropped(r.peer)
      this.remove(r, true)
      return
    }
    r.res.write(chunk)
  }

  private remove(r: Reader, destroy: boolean): void {
    if (!this.readers.delete(r)) return
    this.hooks.onClients(this.readers.size)
    if (destroy) r.res.destroy()
  }
}
