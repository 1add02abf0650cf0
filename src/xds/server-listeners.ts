/**
 * The server Listeners of proxyless gRPC servers on this host (gRFC A36), made on demand: a
 * gRPC `XdsServer` asks for `shoal/server/NAME/IP:PORT` (its bootstrap's template with the
 * address it binds), which names no ServicePort group, so these Listeners are not part of a
 * snapshot. Each depends on the server's flavour (mTLS or plain), the service's allow-list
 * (label `shoal.allow` of its records on this host) and, for mTLS, whether the service holds
 * an identity here; `epoch` changes whenever one of those inputs does, so the server knows to
 * send them again.
 *
 * Rules (README, Service identity):
 * - an mTLS server's Listener is served once its service holds a leaf on this host (its
 *   `file_watcher` provider has files to read), with a DownstreamTlsContext requiring a client
 *   certificate;
 * - an allow-list becomes the RBAC filter (exact SPIFFE IDs); with `--tls-mode strict` and no
 *   list, any caller with a certificate of the trust domain; with `off`, no RBAC (a list is
 *   then not enforced, and says so once);
 * - a bad name in a list is left out (the list gets narrower, never wider), logged once and counted.
 */
import type { Counter } from 'prom-client'
import { logProblem, type Logger, type Problem } from '../log.js'
import type { TlsMode } from '../identity/names.js'
import { ALLOW_LABEL, liveRecordsOf, type CatalogSnapshot, type ServiceRecord } from '../registry/types.js'
import type { XdsProtos } from './protos.js'
import { TypeUrl } from './protos.js'
import { contentHash, servedResource, type ServedResource } from './snapshot.js'
import { buildServerListener, parseServerListenerName, type CallerPolicy } from './tls.js'
import { invalidResource, validateResource } from './validate.js'

const SERVICE_NAME = /^[a-z0-9._-]{1,128}$/
/** At most this many Listener names are remembered (a client may ask for any name). */
const MAX_NAMES = 4096

/** Which local services hold an identity (the identity issuer). */
export interface IdentityPresence {
  has(service: string): boolean
}

export interface ServerListenersOptions {
  /** `--tls-mode` and the trust domain; absent: off. */
  tls?: { mode: TlsMode; trustDomain: string }
  /** This agent's node: allow-lists come from its records (all live records when absent). */
  localHost?: string
}

export interface ServerListenersComponents {
  protos: XdsProtos
  log: Logger
  identities?: IdentityPresence
  /** Counts problems with allow-lists, by reason (`bad_name`, `not_enforced`, `plain_text_server`). */
  allowProblems: Counter
  /** Counts server Listener names that do not parse and invalid Listeners, by reason. */
  badRequests: Counter
  /** Counts a Listener that failed validation (type `lds`). */
  invalid: Counter
}

/** Why an allow-list reads as it does, for one service. */
interface Allow {
  /** Valid service names, or undefined: no list. */
  names: readonly string[] | undefined
  /** The label as written (for logs). */
  raw: string
}

export class ServerListeners {
  /** Raised whenever an input of a server Listener changes. */
  epoch = 0
  private allow = new Map<string, Allow>()
  private localServices: readonly ServiceRecord[] | undefined
  private readonly cache = new Map<string, { key: string; res: ServedResource | null }>()
  /** Things already logged once (a bad name, an unenforced list). */
  private readonly said = new Set<string>()

  constructor(
    private readonly opts: ServerListenersOptions,
    private readonly c: ServerListenersComponents,
  ) {}

  /** Read the allow-lists of this host's services from a catalog snapshot; true when any changed. */
  update(snap: CatalogSnapshot): boolean {
    const hosts = this.opts.localHost === undefined ? snap.hosts : snap.hosts.filter((h) => h.name === this.opts.localHost)
    const services = hosts.length === 1 ? hosts[0]!.services : hosts.flatMap((h) => h.services)
    if (hosts.length === 1 && services === this.localServices) return false
    this.localServices = services
    const next = new Map<string, Allow>()
    for (const h of hosts) {
      for (const r of liveRecordsOf(h)) {
        const raw = r.labels[ALLOW_LABEL]
        if (raw === undefined) continue
        const had = next.get(r.name)
        if (had) {
          if (
            had.raw !== raw &&
            this.once(
              `differ:${r.name}:${raw}`,
              { service: r.name, host: r.host, id: r.id, allow: raw, used: had.raw },
              {
                what: `${r.name}: instances disagree on ${ALLOW_LABEL} ("${raw}" on ${r.host}/${r.id}, "${had.raw}" before); the first by id decides`,
                input: `${r.host}/${r.id}`,
                fix: 'give every instance the same list',
              },
            )
          )
            this.c.allowProblems.inc({ reason: 'instances_differ' })
          continue
        }
        next.set(r.name, { raw, names: this.parse(r, raw) })
      }
    }
    let changed = next.size !== this.allow.size
    for (const [name, a] of next) if (this.allow.get(name)?.raw !== a.raw) changed = true
    this.allow = next
    if (changed) this.epoch++
    return changed
  }

