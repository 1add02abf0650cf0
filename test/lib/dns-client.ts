/**
 * Raw DNS over loopback for protocol tests: send exact bytes, read exact bytes. dig covers
 * what a user sees (test/lib/dig.ts); this covers what dig would never send.
 *
 * @example
 *   const c = await udpClient(t)
 *   c.send(port, dnsPacket.encode({ id: 7, questions: [{ name: 'web.service.shoal', type: 'A' }] }))
 *   const reply = await c.next()     // the next datagram that arrives, decoded by the caller
 */
import dgram from 'node:dgram'
import net from 'node:net'
import type { Test } from 'tap'

export interface UdpClient {
  send(port: number, msg: Buffer): void
  /** The next datagram received (in arrival order). */
  next(): Promise<Buffer>
}

export async function udpClient(t: Pick<Test, 'teardown'>): Promise<UdpClient> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => new Promise<void>((r) => socket.close(() => r())))
  const queue: Buffer[] = []
  const waiting: Array<(b: Buffer) => void> = []
  socket.on('message', (msg) => {
    const w = waiting.shift()
    if (w) w(msg)
    else queue.push(msg)
  })
  return {
    send: (port, msg) => socket.send(msg, port, '127.0.0.1'),
    next: () => {
      const b = queue.shift()
      return b ? Promise.resolve(b) : new Promise((r) => waiting.push(r))
    },
  }
}

export interface TcpClient {
  socket: net.Socket
  /** Writes raw bytes (frame them yourself with `frame`). */
  write(bytes: Buffer): void
  /** The next whole length-prefixed message received. */
  next(): Promise<Buffer>
  /** Resolves when the server closes the connection. */
  closed: Promise<void>
}

/** `msg` with its 2-byte length in front (RFC 1035 section 4.2.2). */
export function frame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2)
  len.writeUInt16BE(msg.length)
  return Buffer.concat([len, msg])
}

export async function tcpClient(t: Pick<Test, 'teardown'>, port: number): Promise<TcpClient> {
  const socket = net.connect({ host: '127.0.0.1', port })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  t.teardown(() => {
    socket.destroy()
  })
  socket.on('error', () => undefined)
  let buf = Buffer.alloc(0)
  const queue: Buffer[] = []
  const waiting: Array<(b: Buffer) => void> = []
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk])
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0))
      buf = buf.subarray(2 + msg.length)
      const w = waiting.shift()
      if (w) w(msg)
      else queue.push(msg)
    }
  })
  const closed = new Promise<void>((r) => socket.once('close', () => r()))
  return {
    socket,
    write: (bytes) => socket.write(bytes),
    next: () => {
      const b = queue.shift()
      return b ? Promise.resolve(b) : new Promise((r) => waiting.push(r))
    },
    closed,
  }
}
