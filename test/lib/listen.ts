import { once } from 'node:events'
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
 * A loopback TCP port nothing listens on: bound on port 0 for a moment, then closed. For a
 * port that must refuse connections, or one to hand to a process (which may rarely lose it
 * to another process in between).
 */
export async function unusedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
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
