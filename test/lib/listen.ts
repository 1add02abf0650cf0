import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer, type AddressInfo, type Server } from 'node:net'
import type { Test } from 'tap'

/** Listen on 127.0.0.1 port 0, close at the test's teardown; resolves with the port. */
export async function serve(t: Pick<Test, 'teardown'>, server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return (server.address() as AddressInfo).port
}

/**
 * A port to hand to a process, free right now for TCP on `host` (default 127.0.0.1; `null`:
 * every address) and, with `udp`, for UDP too (gossip binds one number for both). Picked at
 * random below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
 * default), where neither a bind to port 0 nor an outgoing connection's source port ever lands:
 * a port the kernel chose and this function closed again was handed, in the moments before
 * the process bound it, to another test running at the same time (seen: an agent's --http
 * port taken by another test's connection, with three test files at once beside stress-ng).
 * Two callers pick the same port only by chance (about 1 in 12,000).
 */
export async function handOutPort(opts: { udp?: boolean; host?: string | null } = {}): Promise<number> {
  const host = opts.host === undefined ? '127.0.0.1' : opts.host
  const low = 20_000
  const high = Math.min(ephemeralLow(), 65_536) - 1
  for (let i = 0; i < 200; i++) {
    const port = high > low ? low + Math.floor(Math.random() * (high - low + 1)) : 0
    const got = await new Promise<number | undefined>((resolve) => {
      const s = createServer()
      s.once('error', () => resolve(undefined))
      const bound = () => {
        const p = (s.address() as AddressInfo).port
        s.close(() => resolve(p))
      }
      if (host === null) s.listen(port, bound)
      else s.listen(port, host, bound)
    })
    if (got === undefined) continue
    if (!opts.udp) return got
    const udpFree = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4')
      u.once('error', () => resolve(false))
      u.bind(got, host ?? undefined, () => u.close(() => resolve(true)))
    })
    if (udpFree) return got
  }
  throw new Error(`no port free on ${host ?? 'every address'} below the ephemeral range`)
}

/** The first port of the kernel's ephemeral range (32768 when it cannot be read). */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32_768
  } catch {
    return 32_768
  }
}

/** A loopback TCP port nothing listens on, for a port that must refuse connections or one to hand to a process (handOutPort). */
export function unusedPort(): Promise<number> {
  return handOutPort()
}

/**
 * A TCP server that takes connections as a live service does: it keeps each one open until
 * the other end closes it, so a Tcp check passes on it. (One that closes each connection at
 * once is what a proxy with nothing behind it does, and a Tcp check fails on that.)
 */
export function tcpService(): Server {
  return createServer((c) => {
    c.on('error', () => undefined)
    c.resume()
  })
}
