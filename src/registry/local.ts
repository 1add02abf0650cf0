/**
 * The local service set: what the sources (Docker, static file) say runs here, made to fit
 * the record limits (fit.ts), passed through the health checks and written to the catalog as
 * this owner's records.
 */
import { ShoalError } from '../errors.js'
import type { CheckContext, CheckResult, CheckSpec, CheckStatus } from '../health/types.js'
import { LogLimiter, logProblem, type Logger } from '../log.js'
import type { Catalog, LocalRecord } from './catalog.js'
import { fitDetail, fitSpec, problemLabel } from './fit.js'
import {
  StatusReason,
  hostBinding,
  type LocalInstanceDetails,
  type LocalServiceSpec,
  type ServicePortSpec,
  type ServiceStatus,
  type SourceEntryProblem,
} from './types.js'

/**
 * The health scheduler as LocalServices uses it (src/health/scheduler.ts `HealthScheduler`
 * has this shape).
 */
export interface HealthLike {
  set(id: string, check: CheckSpec | undefined, ctx: CheckContext): void
  remove(id: string): void
  status(id: string): CheckStatus
  /** Why the instance has its status, changed only with it (HealthScheduler.reason). */
  reason(id: string): string
  /** The last run of the instance's check. */
  result(id: string): CheckResult | undefined
  on(event: 'change', listener: (id: string, status: CheckStatus) => void): unknown
  off(event: 'change', listener: (id: string, status: CheckStatus) => void): unknown
}

/** A drain in effect: when, and the reason the operator gave (if any). */
interface Drain {
  at: number
  reason?: string
}

/** A source's name (`docker`, `static`, ...). */
export type SourceName = string

export interface LocalServicesOptions {
  /** The IP health-check templates use for `{{ host }}` when an instance's ports name none. */
  advertiseIp: string
}

/** What the owner did to specs over the record limits (limits.ts), by limit label, and the drains it started. */
export interface LocalServicesStats {
  /** Specs served with something cut (a truncated value, dropped labels). */
  trimmed: Record<string, number>
  /** Specs not served at all. */
  refused: Record<string, number>
  /** Local instances that started draining, by reason (`stopping`, `operator`, `agent-leaving`). */
  drains: Record<string, number>
}

/**
 * Keeps the catalog's local records equal to the union of the sources' specs, with each
 * instance's status and its reason (types.ts StatusReason), first that applies: `draining`
 * because the agent is leaving (`agent-leaving`), because the source says it is stopping
 * (`stopping`), or because an operator drained it (`operator`); then its health check's:
 * `unhealthy` with reason `starting` until the check's first result, else `alive` or
 * `unhealthy`; `unknown` without a check.
 *
 * @example
 *   const local = new LocalServices({ advertiseIp: '10.0.0.5' }, { catalog, health, logger })
 *   local.start()
 *   local.setSource('static', staticSource.services())
 *   local.drain('web-1')
 */
export class LocalServices {
  readonly stats: LocalServicesStats = { trimmed: {}, refused: {}, drains: {} }
  private readonly catalog: Catalog
  private readonly health: HealthLike
  private readonly log: Logger
  private readonly advertiseIp: string
  /** Each source's set, in the order the sources were first set: an earlier source wins an id. */
  private readonly sources = new Map<SourceName, Map<string, LocalServiceSpec>>()
  /** The spec in effect per id (the first source that names it wins: the agent sets docker before static). */
  private readonly specs = new Map<string, LocalServiceSpec>()
  /** Drained by an operator (`drain`): since when, and the text they gave. */
  private readonly draining = new Map<string, Drain>()
  /** The agent is leaving: every instance drains (`drainAll`). */
  private leaving = false
  /**
   * Per source and id, the problems last reported (so that an unchanged spec is not reported
   * again), and what `entryProblems` shows of them while the spec stays so.
   */
  private readonly reported = new Map<string, { sig: string; entries: SourceEntryProblem[] }>()
  /**
   * The duplicate-id warnings: every change of any source reconciles again, so a duplicate
   * that stays would be one line per change; one a minute per source and id instead.
   */
  private readonly warnLimit: LogLimiter
  private started = false
  private readonly onHealth = (id: string, _status: CheckStatus): void => {
    if (this.started && this.specs.has(id)) this.write(id)
  }

