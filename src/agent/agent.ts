import { EventEmitter } from 'node:events'
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import type Dockerode from 'dockerode'
import { formatHostPort, interfaceIpv4, listenError, type HostPort } from '../address.js'
import { RealClock, type Clock, type Timer } from '../clock.js'
import { isShoalError, ShoalError } from '../errors.js'
import type { Startable } from '../lifecycle.js'
import { INTERNAL_FAULT, logProblem, type Logger } from '../log.js'
import { collectProcessMetrics, Registry } from '../metrics.js'
import { Gossip, Keyring, NetTransport, resolveTiming, shortestSuspicionMs, type Member, type Transport } from '../gossip/index.js'
import {
  Catalog,
  GossipBridge,
  LocalServices,
  REGISTRY_PROTOCOL,
  ServicePortConflicts,
  StaticSource,
  type CatalogView,
  type ServiceSource,
  type SourceEntryProblem,
  type SourceStatus,
} from '../registry/index.js'
import { HealthScheduler } from '../health/index.js'
import type { DockerSource } from '../docker/index.js'
import { XdsServer } from '../xds/index.js'
import type { DnsServer } from '../dns/index.js'
import { HttpServer, registerBuildInfo, registerCatalogMetrics, registerGossipMetrics, registerRegistryMetrics } from '../http/index.js'
import type { IdentityIssuer, IdentityStatus } from '../identity/index.js'
import { trustDomainOf } from '../identity/names.js'
import { GOSSIP_KEY_RULE, readKeyFile, shoalVersion, type AgentConfig } from './config.js'
import { InboundPorts } from './inbound.js'
import { JoinWatch, RejectionLog, checkSeedNames } from './join.js'

/** The wait before a failed key-file read is tried again (reloadKeys): long enough for a shell or editor to finish writing. */
export const KEY_FILE_RETRY_MS = 200

/**
 * What an Agent may be handed instead of making its own: the logger always; the clock,
 * the gossip transport and the Docker client for tests and embedders.
 */
export interface AgentComponents {
  logger: Logger
  clock?: Clock
  transport?: Transport
  docker?: Dockerode
}

/** Events of an Agent. */
export interface AgentEvents {
  /** The warm start is done: xDS is served and /readyz answers 200. */
  ready: []
  /** A live node at another address holds our name: the caller should stop (exit code 2). */
  conflict: [info: { message: string }]
}

/** A started part and how to stop it; parts stop in the reverse of their start order. */
interface Part {
  name: string
  stop: () => void | Promise<void>
}

/**
 * One Shoal agent: gossip, catalog, local sources, health checks, xDS and HTTP, started
 * in dependency order and stopped in reverse.
 *
 * @example
 *   const agent = new Agent(parseAgentConfig(argv), { logger })
 *   await agent.start()
 *   await agent.stop({ leave: true })
 */
export class Agent extends EventEmitter<AgentEvents> {
  readonly config: AgentConfig
  readonly registry = new Registry()
  /** Ports actually bound (port 0 resolved). */
  readonly bound = { gossip: 0, xds: 0, http: 0, dns: 0 }
  private readonly logger: Logger
  private readonly clock: Clock
  private readonly components: AgentComponents
  /** Started parts, in start order. */
  private readonly parts: Part[] = []
  private gossip?: Gossip
  private catalog?: Catalog
  private xds?: XdsServer
  private dns?: DnsServer
  private identity?: IdentityIssuer
  private local?: LocalServices
  private readonly joinAbort = new AbortController()
  private readonly joinWatch: JoinWatch
  private readyTimer?: Timer
  private ready = false
  /** Ready without any peer exchange: xDS holds reconnecting clients until one, or until this timer (see warmStart). */
  private resumeHold?: Timer
  /** What the warm start still waits for (README "Warm start"): the sources' first views, a first clean exchange with a peer. */
  private readonly waitingFor = new Set<'sources' | 'peers'>(['sources', 'peers'])
  private started = false
  private stopping?: Promise<void>
  /** The second read of a key file whose first read failed (reloadKeys). */
  private keyRetry: Timer | undefined
  private leaveOnStop = true
  /** start() completed. */
  private up = false

  constructor(config: AgentConfig, components: AgentComponents) {
    super()
    this.config = config
    this.components = components
    this.logger = components.logger
    this.clock = components.clock ?? new RealClock()
    this.joinWatch = new JoinWatch({ seeds: config.join, cluster: config.cluster }, { logger: components.logger })
  }

