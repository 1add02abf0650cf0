/**
 * HOST:PORT, decided once: one type, one parser, one formatter. IPv6 is always written in
 * brackets (`[::1]:7946`, RFC 3986 section 3.2.2), in flags, logs, the API and check URLs.
 */
import type dgram from 'node:dgram'
import { BlockList, isIP, type Server as NetServer } from 'node:net'
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import { ShoalError, type ErrorCode } from './errors.js'

/** A host (IP literal or DNS name, IPv6 without brackets) and a port. */
export interface HostPort {
  host: string
  port: number
}

export interface ParseHostPortOptions {
  /** Port used when the text has none (`10.0.0.1`); without it a port is required. */
  defaultPort?: number
  /** Accept port 0 ("any free port", for listeners). Default false: 1-65535. */
  allowZero?: boolean
  /** Accept only IP literals, not names. Default false. */
  ipOnly?: boolean
  /** The host is given to other hosts as where to reach this one (`--advertise`): it must be an IP that advertisedIpProblem allows. Default false. */
  advertised?: boolean
  /** The error code thrown (default SHOAL_ERR_ADDRESS). */
  code?: ErrorCode
}

const NAME = /^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?$/

/**
 * Parses `HOST:PORT`, `[IPv6]:PORT`, or a bare host when `defaultPort` is given. `where`
 * names the input in the error (`--bind`, `SHOAL_XDS`, `static.json: services[0].check`).
 * Throws ShoalError (SHOAL_ERR_ADDRESS unless `code` says otherwise).
 *
 * @example
 *   parseHostPort('[::1]:7946', '--bind')                    // { host: '::1', port: 7946 }
 *   parseHostPort('10.0.0.2', '--join', { defaultPort: 7946 }) // { host: '10.0.0.2', port: 7946 }
 */
export function parseHostPort(text: string, where: string, opts: ParseHostPortOptions = {}): HostPort {
  const code = opts.code ?? 'SHOAL_ERR_ADDRESS'
  const fail = (why: string): never => {
    throw new ShoalError(code, `${where}: "${text}" ${why}`)
  }
  const v = text.trim()
  let host: string
  let portText: string | undefined
  const bracket = /^\[([^\]]*)\](?::(.*))?$/.exec(v)
  if (bracket) {
    host = bracket[1]!
    portText = bracket[2]
    if (isIP(host) !== 6) fail('has brackets around something that is not an IPv6 address')
  } else {
    const first = v.indexOf(':')
    if (first >= 0 && v.indexOf(':', first + 1) >= 0) fail('is not HOST:PORT (write IPv6 as [addr]:port)')
    host = first >= 0 ? v.slice(0, first) : v
    portText = first >= 0 ? v.slice(first + 1) : undefined
    if (host === '') fail('has no host (HOST:PORT)')
    if (isIP(host) === 0 && !NAME.test(host)) fail('has no valid host (an IP address or a DNS name)')
  }
  if (opts.ipOnly && isIP(host) === 0) fail('is not an IP address with a port')
  const unadvertisable = opts.advertised ? advertisedIpProblem(host) : undefined
  if (unadvertisable !== undefined) fail(isIP(host) === 0 ? 'is not an IP address with a port' : unadvertisable)
  let port: number
  if (portText === undefined) {
    if (opts.defaultPort === undefined) fail('has no port (HOST:PORT)')
    port = opts.defaultPort!
  } else {
    if (!/^\d{1,5}$/.test(portText)) fail('has no numeric port (HOST:PORT)')
    port = Number(portText)
    const min = opts.allowZero ? 0 : 1
    if (port < min || port > 65535) fail(`has a port out of range ${min}-65535`)
  }
  return { host, port }
}

/**
 * `ip` in canonical text (RFC 5952 for IPv6, as the WHATWG URL serializer writes it) when an
 * instance may be advertised at it (advertisedIpProblem), else null. Two spellings of one
 * address (`::FFFF:1.2.3.4`, `::ffff:102:304`) give one text.
 *
 * @example
 *   canonicalIp('2001:DB8::0:1') // '2001:db8::1'
 *   canonicalIp('fe80::1%eth0')  // null
 */
export function canonicalIp(ip: string): string | null {
  return advertisedIpProblem(ip) === undefined ? canonicalText(ip) : null
}

function canonicalText(ip: string): string {
  return isIP(ip) === 4 ? ip : new URL(`http://[${ip}]/`).hostname.slice(1, -1)
}

/** IPv6 link-local (fe80::/10, RFC 4291 section 2.5.6): reached only through a zone ID. */
function isLinkLocal6(text: string): boolean {
  return /^fe[89ab][0-9a-f]:/.test(text)
}

