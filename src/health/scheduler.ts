import { EventEmitter } from 'node:events'
import type { Counter, Histogram, Registry } from 'prom-client'
import { counter, histogram } from '../metrics.js'
import { RealClock, type Clock, type Timer } from '../clock.js'
import { isShoalError } from '../errors.js'
import { logProblem, type Logger } from '../log.js'
import { externalCheck } from './check-external.js'
import { httpGetCheck } from './check-http.js'
import { TCP_HOLD_MS, tcpCheck } from './check-tcp.js'
import { CheckFailed, describeError, type Finding } from './finding.js'
import { renderTemplate, type CheckContext } from './template.js'
import {
  CHECK_OUTCOMES,
  type CheckOutcome,
  type CheckResult,
  type CheckSpec,
  type CheckStatus,
  type CheckType,
  type DockerHealthFeed,
} from './types.js'

export interface HealthSchedulerOptions {
  /** Default 3000. */
  intervalMs?: number
  /** Default 2000. */
  timeoutMs?: number
  /** Consecutive passes that turn an unhealthy instance alive. Default 2. */
  rise?: number
  /** Consecutive failures that turn an alive instance unhealthy. Default 3. */
  fall?: number
  /** Run `External` checks (commands named in labels). Default false: they are refused. */
  allowExternal?: boolean
  /**
   * Interval while a new check has not passed yet, within `startPeriodMs` of being set, so that
   * a new instance takes traffic soon after it is ready (Docker's `--start-interval`). Default
   * 500 (never above `intervalMs`).
   */
  startIntervalMs?: number
  /** How long after a check is set `startIntervalMs` applies while it has not passed. Default 30000. */
  startPeriodMs?: number
}

export interface HealthSchedulerComponents {
  logger: Logger
  /** Time for the check timers, timeouts and durations; default real time (tests run it on a VirtualClock). */
  clock?: Clock
  dockerHealth?: DockerHealthFeed
  registry?: Registry
}

/**
 * A check's promise, settled as a failure once `signal` aborts even if the check has not
 * noticed: the timeout ends the run, whatever the check does with its socket or process
 * (each check also cleans up on the signal itself).
 */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('timed out'))
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('timed out'))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/** What `execute` found: the outcome, and for a run that did not pass, why. */
interface Run {
  outcome: CheckOutcome
  error?: string
  finding: Finding
}

interface Entry {
  id: string
  check: CheckSpec | undefined
  ctx: CheckContext
  key: string
  status: CheckStatus
  /** False until the first pass or fail of this check, which is taken without thresholds. */
  decided: boolean
  /** The check has passed at least once: until then a pass is taken at once (no `rise`). */
  passedOnce: boolean
  /** clock.now() when the check was set: `startIntervalMs` applies for `startPeriodMs` after it. */
  setAt: number
  /** Passes and failures since the status last changed (rise and fall count these). */
  passes: number
  fails: number
  /** The last run, and the runs in a row that passed or failed (whatever the status did). */
  last: CheckResult | undefined
  streak: { passes: number; fails: number }
  /** Why the instance has its status; changes only with the status (or a new check). */
  reason: string
  gen: number
  timer?: Timer
  abort?: AbortController
  running: boolean
  rerun: boolean
  warned: boolean
}

/** Seconds; health checks take from well under a millisecond (Tcp on a LAN) to their timeout (2 s by default). */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/** A check's target as its result and log lines name it: templates filled in (or the args as written when they cannot be). */
function targetOf(check: CheckSpec, ctx: CheckContext): string {
  if (check.type === 'AlwaysSuccessful') return ''
  if (check.type === 'Docker') return ctx.containerId?.slice(0, 12) ?? ''
  try {
    return renderTemplate(check.args ?? '', ctx)
  } catch {
    return check.args ?? ''
  }
}

/** The labels of a check's series; without `service` for an instance that names none (tests of the scheduler alone). */
function seriesOf(service: string | undefined, type: CheckType): { service?: string; type: CheckType } {
  return service === undefined ? { type } : { service, type }
}

/** `Tcp 10.0.0.5:5432` */
function checkName(r: Pick<CheckResult, 'type' | 'target'>): string {
  return r.target ? `${r.type} ${r.target}` : r.type
}

/**
 * The short reason other hosts learn with a status (the record's `reason`): the check and what
 * it found, e.g. `Tcp 10.0.0.5:5432: connection refused`, `HttpGet http://10.0.0.5:8080/health: HTTP 200`.
 */
