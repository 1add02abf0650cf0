import net from 'node:net'
import { parseHostPort } from '../address.js'
import type { Finding } from './finding.js'

/** Passes when a TCP connection to `address` opens; the socket is closed at once. `signal` destroys a connect still pending. */
export function tcpCheck(address: string, signal: AbortSignal): Promise<Finding> {
  let target: { host: string; port: number }
  try {
    target = parseHostPort(address, 'Tcp check', { code: 'SHOAL_ERR_CHECK_ARGS' })
  } catch (err) {
    return Promise.reject(err)
  }
  return new Promise((resolve, reject) => {
    const sock = net.connect({ ...target, signal })
    sock.once('connect', () => {
      sock.destroy()
      resolve({})
    })
    sock.once('error', (err) => {
      sock.destroy()
      reject(err)
    })
  })
}