/** What to write instead of an address no other host can use. */
const WRITE_INSTEAD = 'write a global or unique-local IPv6 address (2001:db8::5, fd00::5) or an IPv4 address'

/**
 * The one rule for an address an instance may be advertised at, to other hosts, their xDS
 * clients and DNS: a record's port `ip` (static file `ip`/`IP`, a Docker host binding, a
 * container's address on a `--docker-network`), and `--advertise`. It must be an IPv4 literal
 * (dotted quad, no leading zeros) or an IPv6 literal, written bare (no brackets, no port, no
 * white space), with no zone ID (`fe80::1%eth0`: a zone names an interface of the host that
 * wrote it, which no other host shares; an AAAA record and Envoy's SocketAddress cannot carry
 * it), not IPv6 link-local (fe80::/10: a connection to it needs that zone), and not the
 * unspecified address (`0.0.0.0`, `::`), which names no host: a client would connect to
 * itself. Returns what is wrong and what to write instead, or undefined when `ip` may be
 * advertised. The xDS endpoint filter drops what it refuses (`not_an_ip`), DNS leaves it out,
 * the static file and `--advertise` refuse it, the Docker source skips the port (`bad-address`).
 *
 * @example
 *   advertisedIpProblem('10.0.0.5')     // undefined
 *   advertisedIpProblem('fd00::5%eth0') // 'has a zone ID (%eth0), which no other host can use; write "fd00::5"'
 */
export function advertisedIpProblem(ip: string): string | undefined {
  const zone = ip.indexOf('%')
  if (zone >= 0 && isIP(ip) === 6) {
    const bare = ip.slice(0, zone)
    return advertisedIpProblem(bare) === undefined
      ? `has a zone ID (${ip.slice(zone)}), which no other host can use; write "${bare}"`
      : `has a zone ID (${ip.slice(zone)}): a link-local address is reached only through a zone of the host that wrote it, which no other host shares; ${WRITE_INSTEAD}`
  }
  if (isIP(ip) === 0) {
    const bare = ip.trim().replace(/^\[(.*)\](?::\d*)?$/, '$1')
    if (bare !== ip && advertisedIpProblem(bare) === undefined) return `is not written bare; write "${bare}"`
    return 'is not an IP address; write an IPv4 address like "10.0.0.5" or an IPv6 address like "2001:db8::5" (no port, no name)'
  }
  let text: string
  try {
    text = canonicalText(ip)
  } catch {
    return `is not an IP address a URL can hold; ${WRITE_INSTEAD}`
  }
  if (text === '0.0.0.0' || text === '::')
    return 'is the unspecified address, which names no host (a client would connect to itself); write the address other hosts reach the instance at'
  if (isIP(ip) === 6 && isLinkLocal6(text))
    return `is IPv6 link-local, reached only through a zone of one host, which no other host shares; ${WRITE_INSTEAD}`
  return undefined
}

/**
 * `10.0.0.1:7946`, `[::1]:7946`, `example.com:80`.
 *
 * @example
 *   formatHostPort({ host: '::1', port: 80 }) // '[::1]:80'
 */
export function formatHostPort(hp: HostPort): string {
  return `${formatHost(hp.host)}:${hp.port}`
}

/** A host as it goes before `:port` or into a URL: IPv6 in brackets, anything else as is. */
export function formatHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
}

/**
 * The error for a listener that cannot bind: one line with the address, the reason in words
 * and what to do. `where` names the input (a flag such as `--xds`), or '' when the caller
 * adds it.
 *
 * @example
 *   listenError('--xds', { host: '127.0.0.1', port: 7776 }, err)
 *   // --xds: cannot listen on 127.0.0.1:7776: the address is already in use (another agent on this host? give each its own --xds)
 */
export function listenError(where: string, hp: HostPort, err: unknown): ShoalError {
  const e = err as NodeJS.ErrnoException | undefined
  const text = `${e?.code ?? ''} ${e?.message ?? String(err)}`
  let reason: string
  if (/EADDRINUSE/.test(text))
    reason = `the address is already in use (another agent on this host? give each its own ${where || 'address'})`
  else if (/EADDRNOTAVAIL/.test(text)) reason = 'that IP is not an address of this host (use one of its addresses, or 0.0.0.0)'
  else if (/EACCES/.test(text)) reason = 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)'
  else reason = (e?.message ?? String(err)).split('\n')[0]!
  return new ShoalError('SHOAL_ERR_BIND', `${where ? where + ': ' : ''}cannot listen on ${formatHostPort(hp)}: ${reason}`, { cause: err })
}

