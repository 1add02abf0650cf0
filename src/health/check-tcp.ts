import net from 'node:net'
import { parseHostPort } from '../address.js'
import { CheckFailed, type Finding } from './finding.js'

/**
 * How long a Tcp check holds the connection it opened (ms), watching for the other end to
 * close it. A userland proxy in front of a published port accepts every connection, whether
 * or not anything listens behind it, and closes it at once when its own connection to the
 * container is refused: docker-proxy on a loopback host binding (`-p 127.0.0.1::80`, or a
 * wildcard binding reached at 127.0.0.1; measured: Tcp checks of a starting Swarm task passed
 * about 1 s before its server listened), rootless Docker's port driver, Docker Desktop. A
 * connect alone would pass there.
 */
export const TCP_HOLD_MS = 100

/**
 * Passes when a TCP connection to `address` opens and the other end neither closes nor resets
 * it within `holdMs` (TCP_HOLD_MS; bytes it sends pass at once); the socket is closed then.
 * Fails with `closed by the other end at once` otherwise. `signal` destroys the socket
 * (a connect still pending, or the hold).
 */
export function tcpCheck(address: string, signal: AbortSignal, holdMs = TCP_HOLD_MS): Promise<Finding> {
  let target: { host: string; port: number }
  try {
    target = parseHostPort(address, 'Tcp check', { code: 'SHOAL_ERR_CHECK_ARGS' })
  } catch (err) {
    return Promise.reject(err)
  }
  return new Promise((resolve, reject) => {
    const sock = net.connect({ ...target, signal })
    let hold: NodeJS.Timeout | undefined
    const done = (err?: Error) => {
      clearTimeout(hold)
      sock.destroy()
      if (err) reject(err)
      else resolve({})
    }
    sock.once('connect', () => {
      // Something that sends bytes is listening; something that closes at once is a proxy with nothing behind it.
      sock.once('data', () => done())
      sock.once('end', () =>
        done(
          new CheckFailed(
            `connected, then closed by the other end at once (a proxy such as docker-proxy with nothing listening behind it)`,
          ),
        ),
      )
      hold = setTimeout(() => done(), holdMs)
    })
    sock.once('error', (err: NodeJS.ErrnoException) => {
      if (hold !== undefined && err.code === 'ECONNRESET')
        return done(
          new CheckFailed(`connected, then reset by the other end at once (a proxy such as docker-proxy with nothing listening behind it)`),
        )
      done(err)
    })
  })
}
