import { EventEmitter } from 'node:events'
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { Registry, collectDefaultMetrics } from 'prom-client'
import type { Logger } from '../log.js'
import type { CatalogView } from '../registry/index.js'
import type { Member } from '../gossip/index.js'
import { ShoalError } from '../errors.js'
import { Gossip, Keyring, NetTransport } from '../gossip/index.js'
import { RealClock } from '../clock.js'
import { Catalog, GossipBridge, LocalServices, StaticSource } from '../registry/index.js'
import { HealthScheduler } from '../health/index.js'
import { DockerSource } from '../docker/index.js'
import { XdsServer } from '../xds/index.js'
import { HttpServer, registerCatalogMetrics, registerGossipMetrics } from '../http/index.js'
import { formatHostPort, readKeyFile, type AgentConfig } from './config.js'

/**
 * One Shoal agent: gossip, catalog, local sources, health checks, xDS and HTTP, started
 * in dependency order and stopped in reverse.
 *
 * @example
 *   const agent = new Agent(parseAgentConfig(argv), { logger })
 *   await agent.start()
 *   await agent.stop({ leave: true })
 */
export class Agent extends EventEmitter {
  readonly config: AgentConfig
  readonly registry = new Registry()
  private readonly logger: Logger
  private readonly clock = new RealClock()
  private gossip?: Gossip
  private catalog?: Catalog
  private bridge?: GossipBridge
  private health?: HealthScheduler
  private local?: LocalServices
  private staticSource?: StaticSource
  private docker?: DockerSource
  private xds?: XdsServer
  private http?: HttpServer
  private keyWatcher?: FSWatcher
  private readonly joinAbort = new AbortController()
  private readyTimer?: { cancel(): void }
  private ready = false
  private started = false
  private stopping?: Promise<void>
  /** Ports actually bound (port 0 resolved). */
  readonly bound = { gossip: 0, xds: 0, http: 0 }

  constructor(config: AgentConfig, components: { logger: Logger }) {
    super()
    this.config = config
    this.logger = components.logger
  }

  isReady(): boolean {
    return this.ready
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

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    const cfg = this.config
    const log = this.logger
    collectDefaultMetrics({ register: this.registry, prefix: 'shoal_process_' })

    const keyring = this.loadKeyring()
    const transport = new NetTransport({ bind: cfg.bind }, { logger: log })
    const gossipOpts: ConstructorParameters<typeof Gossip>[0] = {
      name: cfg.node,
      cluster: cfg.cluster,
      profile: cfg.profile,
      advertise: cfg.advertise,
    }
    if (keyring) gossipOpts.keyring = keyring
    const gossip = new Gossip(gossipOpts, { transport, clock: this.clock, logger: log })
    this.gossip = gossip
    // Both sides log a name conflict; only the joining node (join() rejects) refuses to run.
    gossip.on('conflict', (info) => this.logger.warn(info, 'another node claims our name'))

    // Membership first: the catalog needs our boot id and bound address.
    await gossip.start()
    this.bound.gossip = gossip.localMember().port
    const catalog = new Catalog(
      { cluster: cfg.cluster, self: cfg.node, address: `${gossip.localMember().addr}:${this.bound.gossip}` },
      { clock: this.clock, logger: log },
    )
    this.catalog = catalog
    this.bridge = new GossipBridge({}, { catalog, gossip, logger: log })

    if (cfg.discovery.includes('docker')) {
      const opts: ConstructorParameters<typeof DockerSource>[0] = { advertiseIp: cfg.advertise.host }
      if (cfg.dockerHost !== undefined) opts.dockerHost = cfg.dockerHost
      if (cfg.dockerNetwork !== undefined) opts.network = cfg.dockerNetwork
      this.docker = new DockerSource(opts, { logger: log, registry: this.registry })
    }
    const healthComponents: ConstructorParameters<typeof HealthScheduler>[1] = {
      logger: log,
      registry: this.registry,
    }
    if (this.docker) healthComponents.dockerHealth = this.docker.healthFeed
    this.health = new HealthScheduler({ allowExternal: cfg.allowExternalChecks }, healthComponents)
    this.local = new LocalServices({ advertiseIp: cfg.advertise.host }, { catalog, health: this.health, logger: log })
    if (cfg.static !== undefined) {
      this.staticSource = new StaticSource({ path: cfg.static, advertiseIp: cfg.advertise.host }, { logger: log })
    }

    catalog.setLocalBoot(gossip.bootId)
    catalog.start()
    this.bridge.start()
    this.bridge.once('synced', () => this.markReady('first push-pull with a peer'))
    this.health.start()
    this.local.start()
    this.xds = new XdsServer({ bind: formatHostPort(cfg.xds), envoyBind: cfg.envoyBind }, { logger: log, catalog, registry: this.registry })
    this.bound.xds = (await this.xds.start()).port
    // A peer's push-pull may already have completed the warm start while the server was starting.
    if (this.ready) this.xds.setReady(true)
    const httpOpts: ConstructorParameters<typeof HttpServer>[0] = { bind: formatHostPort(cfg.http), cluster: cfg.cluster, node: cfg.node }
    if (cfg.apiToken !== undefined) httpOpts.apiToken = cfg.apiToken
    this.http = new HttpServer(httpOpts, {
      logger: log,
      catalog,
      membership: gossip,
      control: this.local,
      ready: () => this.ready,
      xdsDebug: () => this.xds?.debugInfo(),
      registry: this.registry,
    })
    this.bound.http = (await this.http.start()).port
    // Sources last: the servers are up when the first checks run (examples check the agent itself).
    if (this.staticSource) {
      this.staticSource.on('change', (specs) => this.local!.setSource('static', specs))
      await this.staticSource.start()
      this.local.setSource('static', this.staticSource.services())
    }
    if (this.docker) {
      this.docker.on('change', (specs) => this.local!.setSource('docker', specs))
      await this.docker.start()
    }

    registerGossipMetrics(
      this.registry,
      () => gossip.stats(),
      () => gossip.members(),
    )
    registerCatalogMetrics(this.registry, catalog)

    this.watchKeyFile()
    this.warmStart()
    log.info(
      {
        node: cfg.node,
        gossip: `${gossip.localMember().addr}:${this.bound.gossip}`,
        ui: `http://${cfg.http.host}:${this.bound.http}/`,
        xds: `${cfg.xds.host}:${this.bound.xds}`,
      },
      'shoal agent started',
    )
  }