function reasonOf(r: CheckResult): string {
  const what = r.passed ? (r.httpStatus !== undefined ? `HTTP ${r.httpStatus}` : 'passed') : (r.error ?? r.outcome)
  return `${checkName(r)}: ${what}`
}

/**
 * Runs every instance's health check on its own timer and turns results into a status:
 * no check -> `unknown`; a new check starts `starting` (not served) and takes its first result
 * at once, and its first pass at once (a new instance is served from its first passing check,
 * never before); after that a status changes only after `rise` passes or `fall` failures in a
 * row. Until its first pass a check runs every `startIntervalMs` (for `startPeriodMs`), then
 * every `intervalMs`. Every run has a timeout, so a hanging check never delays another one.
 * `Docker` checks read the Docker source's feed (HEALTHCHECK `starting` leaves the status as
 * it is); Docker already applies its own retries, so their rise and fall default to 1 and a
 * feed change runs them at once. Each instance keeps its last run (`result`) and the reason
 * for its status (`reason`); `change` fires when the status changes, and when a new check's
 * first result gives the same status another reason.
 *
 * @example
 *   const hs = new HealthScheduler({}, { logger })
 *   hs.on('change', (id, status) => console.log(id, status))
 *   hs.set('abc123def456', { type: 'HttpGet', args: 'http://{{ host }}:{{ tcp 80 }}/' }, { host: '10.0.0.5', ports })
 *   hs.start()
 */
export class HealthScheduler extends EventEmitter<{ change: [id: string, status: CheckStatus] }> {
  private readonly opts: Required<HealthSchedulerOptions>
  private readonly log: Logger
  private readonly clock: Clock
  private readonly feed: DockerHealthFeed | undefined
  private readonly checks: Counter<'service' | 'type' | 'result'>
  private readonly durations: Histogram<'service' | 'type'>
  private readonly entries = new Map<string, Entry>()
  private started = false
  private unsubscribe: (() => void) | undefined

  constructor(opts: HealthSchedulerOptions, components: HealthSchedulerComponents) {
    super()
    this.opts = {
      intervalMs: opts.intervalMs ?? 3000,
      timeoutMs: opts.timeoutMs ?? 2000,
      rise: opts.rise ?? 2,
      fall: opts.fall ?? 3,
      allowExternal: opts.allowExternal ?? false,
      startIntervalMs: Math.min(opts.startIntervalMs ?? 500, opts.intervalMs ?? 3000),
      startPeriodMs: opts.startPeriodMs ?? 30_000,
    }
    this.log = components.logger.child({ component: 'health' })
    this.clock = components.clock ?? new RealClock()
    this.feed = components.dockerHealth
    this.checks = counter(components.registry, {
      name: 'shoal_health_checks_total',
      help: 'Health check runs of local instances, by service, check type and result (pass, fail, timeout, unknown, refused, error, unchecked).',
      labelNames: ['service', 'type', 'result'],
    })
    this.durations = histogram(components.registry, {
      name: 'shoal_health_check_duration_seconds',
      help: 'Time a health check run took until it passed, failed or timed out, by service and check type.',
      labelNames: ['service', 'type'],
      buckets: DURATION_BUCKETS,
    })
  }

  /** Add or replace the check of instance `id`. The same spec and context again changes nothing. */
  set(id: string, check: CheckSpec | undefined, ctx: CheckContext): void {
    const key = JSON.stringify([check ?? null, ctx.host, ctx.containerId ?? null, ctx.ports, ctx.service ?? null, ctx.behind ?? null])
    const old = this.entries.get(id)
    if (old && old.key === key) {
      if (ctx.origin !== undefined) old.ctx.origin = ctx.origin
      return
    }
    if (old) this.cancel(old)
    const e: Entry = {
      id,
      check,
      ctx: {
        ...ctx,
        ports: ctx.ports.map((p) => ({ ...p })),
        ...(ctx.behind ? { behind: { host: ctx.behind.host, ports: ctx.behind.ports.map((p) => ({ ...p })) } } : {}),
      },
      key,
      // A replaced check keeps the status until its own first result, so that a changed
      // port does not make the instance flap through `starting`.
      status: !check ? 'unknown' : old?.check ? old.status : 'starting',
      decided: false,
      passedOnce: (old?.check !== undefined && old.passedOnce) || false,
      setAt: this.clock.now(),
      passes: 0,
      fails: 0,
      last: undefined,
      streak: { passes: 0, fails: 0 },
      reason: '',
      gen: (old?.gen ?? 0) + 1,
      running: false,
      rerun: false,
      warned: false,
    }
    e.reason = old && check && old.status !== 'unknown' ? old.reason : this.undecidedReason(e)
    this.entries.set(id, e)
    if (check) this.initSeries(ctx.service, check.type)
    if (old?.check && (old.check.type !== check?.type || old.ctx.service !== ctx.service)) this.dropSeries(old.ctx.service, old.check.type)
    if (old && old.status !== e.status) {
      this.logChange(e, old.status, undefined)
      this.emit('change', id, e.status)
    }
    if (this.started && check) this.run(e)
  }

