/**
 * ServicePort conflicts: two or more service names whose live instances claim one ServicePort
 * (a tcp port's `servicePort`). Every host's Envoy can listen on a ServicePort for one service
 * only, so one name is served and the others are not. The rule has one home,
 * `compareServiceNames` (the xDS grouping and the DNS zone both use it): the name first in
 * code-unit order wins, so every agent picks the same one without talking to the others.
 *
 * `ServicePortConflicts` finds them from the catalog itself, whoever is connected: it logs a
 * conflict once when it appears (and again only if its names change), logs when it is gone (each
 * at most once a minute per ServicePort, the next line counting those held back), and keeps the
 * current list for the API, the UI and the metric.
 */
import { RealClock } from '../clock.js'
import { LogLimiter, logProblem, type Logger } from '../log.js'
import { liveRecordsOf, type CatalogSnapshot, type CatalogView, type ServiceRecord } from './types.js'

/**
 * Two or more service names claiming one ServicePort: `winner` is served, `losers` are not.
 *
 * @example
 *   { servicePort: 10001, winner: 'web', losers: ['x'] }
 */
export interface ServicePortConflict {
  servicePort: number
  winner: string
  /** Ascending, in the order of the rule. */
  losers: string[]
}

/**
 * The conflict rule: of the names claiming one ServicePort, the first in this order is served.
 * Code units, so that every agent (whatever its locale) agrees.
 */
export function compareServiceNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Which ServicePorts a record claims: its tcp ports' (xDS serves only tcp). */
function claimsOf(r: ServiceRecord): number[] {
  const out: number[] = []
  for (const p of r.ports) if (p.type === 'tcp') out.push(p.servicePort)
  return out
}

function sameRecords(a: readonly ServiceRecord[], b: readonly ServiceRecord[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * @example
 *   const conflicts = new ServicePortConflicts({ catalog, logger })
 *   conflicts.start()
 *   conflicts.list()   // [{ servicePort: 10001, winner: 'web', losers: ['x'] }]
 *   conflicts.stop()
 */
export class ServicePortConflicts {
  private readonly catalog: CatalogView
  private readonly log: Logger
  /** Per host: the live records last seen, and the (ServicePort, name) claims they make. */
  private readonly hosts = new Map<string, { live: ServiceRecord[]; claims: Array<[number, string]> }>()
  /** ServicePort -> name -> how many claims (instances' tcp ports) make it. */
  private readonly claims = new Map<number, Map<string, number>>()
  private readonly current = new Map<number, ServicePortConflict>()
  private listCache: ServicePortConflict[] | undefined
  private applied: CatalogSnapshot | undefined
  private dirty = false
  private unsubscribe: (() => void) | undefined

  /** A conflict that comes and goes with every change (an instance flapping) is one line a minute per ServicePort and kind. */
  private readonly logLimit: LogLimiter

  constructor(components: { catalog: CatalogView; logger: Logger; clock?: { now(): number } }) {
    this.catalog = components.catalog
    this.log = components.logger.child({ component: 'catalog' })
    this.logLimit = new LogLimiter({}, { clock: components.clock ?? new RealClock() })
  }

  /** Follows the catalog. Idempotent. */
  start(): void {
    if (this.unsubscribe) return
    // A burst of catalog changes in one tick is looked at once.
    this.unsubscribe = this.catalog.subscribe(() => {
      if (this.dirty) return
      this.dirty = true
      queueMicrotask(() => this.refresh())
    })
    this.refresh()
  }

  stop(): void {
    this.unsubscribe?.()
    this.unsubscribe = undefined
  }

  /** The conflicts now, by ServicePort. */
  list(): ServicePortConflict[] {
    if (this.dirty) this.refresh()
    this.listCache ??= [...this.current.values()].sort((a, b) => a.servicePort - b.servicePort)
    return this.listCache
  }

  private refresh(): void {
    this.dirty = false
    const snap = this.catalog.snapshot()
    if (snap === this.applied) return
    this.applied = snap
    const touched = new Set<number>()
    const seen = new Set<string>()
    for (const h of snap.hosts) {
      seen.add(h.name)
      const live = liveRecordsOf(h)
      const prev = this.hosts.get(h.name)
      if (prev && sameRecords(prev.live, live)) continue
      const claims: Array<[number, string]> = []
      for (const r of live) for (const sp of claimsOf(r)) claims.push([sp, r.name])
      this.account(prev?.claims ?? [], -1, touched)
      this.account(claims, 1, touched)
      this.hosts.set(h.name, { live, claims })
    }
    for (const [name, prev] of this.hosts) {
      if (seen.has(name)) continue
      this.account(prev.claims, -1, touched)
      this.hosts.delete(name)
    }
    for (const sp of [...touched].sort((a, b) => a - b)) this.judge(sp)
  }

  /** Which hosts claim a ServicePort, by service name (hosts sorted), so a warning says where to look. */
  private claimants(sp: number): Map<string, string[]> {
    const out = new Map<string, string[]>()
    for (const [host, { claims }] of this.hosts)
      for (const [claimed, name] of claims)
        if (claimed === sp) {
          const hosts = out.get(name) ?? []
          if (!hosts.includes(host)) hosts.push(host)
          out.set(name, hosts)
        }
    for (const hosts of out.values()) hosts.sort()
    return out
  }

  private account(claims: ReadonlyArray<[number, string]>, by: 1 | -1, touched: Set<number>): void {
    for (const [sp, name] of claims) {
      let names = this.claims.get(sp)
      if (!names) this.claims.set(sp, (names = new Map()))
      const n = (names.get(name) ?? 0) + by
      if (n > 0) names.set(name, n)
      else names.delete(name)
      if (names.size === 0) this.claims.delete(sp)
      touched.add(sp)
    }
  }

  /** Compares a ServicePort's claims with its conflict so far; logs what appeared, changed or went. */
  private judge(sp: number): void {
    const names = [...(this.claims.get(sp)?.keys() ?? [])].sort(compareServiceNames)
    const before = this.current.get(sp)
    if (names.length > 1) {
      const cf: ServicePortConflict = { servicePort: sp, winner: names[0]!, losers: names.slice(1) }
      if (before && before.winner === cf.winner && before.losers.join() === cf.losers.join()) return
      this.current.set(sp, cf)
      this.listCache = undefined
      const by = this.claimants(sp)
      const who = (name: string) => `${name} (on ${(by.get(name) ?? []).join(', ')})`
      const held = this.logLimit.admit(`${sp}|conflict`)
      if (held === undefined) return
      logProblem(
        this.log,
        'warn',
        {
          what: `ServicePort ${sp} is claimed by ${names.map(who).join(', ')}: only ${cf.winner} is served (xDS and DNS)`,
          input: `ServicePort ${sp}`,
          fix: `give ${cf.losers.join(', ')} another ServicePort (ServicePort_<port> label or the static entry's servicePort) on the hosts named${LogLimiter.suffix(held)}`,
        },
        { servicePort: sp, winner: cf.winner, losers: cf.losers, hosts: Object.fromEntries(by), suppressed: held },
      )
    } else if (before) {
      this.current.delete(sp)
      this.listCache = undefined
      const held = this.logLimit.admit(`${sp}|resolved`)
      if (held === undefined) return
      this.log.info(
        { servicePort: sp, winner: names[0] ?? null, losers: [], suppressed: held },
        (names.length === 1
          ? `ServicePort ${sp} conflict resolved: only ${names[0]} claims it now`
          : `ServicePort ${sp} conflict resolved: no service claims it now`) + LogLimiter.suffix(held),
      )
    }
  }
}