  /**
   * Warm start: serve xDS and report ready only after the first push-pull with a peer (our
   * join, or a peer's join to us), or after a bounded wait when alone, so an empty catalog
   * never wipes a running Envoy.
   */
  private warmStart(): void {
    const gossip = this.gossip!
    this.readyTimer = this.clock.setTimer(this.config.readyTimeoutMs, () =>
      this.markReady('no push-pull with a peer within the ready timeout'),
    )
    if (this.config.join.length > 0) {
      gossip
        .join(this.config.join, { retry: true, signal: this.joinAbort.signal })
        .then((n) => this.logger.info({ seeds: n }, 'joined the cluster'))
        .catch((err: unknown) => {
          if ((err as ShoalError).code === 'SHOAL_ERR_NAME_CONFLICT') this.emit('conflict', { message: (err as Error).message })
          else if (!this.joinAbort.signal.aborted) this.logger.warn({ err }, 'join failed')
        })
    }
  }

  private markReady(why: string): void {
    if (this.ready || this.stopping) return
    this.ready = true
    this.readyTimer?.cancel()
    this.xds?.setReady(true)
    this.logger.info({ why }, 'ready: serving xDS')
    this.emit('ready')
  }

  private loadKeyring(): Keyring | undefined {
    const keys = this.config.keyFile !== undefined ? readKeyFile(this.config.keyFile) : this.config.keys
    return keys.length > 0 ? Keyring.fromBase64(keys) : undefined
  }

  /** Re-read the key file (SIGHUP or a change on disk); a bad file keeps the current ring. */
  reloadKeys(): void {
    if (this.config.keyFile === undefined || !this.gossip) return
    try {
      const ring = this.loadKeyring()
      this.gossip.setKeyring(ring)
      this.logger.info({ file: this.config.keyFile, keys: ring?.keys().length ?? 0 }, 'gossip keys reloaded')
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'key file rejected; keeping the current keys')
    }
  }

  private watchKeyFile(): void {
    const file = this.config.keyFile
    if (file === undefined) return
    try {
      // Watch the folder: tools that rewrite a file by rename would leave a file watch behind.
      this.keyWatcher = watch(dirname(file), { persistent: false }, (_ev, name) => {
        if (name === null || name.toString() === basename(file)) this.reloadKeys()
      })
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, file }, 'cannot watch the key file; SIGHUP still reloads it')
    }
  }

  /** Stop in reverse order. With `leave`, withdraw from the cluster gracefully first. */
  stop(opts: { leave?: boolean } = {}): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop(opts.leave ?? true)
    return this.stopping
  }

  private async doStop(leave: boolean): Promise<void> {
    this.joinAbort.abort()
    this.readyTimer?.cancel()
    this.keyWatcher?.close()
    await this.http?.stop()
    await this.xds?.stop()
    await this.docker?.stop()
    await this.staticSource?.stop()
    this.local?.stop()
    this.health?.stop()
    this.bridge?.stop()
    if (this.gossip && leave && this.started) {
      try {
        await this.gossip.leave(3000)
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'leave did not complete')
      }
    }
    await this.gossip?.stop()
    this.catalog?.stop()
    this.logger.info({ left: leave }, 'shoal agent stopped')
  }
}
