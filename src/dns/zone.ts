/**
 * The names the agent answers under its DNS domain, as a pure function of one catalog
 * snapshot (README "DNS interface"). DOMAIN is `shoal` unless --dns-domain says otherwise;
 * names are matched without regard to case (RFC 4343).
 *
 *   NAME.service.DOMAIN        A / AAAA: the IPs of NAME's instances that take traffic (alive
 *                              or unknown); SRV: one per tcp port of each, target below
 *   TAG.NAME.service.DOMAIN    the same, of the instances that have the tag TAG (tags compared
 *                              without regard to case; a service named TAG.NAME wins)
 *   ID.NAME.instance.DOMAIN    one live instance, whatever its status: A / AAAA / SRV
 *   HEX.addr.DOMAIN            an IP written in hex, 8 digits (A) or 32 (AAAA): the SRV
 *                              target of an instance whose ports have several IPs
 *   NAME.serviceport.DOMAIN    SRV: NAME's ServicePorts on the local Envoy; A / AAAA: --envoy-bind
 *   DOMAIN                     SOA
 *
 * An unknown name is NXDOMAIN, a known name without records of the asked type NOERROR with
 * no answer (NODATA); both carry the zone's SOA, whose MINIMUM is the negative-caching TTL
 * (RFC 2308 section 5). Every answer's order is shuffled per query (RFC 1794 style rotation),
 * so clients that take the first address spread over the instances.
 */
import * as ipCodec from '@leichtgewicht/ip-codec'
import type { Answer, Question, SoaAnswer } from 'dns-packet'
import { isIP } from 'node:net'
import { canonicalIp } from '../address.js'
import { hostBinding, liveRecords, takesTraffic, type CatalogSnapshot, type ServiceRecord } from '../registry/types.js'
import { compareServiceNames } from '../registry/index.js'

/** Response codes (RFC 1035 section 4.1.1; BADVERS is RFC 6891's extended code). */
export const Rcode = { noError: 0, formErr: 1, servFail: 2, nxDomain: 3, notImp: 4, refused: 5, badVers: 16 } as const
export type Rcode = (typeof Rcode)[keyof typeof Rcode]

export interface ZoneOptions {
  /** The zone: lower case, without the trailing dot (`shoal`, `svc.example`). */
  domain: string
  /** TTL of every record, and MINIMUM of the SOA (how long a negative answer may be cached), seconds. */
  ttl: number
  /** The IP of Envoy's ServicePort listeners (--envoy-bind), the address of NAME.serviceport names. */
  envoyBind: string
}

/** The sections of an authoritative response. */
export interface ZoneAnswer {
  rcode: Rcode
  answers: Answer[]
  authorities: Answer[]
  additionals: Answer[]
}

/** One SRV record's content: where an instance's port is, and the name that resolves to its IP. */
interface Endpoint {
  ip: string
  port: number
  target: string
}

/** What a name holds: its addresses and its SRV records. */
interface Found {
  ips: string[]
  srv: Endpoint[]
  apex?: true
}

interface Index {
  /** Live records (owner up, current boot, not tombstoned) by service name. */
  byName: Map<string, ServiceRecord[]>
  /** Which service holds each ServicePort: the registry's rule (compareServiceNames), as xDS serves it. */
  servicePortOwner: Map<number, string>
}

/** Largest label and name, in bytes (RFC 1035 section 2.3.4). */
const MAX_LABEL = 63
const MAX_NAME = 253

/** Whether `name` can go on the wire as it is: labels of 1-63 bytes, 253 bytes in all. */
export function isWireName(name: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name
  if (n === '') return true
  if (Buffer.byteLength(n) > MAX_NAME) return false
  return n.split('.').every((l) => l.length > 0 && Buffer.byteLength(l) <= MAX_LABEL)
}

/** Lower-case labels of a name, without the root: `Web.Service.Shoal.` gives [web, service, shoal]. */
function labelsOf(name: string): string[] {
  const n = name.toLowerCase().replace(/\.$/, '')
  return n === '' ? [] : n.split('.')
}

/** `10.0.0.5` gives `0a000005`; `::1` gives 32 hex digits: the address's bytes, as on the wire. */
export function ipToHex(ip: string): string {
  return Buffer.from(ipCodec.encode(ip)).toString('hex')
}

