import { EventEmitter } from 'node:events'
import { constants } from 'node:os'
import Dockerode from 'dockerode'
import type { Counter, Registry } from 'prom-client'
import { formatHostPort, onLocalSubnet } from '../address.js'
import { RealClock, type Clock, type Timer } from '../clock.js'
import { counter } from '../metrics.js'
import type { DockerHealth, DockerHealthFeed } from '../health/types.js'
import { logProblem, type Logger } from '../log.js'
import type { LocalServiceSpec, ServiceSource, SourceStatus } from '../registry/types.js'
import { ContainerHealthFeed } from './health-feed.js'
import { parseDockerHost, type DockerEndpoint } from './host.js'
import { factsFromInspect, mapContainer, SkipReason, type ContainerFacts } from './labels.js'

export interface DockerSourceOptions {
  /** `unix:///path`, `/path` or `tcp://host:port`; default `DOCKER_HOST`, else /var/run/docker.sock. */
  dockerHost?: string
  /** IP advertised for published ports. */
  advertiseIp: string
  /** Docker networks (Swarm overlays) whose container IPs are advertised beside published ports. */
  networks?: string[]
  /** How long the last known services are kept while the engine is unreachable. Default 60000. */
  graceMs?: number
  /** First reconnect delay; doubles per failed attempt up to `maxBackoffMs`, with jitter. Default 200. */
  backoffMs?: number
  /** Default 5000. */
  maxBackoffMs?: number
  /**
   * Drain a container's instances the moment it gets its stop signal (the `kill` event of
   * `docker stop`, a Swarm task's shutdown) instead of withdrawing them only when it dies.
   * Default true (`--drain-on-stop`).
   */
  drainOnStop?: boolean
  /**
   * A container that still runs this long after its stop timeout (Config.StopTimeout, else the
   * engine's 10 s) since its stop signal survived it: it is served again. Default 2000.
   */
  stopMarginMs?: number
}

/** The engine's stop timeout when a container sets none (`docker stop`'s default). */
const DEFAULT_STOP_TIMEOUT_MS = 10_000
const SIGNALS = constants.signals as Record<string, number>
/** Signals that end a process whatever it says: a `kill` with one of them drains, like the container's own StopSignal. */
const STOP_SIGNALS = new Set([SIGNALS.SIGTERM, SIGNALS.SIGINT, SIGNALS.SIGQUIT, SIGNALS.SIGKILL])

/**
 * A signal as Docker spells it (`15`, `SIGTERM`, `TERM`, `sigterm`) as its number on this
 * platform; undefined for anything else (`SIGRTMIN+3` included).
 */
export function signalNumber(s: string | number | undefined): number | undefined {
  if (typeof s === 'number') return Number.isInteger(s) && s > 0 ? s : undefined
  const v = (s ?? '').trim().toUpperCase()
  if (/^\d{1,2}$/.test(v)) return Number(v) > 0 ? Number(v) : undefined
  return SIGNALS[v.startsWith('SIG') ? v : `SIG${v}`]
}

/** How a container is stopped: its StopSignal (SIGTERM unless set) and stop timeout. */
interface StopInfo {
  signal: number
  timeoutMs: number
}

export interface DockerSourceComponents {
  logger: Logger
  docker?: Dockerode
  registry?: Registry
  /** [0, 1) source for backoff jitter. */
  random?: () => number
  /** Reconnect backoff, the grace period and the stop-timeout bound run on it. Default RealClock. */
  clock?: Clock
}

interface DockerEvent {
  Type?: string
  Action?: string
  id?: string
  Actor?: { ID?: string; Attributes?: Record<string, string> }
  time?: number
  timeNano?: number
}

const ACTIONS = ['start', 'die', 'stop', 'kill', 'pause', 'unpause', 'health_status', 'destroy', 'rename'] as const
const GONE = new Set(['die', 'stop', 'destroy'])
const INSPECT_CONCURRENCY = 8

/**
 * Discovers the services of the local Docker engine: lists the running containers, then
 * follows the event stream (no polling). When the engine is lost it reconnects with jittered
 * backoff, resumes the stream with `since` and resyncs fully; meanwhile the last known
 * services are kept for `graceMs`, so a dockerd restart does not make services flap.
 *
 * @example
 *   const src = new DockerSource({ advertiseIp: '10.0.0.5' }, { logger })
 *   src.on('change', (specs: LocalServiceSpec[]) => catalog.setLocal('docker', specs))
 *   src.start()
 */
