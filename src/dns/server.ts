/**
 * The agent's DNS server (--dns, UDP and TCP on one port): authoritative for its domain
 * (zone.ts), optionally forwarding other names (forward.ts), otherwise REFUSED.
 *
 * Wire rules kept here, with their sources:
 * - a UDP answer fits 512 bytes, or the EDNS payload size the query advertises (RFC 6891
 *   section 6.2.5; capped at 4096); additional records are dropped first, then answers, and
 *   TC is set only when answers had to go (RFC 2181 section 9), so the client asks again over
 *   TCP, where a message may reach 65535 bytes (RFC 7766; several queries per connection);
 * - a message that does not decode gets FORMERR when its header can carry one, a response
 *   sent to us is never answered (no loops), an opcode other than QUERY gets NOTIMP, an EDNS
 *   version other than 0 gets BADVERS (RFC 6891 section 6.1.3), a zone transfer (AXFR, IXFR;
 *   RFC 5936) over UDP or TCP gets NOTIMP; each is counted in
 *   `shoal_dns_bad_queries_total{reason}` and logged;
 * - until the warm start is done (setReady) names in the domain get SERVFAIL, so that an
 *   agent that has just started never tells a client that a service does not exist.
 */
import dgram from 'node:dgram'
import net from 'node:net'
import dnsPacket, { type Answer, type DecodedPacket, type OptAnswer, type Packet, type Question } from 'dns-packet'
import type { Counter, Registry } from 'prom-client'
import { bindUdpAndTcp, closeUdpAndTcp, formatHostPort, type HostPort } from '../address.js'
import type { Startable } from '../lifecycle.js'
import { INTERNAL_FAULT, LogLimiter, logProblem, problemMessage, type Logger, type Problem } from '../log.js'
import { counter } from '../metrics.js'
import type { CatalogView } from '../registry/types.js'
import { forwardQuery, type DnsTransport } from './forward.js'
import { isWireName, Rcode, Zone } from './zone.js'

export interface DnsServerOptions {
  /** Where to answer, UDP and TCP on one port (`127.0.0.1:8600`; port 0 picks a free one). */
  bind: HostPort
  /** The zone answered from the catalog. Default `shoal.` (a trailing dot is optional). */
  domain?: string
  /** TTL of answers and of negative answers, whole seconds. Default 0: clients ask again each time. */
  ttlSeconds?: number
  /** IP of Envoy's ServicePort listeners, the address of `NAME.serviceport.DOMAIN`. Default 127.0.0.1. */
  envoyBind?: string
  /** DNS servers (IP and port) that names outside the domain are forwarded to, in order. Default none: REFUSED. */
  recursors?: HostPort[]
  /** How long one recursor has to answer before the next is asked. Default 2000 ms. */
  forwardTimeoutMs?: number
  /** A TCP connection with no complete query for this long is closed. Default 10 s (RFC 7766 section 6.2.3). */
  tcpIdleMs?: number
  /** Largest UDP response, whatever payload size a query advertises. Default 4096 bytes. */
  maxUdpBytes?: number
}

export interface DnsServerComponents {
  logger: Logger
  catalog: CatalogView
  /** Where the `shoal_dns_*` metrics go. */
  registry?: Registry
  /** Shuffles answers; default Math.random. */
  random?: () => number
}

/** Why a query was not answered normally; the `reason` label of `shoal_dns_bad_queries_total`. */
const BadReason = {
  short: 'short',
  malformed: 'malformed',
  response: 'response',
  opcode: 'opcode',
  questions: 'questions',
  name: 'name',
  ednsVersion: 'edns-version',
  transfer: 'transfer',
} as const
type BadReason = (typeof BadReason)[keyof typeof BadReason]

const HEADER_BYTES = 12
const QR = 0x8000
const OPCODE_QUERY = 0
const MIN_UDP = 512
const MAX_TCP = 65535
const WARN_EVERY_MS = 10_000
/** Queries of one TCP connection waiting for their turn before it is paused. */
const MAX_TCP_PENDING = 16

/**
 * @example
 *   const dns = new DnsServer({ bind: { host: '127.0.0.1', port: 8600 } }, { logger, catalog, registry })
 *   const { port } = await dns.start()
 *   dns.setReady(true)        // after the warm start
 *   // dig @127.0.0.1 -p 8600 web.service.shoal SRV
 *   await dns.stop()
 */
