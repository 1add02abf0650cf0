/**
 * Test traffic never leaves this machine. Before a test connects to an address that is not
 * loopback (a bridge, a namespace, a container it made), it asks the kernel how that address
 * would be reached (`ip route get`) from where it connects (this namespace, or a container's
 * network namespace by its PID), and refuses when the route goes through a gateway (`via`):
 * that is out of the machine (the default route), e.g. a Swarm overlay IP seen from the host,
 * which has no route to overlays.
 *
 * @example
 *   assertLocalRoute('10.231.0.2')                  // a container on the test's bridge: fine
 *   assertLocalRoute('10.0.1.5')                    // an overlay IP from the host: throws
 *   assertLocalRoute('10.0.1.5', { netnsPid: pid }) // from inside a container on that overlay: fine
 *   const s = await connectLocal('10.231.0.2', 80)
 */
import { spawnSync } from 'node:child_process'
import { connect, isIP, type Socket } from 'node:net'

export interface RouteFrom {
  /** Ask from the network namespace of this process (a container's State.Pid), through nsenter. */
  netnsPid?: number
}

/** How the kernel would reach `addr` from `from` (the first line of `ip route get`), or why it cannot. */
export function routeTo(addr: string, from: RouteFrom = {}): { local: boolean; route: string } {
  if (isIP(addr) === 0) return { local: false, route: `"${addr}" is not an IP address` }
  const cmd =
    from.netnsPid !== undefined
      ? ['nsenter', `--net=/proc/${from.netnsPid}/ns/net`, 'ip', 'route', 'get', addr]
      : ['ip', 'route', 'get', addr]
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 10_000 })
  const route = (r.stdout || r.stderr || r.error?.message || '').split('\n')[0]!.trim()
  // Through a gateway, or no route at all: not an address of this machine's own links.
  return { local: r.status === 0 && !/\svia\s/.test(` ${route} `), route }
}

/** Throws unless `addr` is reached from `from` without a gateway (see routeTo). */
export function assertLocalRoute(addr: string, from: RouteFrom = {}): void {
  const { local, route } = routeTo(addr, from)
  if (!local) {
    const where = from.netnsPid !== undefined ? `the network namespace of process ${from.netnsPid}` : "this host's network namespace"
    throw new Error(`refusing to connect to ${addr} from ${where}: its route leaves this machine or does not exist (${route})`)
  }
}

/** A TCP connection to `host:port` from this namespace, after assertLocalRoute; rejects on error or after `timeoutMs`. */
export function connectLocal(host: string, port: number, timeoutMs = 3000): Promise<Socket> {
  assertLocalRoute(host)
  return new Promise((resolve, reject) => {
    const s = connect({ host, port })
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`connect ${host}:${port}: no answer in ${timeoutMs} ms`))
    }, timeoutMs)
    s.once('connect', () => {
      clearTimeout(timer)
      resolve(s)
    })
    s.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

/** `fetch` of an http URL after assertLocalRoute on its host (IPv6 in brackets). */
export async function fetchLocal(url: string, init: RequestInit = {}): Promise<Response> {
  const host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1')
  assertLocalRoute(host)
  return fetch(url, { signal: AbortSignal.timeout(5000), ...init })
}