export class DockerSource extends EventEmitter<{ change: [specs: LocalServiceSpec[]] }> implements ServiceSource {
  readonly source = 'docker'
  /** Container health (Docker HEALTHCHECK) for the `Docker` check type. */
  readonly healthFeed: DockerHealthFeed
  private readonly feed = new ContainerHealthFeed()
  private readonly docker: Dockerode
  private readonly log: Logger
  private readonly random: () => number
  private readonly clock: Clock
  private readonly graceMs: number
  private readonly backoffMs: number
  private readonly maxBackoffMs: number
  private readonly events: Counter<string>
  private readonly resyncs: Counter<string>
  /** Completed resyncs and failed connections, and the last failure while it lasts (status()). */
  private syncs = 0
  private failures = 0
  private lastError: { message: string; at: string } | undefined
  private readonly skipped: Counter<string>
  private readonly containers = new Map<string, ContainerFacts>()
  private readonly specs = new Map<string, LocalServiceSpec>()
  private readonly problemKeys = new Map<string, string>()
  private readonly stopInfo = new Map<string, StopInfo>()
  /** Containers that got their stop signal and still run: their instances drain. */
  private readonly stopping = new Map<string, { signal: number; timer: Timer }>()
  private readonly stopSignals: Counter<string>
  private readonly chains = new Map<string, Promise<void>>()
  private started = false
  private isConnected = false
  /** An engine answered at least once since start: a failure then is "lost", not "none there". */
  private everConnected = false
  /** Where the engine is looked for, as the operator gives it (unix:///path or tcp://host:port). */
  private readonly endpoint: string
  private gen = 0
  private attempt = 0
  private stream: NodeJS.ReadableStream | undefined
  private pending: DockerEvent[] | undefined
  private lastEventSec: number | undefined
  private reconnectTimer: Timer | undefined
  private graceTimer: Timer | undefined
  private firstSynced: () => void = () => undefined
  private readonly firstView = new Promise<void>((resolve) => (this.firstSynced = resolve))

  constructor(
    private readonly opts: DockerSourceOptions,
    components: DockerSourceComponents,
  ) {
    super()
    this.healthFeed = this.feed
    const endpoint = parseDockerHost(opts.dockerHost)
    this.endpoint = endpointText(endpoint)
    this.docker = components.docker ?? new Dockerode(endpoint)
    this.log = components.logger.child({ component: 'docker' })
    this.random = components.random ?? Math.random
    this.clock = components.clock ?? new RealClock()
    this.graceMs = opts.graceMs ?? 60_000
    this.backoffMs = opts.backoffMs ?? 200
    this.maxBackoffMs = opts.maxBackoffMs ?? 5000
    this.events = counter(components.registry, {
      name: 'shoal_docker_events_total',
      help: 'Docker container events handled, by action.',
      labelNames: ['action'],
    })
    this.resyncs = counter(components.registry, {
      name: 'shoal_docker_resyncs_total',
      help: 'Full resyncs with the Docker engine (at start and after every reconnect).',
    })
    this.stopSignals = counter(components.registry, {
      name: 'shoal_docker_stop_signals_total',
      help: 'Containers drained on their stop signal (outcome drained), and those that still ran after their stop timeout and were served again (outcome survived).',
      labelNames: ['outcome'],
    })
    this.skipped = counter(components.registry, {
      name: 'shoal_docker_skipped_labels_total',
      help: 'Container labels or port bindings skipped, by reason (README "Docker labels").',
      labelNames: ['reason'],
    })
    // Every series from the start, at zero (Prometheus's instrumentation guide).
    for (const action of ACTIONS) this.events.inc({ action }, 0)
    for (const reason of Object.values(SkipReason)) this.skipped.inc({ reason }, 0)
    for (const outcome of ['drained', 'survived']) this.stopSignals.inc({ outcome }, 0)
  }

  start(): void {
    if (this.started) return
    this.started = true
    void this.connect()
  }

  stop(): void {
    if (!this.started) return
    this.started = false
    this.gen++
    this.isConnected = false
    this.closeStream()
    this.reconnectTimer?.cancel()
    this.graceTimer?.cancel()
    this.reconnectTimer = this.graceTimer = undefined
    for (const s of this.stopping.values()) s.timer.cancel()
    this.stopping.clear()
  }