  /** The warm start is done: xDS is served (see also joinPending). */
  isReady(): boolean {
    return this.ready
  }

  /** Why this agent is not in a cluster yet: `--join` was given and no seed has answered (nor a peer joined). */
  joinPending(): string | undefined {
    return this.joinWatch.pending()
  }

  /** The catalog as consumers see it (after start). */
  view(): CatalogView {
    if (!this.catalog) throw new ShoalError('SHOAL_ERR_NOT_STARTED', 'the agent is not started')
    return this.catalog
  }

  /** Gossip members (after start). */
  members(): Member[] {
    return this.gossip?.members() ?? []
  }

  /** Service identity (with --tls-dir): the intermediate in use or why there is none, and the services holding a leaf. */
  identityStatus(): IdentityStatus | undefined {
    return this.identity?.status()
  }

  /** Starts a part and records how to stop it. */
  private async run<T extends Startable, R>(
    name: string,
    part: T,
    start: (p: T) => R | Promise<R>,
    stop: () => void | Promise<void> = () => part.stop(),
  ): Promise<R> {
    const r = await start(part)
    this.parts.push({ name, stop })
    return r
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    const cfg = this.config
    const log = this.logger
    const clock = this.clock
    // Unprefixed: the standard process_* and nodejs_* names that Node and process dashboards read.
    // The event-loop lag histogram samples every half probe timeout, at least 100 ms (lan 175 ms,
    // wan 1.5 s) rather than prom-client's 10 ms: its timer wakes the agent each time (at 10 ms
    // it was a third of an idle agent's CPU). A stall long enough to fail a probe spans a sample
    // and is recorded at half its length or more; each sample measures the lag to the microsecond.
    const probeTimeoutMs = resolveTiming(cfg.profile).probeTimeoutMs
    collectProcessMetrics(this.registry, { eventLoopMonitoringPrecision: Math.max(100, Math.floor(probeTimeoutMs / 2)) })
    registerBuildInfo(this.registry, { version: shoalVersion(), node: cfg.node, cluster: cfg.cluster })
    // Before anything binds: a --join of names that all resolve to nothing, or an --xds-interfaces
    // interface this host lacks, is a start-up error.
    await checkSeedNames(cfg.join)
    const xdsAlsoOn = xdsInterfaceAddresses(cfg.xdsInterfaces)

    const keyring = this.loadKeyring()
    const transport = this.components.transport ?? new NetTransport({ bind: cfg.bind }, { logger: log })
    const gossip = new Gossip(
      // The registry's message protocol, beside gossip's own `proto` (README "Upgrades").
      {
        name: cfg.node,
        cluster: cfg.cluster,
        profile: cfg.profile,
        advertise: cfg.advertise,
        keyring,
        meta: { reg: String(REGISTRY_PROTOCOL) },
      },
      { transport, clock, logger: log },
    )
    this.gossip = gossip
    // Both sides log a name conflict (the gossip layer's line, at most once a minute per name);
    // only the joining node (join() rejects) refuses to run.
    const rejections = new RejectionLog({}, { logger: log.child({ component: 'gossip' }), clock })
    gossip.on('rejected', (r) => rejections.add(r))
    // A peer that joins us puts us in a cluster as much as a seed that answers.
    gossip.on('join', (m) => {
      if (m.name !== cfg.node) this.joinWatch.answered()
    })

    // The gossip port is bound before anything else starts: the sources' health checks may
    // probe it (npm start's example checks the agent's own gossip port, and failed its first
    // run with "connection refused"), and a busy --bind stops start-up before half an agent
    // runs. Bound is not announced: until gossip starts, after the sources' first views
    // (below), the transport drops datagrams and closes streams unanswered, so no peer
    // hears from this boot before it knows what runs here (issue 12, "Nothing lost").
    this.bound.gossip = (await this.run('gossip-transport', transport, (tr) => listening('--bind', cfg.bind, tr.start()))).port

    // Gossip starts, and so announces this boot, only after the sources' first views (below);
    // the catalog needs only the boot id now and learns its address then.
    const catalog = new Catalog({ cluster: cfg.cluster, self: cfg.node }, { clock, logger: log })
    this.catalog = catalog
    catalog.setLocalBoot(gossip.bootId)
    await this.run('catalog', catalog, (c) => c.start())
    const bridge = new GossipBridge({}, { catalog, gossip, logger: log })
    if (cfg.tlsDir !== undefined) await this.startIdentity(cfg.tlsDir, catalog)

    // Sources are made before health checks (the Docker check reads the Docker source's feed)
    // and started after the servers (the example services check the agent itself).
    const sources: ServiceSource[] = []
    let docker: DockerSource | undefined
    if (cfg.discovery.includes('docker')) {
      // Loaded only when on: Docker support (dockerode and its HTTP stack) costs an agent without it memory (README "Memory").
      const { DockerSource } = await import('../docker/index.js')
      docker = new DockerSource(
        { advertiseIp: cfg.advertise.host, dockerHost: cfg.dockerHost, networks: cfg.dockerNetworks, drainOnStop: cfg.drainOnStop },
        { logger: log, registry: this.registry, docker: this.components.docker, clock },
      )
      sources.push(docker)
    }
    if (cfg.static !== undefined)
      sources.push(new StaticSource({ path: cfg.static, advertiseIp: cfg.advertise.host }, { logger: log, registry: this.registry, clock }))

    const health = new HealthScheduler(
      { allowExternal: cfg.allowExternalChecks },
      { logger: log, registry: this.registry, dockerHealth: docker?.healthFeed, clock },
    )
    await this.run('health', health, (h) => h.start())
    const local = new LocalServices({ advertiseIp: cfg.advertise.host }, { catalog, health, logger: log })
    this.local = local
    // The order sources are first set decides which wins an instance id both announce.
    for (const s of sources) local.setSource(s.source, [])
    await this.run('local-services', local, (l) => l.start())

    // ServicePort conflicts from the catalog itself, whatever xDS client is connected (or none).
    const conflicts = new ServicePortConflicts({ catalog, logger: log, clock })
    await this.run('serviceport-conflicts', conflicts, (c) => c.start())

    const xds = new XdsServer(
      {
        bind: cfg.xds,
        alsoOn: xdsAlsoOn,
        envoyBind: cfg.envoyBind,
        localHost: cfg.node,
        tls: cfg.tlsDir !== undefined ? { mode: cfg.tlsMode, trustDomain: trustDomainOf(cfg.cluster) } : undefined,
        socket: cfg.xdsSocket,
      },
      { logger: log, catalog, registry: this.registry, clock, identities: this.identity },
    )
    this.xds = xds
    this.bound.xds = (await this.run('xds', xds, (x) => listening('--xds', cfg.xds, x.start()))).port
    const http = new HttpServer(
      { bind: cfg.http, cluster: cfg.cluster, node: cfg.node, apiToken: cfg.apiToken, maxWatchStreams: cfg.httpWatchMax },
      {
        logger: log,
        catalog,
        membership: gossip,
        control: local,
        conflicts: () => conflicts.list(),
        ready: () => this.ready,
        joinPending: () => this.joinWatch.pending(),
        keys: () => gossip.keyUse(),
        sources: () =>
          sources.map((src) =>
            withEntryProblems(
              src.status?.() ?? { source: src.source, where: '', ok: true, services: src.services().length, loads: 0, rejected: 0 },
              local.entryProblems(src.source),
            ),
          ),
        xdsDebug: () => xds.debugInfo(),
        registry: this.registry,
      },
    )
    this.bound.http = (await this.run('http', http, (h) => listening('--http', cfg.http, h.start()))).port
    const dnsCfg = cfg.dns
    if (dnsCfg) {
      const { DnsServer } = await import('../dns/index.js')
      const dns = new DnsServer(
        { bind: dnsCfg.bind, domain: dnsCfg.domain, ttlSeconds: dnsCfg.ttlSeconds, recursors: dnsCfg.recursors, envoyBind: cfg.envoyBind },
        { logger: log, catalog, registry: this.registry },
      )
      this.dns = dns
      this.bound.dns = (await this.run('dns', dns, (d) => listening('--dns', dnsCfg.bind, d.start()))).port
      // Like xDS: no answers from a catalog that has not had its first push-pull yet.
      if (this.ready) dns.setReady(true)
    }

    // The agent's own labels (shoal.inbound) on what each source reports.
    const inbound = new InboundPorts(cfg.inboundPorts, cfg.advertise.host, log.child({ component: 'inbound' }), this.registry)
    for (const s of sources) {
      s.on('change', (specs) => local.setSource(s.source, inbound.decorate(s.source, specs)))
      await this.run(`${s.source}-source`, s, (src) => src.start())
      local.setSource(s.source, inbound.decorate(s.source, s.services()))
    }

    // Issue 12: this boot is announced only with what runs here, so no peer (and no Envoy)
    // ever sees this host with less than it had before a restart.
    await this.firstViews(sources, shortestSuspicionMs(gossip.timing) / 2)
    if (this.stopping) return
    await this.run(
      'gossip',
      gossip,
      (g) => listening('--bind', cfg.bind, g.start()),
      () => this.stopGossip(gossip),
    )
    this.bound.gossip = gossip.localMember().port
    catalog.setHost(cfg.node, {
      state: 'alive',
      bootId: gossip.bootId,
      address: formatHostPort({ host: gossip.localMember().addr, port: this.bound.gossip }),
    })
    // After gossip: the bridge's first act is to broadcast every local record.
    await this.run('registry-bridge', bridge, (b) => b.start())
    bridge.once('synced', () => this.readyPart('peers', 'first exchange with a peer'))

    registerGossipMetrics(
      this.registry,
      () => gossip.stats(),
      () => gossip.members(),
      transport instanceof NetTransport ? () => transport.stats() : undefined,
    )
    registerCatalogMetrics(this.registry, catalog, () => conflicts.list().length)
    registerRegistryMetrics(this.registry, () => ({
      trimmed: local.stats.trimmed,
      refused: local.stats.refused,
      drains: local.stats.drains,
      rejected: bridge.stats.recordsRejected,
      unknownMessages: bridge.stats.unknownMessages,
      unknownFields: bridge.stats.unknownFields,
      notices: { sent: bridge.stats.noticesSent, received: bridge.stats.noticesIn, applied: bridge.stats.noticesApplied },
      noticePulls: { ok: bridge.stats.sincePulls - bridge.stats.sincePullsFailed, failed: bridge.stats.sincePullsFailed },
    }))
    this.watchKeyFile()
    this.warmStart(bridge)
    this.up = true
    log.info(
      {
        node: cfg.node,
        gossip: formatHostPort({ host: gossip.localMember().addr, port: this.bound.gossip }),
        ui: `http://${formatHostPort({ host: cfg.http.host, port: this.bound.http })}/`,
        xds: formatHostPort({ host: cfg.xds.host, port: this.bound.xds }),
        ...(xdsAlsoOn.length > 0 ? { xdsAlsoOn } : {}),
        ...(cfg.xdsSocket !== undefined ? { xdsSocket: cfg.xdsSocket } : {}),
        ...(cfg.dns ? { dns: formatHostPort({ host: cfg.dns.bind.host, port: this.bound.dns }) } : {}),
      },
      // The one line that says the agent listens: logged only once every listener is bound.
      'shoal agent started',
    )
  }