  /** Forget instance `id` and stop its check. */
  remove(id: string): void {
    const e = this.entries.get(id)
    if (!e) return
    this.cancel(e)
    this.entries.delete(id)
    if (e.check) this.dropSeries(e.ctx.service, e.check.type)
  }

  /** The current status of `id`; `unknown` for an instance without a check or not known. */
  status(id: string): CheckStatus {
    return this.entries.get(id)?.status ?? 'unknown'
  }

  /** The last run of `id`'s check; undefined before its first run, or without a check. */
  result(id: string): CheckResult | undefined {
    return this.entries.get(id)?.last
  }

  /**
   * Why `id` has its status, in one short line: the check result that set it (`Tcp
   * 10.0.0.5:5432: connection refused`), `no health check`, or what the first result waits for.
   * It changes only when the status changes, or when the check itself is replaced, so that
   * check output never rewrites the record.
   */
  reason(id: string): string {
    return this.entries.get(id)?.reason ?? 'no health check'
  }

  start(): void {
    if (this.started) return
    this.started = true
    if (this.feed) this.unsubscribe = this.feed.subscribe((cid) => this.onDockerHealth(cid))
    for (const e of this.entries.values()) if (e.check) this.run(e)
  }

  stop(): void {
    if (!this.started) return
    this.started = false
    this.unsubscribe?.()
    this.unsubscribe = undefined
    for (const e of this.entries.values()) {
      this.cancel(e)
      e.gen++
    }
  }

  private undecidedReason(e: Entry): string {
    const check = e.check
    if (!check) return 'no health check'
    if (check.type === 'External' && !this.opts.allowExternal) return 'External checks are off (--allow-external-checks)'
    return `waiting for the first ${checkName({ type: check.type, target: targetOf(check, e.ctx) })} check`
  }

  /** The series of a service's check type exist from the start, at zero (Prometheus instrumentation guide). */
  private initSeries(service: string | undefined, type: CheckType): void {
    const labels = seriesOf(service, type)
    for (const result of CHECK_OUTCOMES) this.checks.inc({ ...labels, result }, 0)
    this.durations.zero(labels)
  }

  /** Drops a service's series once no instance of it runs that check type here any more. */
  private dropSeries(service: string | undefined, type: CheckType): void {
    for (const e of this.entries.values()) if (e.check?.type === type && e.ctx.service === service) return
    const labels = seriesOf(service, type)
    for (const result of CHECK_OUTCOMES) this.checks.remove({ ...labels, result })
    this.durations.remove(labels)
  }

  private cancel(e: Entry): void {
    e.gen++
    e.timer?.cancel()
    e.timer = undefined
    e.abort?.abort()
    e.abort = undefined
    e.running = false
    e.rerun = false
  }

  private onDockerHealth(containerId: string): void {
    for (const e of this.entries.values()) {
      if (e.check?.type !== 'Docker' || e.ctx.containerId !== containerId) continue
      if (e.running) e.rerun = true
      else {
        e.timer?.cancel()
        e.timer = undefined
        this.run(e)
      }
    }
  }

  private run(e: Entry): void {
    const check = e.check
    if (!check || !this.started) return
    const gen = e.gen
    const timeoutMs = check.timeoutMs ?? this.opts.timeoutMs
    const ac = new AbortController()
    const timeout = this.clock.setTimer(timeoutMs, () => ac.abort())
    e.abort = ac
    e.running = true
    const began = this.clock.now()
    void this.execute(e, check, ac.signal, timeoutMs).then((run) => {
      timeout.cancel()
      if (e.gen !== gen || this.entries.get(e.id) !== e) return
      e.abort = undefined
      e.running = false
      const durationMs = this.clock.now() - began
      const labels = seriesOf(e.ctx.service, check.type)
      this.checks.inc({ ...labels, result: run.outcome })
      if (run.outcome === 'pass' || run.outcome === 'fail' || run.outcome === 'timeout') this.durations.observe(labels, durationMs / 1000)
      this.record(e, check, run, durationMs)
      this.apply(e, check, run.outcome)
      if (!this.started || e.gen !== gen) return
      const interval = check.intervalMs ?? this.opts.intervalMs
      const starting = !e.passedOnce && this.clock.now() - e.setAt < this.opts.startPeriodMs
      const delay = e.rerun ? 0 : starting ? Math.min(interval, this.opts.startIntervalMs) : interval
      e.rerun = false
      e.timer = this.clock.setTimer(delay, () => {
        e.timer = undefined
        this.run(e)
      })
    })
  }