  /** The services of the running containers, sorted by instance id. */
  services(): LocalServiceSpec[] {
    return [...this.specs.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /**
   * For /api/sources.json: the engine's endpoint, whether the event stream is up, and while it
   * is not, why (`loads` counts completed resyncs, `rejected` failed connections).
   */
  status(): SourceStatus {
    const st: SourceStatus = {
      source: this.source,
      where: this.endpoint,
      ok: this.isConnected,
      services: this.specs.size,
      loads: this.syncs,
      rejected: this.failures,
    }
    if (!this.isConnected && this.lastError) st.error = this.lastError
    return st
  }

  /** True while the event stream is open and the last resync is done. */
  connected(): boolean {
    return this.isConnected
  }

  /**
   * Resolves once the engine's running containers have been listed and mapped for the first
   * time (after the 'change' they caused, if any): the agent announces its boot only then. It
   * stays pending while the engine is slow or unreachable; the agent bounds its wait.
   */
  firstSync(): Promise<void> {
    return this.firstView
  }

  private closeStream(): void {
    const s = this.stream as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined
    this.stream = undefined
    s?.removeAllListeners()
    s?.on('error', () => {})
    s?.destroy?.()
  }

  private async connect(): Promise<void> {
    const gen = ++this.gen
    try {
      const filters = JSON.stringify({ type: ['container'], event: ACTIONS })
      const since = this.lastEventSec
      const stream = await this.docker.getEvents(since === undefined ? { filters } : ({ filters, since } as never))
      if (gen !== this.gen) {
        ;(stream as unknown as { destroy?: () => void }).destroy?.()
        return
      }
      this.stream = stream
      this.pending = []
      let buf = ''
      stream.on('data', (chunk: Buffer | string) => {
        buf += chunk.toString()
        let nl: number
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim()
          buf = buf.slice(nl + 1)
          if (line) this.onLine(line)
        }
      })
      const lost = (err?: Error) => this.lost(gen, err ?? new Error('event stream ended'))
      stream.on('end', () => lost())
      stream.on('close', () => lost())
      stream.on('error', (err: Error) => lost(err))
      await this.resync(gen)
      if (gen !== this.gen) return
      const queued = this.pending ?? []
      this.pending = undefined
      this.isConnected = true
      this.everConnected = true
      this.syncs++
      this.lastError = undefined
      this.attempt = 0
      this.graceTimer?.cancel()
      this.graceTimer = undefined
      this.log.info({ containers: this.containers.size, services: this.specs.size, since }, 'connected to the Docker engine')
      for (const ev of queued) this.onEvent(ev)
      this.firstSynced()
    } catch (err) {
      this.lost(gen, err as Error)
    }
  }

  private lost(gen: number, err: Error): void {
    if (gen !== this.gen || !this.started) return
    this.gen++
    const was = this.isConnected
    this.isConnected = false
    this.failures++
    this.lastError = {
      message: this.everConnected
        ? `Docker engine at ${this.endpoint} lost (${err.message}); reconnecting`
        : `no Docker engine at ${this.endpoint} (${err.message}); use --discovery static, or set DOCKER_HOST / --docker-host`,
      at: new Date(this.clock.wallNow()).toISOString(),
    }
    this.pending = undefined
    this.closeStream()
    if (!this.graceTimer && this.specs.size > 0) {
      this.graceTimer = this.clock.setTimer(this.graceMs, () => {
        this.graceTimer = undefined
        logProblem(
          this.log,
          'warn',
          {
            what: `Docker engine at ${this.endpoint} still unreachable after ${this.graceMs / 1000} s: withdrawing its services`,
            input: this.endpoint,
            fix: 'start the engine (or fix --docker-host); its services come back at the next connection',
          },
          { graceMs: this.graceMs },
        )
        for (const id of [...this.containers.keys()]) this.apply(id, undefined, false)
        this.emit('change', this.services())
      })
    }
    const base = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** Math.min(this.attempt, 20))
    const delay = Math.round(base / 2 + (base / 2) * this.random())
    this.attempt++
    const line = { endpoint: this.endpoint, err: err.message, retryInMs: delay, attempt: this.attempt }
    if (was)
      logProblem(
        this.log,
        'warn',
        {
          what: `Docker engine at ${this.endpoint} lost (${err.message})`,
          input: this.endpoint,
          fix: `reconnecting, its services kept for ${this.graceMs / 1000} s; if it does not come back, see why the engine stopped`,
        },
        line,
      )
    else if (this.attempt === 1 && !this.everConnected)
      logProblem(
        this.log,
        'warn',
        {
          what: `no Docker engine at ${this.endpoint} (${err.message})`,
          input: this.endpoint,
          fix: 'use --discovery static, or set DOCKER_HOST / --docker-host',
        },
        line,
      )
    else this.log.debug(line, this.everConnected ? 'Docker engine still unreachable' : 'still no Docker engine')
    this.reconnectTimer = this.clock.setTimer(delay, () => {
      this.reconnectTimer = undefined
      if (this.started) void this.connect()
    })
  }