  /**
   * Service identity: a leaf for every service name among this host's records (tombstones
   * aside, whatever their health: an unhealthy instance still needs its identity to recover).
   * Started before the local services so it hears their first records.
   */
  private async startIdentity(dir: string, catalog: Catalog): Promise<void> {
    const cfg = this.config
    // Loaded only with --tls-dir: the X.509 stack is a few MiB an agent without identities does not need.
    const { IdentityIssuer } = await import('../identity/index.js')
    const identity = new IdentityIssuer(
      { dir, trustDomain: trustDomainOf(cfg.cluster), leafTtlMs: cfg.tlsLeafTtlMs, node: cfg.node },
      { logger: this.logger, clock: this.clock, registry: this.registry },
    )
    this.identity = identity
    await this.run('identity', identity, (i) => i.start())
    const localNames = () => catalog.localRecords().flatMap((r) => (r.status === 'tombstone' ? [] : [r.name]))
    // One name list per turn, not per record: a burst of N local changes (a host's containers
    // starting together) would otherwise copy and scan all N records N times.
    let queued = false
    const unsubscribe = catalog.onLocalChange(() => {
      if (queued) return
      queued = true
      queueMicrotask(() => {
        queued = false
        identity.setServices(localNames()) // a no-op once the issuer has stopped
      })
    })
    this.parts.push({ name: 'identity-feed', stop: unsubscribe })
    identity.setServices(localNames())
  }