  constructor(opts: LocalServicesOptions, components: { catalog: Catalog; health: HealthLike; logger: Logger }) {
    this.catalog = components.catalog
    this.health = components.health
    this.log = components.logger.child({ component: 'local-services' })
    this.advertiseIp = opts.advertiseIp
    this.warnLimit = new LogLimiter({}, { clock: components.catalog.clock })
  }

  /** Listens to health changes and writes the current set. Idempotent. */
  start(): void {
    if (this.started) return
    this.started = true
    this.health.on('change', this.onHealth)
    this.reconcile()
  }

  /** Stops listening; the catalog keeps the records (the agent's leave withdraws them). Idempotent. */
  stop(): void {
    if (!this.started) return
    this.started = false
    this.health.off('change', this.onHealth)
  }

  /**
   * Replaces everything a source says runs here. Each spec is made to fit the record limits
   * first: trimmed, or refused alone; either is logged once per change, naming the spec's
   * origin (container or file entry) and the limit, and counted in `stats`.
   */
  setSource(source: SourceName, specs: readonly LocalServiceSpec[]): void {
    const m = new Map<string, LocalServiceSpec>()
    const seen = new Set<string>()
    for (const s of specs) {
      const fit = fitSpec({ ...s, source }, this.catalog.self)
      const key = `${source}\u0000${s.id}`
      seen.add(key)
      this.report(key, s, fit.problems)
      if (!fit.spec) continue
      // Keyed by the id as written (made well-formed by the fit), which is what peers hold.
      if (m.has(fit.spec.id)) {
        const held = this.warnLimit.admit(`duplicate|${source}\u0000${fit.spec.id}`)
        if (held !== undefined)
          logProblem(
            this.log,
            'warn',
            {
              what: `duplicate instance id ${fit.spec.id} from the ${source} source`,
              input: s.origin ?? `${source} instance ${fit.spec.id}`,
              fix: `keeping the first; give each entry its own id${LogLimiter.suffix(held)}`,
            },
            { source, id: fit.spec.id, suppressed: held },
          )
      } else m.set(fit.spec.id, fit.spec)
    }
    for (const k of this.reported.keys()) if (k.startsWith(`${source}\u0000`) && !seen.has(k)) this.reported.delete(k)
    this.sources.set(source, m)
    if (this.started) this.reconcile()
  }

  private report(key: string, s: LocalServiceSpec, problems: ReturnType<typeof fitSpec>['problems']): void {
    const sig = JSON.stringify(problems)
    if ((this.reported.get(key)?.sig ?? '[]') === sig) return
    const origin = s.origin ?? `${s.source} instance ${s.id}`
    const entries = problems.map((p) => ({ id: s.id, origin, action: p.action, limit: problemLabel(p), message: p.message }))
    if (problems.length === 0) this.reported.delete(key)
    else this.reported.set(key, { sig, entries })
    for (const p of problems) {
      const counts = p.action === 'refused' ? this.stats.refused : this.stats.trimmed
      const label = problemLabel(p)
      counts[label] = (counts[label] ?? 0) + 1
      logProblem(
        this.log,
        'warn',
        {
          what: `${origin}: ${p.message}`,
          input: origin,
          fix:
            p.action === 'refused'
              ? 'make the entry fit the record limits (README "Known limits")'
              : 'served as trimmed; shorten it to keep all of it (record limits: README "Known limits")',
        },
        { origin, id: s.id, limit: label, action: p.action },
      )
    }
  }