  private async resync(gen: number): Promise<void> {
    this.resyncs.inc()
    const list = await this.docker.listContainers({ all: false })
    const found = new Map<string, ContainerFacts>()
    const ids = list.map((c) => c.Id)
    let next = 0
    const worker = async () => {
      while (next < ids.length) {
        const id = ids[next++]!
        const facts = await this.inspect(id)
        if (facts?.running) found.set(id, facts)
      }
    }
    await Promise.all(Array.from({ length: Math.min(INSPECT_CONCURRENCY, ids.length) }, worker))
    if (gen !== this.gen) return
    let changed = false
    for (const id of [...this.containers.keys()]) if (!found.has(id)) changed = this.apply(id, undefined, false) || changed
    for (const [id, facts] of found) changed = this.apply(id, facts, false) || changed
    if (changed) this.emit('change', this.services())
  }

  /** Inspect a container; undefined when it no longer exists. Other errors propagate. */
  private async inspect(id: string): Promise<ContainerFacts | undefined> {
    try {
      const info = await this.docker.getContainer(id).inspect()
      // Not in dockerode's types: Config.StopSignal (a name or number; absent means SIGTERM) and Config.StopTimeout (seconds).
      const config = info.Config as { StopSignal?: string; StopTimeout?: number } | undefined
      const timeout = config?.StopTimeout
      this.stopInfo.set(id, {
        signal: signalNumber(config?.StopSignal) ?? SIGNALS.SIGTERM!,
        timeoutMs: typeof timeout === 'number' && timeout >= 0 ? timeout * 1000 : DEFAULT_STOP_TIMEOUT_MS,
      })
      return factsFromInspect(info)
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined
      throw err
    }
  }

  private onLine(line: string): void {
    let ev: DockerEvent
    try {
      ev = JSON.parse(line) as DockerEvent
    } catch {
      logProblem(
        this.log,
        'warn',
        {
          what: `unreadable Docker event from ${this.endpoint}: ${JSON.stringify(line.slice(0, 200))}`,
          input: this.endpoint,
          fix: 'skipped, the next resync corrects what it would have changed; report it with the engine version if it recurs',
        },
        { line: line.slice(0, 200) },
      )
      return
    }
    if (typeof ev.time === 'number') this.lastEventSec = Math.max(this.lastEventSec ?? 0, ev.time)
    if (this.pending) this.pending.push(ev)
    else this.onEvent(ev)
  }

  private onEvent(ev: DockerEvent): void {
    if (ev.Type !== undefined && ev.Type !== 'container') return
    const id = ev.Actor?.ID ?? ev.id
    const raw = ev.Action ?? ''
    const action = raw.split(':')[0]!.trim()
    if (!id || !(ACTIONS as readonly string[]).includes(action)) return
    this.events.inc({ action })
    const gen = this.gen
    this.chain(id, async () => {
      if (gen !== this.gen) return
      if (GONE.has(action)) {
        this.apply(id, undefined, true)
        return
      }
      if (action === 'kill' && this.opts.drainOnStop !== false && this.stopSignal(id, ev.Actor?.Attributes?.signal)) return
      if (action === 'health_status') {
        const h = raw.slice(raw.indexOf(':') + 1).trim() as DockerHealth
        const facts = this.containers.get(id)
        if (facts) facts.health = h
        this.feed.update(id, h)
        return
      }
      let facts: ContainerFacts | undefined
      try {
        facts = await this.inspect(id)
      } catch (err) {
        // The engine is going away; the resync after reconnecting settles this container.
        this.log.debug({ id, action, err: (err as Error).message }, 'inspect failed')
        return
      }
      if (gen !== this.gen) return
      this.apply(id, facts?.running ? facts : undefined, true)
    })
  }

