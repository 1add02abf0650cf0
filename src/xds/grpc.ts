/**
 * @grpc/grpc-js, loaded when the first xDS client connects, and the ADS listeners that wait for
 * it (README "Memory": grpc-js with node:http2 costs about 6 MiB of RSS, which an agent no
 * Envoy or gRPC client has reached does not pay).
 *
 * Each listener is a plain `net.Server`. A connection's first bytes are read, and must begin
 * as HTTP/2's client preface does (`PRI * HTTP/2.0`); the first connection that does loads
 * grpc-js synchronously, makes the gRPC server with the caller's `make`, and from then on every
 * such connection is handed to it, its first bytes put back (`socket.unshift`, which node:http2
 * reads before the socket's own), through grpc-js's connection injector, the same HTTP/2
 * server setup its own listeners use (`Server.createConnectionInjector`, grpc-js 1.10 and
 * later). A connection that begins otherwise (a TLS ClientHello, an HTTP/1.1 request, bytes of
 * no protocol) is closed and passed to `onRefused`, and loads nothing: HTTP/2 closed those
 * without a word; so is one that sends nothing for FIRST_BYTES_WAIT_MS. One that closes before
 * a byte (a Tcp health check) is dropped quietly.
 */
import { lookup } from 'node:dns/promises'
import { createRequire } from 'node:module'
import { createServer, isIP, type Server as NetServer, type Socket } from 'node:net'
import type * as Grpc from '@grpc/grpc-js'
import { listenError, type HostPort } from '../address.js'
import type { Clock } from '../clock.js'

const require = createRequire(import.meta.url)

/** What HTTP/2 (h2c, as gRPC without TLS speaks it) sends first (RFC 9113 section 3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

/** Why a connection was refused before HTTP/2: what its first bytes look like. */
export type RefusedKind = 'tls' | 'http1' | 'not_http2' | 'silent'

/** How long a connection may stay open without a byte (every gRPC client sends its preface at once). */
export const FIRST_BYTES_WAIT_MS = 10_000

/** null when `first` begins as HTTP/2's preface does (as much of it as arrived), else what it looks like. */
export function refusedKind(first: Buffer): RefusedKind | null {
  const n = Math.min(first.length, PREFACE.length)
  if (first.subarray(0, n).equals(PREFACE.subarray(0, n))) return null
  if (first[0] === 0x16 && first[1] === 0x03) return 'tls'
  if (/^[A-Z]{3,7} \S+ HTTP\/1\.[01]\r?\n/.test(first.subarray(0, 512).toString('latin1'))) return 'http1'
  return 'not_http2'
}

let grpcModule: typeof Grpc | undefined
let grpcLogger: Console | undefined

/** grpc-js itself, loaded at the first call (with the logger of `setGrpcLogger`, if one was set). */
export function grpcJs(): typeof Grpc {
  if (grpcModule === undefined) {
    grpcModule = require('@grpc/grpc-js') as typeof Grpc
    if (grpcLogger) grpcModule.setLogger(grpcLogger)
  }
  return grpcModule
}

/** Where grpc-js's own log lines go, now or whenever it loads (grpc-js `setLogger`). */
export function setGrpcLogger(logger: Console): void {
  grpcLogger = logger
  grpcModule?.setLogger(logger)
}

/** Whether grpc-js has been loaded in this process (test/agent-lazy-load). */
export function grpcLoaded(): boolean {
  return grpcModule !== undefined
}

/**
 * One gRPC server behind any number of plain listeners (TCP addresses, a Unix socket), made on
 * the first connection. `make` builds the server (services added); a failure to load or make it
 * is passed to `onError` and the connection is closed (the client retries).
 */
export class LazyGrpcServer {
  private readonly listeners: NetServer[] = []
  /** Every connection a listener accepted and that is still open (close() ends those left). */
  private readonly sockets = new Set<Socket>()
  private made: { server: Grpc.Server; injector: Grpc.ConnectionInjector } | null = null
  /** Set by close(): a connection whose first bytes come after it is closed, never served (a second server would outlive the stop). */
  private closing = false

  /** `resolve` gives the addresses of a DNS name (default: every address dns.lookup gives). */
  constructor(
    private readonly make: (grpc: typeof Grpc) => Grpc.Server,
    private readonly onError: (err: unknown) => void,
    private readonly resolve: (host: string) => Promise<string[]> = async (host) => [
      ...new Set((await lookup(host, { all: true })).map((a) => a.address)),
    ],
    private readonly onRefused: (kind: RefusedKind, peer: string) => void = () => undefined,
  ) {}