/** The inverse of ipToHex: 8 or 32 hex digits to an IP, else undefined. */
function hexToIp(hex: string): string | undefined {
  return /^([0-9a-f]{8}|[0-9a-f]{32})$/.test(hex) ? ipCodec.decode(Buffer.from(hex, 'hex')) : undefined
}

/**
 * @example
 *   const zone = new Zone({ domain: 'shoal', ttl: 0, envoyBind: '127.0.0.1' })
 *   zone.contains('web.service.shoal.')                                   // true
 *   zone.answer({ name: 'web.service.shoal', type: 'A' }, catalog.snapshot())
 *   // { rcode: 0, answers: [{ name: 'web.service.shoal', type: 'A', ttl: 0, data: '10.0.0.5' }, ...], ... }
 */
export class Zone {
  private readonly domainLabels: string[]
  private cache: { snap: CatalogSnapshot; seq: number; index: Index } | undefined

  constructor(
    private readonly opts: ZoneOptions,
    private readonly random: () => number = Math.random,
  ) {
    this.domainLabels = labelsOf(opts.domain)
  }

  /** Whether `name` is the domain or below it. */
  contains(name: string): boolean {
    return this.relative(name) !== undefined
  }

  /**
   * The authoritative answer to `q` (a name `contains` accepts) from `snap`. The answers'
   * owner name is `q.name` as asked, in its case (resolvers that randomise case check it).
   */
  answer(q: Question, snap: CatalogSnapshot): ZoneAnswer {
    const rel = this.relative(q.name) ?? []
    const found = this.lookup(rel, this.index(snap))
    const soa = this.soa(snap)
    if (!found) return { rcode: Rcode.nxDomain, answers: [], authorities: [soa], additionals: [] }
    const ttl = this.opts.ttl
    const answers: Answer[] = []
    const additionals: Answer[] = []
    const type = q.type as string
    const v4 = found.ips.filter((ip) => isIP(ip) === 4)
    const v6 = found.ips.filter((ip) => isIP(ip) === 6)
    if (type === 'A' || type === 'ANY') for (const ip of this.shuffle(v4)) answers.push({ name: q.name, type: 'A', ttl, data: ip })
    if (type === 'AAAA' || type === 'ANY') for (const ip of this.shuffle(v6)) answers.push({ name: q.name, type: 'AAAA', ttl, data: ip })
    if (type === 'SRV') {
      const glue = new Map<string, Answer>()
      for (const e of this.shuffle(found.srv)) {
        answers.push({ name: q.name, type: 'SRV', ttl, data: { priority: 1, weight: 1, port: e.port, target: e.target } })
        const key = `${e.target} ${e.ip}`
        if (!glue.has(key)) glue.set(key, { name: e.target, type: isIP(e.ip) === 6 ? 'AAAA' : 'A', ttl, data: e.ip })
      }
      additionals.push(...glue.values())
    }
    if (found.apex && (type === 'SOA' || type === 'ANY')) answers.push(soa)
    return { rcode: Rcode.noError, answers, authorities: answers.length ? [] : [soa], additionals }
  }

  /** The labels of `name` in front of the domain, or undefined when it is outside. */
  private relative(name: string): string[] | undefined {
    const labels = labelsOf(name)
    const d = this.domainLabels
    if (labels.length < d.length) return undefined
    for (let i = 1; i <= d.length; i++) if (labels[labels.length - i] !== d[d.length - i]) return undefined
    return labels.slice(0, labels.length - d.length)
  }