  /**
   * A `kill` event: when its signal stops the container (SIGTERM, SIGINT, SIGQUIT, SIGKILL or
   * the container's own StopSignal), its instances drain at once, and until it dies or, having
   * survived its stop timeout plus the margin, runs on. True when it drains.
   */
  private stopSignal(id: string, raw: string | undefined): boolean {
    const signal = signalNumber(raw)
    const info = this.stopInfo.get(id)
    const facts = this.containers.get(id)
    if (signal === undefined || !info || !facts || (!STOP_SIGNALS.has(signal) && signal !== info.signal)) return false
    const prev = this.stopping.get(id)
    prev?.timer.cancel()
    const timer = this.clock.setTimer(info.timeoutMs + (this.opts.stopMarginMs ?? 2000), () => this.chain(id, () => this.survived(id)))
    this.stopping.set(id, { signal, timer })
    if (!prev) {
      this.stopSignals.inc({ outcome: 'drained' })
      this.log.info(
        { id: id.slice(0, 12), container: facts.name, signal, stopTimeoutMs: info.timeoutMs },
        'container got its stop signal: draining it',
      )
    }
    this.apply(id, facts, true)
    return true
  }

  /** A stopping container's stop timeout and the margin have passed: served again if it still runs. */
  private async survived(id: string): Promise<void> {
    if (!this.stopping.has(id)) return
    let facts: ContainerFacts | undefined
    try {
      facts = await this.inspect(id)
    } catch {
      // The engine is away: the last known state stands (its grace and resync take over).
      facts = this.containers.get(id)
    }
    if (!this.stopping.has(id)) return
    this.stopping.delete(id)
    if (facts?.running) {
      this.stopSignals.inc({ outcome: 'survived' })
      logProblem(
        this.log,
        'warn',
        {
          what: `container ${facts.name} (${id.slice(0, 12)}) still runs after its stop signal and stop timeout: serving it again (it handled the signal)`,
          input: facts.name,
          fix: 'if it should stop on that signal, fix its signal handling (or its STOPSIGNAL)',
        },
        { id: id.slice(0, 12), container: facts.name },
      )
    }
    this.apply(id, facts?.running ? facts : undefined, true)
  }

  private chain(id: string, fn: () => Promise<void>): void {
    const prev = this.chains.get(id) ?? Promise.resolve()
    const next = prev.then(fn).catch((err: Error) =>
      logProblem(
        this.log,
        'warn',
        {
          what: `container ${id.slice(0, 12)} update failed (${err.message})`,
          input: id.slice(0, 12),
          fix: 'its last known state stands until the next event or resync; check the engine if it recurs',
        },
        { id, err: err.message },
      ),
    )
    this.chains.set(id, next)
    void next.then(() => {
      if (this.chains.get(id) === next) this.chains.delete(id)
    })
  }

  /** Record one container's state (undefined: gone). Returns whether its spec changed. */
  private apply(id: string, facts: ContainerFacts | undefined, emit: boolean): boolean {
    const old = this.specs.get(id)
    if (!facts) {
      this.containers.delete(id)
      this.specs.delete(id)
      this.problemKeys.delete(id)
      this.stopInfo.delete(id)
      const stopping = this.stopping.get(id)
      stopping?.timer.cancel()
      this.stopping.delete(id)
      this.feed.update(id, undefined)
    } else {
      this.containers.set(id, facts)
      this.feed.update(id, facts.health)
      const r = mapContainer(facts, { advertiseIp: this.opts.advertiseIp, networks: this.opts.networks, onAgentLink: onLocalSubnet })
      const key = JSON.stringify(r.problems)
      if (r.problems.length > 0 && this.problemKeys.get(id) !== key) {
        for (const p of r.problems) {
          this.skipped.inc({ reason: p.reason })
          logProblem(
            this.log,
            'warn',
            { what: p.message, input: p.container, fix: `fix the ${p.label} label of the container (README "Docker labels")` },
            { container: p.container, label: p.label, reason: p.reason, skipped: p.skipped },
          )
        }
      }
      this.problemKeys.set(id, key)
      if (r.spec) {
        // The engine's HEALTHCHECK speaks for a container no check label names: one still
        // `starting` (or unhealthy) takes no traffic.
        if (!r.spec.check && facts.health !== 'none') r.spec.check = { type: 'Docker' }
        if (this.stopping.has(id)) r.spec.stopping = true
        this.specs.set(id, r.spec)
      } else this.specs.delete(id)
    }
    const now = this.specs.get(id)
    const changed = JSON.stringify(old) !== JSON.stringify(now)
    if (changed && emit) this.emit('change', this.services())
    return changed
  }
}

/** An endpoint as the operator writes it: `unix:///var/run/docker.sock`, `tcp://10.0.0.5:2375`. */
function endpointText(e: DockerEndpoint): string {
  return 'socketPath' in e ? `unix://${e.socketPath}` : `tcp://${formatHostPort({ host: e.host, port: e.port })}`
}