export class DnsServer implements Startable {
  private readonly log: Logger
  private readonly zone: Zone
  private readonly domain: string
  private readonly recursors: HostPort[]
  private readonly forwardTimeoutMs: number
  private readonly tcpIdleMs: number
  private readonly maxUdp: number
  private readonly queries: Counter<'transport' | 'rcode'>
  private readonly bad: Counter<'transport' | 'reason'>
  private readonly truncated: Counter
  private readonly forwardFailures: Counter
  private ready = false
  private udp: dgram.Socket | undefined
  private tcp: net.Server | undefined
  private readonly sockets = new Set<net.Socket>()
  private readonly stopAll = new AbortController()
  private starting: Promise<{ port: number }> | undefined
  private stopping: Promise<void> | undefined
  /** One warning per kind every WARN_EVERY_MS, with the count held back since: a flood of bad packets or a dead recursor cannot fill the log. */
  private readonly warnings = new LogLimiter({ windowMs: WARN_EVERY_MS }, { clock: { now: () => Date.now() } })

  constructor(
    private readonly opts: DnsServerOptions,
    private readonly c: DnsServerComponents,
  ) {
    this.log = c.logger.child({ component: 'dns' })
    this.domain = (opts.domain ?? 'shoal.').toLowerCase().replace(/\.$/, '')
    this.zone = new Zone({ domain: this.domain, ttl: opts.ttlSeconds ?? 0, envoyBind: opts.envoyBind ?? '127.0.0.1' }, c.random)
    this.recursors = opts.recursors ?? []
    this.forwardTimeoutMs = opts.forwardTimeoutMs ?? 2000
    this.tcpIdleMs = opts.tcpIdleMs ?? 10_000
    this.maxUdp = Math.max(MIN_UDP, opts.maxUdpBytes ?? 4096)
    this.queries = counter(c.registry, {
      name: 'shoal_dns_queries_total',
      help: 'DNS responses sent, by transport (udp, tcp) and response code (NOERROR, NXDOMAIN, REFUSED, SERVFAIL, FORMERR, ...).',
      labelNames: ['transport', 'rcode'],
    })
    this.bad = counter(c.registry, {
      name: 'shoal_dns_bad_queries_total',
      help: 'DNS messages that were not a well-formed standard query, by transport and reason (short, malformed, response, opcode, questions, name, edns-version).',
      labelNames: ['transport', 'reason'],
    })
    this.truncated = counter(c.registry, {
      name: 'shoal_dns_truncated_total',
      help: 'DNS responses cut to fit their size limit with the TC bit set (the client retries over TCP).',
    })
    this.forwardFailures = counter(c.registry, {
      name: 'shoal_dns_forward_failures_total',
      help: 'Queries outside the domain that no recursor answered (answered SERVFAIL).',
    })
    // Every series from the start, at zero (Prometheus's instrumentation guide).
    for (const transport of ['udp', 'tcp'] as const) {
      for (const rcode of Object.values(RCODE_NAMES)) this.queries.inc({ transport, rcode }, 0)
      for (const reason of Object.values(BadReason)) this.bad.inc({ transport, reason }, 0)
    }
  }

  /** Binds UDP and TCP; resolves to the bound port. Idempotent. Throws SHOAL_ERR_BIND. */
  start(): Promise<{ port: number }> {
    this.starting ??= this.doStart()
    return this.starting
  }

  private async doStart(): Promise<{ port: number }> {
    const { host } = this.opts.bind
    const { tcp, udp, port } = await bindUdpAndTcp(this.opts.bind, '', {
      tcp: () => net.createServer((socket) => this.serveTcp(socket)),
      udp: () => dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4'),
    })
    udp.on('message', (msg, rinfo) => void this.onDatagram(msg, rinfo))
    const socketError = (what: string) => (err: Error) =>
      logProblem(
        this.log,
        'warn',
        {
          what: `DNS ${what} error (${err.message})`,
          input: `--dns ${formatHostPort({ host, port })}`,
          fix: 'the socket keeps serving if it can; restart the agent if DNS stops answering',
        },
        { err: err.message },
      )
    udp.on('error', socketError('UDP socket'))
    tcp.on('error', socketError('TCP listener'))
    this.udp = udp
    this.tcp = tcp
    // At debug: the agent's "shoal agent started" line says where it listens, once all are bound.
    this.log.debug(
      { address: formatHostPort({ host, port }), domain: `${this.domain}.`, recursors: this.recursors.map(formatHostPort) },
      'DNS bound',
    )
    return { port }
  }

