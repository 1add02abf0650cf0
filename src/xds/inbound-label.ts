/**
 * The record label `shoal.inbound` (registry/types.ts INBOUND_LABEL): where a host's Envoy takes
 * mTLS for each ServicePort of one of its instances, `SERVICEPORT=IP:PORT,...` (IPv6 in
 * brackets). The owner writes it (agent/inbound.ts); every agent reads it (groups.ts).
 *
 * @example
 *   formatInboundLabel([[10001, { ip: '10.0.0.5', port: 15000 }]])   // '10001=10.0.0.5:15000'
 *   parseInboundLabel('10001=10.0.0.5:15000').get(10001)             // { ip: '10.0.0.5', port: 15000 }
 */
import { formatHostPort, parseHostPort } from '../address.js'

/**
 * ServicePort -> inbound address. A part that is not `SERVICEPORT=IP:PORT` is skipped (that
 * ServicePort has none) and, when `bad` is given, pushed there as written.
 */
export function parseInboundLabel(value: string | undefined, bad?: string[]): Map<number, { ip: string; port: number }> {
  const out = new Map<number, { ip: string; port: number }>()
  if (!value) return out
  for (const part of value.split(',')) {
    const eq = part.indexOf('=')
    const sp = Number(part.slice(0, eq))
    if (eq < 1 || !Number.isInteger(sp) || sp < 1 || sp > 65535) {
      bad?.push(part)
      continue
    }
    try {
      const hp = parseHostPort(part.slice(eq + 1).trim(), 'shoal.inbound', { ipOnly: true })
      out.set(sp, { ip: hp.host, port: hp.port })
    } catch {
      // Not an IP:PORT: that ServicePort has no inbound address (reached directly, or not at all in strict).
      bad?.push(part)
    }
  }
  return out
}

/** `shoal.inbound` for a record: ServicePort -> inbound address. */
export function formatInboundLabel(entries: Iterable<[number, { ip: string; port: number }]>): string {
  return [...entries].map(([sp, a]) => `${sp}=${formatHostPort({ host: a.ip, port: a.port })}`).join(',')
}
