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
 * Fails with `closed by the other end at once` otherwise. With `behind` (the container's own
 * `host:port` behind a host binding, CheckContext.behind), a connection there must open too,
 * at the same time: it fails at once, whatever the load, when nothing listens in the
 * container, where docker-proxy's close may come after the hold. `signal` destroys the
 * sockets (a connect still pending, or the hold). Errors: CheckFailed, a connect's error,
 * ShoalError SHOAL_ERR_CHECK_ARGS for an address that is not host:port.
 */
export async function tcpCheck(address: string, signal: AbortSignal, holdMs = TCP_HOLD_MS, behind?: string): Promise<Finding> {
  const target = parseHostPort(address, 'Tcp check', { code: 'SHOAL_ERR_CHECK_ARGS' })
  const inner = behind === undefined ? undefined : parseHostPort(behind, 'Tcp check', { code: 'SHOAL_ERR_CHECK_ARGS' })
  if (!inner) return held(target, signal, holdMs)
  const [front, back] = await Promise.allSettled([held(target, signal, holdMs), opens(inner, signal)])
  const backErr = back.status === 'rejected' ? (back.reason as NodeJS.ErrnoException) : undefined
  // A refusal behind is said first (a record's detail keeps about 120 characters); else the
  // front's own failure, which names the address the check was given; else another failure behind.
  if (backErr?.code === 'ECONNREFUSED')
    throw new CheckFailed(`nothing listens in the container yet: ${behind}, its own address behind ${address}, refuses`)
  if (front.status === 'rejected') throw front.reason
  if (backErr) throw new CheckFailed(`the container's own address ${behind} behind ${address}: ${backErr.message}`)
  return front.value
}

/** Resolves once a connection to `target` opens (and closes it); rejects with the connect's error. */
function opens(target: { host: string; port: number }, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ ...target, signal })
    sock.once('connect', () => {
      sock.destroy()
      resolve()
    })
    sock.once('error', reject)
  })
}

function held(target: { host: string; port: number }, signal: AbortSignal, holdMs: number): Promise<Finding> {
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