  /** Warm start: until ready, names in the domain get SERVFAIL (try again) instead of answers from a partial catalog. */
  setReady(ready: boolean): void {
    this.ready = ready
  }

  /** Closes both sockets and every TCP connection, and abandons forwarded queries. Idempotent. */
  stop(): Promise<void> {
    if (!this.starting) return Promise.resolve()
    this.stopping ??= this.doStop()
    return this.stopping
  }

  private async doStop(): Promise<void> {
    await this.starting?.catch(() => undefined)
    this.stopAll.abort()
    const { udp, tcp } = this
    this.udp = this.tcp = undefined
    await closeUdpAndTcp({ udp, tcp }, this.sockets)
  }

  private async onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): Promise<void> {
    const from = formatHostPort({ host: rinfo.address, port: rinfo.port })
    const reply = await this.handle(msg, 'udp', from)
    const udp = this.udp
    if (!reply || !udp) return
    udp.send(reply, rinfo.port, rinfo.address, (err) => {
      if (err) this.log.debug({ err: err.message, to: from }, 'DNS reply not sent')
    })
  }

  /**
   * One connection: length-prefixed queries (RFC 1035 section 4.2.2), answered in order.
   * Flow control: a client that sends faster than it reads is paused once 16 queries wait,
   * or while its replies sit unread in the socket, so one connection cannot fill memory.
   */
  private serveTcp(socket: net.Socket): void {
    if (this.stopping) {
      socket.destroy()
      return
    }
    this.sockets.add(socket)
    const from = formatHostPort({ host: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 })
    let buf = Buffer.alloc(0)
    let chain = Promise.resolve()
    let pending = 0
    socket.setTimeout(this.tcpIdleMs, () => socket.destroy())
    socket.on('error', () => socket.destroy())
    socket.on('close', () => this.sockets.delete(socket))
    const reply = async (msg: Buffer): Promise<void> => {
      const out = await this.handle(msg, 'tcp', from)
      if (!out || socket.destroyed) return
      const length = Buffer.alloc(2)
      length.writeUInt16BE(out.length)
      if (!socket.write(Buffer.concat([length, out])))
        await new Promise<void>((r) => {
          socket.once('drain', r)
          socket.once('close', r)
        })
    }
    socket.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0)
        if (buf.length < 2 + n) break
        const msg = buf.subarray(2, 2 + n)
        buf = buf.subarray(2 + n)
        if (++pending >= MAX_TCP_PENDING) socket.pause()
        chain = chain
          .then(() => reply(msg))
          .finally(() => {
            if (--pending < MAX_TCP_PENDING && !socket.destroyed) socket.resume()
          })
      }
    })
  }

  /** The response to one message, or undefined when none is due. Never rejects: a bug answers SERVFAIL, logged. */
  private async handle(msg: Buffer, transport: DnsTransport, from: string): Promise<Buffer | undefined> {
    try {
      return await this.answer(msg, transport, from)
    } catch (err) {
      logProblem(
        this.log,
        'error',
        {
          what: `DNS query from ${from} failed inside the server (${(err as Error).message}); answered SERVFAIL`,
          input: from,
          fix: INTERNAL_FAULT,
        },
        { err, from, transport },
      )
      return msg.length >= HEADER_BYTES ? this.bare(transport, msg.readUInt16BE(0), msg.readUInt16BE(2), Rcode.servFail) : undefined
    }
  }

  private async answer(msg: Buffer, transport: DnsTransport, from: string): Promise<Buffer | undefined> {
    if (msg.length < HEADER_BYTES) {
      this.countBad(transport, BadReason.short, from, `${msg.length} bytes, shorter than the 12-byte DNS header`)
      return undefined
    }
    const id = msg.readUInt16BE(0)
    const flags = msg.readUInt16BE(2)
    const rd = (flags & dnsPacket.RECURSION_DESIRED) !== 0
    if (flags & QR) {
      this.countBad(transport, BadReason.response, from, 'a response, not a query')
      return undefined
    }
    let query: DecodedPacket
    try {
      query = dnsPacket.decode(msg)
    } catch (err) {
      this.countBad(transport, BadReason.malformed, from, (err as Error).message)
      return this.bare(transport, id, flags, Rcode.formErr)
    }
    if (((flags >> 11) & 0xf) !== OPCODE_QUERY) {
      this.countBad(transport, BadReason.opcode, from, `opcode ${(flags >> 11) & 0xf}; only QUERY (0) is answered`)
      return this.bare(transport, id, flags, Rcode.notImp)
    }
    const questions = query.questions ?? []
    const q = questions[0]
    if (questions.length !== 1 || !q) {
      this.countBad(transport, BadReason.questions, from, `${questions.length} questions; a query asks exactly one`)
      return this.bare(transport, id, flags, Rcode.formErr)
    }
    if (!isWireName(q.name)) {
      this.countBad(transport, BadReason.name, from, 'the name does not re-encode as 1-63 byte labels')
      return this.bare(transport, id, flags, Rcode.formErr)
    }
    const opt = query.additionals?.find((a): a is OptAnswer => a.type === 'OPT')
    const limit = transport === 'tcp' ? MAX_TCP : opt ? Math.min(Math.max(opt.udpPayloadSize, MIN_UDP), this.maxUdp) : MIN_UDP
    const base = { id, rd, opt: opt !== undefined, question: q, limit, transport }
    if (opt && opt.ednsVersion !== 0) {
      this.countBad(transport, BadReason.ednsVersion, from, `EDNS version ${opt.ednsVersion}; only 0 is spoken`)
      return this.respond({ ...base, rcode: Rcode.badVers, aa: false })
    }
    if (q.type === 'AXFR' || q.type === 'IXFR') {
      // No zone transfers (README, Known limits): over UDP or TCP, for any name, NOTIMP; a
      // NOERROR with no records would read as an empty zone.
      this.countBad(transport, BadReason.transfer, from, `${q.type} ${q.name}: zone transfers are not served; ask for the names themselves`)
      return this.respond({ ...base, rcode: Rcode.notImp, aa: false })
    }
    if (!this.zone.contains(q.name)) return this.outside(msg, base)
    if (q.class !== 'IN' && q.class !== 'ANY') return this.respond({ ...base, rcode: Rcode.refused, aa: false })
    if (!this.ready) return this.respond({ ...base, rcode: Rcode.servFail, aa: false })
    const z = this.zone.answer(q, this.c.catalog.snapshot())
    return this.respond({ ...base, aa: true, ...z })
  }

  /** A name outside the domain: forwarded when recursion is desired and recursors are set, else REFUSED. */
  private async outside(msg: Buffer, base: ResponseBase): Promise<Buffer> {
    if (!base.rd || this.recursors.length === 0) return this.respond({ ...base, rcode: Rcode.refused, aa: false })
    const r = await forwardQuery(msg, this.recursors, base.transport, this.forwardTimeoutMs, this.stopAll.signal)
    if (r.response) {
      const out = Buffer.from(r.response)
      // RA describes the server the client talks to, and this one recurses through its recursors.
      out.writeUInt16BE(out.readUInt16BE(2) | dnsPacket.RECURSION_AVAILABLE, 2)
      this.queries.inc({ transport: base.transport, rcode: rcodeName(out.readUInt16BE(2) & 0xf) })
      return out
    }
    this.forwardFailures.inc()
    this.warnLimited(
      'forward',
      { name: base.question.name, failures: r.failures },
      {
        what: `no DNS recursor answered for ${base.question.name}; SERVFAIL`,
        input: `--dns-recursors ${this.recursors.map(formatHostPort).join(',')}`,
        fix: 'check --dns-recursors (reachable from this host, answering on that port)',
      },
    )
    return this.respond({ ...base, rcode: Rcode.servFail, aa: false })
  }

  /** Encodes a response, fitted to the size limit; SERVFAIL when it cannot be encoded. */
  private respond(
    r: ResponseBase & { rcode: number; aa: boolean; answers?: Answer[]; authorities?: Answer[]; additionals?: Answer[] },
  ): Buffer {
    const flags =
      (r.aa ? dnsPacket.AUTHORITATIVE_ANSWER : 0) |
      (r.rd ? dnsPacket.RECURSION_DESIRED : 0) |
      (this.recursors.length ? dnsPacket.RECURSION_AVAILABLE : 0) |
      (r.rcode & 0xf)
    const opt: Answer[] = r.opt
      ? [
          {
            name: '.',
            type: 'OPT',
            udpPayloadSize: this.maxUdp,
            extendedRcode: r.rcode >> 4,
            ednsVersion: 0,
            flags: 0,
            flag_do: false,
            options: [],
          },
        ]
      : []
    const packet: Packet = {
      type: 'response',
      id: r.id,
      flags,
      questions: [r.question],
      answers: r.answers ?? [],
      authorities: r.authorities ?? [],
      additionals: [...(r.additionals ?? []), ...opt],
    }
    try {
      const out = dnsPacket.encode(this.fit(packet, r.limit))
      this.queries.inc({ transport: r.transport, rcode: rcodeName(r.rcode) })
      return out
    } catch (err) {
      logProblem(
        this.log,
        'error',
        {
          what: `DNS answer for ${r.question.name} ${r.question.type} could not be encoded (${(err as Error).message}); SERVFAIL`,
          input: r.question.name,
          fix: INTERNAL_FAULT,
        },
        { err: (err as Error).message, name: r.question.name, type: r.question.type },
      )
      return this.bare(r.transport, r.id, r.rd ? dnsPacket.RECURSION_DESIRED : 0, Rcode.servFail)
    }
  }

  /**
   * Cuts `p` to `limit` bytes: additional records first (the OPT record stays, RFC 6891
   * section 7), then answers and authority, with TC set (RFC 2181 section 9).
   */
  private fit(p: Packet, limit: number): Packet {
    if (dnsPacket.encodingLength(p) <= limit) return p
    const opt = (p.additionals ?? []).filter((a) => a.type === 'OPT')
    const lean: Packet = { ...p, additionals: opt }
    if (dnsPacket.encodingLength(lean) <= limit) return lean
    const answers = p.answers ?? []
    const cut = (n: number): Packet => ({
      ...lean,
      flags: (p.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE,
      answers: answers.slice(0, n),
      authorities: [],
    })
    let lo = 0
    let hi = answers.length
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2)
      if (dnsPacket.encodingLength(cut(mid)) <= limit) lo = mid
      else hi = mid - 1
    }
    this.truncated.inc()
    return cut(lo)
  }

  /** A header-only response (no question echoed): for messages whose question cannot be trusted. */
  private bare(transport: DnsTransport, id: number, queryFlags: number, rcode: number): Buffer {
    const out = Buffer.alloc(HEADER_BYTES)
    out.writeUInt16BE(id, 0)
    // QR, the query's opcode and RD, and the response code.
    out.writeUInt16BE(QR | (queryFlags & 0x7800) | (queryFlags & dnsPacket.RECURSION_DESIRED) | (rcode & 0xf), 2)
    this.queries.inc({ transport, rcode: rcodeName(rcode) })
    return out
  }

  /** Counts a bad message and logs it (rate-limited: see warnLimited). */
  private countBad(transport: DnsTransport, reason: BadReason, from: string, detail: string): void {
    this.bad.inc({ transport, reason })
    this.warnLimited(
      'bad',
      { from, transport, reason, detail },
      {
        what: `bad DNS message from ${from} over ${transport} (${reason}: ${detail})`,
        input: from,
        fix: 'send a standard query (RFC 1035), e.g. dig @HOST -p PORT web.service.shoal',
      },
    )
  }

  /** A warning for the first event of a kind, then at most one every 10 s (with how many were held back since), debug for the rest. */
  private warnLimited(kind: 'bad' | 'forward', fields: Record<string, unknown>, problem: Problem): void {
    const held = this.warnings.admit(kind)
    if (held === undefined) this.log.debug(fields, problemMessage(problem))
    else logProblem(this.log, 'warn', problem, { ...fields, suppressed: held })
  }
}

interface ResponseBase {
  id: number
  rd: boolean
  opt: boolean
  question: Question
  limit: number
  transport: DnsTransport
}

const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  16: 'BADVERS',
}

function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`
}
