import { EventEmitter } from 'node:events'
import type { Counter, Registry } from 'prom-client'
import { counter } from '../metrics.js'
import { isShoalError } from '../errors.js'
import type { Logger } from '../log.js'
import { externalCheck } from './check-external.js'
import { httpGetCheck } from './check-http.js'
import { tcpCheck } from './check-tcp.js'
import { renderTemplate, type CheckContext } from './template.js'
import type { CheckSpec, CheckStatus, DockerHealthFeed } from './types.js'

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
  dockerHealth?: DockerHealthFeed
  registry?: Registry
}

/**
 * A check's promise, settled as a failure once `signal` aborts even if the check has not
 * noticed: the timeout ends the run, whatever the check does with its socket or process
 * (each check also cleans up on the signal itself).
 */
function untilAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(new Error('timed out'))
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(new Error('timed out'))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/**
 * The outcome of one run of a check. `unknown` leaves the status as it is; `unchecked` (a
 * Docker check of a container without a HEALTHCHECK) and `refused` (an External check while
 * they are off) make it `unknown`, as without a check: a check that cannot run says nothing.
 */
type RunResult = 'pass' | 'fail' | 'timeout' | 'unknown' | 'refused' | 'error' | 'unchecked'

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
  /** Date.now() when the check was set: `startIntervalMs` applies for `startPeriodMs` after it. */
  setAt: number
  passes: number
  fails: number
  gen: number
  timer?: NodeJS.Timeout
  abort?: AbortController
  running: boolean
  rerun: boolean
  warned: boolean
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
 * feed change runs them at once.
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
  private readonly feed: DockerHealthFeed | undefined
  private readonly checks: Counter<'type' | 'result'>
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
    this.feed = components.dockerHealth
    this.checks = counter(components.registry, {
      name: 'shoal_health_checks_total',
      help: 'Health check runs by check type and result (pass, fail, timeout, unknown, refused, error)',
      labelNames: ['type', 'result'],
    })
  }

  /** Add or replace the check of instance `id`. The same spec and context again changes nothing. */
  set(id: string, check: CheckSpec | undefined, ctx: CheckContext): void {
    const key = JSON.stringify([check ?? null, ctx.host, ctx.containerId ?? null, ctx.ports])
    const old = this.entries.get(id)
    if (old && old.key === key) return
    if (old) this.cancel(old)
    const e: Entry = {
      id,
      check,
      ctx: { host: ctx.host, containerId: ctx.containerId, ports: ctx.ports.map((p) => ({ ...p })) },
      key,
      // A replaced check keeps the status until its own first result, so that a changed
      // port does not make the instance flap through `starting`.
      status: !check ? 'unknown' : old?.check ? old.status : 'starting',
      decided: false,
      passedOnce: (old?.check !== undefined && old.passedOnce) || false,
      setAt: Date.now(),
      passes: 0,
      fails: 0,
      gen: (old?.gen ?? 0) + 1,
      running: false,
      rerun: false,
      warned: false,
    }
    this.entries.set(id, e)
    if (old && old.status !== e.status) this.emit('change', id, e.status)
    if (this.started && check) this.run(e)
  }

  /** Forget instance `id` and stop its check. */
  remove(id: string): void {
    const e = this.entries.get(id)
    if (!e) return
    this.cancel(e)
    this.entries.delete(id)
  }

  /** The current status of `id`; `unknown` for an instance without a check or not known. */
  status(id: string): CheckStatus {
    return this.entries.get(id)?.status ?? 'unknown'
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

  private cancel(e: Entry): void {
    e.gen++
    if (e.timer) clearTimeout(e.timer)
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
        if (e.timer) clearTimeout(e.timer)
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
    const timeout = setTimeout(() => ac.abort(), timeoutMs)
    timeout.unref()
    e.abort = ac
    e.running = true
    void this.execute(e, check, ac.signal).then((result) => {
      clearTimeout(timeout)
      if (e.gen !== gen || this.entries.get(e.id) !== e) return
      e.abort = undefined
      e.running = false
      this.checks.inc({ type: check.type, result })
      this.apply(e, check, result)
      if (!this.started || e.gen !== gen) return
      const interval = check.intervalMs ?? this.opts.intervalMs
      const starting = !e.passedOnce && Date.now() - e.setAt < this.opts.startPeriodMs
      const delay = e.rerun ? 0 : starting ? Math.min(interval, this.opts.startIntervalMs) : interval
      e.rerun = false
      e.timer = setTimeout(() => {
        e.timer = undefined
        this.run(e)
      }, delay)
      e.timer.unref()
    })
  }

  private async execute(e: Entry, check: CheckSpec, signal: AbortSignal): Promise<RunResult> {
    try {
      switch (check.type) {
        case 'AlwaysSuccessful':
          return 'pass'
        case 'Docker': {
          const cid = e.ctx.containerId
          const h = cid && this.feed ? this.feed.health(cid) : undefined
          if (!cid || !this.feed) this.warnOnce(e, `${e.id}: a Docker check needs a container and the Docker source`)
          if (h === 'none') {
            this.warnOnce(e, `${e.id}: a Docker check of a container without a HEALTHCHECK: served as unknown, as without a check`)
            return 'unchecked'
          }
          // `starting` (and a container the feed does not know yet) leaves the status as it is.
          return h === 'healthy' ? 'pass' : h === 'unhealthy' ? 'fail' : 'unknown'
        }
        case 'External':
          if (!this.opts.allowExternal) {
            this.warnOnce(e, `${e.id}: External check "${check.args ?? ''}" refused: external checks are off (--allow-external-checks)`)
            return 'refused'
          }
          await untilAborted(externalCheck(renderTemplate(check.args ?? '', e.ctx), signal), signal)
          return 'pass'
        case 'HttpGet':
          await untilAborted(httpGetCheck(renderTemplate(check.args ?? '', e.ctx), signal), signal)
          return 'pass'
        case 'Tcp':
          await untilAborted(tcpCheck(renderTemplate(check.args ?? '', e.ctx), signal), signal)
          return 'pass'
        default:
          this.warnOnce(e, `${e.id}: unknown check type "${String((check as CheckSpec).type)}"`)
          return 'error'
      }
    } catch (err) {
      if (signal.aborted) return 'timeout'
      if (isShoalError(err)) {
        this.warnOnce(e, `${e.id}: ${err.message}`)
        return 'error'
      }
      this.log.debug({ id: e.id, type: check.type, err: (err as Error).message }, 'check failed')
      return 'fail'
    }
  }

  private warnOnce(e: Entry, msg: string): void {
    if (e.warned) return
    e.warned = true
    this.log.warn({ id: e.id, check: e.check }, msg)
  }

  private apply(e: Entry, check: CheckSpec, result: RunResult): void {
    if (result === 'unknown') return
    if (result === 'unchecked' || result === 'refused') {
      this.setStatus(e, 'unknown')
      return
    }
    const pass = result === 'pass'
    // The first result, and the first pass, are taken at once: a new instance is served from
    // its first passing check, and `rise` guards only an instance that was up before.
    if (!e.decided || (pass && !e.passedOnce)) {
      e.decided = true
      e.passes = e.fails = 0
      if (pass) e.passedOnce = true
      this.setStatus(e, pass ? 'alive' : 'unhealthy')
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

  private setStatus(e: Entry, status: CheckStatus): void {
    if (e.status === status) return
    e.status = status
    e.passes = e.fails = 0
    this.log.info({ id: e.id, status }, 'health status changed')
    this.emit('change', e.id, status)
  }
}