  /**
   * What the record limits did to a source's entries as they are now, for /api/sources.json:
   * each entry refused (not served) or trimmed (served without what was cut), with its origin
   * (file entry or container), the limit and the message the warning gave. Empty when all fit.
   */
  entryProblems(source: SourceName): SourceEntryProblem[] {
    const out: SourceEntryProblem[] = []
    for (const [key, r] of this.reported) if (key.startsWith(`${source}\u0000`)) out.push(...r.entries)
    return out
  }

  /** The specs in effect. */
  list(): LocalServiceSpec[] {
    return [...this.specs.values()]
  }

  /**
   * Marks a local instance draining (reason `operator`): still listed, no new traffic. `reason`
   * (what the operator says, e.g. `maintenance`) goes into the record's detail; draining again
   * with another text replaces it. Throws SHOAL_ERR_UNKNOWN_INSTANCE or SHOAL_ERR_NOT_LOCAL.
   */
  drain(id: string, reason?: string): void {
    this.requireLocal(id)
    const text = reason?.trim() || undefined
    const cur = this.draining.get(id)
    if (cur && cur.reason === text) return
    this.draining.set(id, text === undefined ? { at: Date.now() } : { at: Date.now(), reason: text })
    this.write(id)
  }

  /** Takes a local instance out of draining; its health status applies again. */
  undrain(id: string): void {
    this.requireLocal(id)
    if (!this.draining.delete(id)) return
    this.write(id)
  }

  isDraining(id: string): boolean {
    return this.draining.has(id)
  }

  /**
   * The agent is leaving the cluster: every local instance, and any that appears from now on,
   * drains with reason `agent-leaving` (the agent waits a grace, then leaves). Returns how many
   * instances there are. Irreversible: a leaving agent stops.
   */
  drainAll(): number {
    if (!this.leaving) {
      this.leaving = true
      for (const id of this.specs.keys()) this.write(id)
    }
    return this.specs.size
  }

  /**
   * What only this owner knows of a local instance (the API shows it beside the record): its
   * source and origin, its container, its check as configured and last run, its drain.
   * Undefined for an id that is not local.
   */
  details(id: string): LocalInstanceDetails | undefined {
    const s = this.specs.get(id)
    if (!s) return undefined
    const d: LocalInstanceDetails = { source: s.source }
    if (s.origin !== undefined) d.origin = s.origin
    if (s.containerId !== undefined) d.containerId = s.containerId
    if (s.check) d.checkSpec = s.check
    const result = this.health.result(id)
    if (result) d.check = result
    const drain = this.draining.get(id)
    if (drain) d.drain = drain.reason === undefined ? { at: drain.at } : { at: drain.at, reason: drain.reason }
    return d
  }

  private requireLocal(id: string): void {
    if (this.specs.has(id)) return
    const elsewhere = this.catalog.findById(id).filter((r) => r.host !== this.catalog.self && r.status !== 'tombstone')
    if (elsewhere.length > 0) {
      throw new ShoalError(
        'SHOAL_ERR_NOT_LOCAL',
        `instance "${id}" runs on ${elsewhere.map((r) => r.host).join(', ')}, not on this host (${this.catalog.self}); drain it there`,
      )
    }
    throw new ShoalError('SHOAL_ERR_UNKNOWN_INSTANCE', `no local instance with id "${id}"`)
  }

  private reconcile(): void {
    const next = new Map<string, LocalServiceSpec>()
    for (const [source, specs] of this.sources) {
      for (const [id, s] of specs) {
        const prev = next.get(id)
        if (prev) {
          const held = this.warnLimit.admit(`two-sources|${id}`)
          if (held !== undefined)
            logProblem(
              this.log,
              'warn',
              {
                what: `instance id ${id} announced by two sources (${prev.source} and ${source}): the ${prev.source} one is kept`,
                input: s.origin ?? `${source} instance ${id}`,
                fix: `give the ${source} entry another id, or drop it${LogLimiter.suffix(held)}`,
              },
              { id, kept: prev.source, ignored: source, suppressed: held },
            )
          continue
        }
        next.set(id, s)
      }
    }
    for (const id of [...this.specs.keys()]) {
      if (next.has(id)) continue
      this.specs.delete(id)
      this.draining.delete(id)
      this.health.remove(id)
      this.catalog.removeLocal(id)
    }
    for (const [id, s] of next) {
      const prev = this.specs.get(id)
      if (prev && sameSpec(prev, s)) continue
      this.specs.set(id, s)
      if (!prev || !sameCheck(prev, s)) {
        const ctx: CheckContext = {
          ...(s.checkTarget ? { ...s.checkTarget } : defaultCheckTarget(s.ports, this.advertiseIp)),
          service: s.name,
        }
        if (s.containerId !== undefined) ctx.containerId = s.containerId
        if (s.origin !== undefined) ctx.origin = s.origin
        this.health.set(id, s.check, ctx)
      }
      this.write(id)
    }
  }