  private async execute(e: Entry, check: CheckSpec, signal: AbortSignal, timeoutMs: number): Promise<Run> {
    const pass = (finding: Finding): Run => ({ outcome: 'pass', finding })
    try {
      switch (check.type) {
        case 'AlwaysSuccessful':
          return pass({})
        case 'Docker': {
          const cid = e.ctx.containerId
          const h = cid && this.feed ? this.feed.health(cid) : undefined
          if (!cid || !this.feed) {
            this.warnOnce(
              e,
              `${e.id}: a Docker check needs a container and the Docker source`,
              'run the agent with --discovery docker, or give the instance another check type',
            )
            return { outcome: 'unknown', error: 'no container or no Docker source', finding: {} }
          }
          if (h === 'none') {
            this.warnOnce(
              e,
              `${e.id}: a Docker check of a container without a HEALTHCHECK: served as unknown, as without a check`,
              'give its image a HEALTHCHECK, or the container another check type',
            )
            return { outcome: 'unchecked', error: 'the container has no HEALTHCHECK', finding: {} }
          }
          if (h === 'healthy') return pass({ output: 'container health: healthy' })
          if (h === 'unhealthy') return { outcome: 'fail', error: 'container health: unhealthy (its HEALTHCHECK)', finding: {} }
          // `starting` (and a container the feed does not know yet) leaves the status as it is.
          return { outcome: 'unknown', error: `container health: ${h ?? 'not known yet'}`, finding: {} }
        }
        case 'External':
          if (!this.opts.allowExternal) {
            this.warnOnce(
              e,
              `${e.id}: External check "${check.args ?? ''}" refused: external checks are off; the instance is unhealthy (not served)`,
              'run the agent with --allow-external-checks, or change the check',
            )
            return { outcome: 'refused', error: 'External checks are off (--allow-external-checks)', finding: {} }
          }
          return pass(await untilAborted(externalCheck(renderTemplate(check.args ?? '', e.ctx), signal), signal))
        case 'HttpGet':
          return pass(await untilAborted(httpGetCheck(renderTemplate(check.args ?? '', e.ctx), signal), signal))
        case 'Tcp': {
          // The hold fits well within the check's timeout.
          const behind = e.ctx.behind ? renderTemplate(check.args ?? '', { ...e.ctx, ...e.ctx.behind }) : undefined
          return pass(
            await untilAborted(
              tcpCheck(renderTemplate(check.args ?? '', e.ctx), signal, Math.min(TCP_HOLD_MS, timeoutMs / 2), behind),
              signal,
            ),
          )
        }
        default:
          this.warnOnce(
            e,
            `${e.id}: unknown check type "${String((check as CheckSpec).type)}"`,
            'use HttpGet, Tcp, Docker or External (README "Health checks")',
          )
          return { outcome: 'error', error: `unknown check type "${String((check as CheckSpec).type)}"`, finding: {} }
      }
    } catch (err) {
      if (signal.aborted) return { outcome: 'timeout', error: `timed out after ${timeoutMs} ms`, finding: {} }
      if (isShoalError(err)) {
        this.warnOnce(
          e,
          `${e.id}: ${err.message}`,
          'fix the check\'s args (README "Health checks"); the instance is not served as alive until it runs',
        )
        return { outcome: 'error', error: err.message, finding: {} }
      }
      this.log.debug({ id: e.id, type: check.type, err: (err as Error).message }, 'check failed')
      return { outcome: 'fail', error: describeError(err), finding: err instanceof CheckFailed ? err.finding : {} }
    }
  }

  /** Keeps the run as the instance's last result. */
  private record(e: Entry, check: CheckSpec, run: Run, durationMs: number): void {
    const passed = run.outcome === 'pass'
    if (passed) {
      e.streak.passes++
      e.streak.fails = 0
    } else if (run.outcome === 'fail' || run.outcome === 'timeout' || run.outcome === 'error') {
      e.streak.fails++
      e.streak.passes = 0
    }
    const r: CheckResult = {
      type: check.type,
      target: targetOf(check, e.ctx),
      outcome: run.outcome,
      passed,
      at: this.clock.wallNow(),
      durationMs: Math.round(durationMs * 1000) / 1000,
      passes: e.streak.passes,
      fails: e.streak.fails,
    }
    if (run.error !== undefined) r.error = run.error
    if (run.finding.httpStatus !== undefined) r.httpStatus = run.finding.httpStatus
    if (run.finding.output !== undefined) r.output = run.finding.output
    e.last = r
  }