  private lookup(rel: string[], idx: Index): Found | undefined {
    if (rel.length === 0) return { ips: [], srv: [], apex: true }
    const kind = rel[rel.length - 1]
    const prefix = rel.slice(0, -1)
    if (prefix.length === 0) return undefined
    switch (kind) {
      case 'service': {
        const records = idx.byName.get(prefix.join('.'))
        if (records) return this.found(records.filter((r) => takesTraffic(r.status)))
        // TAG.NAME: both a tag and a name may hold dots; try every split, the shortest tag first.
        for (let i = 1; i < prefix.length; i++) {
          const tagged = idx.byName.get(prefix.slice(i).join('.'))
          if (!tagged) continue
          const tag = prefix.slice(0, i).join('.')
          return this.found(tagged.filter((r) => takesTraffic(r.status) && r.tags?.some((x) => x.toLowerCase() === tag)))
        }
        return undefined
      }
      case 'instance':
        // Both an id and a name may hold dots: try every split, the shortest id first.
        for (let i = 1; i < prefix.length; i++) {
          const id = prefix.slice(0, i).join('.')
          const r = idx.byName.get(prefix.slice(i).join('.'))?.find((x) => x.id.toLowerCase() === id)
          if (r) return this.found([r])
        }
        return undefined
      case 'addr': {
        const ip = prefix.length === 1 ? hexToIp(prefix[0]!) : undefined
        return ip === undefined ? undefined : { ips: [ip], srv: [] }
      }
      case 'serviceport': {
        const name = prefix.join('.')
        const target = `${name}.serviceport.${this.opts.domain}`
        const srv: Endpoint[] = []
        for (const [sp, owner] of idx.servicePortOwner) if (owner === name) srv.push({ ip: this.opts.envoyBind, port: sp, target })
        return srv.length ? { ips: [this.opts.envoyBind], srv } : undefined
      }
      default:
        return undefined
    }
  }

  /** The addresses and SRV records of some instances; undefined (NXDOMAIN) when they have none. */
  private found(records: ServiceRecord[]): Found | undefined {
    const ips = new Set<string>()
    const srv: Endpoint[] = []
    for (const r of records) {
      // Host bindings only: DNS answers callers on hosts' networks (a port reachable only on a
      // Docker network has no address for them).
      const ports = r.ports.flatMap((p) => {
        const b = p.type === 'tcp' ? hostBinding(p) : undefined
        // The one rule for advertised addresses (address.ts): a zone ID or an unspecified address has no AAAA or A to give.
        return b && canonicalIp(b.ip) !== null ? [b] : []
      })
      const own = new Set(ports.map((p) => p.ip))
      // The readable target names the instance; it resolves to one IP only when all its ports share one.
      const named = own.size === 1 ? this.instanceName(r) : undefined
      for (const p of ports) {
        ips.add(p.ip)
        srv.push({ ip: p.ip, port: p.port, target: named ?? `${ipToHex(p.ip)}.addr.${this.opts.domain}` })
      }
    }
    return srv.length ? { ips: [...ips], srv } : undefined
  }

  /** `ID.NAME.instance.DOMAIN` when that is a wire-valid name that resolves back to `r`. */
  private instanceName(r: ServiceRecord): string | undefined {
    const name = `${r.id.toLowerCase()}.${r.name}.instance.${this.opts.domain}`
    return isWireName(name) ? name : undefined
  }

  private soa(snap: CatalogSnapshot): SoaAnswer {
    const d = this.opts.domain
    return {
      name: d,
      type: 'SOA',
      ttl: this.opts.ttl,
      data: {
        mname: `ns.${d}`,
        rname: `hostmaster.${d}`,
        // The catalog's sequence number moves on every change, as a serial should (RFC 1982 arithmetic wraps it).
        serial: snap.seq >>> 0,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: this.opts.ttl,
      },
    }
  }

  private index(snap: CatalogSnapshot): Index {
    if (this.cache && this.cache.snap === snap && this.cache.seq === snap.seq) return this.cache.index
    const byName = new Map<string, ServiceRecord[]>()
    const servicePortOwner = new Map<number, string>()
    for (const r of liveRecords(snap)) {
      const list = byName.get(r.name)
      if (list) list.push(r)
      else byName.set(r.name, [r])
      for (const p of r.ports) {
        if (p.type !== 'tcp') continue
        const owner = servicePortOwner.get(p.servicePort)
        if (owner === undefined || compareServiceNames(r.name, owner) < 0) servicePortOwner.set(p.servicePort, r.name)
      }
    }
    const index = { byName, servicePortOwner }
    this.cache = { snap, seq: snap.seq, index }
    return index
  }

  /** A shuffled copy (Fisher-Yates). */
  private shuffle<T>(list: readonly T[]): T[] {
    const out = [...list]
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      const tmp = out[i]!
      out[i] = out[j]!
      out[j] = tmp
    }
    return out
  }
}