  private statusOf(id: string, spec: LocalServiceSpec): { status: ServiceStatus; reason?: StatusReason } {
    if (this.leaving) return { status: 'draining', reason: StatusReason.agentLeaving }
    if (spec.stopping) return { status: 'draining', reason: StatusReason.stopping }
    if (this.draining.has(id)) return { status: 'draining', reason: StatusReason.operator }
    if (!spec.check) return { status: 'unknown' }
    const st = this.health.status(id)
    return st === 'starting' ? { status: 'unhealthy', reason: StatusReason.starting } : { status: st }
  }

  /**
   * The record's detail, for the same case as its reason (statusOf): the operator's text while
   * drained, else the health check's account (both change only with the status).
   */
  private detailOf(id: string, spec: LocalServiceSpec): string {
    if (this.leaving) return fitDetail(`its agent (${this.catalog.self}) is leaving the cluster`)
    if (spec.stopping) return fitDetail(`${spec.origin ?? `instance ${id}`} is stopping`)
    const drain = this.draining.get(id)
    if (drain) return fitDetail(drain.reason === undefined ? 'drained by an operator' : `drained by an operator: ${drain.reason}`)
    return fitDetail(spec.check ? this.health.reason(id) : 'no health check')
  }

  private write(id: string): void {
    const s = this.specs.get(id)
    if (!s) return
    const { status, reason } = this.statusOf(id, s)
    const rec: LocalRecord = {
      id,
      name: s.name,
      image: s.image,
      created: s.created,
      ports: s.ports,
      proxyMode: s.proxyMode,
      status,
      labels: s.labels,
      detail: this.detailOf(id, s),
    }
    if (reason !== undefined) rec.reason = reason
    const before = this.catalog.get(this.catalog.self, id)
    if (status === 'draining' && reason !== undefined && (before?.status !== 'draining' || before.reason !== reason)) {
      this.stats.drains[reason] = (this.stats.drains[reason] ?? 0) + 1
      this.log.info({ id, origin: s.origin, reason, detail: rec.detail }, 'draining: no new traffic')
    }
    if (s.tags) rec.tags = s.tags
    if (s.attributes) rec.attributes = s.attributes
    if (s.networks) rec.networks = s.networks
    this.catalog.upsertLocal(rec)
  }
}

function sameCheck(a: LocalServiceSpec, b: LocalServiceSpec): boolean {
  return (
    JSON.stringify([a.check, a.containerId, a.ports, a.checkTarget]) === JSON.stringify([b.check, b.containerId, b.ports, b.checkTarget])
  )
}

/** Where a check reaches an instance unless its source says otherwise: its host bindings (the first one's IP, else the advertise IP). */
function defaultCheckTarget(ports: readonly ServicePortSpec[], advertiseIp: string): CheckContext {
  const bound = ports.flatMap((p) => {
    const b = hostBinding(p)
    return b ? [{ ip: b.ip, port: b.port, containerPort: p.containerPort }] : []
  })
  return {
    host: bound[0]?.ip || advertiseIp,
    ports: bound.map((b) => (b.containerPort !== undefined ? { port: b.port, containerPort: b.containerPort } : { port: b.port })),
  }
}

function sameSpec(a: LocalServiceSpec, b: LocalServiceSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}
