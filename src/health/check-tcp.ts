import net from 'node:net'
import { ShoalError } from '../errors.js'

/** Parse `host:port` or `[v6]:port`. */
export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s.trim()) ?? /^([^:\s]+):(\d+)$/.exec(s.trim())
  const port = m ? Number(m[2]) : NaN
  if (!m || !(port >= 1 && port <= 65535)) throw new ShoalError('SHOAL_ERR_CHECK_ARGS', `Tcp: "${s}" is not host:port`)
  return { host: m[1]!, port }
}

/** Passes when a TCP connection to `address` opens. */
export function tcpCheck(address: string, signal: AbortSignal): Promise<void> {
  let target: { host: string; port: number }
  try {
    target = parseHostPort(address)
  } catch (err) {
    return Promise.reject(err)
  }
  return new Promise((resolve, reject) => {
    const sock = net.connect({ ...target, signal })
    sock.once('connect', () => {
      sock.destroy()
      resolve()
    })
    sock.once('error', (err) => {
      sock.destroy()
      reject(err)
    })
  })
}