  private warnOnce(e: Entry, what: string, fix: string): void {
    if (e.warned) return
    e.warned = true
    logProblem(this.log, 'warn', { what, input: e.ctx.origin ?? e.id, fix }, { id: e.id, check: e.check })
  }

  /**
   * Turns a run into a status. `unknown` leaves the status as it is; `unchecked` (a Docker check
   * of a container without a HEALTHCHECK) makes it `unknown`, as without a check. `refused` (an
   * External check while they are off) makes it `unhealthy`: the service asked to be checked and
   * cannot be, so it fails closed and is not served.
   */
  private apply(e: Entry, check: CheckSpec, outcome: CheckOutcome): void {
    if (outcome === 'unknown') return
    if (outcome === 'unchecked' || outcome === 'refused') {
      this.setStatus(e, outcome === 'refused' ? 'unhealthy' : 'unknown')
      return
    }
    const pass = outcome === 'pass'
    // The first result, and the first pass, are taken at once: a new instance is served from
    // its first passing check, and `rise` guards only an instance that was up before.
    if (!e.decided || (pass && !e.passedOnce)) {
      e.decided = true
      e.passes = e.fails = 0
      if (pass) e.passedOnce = true
      // A new check's first result names the status's reason even when the status stays.
      if (!this.setStatus(e, pass ? 'alive' : 'unhealthy') && e.last && e.reason !== reasonOf(e.last)) {
        e.reason = reasonOf(e.last)
        this.emit('change', e.id, e.status)
      }
      return
    }
    const docker = check.type === 'Docker'
    const rise = check.rise ?? (docker ? 1 : this.opts.rise)
    const fall = check.fall ?? (docker ? 1 : this.opts.fall)
    if (pass) {
      e.fails = 0
      e.passes++
      if (e.status !== 'alive' && e.passes >= rise) this.setStatus(e, 'alive')
    } else {
      e.passes = 0
      e.fails++
      if (e.status !== 'unhealthy' && e.fails >= fall) this.setStatus(e, 'unhealthy')
    }
  }

  /** Changes the status (false when it is that already), with its reason, a log line and a `change` event. */
  private setStatus(e: Entry, status: CheckStatus): boolean {
    if (e.status === status) return false
    const previous = e.status
    e.status = status
    e.passes = e.fails = 0
    e.reason = e.last ? reasonOf(e.last) : this.undecidedReason(e)
    this.logChange(e, previous, e.last)
    this.emit('change', e.id, status)
    return true
  }

  /**
   * The status-change line: which instance (id, service, where it came from), the new and old
   * status, and the check result behind it, e.g.
   * `db-a2 (service db, /etc/shoal/static.json services[1]) is unhealthy, was alive: Tcp 127.0.0.1:19599: connection refused (3 failures in a row)`.
   */
  private logChange(e: Entry, previous: CheckStatus, r: CheckResult | undefined): void {
    const who = [e.ctx.service !== undefined ? `service ${e.ctx.service}` : undefined, e.ctx.origin].filter(Boolean).join(', ')
    const streak = r ? (r.passed ? r.passes : r.fails) : 0
    const runs = r && streak > 1 ? ` (${streak} ${r.passed ? 'passes' : 'failures'} in a row)` : ''
    const msg = `${e.id}${who ? ` (${who})` : ''} is ${e.status}, was ${previous}: ${e.reason}${runs}`
    const fields: Record<string, unknown> = { id: e.id, service: e.ctx.service, status: e.status, previous }
    if (e.ctx.origin !== undefined) fields.origin = e.ctx.origin
    if (r) {
      fields.check = { type: r.type, target: r.target, outcome: r.outcome, error: r.error, httpStatus: r.httpStatus, output: r.output }
      fields.passes = r.passes
      fields.fails = r.fails
    }
    if (e.status === 'unhealthy')
      logProblem(
        this.log,
        'warn',
        {
          what: msg,
          input: e.ctx.origin ?? e.id,
          fix: 'it takes no new traffic until its check passes again; look at what the check reaches',
        },
        fields,
      )
    else this.log.info(fields, msg)
  }
}