  /** The gRPC server, once a client has connected; null before. */
  get server(): Grpc.Server | null {
    return this.made?.server ?? null
  }

  /** A listener whose connections this server takes; the caller binds it (bindUnixSocket). */
  listener(): NetServer {
    const l = createServer((socket) => this.accept(socket))
    this.listeners.push(l)
    return l
  }

  /**
   * Listens on `hp` and resolves to the bound port. A DNS name listens on every address it
   * resolves to, all on the port the first one got, and succeeds when at least one of them
   * could be bound, as grpc-js's `bindAsync` does (`localhost` on a host without IPv6 still
   * listens on 127.0.0.1). Rejects with SHOAL_ERR_BIND (`listenError`, naming `where`, with the
   * first address's error) when none could, with nothing left listening.
   */
  async listen(hp: HostPort, where: string): Promise<number> {
    let hosts: string[]
    try {
      hosts = isIP(hp.host) ? [hp.host] : await this.resolve(hp.host)
    } catch (err) {
      throw listenError(where, hp, err)
    }
    let port = hp.port
    let bound = 0
    let firstError: unknown
    for (const host of hosts) {
      const l = createServer((socket) => this.accept(socket))
      try {
        await new Promise<void>((resolve, reject) => {
          l.once('error', reject)
          l.listen({ host, port }, () => {
            l.off('error', reject)
            resolve()
          })
        })
      } catch (err) {
        firstError ??= err
        continue
      }
      this.listeners.push(l)
      port = (l.address() as { port: number }).port
      bound++
    }
    if (bound === 0) throw listenError(where, hp, firstError)
    return port
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    // Until HTTP/2 has the socket, its errors (a reset) only close it.
    const onError = () => socket.destroy()
    socket.on('error', onError)
    // A connection that sends nothing holds a descriptor until then: a port scan's, a stuck client's.
    const peerOf = () => (socket.remotePort === undefined ? 'a client on the Unix socket' : `${socket.remoteAddress}:${socket.remotePort}`)
    const onSilent = () => {
      const peer = peerOf()
      socket.destroy()
      this.onRefused('silent', peer)
    }
    socket.setTimeout(FIRST_BYTES_WAIT_MS, onSilent)
    socket.once('data', (first: Buffer) => {
      socket.pause()
      // Off, listener included: a timeout HTTP/2 sets later on this socket is not ours to report.
      socket.setTimeout(0)
      socket.off('timeout', onSilent)
      socket.off('error', onError)
      const kind = refusedKind(first)
      if (kind !== null) {
        const peer = peerOf()
        socket.destroy()
        this.onRefused(kind, peer)
        return
      }
      socket.unshift(first)
      this.serve(socket)
    })
  }

  private serve(socket: Socket): void {
    if (this.closing) {
      socket.destroy()
      return
    }
    if (!this.made) {
      try {
        const grpc = grpcJs()
        const server = this.make(grpc)
        this.made = { server, injector: server.createConnectionInjector(grpc.ServerCredentials.createInsecure()) }
      } catch (err) {
        socket.destroy()
        this.onError(err)
        return
      }
    }
    this.made.injector.injectConnection(socket)
  }

  /**
   * Stops listening, then ends every gRPC session: gracefully (`tryShutdown`), forced after
   * `graceMs` (`forceShutdown`). Resolves when the sessions are closed. A listener's own close
   * callback is not awaited: it waits for every connection the listener accepted, and those now
   * belong to gRPC, whose shutdown above is what ends them. (Awaiting it, `npm run demo` hung at
   * its agents' stop twice, once beside stress-ng; later runs did not hang either way, so the
   * exact cause is not pinned down.)
   *
   * Then every accepted connection still open is destroyed: HTTP/2's close sends GOAWAY and
   * ends its side, then waits for the peer's FIN, which a client that sends nothing and reads
   * nothing (a hung Envoy, a port scanner) never sends; that socket (FIN-WAIT-2) kept a stopped
   * agent's process from exiting for as long as the client stayed.
   */
  async close(graceMs: number, clock: Clock): Promise<void> {
    this.closing = true
    for (const l of this.listeners) l.close()
    this.listeners.length = 0
    const server = this.made?.server
    this.made = null
    if (server) await this.shutdown(server, graceMs, clock)
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
  }

  private async shutdown(server: Grpc.Server, graceMs: number, clock: Clock): Promise<void> {
    await new Promise<void>((resolve) => {
      const force = clock.setTimer(graceMs, () => {
        server.forceShutdown()
        resolve()
      })
      server.tryShutdown(() => {
        force.cancel()
        resolve()
      })
    })
  }
}