/** The two sockets of a service that answers on UDP and TCP with one port number (gossip, DNS). */
export interface UdpAndTcp {
  tcp: NetServer
  udp: dgram.Socket
  /** The port both hold (port 0 resolved). */
  port: number
}

/**
 * Binds a TCP server and a UDP socket to one port number of `hp.host`, both `exclusive`.
 * With port 0 the kernel picks TCP's port without knowing whether UDP can have it, so a
 * pair that fails on UDP's EADDRINUSE is closed and tried again, up to `attempts` times.
 * The sockets come unbound from `make`, with their handlers attached by the caller.
 * Throws SHOAL_ERR_BIND (`listenError`, with `where` naming the input).
 *
 * @example
 *   const { tcp, udp, port } = await bindUdpAndTcp({ host: '127.0.0.1', port: 0 }, '--dns', {
 *     tcp: () => net.createServer(onConnection),
 *     udp: () => dgram.createSocket('udp4'),
 *   })
 */
export async function bindUdpAndTcp(
  hp: HostPort,
  where: string,
  make: { tcp: () => NetServer; udp: () => dgram.Socket },
  attempts = 5,
): Promise<UdpAndTcp> {
  let lastErr: unknown
  for (let attempt = 0; attempt < attempts; attempt++) {
    const tcp = make.tcp()
    let port: number
    try {
      port = await listenTcp(tcp, hp.host, hp.port)
    } catch (err) {
      throw listenError(where, hp, err)
    }
    const udp = make.udp()
    try {
      await bindUdp(udp, hp.host, port)
      return { tcp, udp, port }
    } catch (err) {
      lastErr = err
      udp.close()
      await new Promise<void>((r) => tcp.close(() => r()))
      if (hp.port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue
      throw listenError(where, { host: hp.host, port }, err)
    }
  }
  throw new ShoalError(
    'SHOAL_ERR_BIND',
    `${where ? where + ': ' : ''}cannot bind UDP and TCP on one port at ${hp.host} after ${attempts} attempts`,
    {
      cause: lastErr,
    },
  )
}

/**
 * The other half of bindUdpAndTcp: destroys every accepted TCP connection in `connections`
 * (and empties the set), then closes the TCP server and the UDP socket, either of which may be
 * absent. Resolves once both are closed.
 *
 * @example
 *   const { udp, tcp } = this
 *   this.udp = this.tcp = undefined
 *   await closeUdpAndTcp({ udp, tcp }, this.connections)
 */
export async function closeUdpAndTcp(pair: Partial<Pick<UdpAndTcp, 'tcp' | 'udp'>>, connections: Set<{ destroy(): void }>): Promise<void> {
  for (const c of connections) c.destroy()
  connections.clear()
  const { udp, tcp } = pair
  await Promise.all([
    udp ? new Promise<void>((r) => udp.close(() => r())) : undefined,
    tcp ? new Promise<void>((r) => tcp.close(() => r())) : undefined,
  ])
}

function listenTcp(server: NetServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    server.once('error', onError)
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError)
      const addr = server.address()
      resolve(typeof addr === 'object' && addr ? addr.port : port)
    })
  })
}

function bindUdp(socket: dgram.Socket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    socket.once('error', onError)
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off('error', onError)
      resolve()
    })
  })
}

/**
 * Whether this process's network namespace has an interface on the subnet `ip/prefixLen`
 * (same family, same prefix length, its address inside it): hosts there are reached directly,
 * not through a gateway. `interfaces` defaults to os.networkInterfaces(); loopback is left out.
 *
 * @example
 *   onLocalSubnet('172.20.0.5', 16) // true inside a container on 172.20.0.0/16
 */
export function onLocalSubnet(
  ip: string,
  prefixLen: number,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): boolean {
  const family = isIP(ip)
  if (family === 0 || !Number.isInteger(prefixLen) || prefixLen < 1 || prefixLen > (family === 4 ? 32 : 128)) return false
  const type = family === 4 ? 'ipv4' : 'ipv6'
  const subnet = new BlockList()
  subnet.addSubnet(ip, prefixLen, type)
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      if (a.internal || (a.family === 'IPv4' ? 4 : 6) !== family || !a.cidr) continue
      if (Number(a.cidr.slice(a.cidr.lastIndexOf('/') + 1)) === prefixLen && subnet.check(a.address.replace(/%.*$/, ''), type)) return true
    }
  }
  return false
}

/**
 * The first IPv4 address of network interface `name` (e.g. `docker_gwbridge`), or undefined
 * when there is no such interface or it has none.
 */
export function interfaceIpv4(name: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string | undefined {
  return interfaces[name]?.find((a) => a.family === 'IPv4')?.address
}
