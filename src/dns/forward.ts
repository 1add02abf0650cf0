/**
 * Forwarding of names outside the domain to recursors (--dns-recursors), tried in order: the
 * client's query goes out as it came (its id, flags and EDNS options), over the transport the
 * client used, so an upstream truncation sends the client to TCP and its TCP retry is
 * forwarded over TCP (RFC 7766). The first recursor that answers within the timeout wins.
 */
import dgram from 'node:dgram'
import net from 'node:net'
import { formatHostPort, type HostPort } from '../address.js'

export type DnsTransport = 'udp' | 'tcp'

/** What forwarding gave: the upstream response, or why each recursor failed. */
export type Forwarded = { response: Buffer; recursor: HostPort } | { response?: undefined; failures: string[] }

/**
 * Sends `query` to each recursor in turn until one answers with a response of the same id.
 * Never rejects; `signal` abandons it (the server is stopping).
 *
 * @example
 *   const r = await forwardQuery(msg, [{ host: '127.0.0.53', port: 53 }], 'udp', 2000, stop.signal)
 *   if (r.response) socket.send(r.response, client.port, client.address)
 */
export async function forwardQuery(
  query: Buffer,
  recursors: readonly HostPort[],
  via: DnsTransport,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Forwarded> {
  const failures: string[] = []
  for (const r of recursors) {
    if (signal.aborted) break
    try {
      const response = await (via === 'udp' ? askUdp : askTcp)(query, r, timeoutMs, signal)
      return { response, recursor: r }
    } catch (err) {
      failures.push(`${formatHostPort(r)}: ${(err as Error).message}`)
    }
  }
  return { failures }
}

/** Runs `body` with a settle-once promise, a timeout and the abort signal; `cleanup` runs once at the end. */
function exchange(
  timeoutMs: number,
  signal: AbortSignal,
  body: (done: (err: Error | undefined, res?: Buffer) => void) => () => void,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let settled = false
    let cleanup: () => void = () => undefined
    const done = (err: Error | undefined, res?: Buffer): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      cleanup()
      if (err) reject(err)
      else resolve(res!)
    }
    const onAbort = (): void => done(new Error('the DNS server is stopping'))
    const timer = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    timer.unref()
    signal.addEventListener('abort', onAbort)
    cleanup = body(done)
  })
}

function askUdp(query: Buffer, to: HostPort, timeoutMs: number, signal: AbortSignal): Promise<Buffer> {
  const id = query.readUInt16BE(0)
  return exchange(timeoutMs, signal, (done) => {
    // A socket of its own per query: its ephemeral port and the id both have to match (RFC 5452).
    const socket = dgram.createSocket(net.isIPv6(to.host) ? 'udp6' : 'udp4')
    socket.on('error', (err) => done(err))
    socket.on('message', (msg, rinfo) => {
      if (rinfo.address !== to.host || rinfo.port !== to.port || msg.length < 12 || msg.readUInt16BE(0) !== id) return
      done(undefined, msg)
    })
    socket.send(query, to.port, to.host, (err) => {
      if (err) done(err)
    })
    return () => socket.close()
  })
}

function askTcp(query: Buffer, to: HostPort, timeoutMs: number, signal: AbortSignal): Promise<Buffer> {
  return exchange(timeoutMs, signal, (done) => {
    const socket = net.connect({ host: to.host, port: to.port })
    let buf = Buffer.alloc(0)
    const length = Buffer.alloc(2)
    length.writeUInt16BE(query.length)
    socket.on('connect', () => socket.write(Buffer.concat([length, query])))
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      if (buf.length < 2) return
      const n = buf.readUInt16BE(0)
      if (buf.length >= 2 + n) done(undefined, buf.subarray(2, 2 + n))
    })
    socket.on('error', (err) => done(err))
    socket.on('close', () => done(new Error('closed without an answer')))
    return () => socket.destroy()
  })
}