  /** Identity presence changed (a leaf issued for a new service, or one removed). */
  identitiesChanged(): void {
    this.epoch++
  }

  /**
   * The server Listener `name` for a client of this flavour, or undefined when `name` is not a
   * server Listener, is malformed (logged, counted) or is withheld (an mTLS server whose
   * service holds no identity here yet).
   */
  resource(name: string, mtls: boolean): ServedResource | undefined {
    const parsed = parseServerListenerName(name)
    if (parsed === null) return undefined
    if (typeof parsed === 'string') {
      if (
        this.once(
          `name:${name}`,
          { listener: name },
          {
            what: `server Listener not served: ${parsed}`,
            input: name,
            fix: "make the server's bootstrap with `shoal grpc-bootstrap` (its server_listener_resource_name_template)",
          },
        )
      )
        this.c.badRequests.inc({ reason: 'server_listener_name' })
      return undefined
    }
    if (mtls && this.c.identities && !this.c.identities.has(parsed.service)) return undefined
    const callers = this.callers(parsed.service, mtls, parsed.host, parsed.port)
    const obj = buildServerListener({ ...parsed, name, mtls, callers })
    const key = contentHash(JSON.stringify(obj))
    const hit = this.cache.get(name)
    if (hit && hit.key === key) return hit.res ?? undefined
    let res: ServedResource | null = null
    const errors = validateResource(this.c.protos, TypeUrl.listener, obj)
    if (errors.length) {
      this.c.invalid.inc({ type: 'lds' })
      logProblem(this.c.log, 'warn', invalidResource('lds', name, errors), { type: 'lds', resource: name, errors })
    } else {
      res = servedResource(TypeUrl.listener, name, this.c.protos.pack(TypeUrl.listener, obj).value)
    }
    if (this.cache.size >= MAX_NAMES && !this.cache.has(name)) this.cache.delete(this.cache.keys().next().value!)
    this.cache.set(name, { key, res })
    return res ?? undefined
  }

  /** Who may call `service` (README, Service identity): undefined for no RBAC filter. */
  private callers(service: string, mtls: boolean, host: string, port: number): CallerPolicy | undefined {
    const tls = this.opts.tls
    const a = this.allow.get(service)
    if (!tls || tls.mode === 'off') {
      if (a) this.notEnforced(service, a)
      return undefined
    }
    if (a?.names !== undefined) {
      const said =
        !mtls &&
        this.once(
          `plain:${service}:${host}:${port}`,
          { service, address: `${host}:${port}`, allow: a.raw },
          {
            what: `${service}: the server at ${host}:${port} has no Shoal certificate providers in its bootstrap, so no caller can show an identity and its ${ALLOW_LABEL} list refuses every call`,
            input: `${host}:${port}`,
            fix: `give it a bootstrap from \`shoal grpc-bootstrap --service ${service} --tls-dir DIR\``,
          },
        )
      if (said) this.c.allowProblems.inc({ reason: 'plain_text_server' })
      return { trustDomain: tls.trustDomain, allow: a.names }
    }
    return tls.mode === 'strict' ? { trustDomain: tls.trustDomain } : undefined
  }

  private notEnforced(service: string, a: Allow): void {
    const said = this.once(
      `off:${service}`,
      { service, allow: a.raw },
      {
        what: `${service}: ${ALLOW_LABEL} is not enforced with --tls-mode off (no caller has an identity)`,
        input: `${ALLOW_LABEL}=${a.raw}`,
        fix: 'run the agents with --tls-dir and --tls-mode permissive or strict',
      },
    )
    if (said) this.c.allowProblems.inc({ reason: 'not_enforced' })
  }

  /** The valid names of a label; a bad one is left out, logged once and counted. */
  private parse(r: ServiceRecord, raw: string): string[] {
    const out: string[] = []
    // An empty list is a list: no caller may call.
    if (raw.trim() === '') return out
    for (const part of raw.split(',')) {
      const n = part.trim()
      if (SERVICE_NAME.test(n)) {
        if (!out.includes(n)) out.push(n)
        continue
      }
      const said = this.once(
        `bad:${r.host}:${r.id}:${n}:${raw}`,
        { service: r.name, host: r.host, id: r.id, allow: raw, entry: n },
        {
          what: `${r.name}: ${ALLOW_LABEL} entry "${n}" is not a service name ([a-z0-9._-], up to 128): left out of the list (it allows fewer callers, never more)`,
          input: `${r.host}/${r.id}`,
          fix: 'fix the label',
        },
      )
      if (said) this.c.allowProblems.inc({ reason: 'bad_name' })
    }
    return out
  }

  /** Log a warning the first time `key` is seen; true when it was logged now. */
  private once(key: string, fields: Record<string, unknown>, problem: Problem): boolean {
    if (this.said.has(key)) return false
    if (this.said.size > MAX_NAMES) this.said.clear()
    this.said.add(key)
    logProblem(this.c.log, 'warn', problem, fields)
    return true
  }
}