  /**
   * Waits until every discovery source has reported its first full view, at most `ms` (half
   * the profile's shortest suspicion, so that no peer declares this host dead meanwhile);
   * then names the sources still missing. The warm start goes on waiting for them.
   */
  private async firstViews(sources: readonly ServiceSource[], ms: number): Promise<void> {
    const missing = new Set(sources.map((s) => s.source))
    for (const s of sources) void s.firstSync().then(() => missing.delete(s.source))
    const all = Promise.all(sources.map((s) => s.firstSync()))
    void all.then(() => this.readyPart('sources', 'every discovery source reported its first view'))
    let timer: Timer | undefined
    const gaveUp = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => (timer = this.clock.setTimer(ms, () => resolve(true)))),
    ])
    timer?.cancel()
    if (gaveUp && missing.size > 0) {
      logProblem(
        this.logger,
        'warn',
        {
          what: `announcing this boot without the first view of ${[...missing].join(', ')} (none within ${ms} ms, half the shortest suspicion time)`,
          input: [...missing].join(', '),
          fix:
            'its services follow when it answers, and xDS waits for them up to --ready-timeout; if this repeats, see why that source is slow (its sources.json entry)' +
            // Docker discovery is on by default: with a static file and no engine meant to run, say how to turn it off.
            (missing.has('docker') && this.config.discovery.includes('static')
              ? '; if no Docker engine is meant to run on this host, give --discovery static'
              : ''),
        },
        { missing: [...missing], waitedMs: ms },
      )
    }
  }

  /** One condition of the warm start is met; ready once none is left. A peer exchange after the ready timeout releases held xDS clients. */
  private readyPart(part: 'sources' | 'peers', why: string): void {
    this.waitingFor.delete(part)
    if (part === 'peers' && this.resumeHold) this.releaseResuming(why)
    if (this.waitingFor.size === 0) this.markReady(why)
  }

  /** Serve the xDS clients that reconnected holding a configuration, held since the ready timeout. */
  private releaseResuming(why: string): void {
    if (!this.resumeHold || this.stopping) return
    this.resumeHold.cancel()
    this.resumeHold = undefined
    this.xds?.setReady(true)
    this.logger.info({ why }, 'serving xDS to reconnecting clients too')
  }

  /**
   * Warm start: serve xDS and report ready only once every discovery source has reported its
   * first view and the first exchange with a peer (our join, or a peer's join to us) brought
   * everything it holds; or after --ready-timeout, saying what was still missing. So an empty
   * or partial catalog never wipes a running Envoy.
   */
  private warmStart(bridge: GossipBridge): void {
    const gossip = this.gossip!
    this.readyTimer = this.clock.setTimer(this.config.readyTimeoutMs, () => {
      const unsynced = bridge.unsyncedOwners()
      // No exchange at all (none rejected a record either): the view holds this host only.
      const alone = this.waitingFor.has('peers') && unsynced.length === 0
      const missing = [...this.waitingFor].map((p) =>
        p === 'sources'
          ? 'the first view of every source'
          : alone
            ? "any peer exchange (no peer has exchanged state with this agent yet, so only this host's services are known)"
            : `a clean exchange with a peer (records of ${unsynced.join(', ')} were rejected)`,
      )
      if (alone) this.holdResuming()
      this.markReady(`ready timeout: serving without ${missing.join(' and ')}`)
    })
    this.parts.push({
      name: 'warm-start',
      stop: () => {
        this.readyTimer?.cancel()
        this.resumeHold?.cancel()
      },
    })
    if (this.config.join.length === 0) return
    gossip
      .join(this.config.join, { retry: true, signal: this.joinAbort.signal, onAttempt: (a) => this.joinWatch.attempt(a) })
      .then((n) => {
        this.joinWatch.answered()
        this.logger.info({ seeds: n }, 'joined the cluster')
      })
      .catch((err: unknown) => {
        if (isShoalError(err, 'SHOAL_ERR_NAME_CONFLICT')) this.emit('conflict', { message: err.message })
        else if (!this.joinAbort.signal.aborted)
          logProblem(
            this.logger,
            'warn',
            {
              what: `join failed (${(err as Error).message})`,
              input: `--join ${this.config.join.map(formatHostPort).join(',')}`,
              fix: 'check that a seed is reachable (see /readyz and the lines before this one); restart the agent to try again',
            },
            { err },
          )
      })
  }

  /**
   * The ready timeout came with no peer exchange: serve new xDS clients this host's view, but
   * never a client that reconnects holding a configuration (an Envoy after this agent
   * restarted: its Clusters of other hosts would all go). It keeps what it holds until the
   * first peer exchange (a peer's probe brings one within about a probe interval: the gossip
   * join back), or, when none comes, for two push-pull intervals (lan 60 s): by then any peer
   * that knows this agent would have push-pulled with it, so this host is most likely alone.
   */
  private holdResuming(): void {
    const holdMs = 2 * this.gossip!.timing.pushPullIntervalMs
    this.resumeHold = this.clock.setTimer(holdMs, () => {
      logProblem(
        this.logger,
        'warn',
        {
          what: `still no peer exchange after ${holdMs / 1000} s more`,
          input: this.config.join.length === 0 ? 'no --join' : `--join ${this.config.join.map(formatHostPort).join(',')}`,
          fix: "serving reconnecting xDS clients this host's services only; give --join a reachable agent's gossip address",
        },
        { heldMs: holdMs },
      )
      this.releaseResuming(`no peer exchange within ${holdMs} ms after the ready timeout`)
    })
    logProblem(
      this.logger,
      'warn',
      {
        what: `no peer has exchanged state with this agent yet; serving only this host's services to new xDS clients, and holding clients that reconnect with a configuration (keeping theirs) for up to ${holdMs / 1000} s until a peer does`,
        input: this.config.join.length === 0 ? 'no --join' : `--join ${this.config.join.map(formatHostPort).join(',')}`,
        fix:
          this.config.join.length === 0
            ? 'if other agents run, give --join with the gossip address of one (or more) of them'
            : 'check that a --join seed is reachable (see /readyz)',
      },
      { readyTimeoutMs: this.config.readyTimeoutMs, holdMs, join: this.config.join },
    )
  }

  private markReady(why: string): void {
    if (this.ready || this.stopping) return
    this.ready = true
    this.readyTimer?.cancel()
    this.xds?.setReady(true, { holdResuming: this.resumeHold !== undefined })
    this.dns?.setReady(true)
    this.logger.info({ why }, 'ready: serving xDS')
    this.emit('ready')
  }

  private loadKeyring(): Keyring | undefined {
    const keys = this.config.keyFile !== undefined ? readKeyFile(this.config.keyFile) : this.config.keys
    return keys.length > 0 ? Keyring.fromBase64(keys) : undefined
  }

  /**
   * Re-read the key file (SIGHUP or a change on disk); a bad file keeps the current ring. A read
   * that fails is tried once more after KEY_FILE_RETRY_MS, and only that second failure is an
   * error: a shell's `>` or an editor truncates the file before writing it, and the change event
   * can come in between. A new call in the meantime replaces the pending retry.
   */
  reloadKeys(): void {
    if (this.config.keyFile === undefined || !this.gossip) return
    this.keyRetry?.cancel()
    this.keyRetry = undefined
    const first = this.tryReloadKeys()
    if (first === undefined) return
    this.logger.debug(
      { file: this.config.keyFile, err: first.message, retryMs: KEY_FILE_RETRY_MS },
      'key file unreadable; reading it again',
    )
    this.keyRetry = this.clock.setTimer(KEY_FILE_RETRY_MS, () => {
      this.keyRetry = undefined
      if (this.stopping) return
      const err = this.tryReloadKeys()
      if (err === undefined) return
      logProblem(
        this.logger,
        'error',
        {
          what: `key file rejected: ${err.message}`,
          input: this.config.keyFile!,
          fix: `keeping the current keys; fix the file (one key a line: ${GOSSIP_KEY_RULE}; write it to a temporary file and mv it in place) and send SIGHUP`,
        },
        { err: err.message, file: this.config.keyFile },
      )
    })
  }

  /** One read of the key file into the gossip ring; the error when the file is refused. */
  private tryReloadKeys(): Error | undefined {
    try {
      const ring = this.loadKeyring()
      this.gossip!.setKeyring(ring)
      this.logger.info({ file: this.config.keyFile, keys: ring?.keys().length ?? 0 }, 'gossip keys reloaded')
      return undefined
    } catch (err) {
      return err as Error
    }
  }

  /** Re-read the intermediate in --tls-dir (SIGHUP); resolves when the leaves it causes are written. */
  reloadIdentity(): Promise<void> {
    return this.identity?.reload() ?? Promise.resolve()
  }

  private watchKeyFile(): void {
    const file = this.config.keyFile
    if (file === undefined) return
    this.parts.push({ name: 'key-file-retry', stop: () => this.keyRetry?.cancel() })
    let watcher: FSWatcher
    try {
      // Watch the folder: tools that rewrite a file by rename would leave a file watch behind.
      watcher = watch(dirname(file), { persistent: false }, (_ev, name) => {
        if (name === null || name.toString() === basename(file)) this.reloadKeys()
      })
    } catch (err) {
      logProblem(
        this.logger,
        'warn',
        { what: `cannot watch the key file (${(err as Error).message})`, input: file, fix: 'send the agent SIGHUP after changing it' },
        { err: (err as Error).message, file },
      )
      return
    }
    this.parts.push({ name: 'key-file-watch', stop: () => watcher.close() })
  }

  /** With `leave`, withdraw from the cluster gracefully before the sockets close. */
  private async stopGossip(gossip: Gossip): Promise<void> {
    if (this.leaveOnStop) {
      try {
        await gossip.leave(3000)
      } catch (err) {
        logProblem(
          this.logger,
          'warn',
          {
            what: `leave did not complete (${(err as Error).message})`,
            input: this.config.node,
            fix: "the other agents mark this node dead once their suspicion times out; nothing to do unless it recurs (then check that the peers' gossip ports are reachable)",
          },
          { err: (err as Error).message },
        )
      }
    }
    await gossip.stop()
  }

  /**
   * A graceful leave withdraws this host's services from every other host at once. First they
   * are shown draining (reason `agent-leaving`) for `--leave-drain`, while every part still
   * runs, so that clients elsewhere stop picking them and the calls they have in flight finish.
   */
  private async drainBeforeLeave(): Promise<void> {
    const ms = this.config.leaveDrainMs
    if (ms <= 0 || !this.local) return
    const n = this.local.drainAll()
    if (n === 0) return
    this.logger.info({ instances: n, graceMs: ms }, "leaving: draining this host's services first")
    await new Promise<void>((resolve) => this.clock.setTimer(ms, resolve))
  }

  /** Stop every started part in reverse start order. With `leave`, withdraw from the cluster gracefully first. */
  stop(opts: { leave?: boolean } = {}): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop(opts.leave ?? true)
    return this.stopping
  }

  private async doStop(leave: boolean): Promise<void> {
    this.leaveOnStop = leave
    this.joinAbort.abort()
    if (leave && this.up) await this.drainBeforeLeave()
    for (const p of this.parts.reverse()) {
      try {
        await p.stop()
      } catch (err) {
        logProblem(
          this.logger,
          'warn',
          { what: `stopping the ${p.name} part failed (${(err as Error).message})`, input: p.name, fix: INTERNAL_FAULT },
          { err, part: p.name },
        )
      }
    }
    this.parts.length = 0
    if (this.up) this.logger.info({ left: leave }, 'shoal agent stopped')
  }
}

/**
 * The IPv4 address of each `--xds-interfaces` interface. Throws SHOAL_ERR_CONFIG naming one
 * that is missing or has no IPv4 address (docker_gwbridge exists once the node is in a swarm).
 */
function xdsInterfaceAddresses(names: string[]): string[] {
  return names.map((name) => {
    const ip = interfaceIpv4(name)
    if (ip === undefined)
      throw new ShoalError(
        'SHOAL_ERR_CONFIG',
        `--xds-interfaces: no interface "${name}" with an IPv4 address on this host (\`ip -4 addr show ${name}\`; docker_gwbridge exists once the node is in a swarm)`,
      )
    return ip
  })
}

/**
 * A source's status with what the record limits did to its entries: a refused entry is not
 * served, so the source is not `ok` and announces one service fewer.
 */
function withEntryProblems(st: SourceStatus, entries: SourceEntryProblem[]): SourceStatus {
  if (entries.length === 0) return st
  const refused = new Set(entries.filter((e) => e.action === 'refused').map((e) => e.id)).size
  return { ...st, ok: st.ok && refused === 0, services: Math.max(0, st.services - refused), entries }
}

/** A listener's start, with a bind failure named by the flag that sets its address. */
async function listening<R>(flag: string, address: HostPort, starting: Promise<R>): Promise<R> {
  try {
    return await starting
  } catch (err) {
    if (isShoalError(err, 'SHOAL_ERR_BIND')) throw listenError(flag, address, err.cause ?? err)
    throw err
  }
}
