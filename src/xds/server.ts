/**
 * The ADS server (state of the world) for the local Envoy and proxyless gRPC clients.
 *
 * Per stream and per type a TypeSubscription (subscription.ts) keeps the subscription, what
 * the client holds, the nonce and the ACKed and NACKed versions. Versions are content hashes
 * of what a response holds, so an unchanged view sends nothing and a NACKed version is
 * recognised (and never sent again) when the catalog produces it again.
 *
 * Every response goes out through one ordered pass over the stream (sync): make before break
 * (CDS, EDS, LDS, RDS, each still carrying what the client holds and is about to lose), then
 * removals, the referring type first, and the referred type only after the client ACKed the
 * referring type's removal. This holds on every stream whatever its history: a client that
 * reconnected holding a version the server cannot read has its Cluster removals wait the same
 * way (subscription.ts, "what the client holds").
 */
import type * as grpc from '@grpc/grpc-js'
import { randomBytes } from 'node:crypto'
import type { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { counter, gauge, histogram } from '../metrics.js'
import { INTERNAL_FAULT, LogLimiter, logProblem, type Logger, type Problem } from '../log.js'
import { invalidResource } from './validate.js'
import { formatHostPort, type HostPort } from '../address.js'
import { RealClock, type Clock, type Timer } from '../clock.js'
import type { CatalogView } from '../registry/types.js'
import type { ServiceIdentity, TlsMode } from '../identity/names.js'
import type { AuthzIssue, AuthzProblem, ClientNetwork, DropReason, DroppedEndpoint, ServicePortConflict } from './groups.js'
import {
  encodeDiscoveryResponse,
  checkXdsInstall,
  lazyXdsProtos,
  REMOVAL_TYPES,
  TypeUrl,
  XDS_TYPES,
  xdsType,
  xdsTypeOfLabel,
  type TypeLabel,
  type XdsProtos,
  type XdsType,
} from './protos.js'
import { clientNetworkOf, nodeKindOf, type NodeKind, type XdsNode } from './resources.js'
import { EnvoyExtras } from './envoy-extras.js'
import { isKeySecretName } from './envoy-tls.js'
import { ServerListeners } from './server-listeners.js'
import { bindUnixSocket } from './unix-socket.js'
import { FIRST_BYTES_WAIT_MS, grpcJs, LazyGrpcServer, type RefusedKind } from './grpc.js'
import {
  flavourName,
  restoredVariant,
  SnapshotBuilder,
  versionOfSet,
  type Flavour,
  type KindSnapshot,
  type ServedResource,
} from './snapshot.js'
import { TypeSubscription } from './subscription.js'
import { mtlsCapable, nodeService, NodeMeta } from './tls.js'

const NODE_KINDS: readonly NodeKind[] = ['envoy', 'grpc']
/** Why a DiscoveryRequest is ignored (shoal_xds_bad_requests_total{reason}). */
const BAD_REQUEST_REASONS = ['unknown_type', 'stale_nonce', 'error', 'bad_network', 'too_many_names', 'node_field_too_long'] as const

/**
 * Resource names one stream may subscribe to per type. An Envoy asks for one Cluster and one
 * ClusterLoadAssignment per ServicePort it routes to; 10,000 is far above any mesh one agent
 * serves, and bounds what a stream makes the agent keep (names of ~100 characters: ~1 MB per
 * type). A request beyond it ends the stream (RESOURCE_EXHAUSTED).
 */
export const MAX_NAMES_PER_TYPE = 10_000
/** Characters of node.id, node.cluster, node.user_agent_name and node metadata shoal.service: they go into log lines about the client. Beyond it the stream ends (INVALID_ARGUMENT). */
export const NODE_FIELD_MAX = 1024
/** Names /debug/xds lists per client and type; `nameCount` gives them all. */
export const DEBUG_NAMES_SHOWN = 100
const DROP_REASONS: readonly DropReason[] = ['duplicate_address', 'not_an_ip', 'port_out_of_range', 'no_reachable_address']
const AUTHZ_PROBLEMS: readonly AuthzProblem[] = ['missing', 'ambiguous', 'not_grpc', 'invalid']
/** Seconds; a push goes out at once after a quiet period and at most every 100 ms per client after that. */
const PUSH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

export interface XdsServerOptions {
  /** HOST:PORT of the ADS server; port 0 picks a free one. */
  bind: HostPort
  /**
   * More IPs to serve on, at the port `bind` got: e.g. the `docker_gwbridge` gateway address,
   * which containers on Swarm overlay networks reach their host by (`--xds-interfaces`).
   */
  alsoOn?: string[]
  /** IP the Envoy listeners bind (`--envoy-bind`). */
  envoyBind: string
  /** At most one catalog-driven push per client per this many ms (default 100). */
  minPushIntervalMs?: number
  /** Upstream connect timeout of the Clusters (default 1000 ms). */
  connectTimeoutMs?: number
  /** Graceful shutdown wait before streams are cut (default 2000 ms). */
  shutdownGraceMs?: number
  /** Outlier detection interval of the Clusters (default 10 000 ms). */
  outlierIntervalMs?: number
  /**
   * Longest wait of a Cluster removal for the client (default 1000 ms): for a reconnecting
   * client (its first request carries a version_info) to re-send its Listener subscription,
   * and for a client that names its Clusters to unsubscribe one its Listeners no longer name
   * (gRPC does, right after it ACKs the Listener removal).
   */
  removalGraceMs?: number
  /**
   * Service identity (README, Service identity): `--tls-mode` and the SPIFFE trust domain.
   * Absent or `off`: plain text only. `permissive`: mTLS resources for clients whose bootstrap
   * has Shoal's certificate providers, plain ones for the others. `strict`: mTLS resources for
   * every gRPC client.
   */
  tls?: { mode: TlsMode; trustDomain: string }
  /** This agent's node name: a server Listener's allow-list comes from its records; its instances get inbound Listeners. */
  localHost?: string
  /**
   * `--xds-socket`: a Unix socket (mode 0600) for the local Envoy. Only clients on it get Secrets
   * that hold a private key (README, mTLS between Envoy sidecars); a TCP client that asks for
   * one gets PERMISSION_DENIED and a warning naming it.
   */
  socket?: string
}

/**
 * The local services' identities (the agent's IdentityIssuer): which services hold a leaf,
 * and when that changes.
 */
export interface IdentityView {
  identity(service: string): ServiceIdentity | undefined
  /** Every service identity held now. */
  identities(): ServiceIdentity[]
  /** The node's own identity (what the host's Envoy shows on outbound connections), when issued. */
  nodeIdentity?(): ServiceIdentity | undefined
  on(event: 'change', listener: (id: ServiceIdentity) => void): unknown
  on(event: 'removed', listener: (service: string) => void): unknown
  off(event: 'change', listener: (id: ServiceIdentity) => void): unknown
  off(event: 'removed', listener: (service: string) => void): unknown
}

export interface XdsServerComponents {
  logger: Logger
  catalog: CatalogView
  registry?: Registry
  clock?: Clock
  /** With `tls`: an mTLS server Listener is served once its service holds an identity here. */
  identities?: IdentityView
}

/** What `/debug/xds` shows for one resource type of one client. */
export interface XdsTypeDebug {
  type: TypeLabel
  wildcard: boolean
  /** The first DEBUG_NAMES_SHOWN subscribed names, sorted. */
  names: string[]
  /** How many names the client subscribes to. */
  nameCount: number
  sentVersion: string | null
  ackedVersion: string | null
  nackedVersion: string | null
  nackError: string | null
  pushes: number
  /** The client has ACKed exactly what the catalog gives for its subscription, and nothing is in flight. */
  upToDate: boolean
}

/** What `/debug/xds` shows for one connected client. */
export interface XdsClientDebug {
  stream: number
  nodeId: string
  cluster: string
  userAgent: string
  kind: NodeKind
  /** The network it declared (node metadata `shoal.network`); null: a host's network. */
  network: ClientNetwork
  /** Instances it is not sent, with the reason (among them those with no address reachable from its network). */
  dropped: DroppedEndpoint[]
  /** The client is served the mTLS form of the resources (README, Service identity). */
  mtls: boolean
  /** The service the client says it is (node metadata `shoal.service`), or ''. */
  service: string
  /** The listener it came through: `tcp` (`--xds`) or `unix` (`--xds-socket`). */
  transport: Transport
  connectedAt: number
  /**
   * Held while resuming: it reconnected presenting a configuration other than this agent's
   * host-only view (from before the agent restarted), so it keeps what it has, unanswered,
   * until the first peer exchange (setReady; README "Warm start").
   */
  held: boolean
  types: XdsTypeDebug[]
}

export interface XdsDebugInfo {
  ready: boolean
  /** Ready with a host-only view (no peer exchange yet): clients resuming with another configuration are held. */
  holdResuming: boolean
  clients: XdsClientDebug[]
  conflicts: ServicePortConflict[]
  /**
   * Instances left out of a ClusterLoadAssignment for clients on a host's network (an address
   * listed twice, not an IP, a bad port, no published port); each client lists its own.
   */
  dropped: DroppedEndpoint[]
  /** Authorization requests that cannot be served: the listener denies everything (or, with failure_mode_allow, checks nothing). */
  authz: AuthzIssue[]
  invalid: Array<{ kind: NodeKind; type: string; name: string; errors: string[] }>
}

/** A DiscoveryRequest as the ADS method decodes it (keepCase field names, DECODE_OPTIONS). */
interface DiscoveryRequest {
  version_info?: string
  node?: XdsNode | null
  resource_names?: string[]
  type_url?: string
  response_nonce?: string
  error_detail?: { code?: number; message?: string } | null
}

/** Which of the agent's ADS listeners a stream came through. */
export type Transport = 'tcp' | 'unix'

/** One ADS stream: requests in, pre-encoded DiscoveryResponses out. */
type AdsStream = grpc.ServerDuplexStream<DiscoveryRequest, Buffer>

interface Client {
  stream: number
  call: AdsStream
  transport: Transport
  node: XdsNode | null
  kind: NodeKind
  /** The client's network (node metadata `shoal.network`): the addresses it is given. */
  network: ClientNetwork
  /** Ends the builder's hold on the client's network view (useNetwork). */
  releaseNetwork: (() => void) | null
  flavour: Flavour
  connectedAt: number
  types: Map<string, TypeSubscription>
  /** Clock.now() until which a reconnecting client's Listener request is waited for (see resumeGraceMs). */
  resumeUntil: number
  /** The version_info each first request presented, by type URL: the client holds a configuration already (Envoy after our restart). */
  presented: Map<string, string>
  /** Held while the server holds resuming clients: it presented a version other than what it would be sent (see setReady). */
  held: boolean
  /** Clock.now() after which a named client's Cluster removal goes out even if it did not unsubscribe. */
  removalDueAt: number | null
  graceTimer: Timer | null
  /** gRPC: the check that every Cluster the client ACKed has its assignment asked for (see checkAssignments). */
  edsCheck: Timer | null
  /** Clusters sent again once because their assignment was not asked for; cleared when it is. */
  resent: Set<string>
  /** A removal (or an answer of unknown holdings) waits for an ACK: the next ACK runs a sync. */
  waiting: boolean
  lastPushAt: number
  timer: Timer | null
  /** Clock.now() of the first catalog change not yet pushed to this client. */
  dirtySince: number | null
  /** Type URLs Shoal does not serve that this client asked for (warned once each, at most UNKNOWN_TYPES_KEPT). */
  unknownTypes: Set<string>
  closed: boolean
}

/** Unknown type URLs remembered per stream for the once-only warning; beyond it they are counted, not logged. */
const UNKNOWN_TYPES_KEPT = 16

export class XdsServer {
  private readonly log: Logger
  private readonly clock: Clock
  /**
   * NACK warnings (a client NACKs every response of a bad version) and refused streams (a
   * client retries at once): one a minute per client and type, or per reason, node and peer
   * address; dropped endpoints and unresolved authorization (warnLimited): one a minute per
   * endpoint or request, however often it comes and goes.
   */
  private readonly warnLimit: LogLimiter
  private readonly minInterval: number
  private readonly grace: number
  private server: LazyGrpcServer | null = null
  private port = 0
  private starting: Promise<{ port: number }> | null = null
  private unsubscribe: (() => void) | null = null
  /** Catalog changes not yet regrouped (see onCatalogChange). */
  private catalogUnsettled = false
  private ready = false
  /** Ready, but not for clients that hold a configuration already (see setReady). */
  private holdResuming = false
  private readonly clients = new Map<number, Client>()
  private nextStream = 1
  private protos: XdsProtos | null = null
  private builder: SnapshotBuilder | null = null
  private servers: ServerListeners | null = null
  /** The local Envoy's inbound Listeners, local Clusters and Secrets (with `tls` and `localHost`). */
  private extras: EnvoyExtras | null = null
  /** Envoy mTLS snapshots merged with the extras, per builder snapshot. */
  private readonly merged = new WeakMap<KindSnapshot, { epoch: number; snap: KindSnapshot }>()
  private unixServer: LazyGrpcServer | null = null
  private removeSocket: (() => Promise<void>) | null = null
  /** Local services holding an identity (for an mTLS server Listener). */
  private readonly withIdentity = new Set<string>()
  private unwatchIdentities: (() => void) | null = null
  private conflicts: ServicePortConflict[] = []
  /** The dropped lists last reported, per network view key. */
  private lastDropped = new Map<string, DroppedEndpoint[]>()
  /** Dropped endpoints present at the last report, by a key of (ServicePort, instance, address, reason): each is logged once while it lasts, and again (warnLimited) at most once a minute. */
  private loggedDrops = new Set<string>()
  private lastAuthz: AuthzIssue[] | null = null
  /** Authorization issues already logged, by a key of (ServicePort, target, detail): each is logged once while it lasts. */
  private loggedAuthz = new Map<string, AuthzIssue>()
  private readonly m: {
    clients: Gauge<'kind'>
    held: Gauge<'kind'>
    heldTotal: Counter<'kind'>
    regroups: Counter
    pushes: Counter
    acks: Counter
    nacks: Counter
    invalid: Counter
    refused: Counter<'reason'>
    badRequests: Counter
    allowProblems: Counter
    keyRefused: Counter
    badInbound: Counter
    dropped: Gauge
    authz: Gauge
    sent: Histogram
    acked: Histogram
  }

  constructor(
    private readonly opts: XdsServerOptions,
    private readonly components: XdsServerComponents,
  ) {
    this.log = components.logger.child({ component: 'xds' })
    this.clock = components.clock ?? new RealClock()
    this.warnLimit = new LogLimiter({}, { clock: this.clock })
    this.minInterval = opts.minPushIntervalMs ?? 100
    this.grace = opts.removalGraceMs ?? 1000
    const registry = components.registry
    this.m = {
      clients: gauge(registry, {
        name: 'shoal_xds_connected_clients',
        help: 'Connected ADS streams, by node kind (envoy, grpc; a stream is envoy until its node says otherwise).',
        labelNames: ['kind'],
      }),
      held: gauge(registry, {
        name: 'shoal_xds_held_clients',
        help: "Connected ADS streams held while resuming, by node kind: they reconnected with a configuration from before this agent's restart and keep it, unanswered, until the first peer exchange.",
        labelNames: ['kind'],
      }),
      heldTotal: counter(registry, {
        name: 'shoal_xds_resumes_held_total',
        help: 'ADS streams held while resuming since start (see shoal_xds_held_clients), by node kind.',
        labelNames: ['kind'],
      }),
      regroups: counter(registry, {
        name: 'shoal_xds_catalog_regroups_total',
        help: 'Times the xDS server regrouped the catalog: once per burst of catalog changes (all changes of one event-loop turn), not once per record.',
      }),
      pushes: counter(registry, {
        name: 'shoal_xds_pushes_total',
        help: 'DiscoveryResponses sent, by resource type.',
        labelNames: ['type'],
      }),
      acks: counter(registry, { name: 'shoal_xds_acks_total', help: 'ACKs received, by resource type.', labelNames: ['type'] }),
      nacks: counter(registry, { name: 'shoal_xds_nacks_total', help: 'NACKs received, by resource type.', labelNames: ['type'] }),
      invalid: counter(registry, {
        name: 'shoal_xds_invalid_resources_total',
        help: 'Resources that failed validation and were not served, by resource type.',
        labelNames: ['type'],
      }),
      badRequests: counter(registry, {
        name: 'shoal_xds_bad_requests_total',
        help: 'DiscoveryRequests ignored, by reason (unknown_type, stale_nonce, error, bad_network: node metadata shoal.network that does not read; too_many_names: over 10,000 names of one type, node_field_too_long: node.id, cluster, user_agent_name or metadata shoal.service over 1,024 characters, both ending the stream), and server Listener names that do not parse',
        labelNames: ['reason'],
      }),
      refused: counter(registry, {
        name: 'shoal_xds_refused_connections_total',
        help: 'Connections to the ADS listeners closed before gRPC because they did not begin as HTTP/2, by what they began as (tls, http1, not_http2; silent: no byte in 10 s)',
        labelNames: ['reason'],
      }),
      keyRefused: counter(registry, {
        name: 'shoal_xds_key_requests_refused_total',
        help: 'ADS streams over TCP ended for asking for a Secret that holds a private key (served only over --xds-socket)',
      }),
      badInbound: counter(registry, {
        name: 'shoal_xds_bad_inbound_labels_total',
        help: 'Records whose shoal.inbound label does not read (counted once per record and value): those ServicePorts have no inbound mTLS address',
      }),
      allowProblems: counter(registry, {
        name: 'shoal_xds_allow_problems_total',
        help: 'shoal.allow lists not applied as written: bad_name, instances_differ, not_enforced, plain_text_server',
        labelNames: ['reason'],
      }),
      dropped: gauge(registry, {
        name: 'shoal_xds_dropped_endpoints',
        help: "Instances left out of their ClusterLoadAssignment for the clients on a network (host: a host's own), by reason (duplicate_address, not_an_ip, port_out_of_range, no_reachable_address).",
        labelNames: ['reason', 'network'],
      }),
      authz: gauge(registry, {
        name: 'shoal_xds_authz_unresolved',
        help: 'ServicePorts whose external authorization cannot be served, by problem (missing, ambiguous, not_grpc, invalid): their Envoy listener denies all unless failure_mode_allow.',
        labelNames: ['problem'],
      }),
      sent: histogram(registry, {
        name: 'shoal_xds_change_to_response_seconds',
        help: 'Catalog change until the DiscoveryResponse carrying it was written to the client, by resource type.',
        labelNames: ['type'],
        buckets: PUSH_BUCKETS,
      }),
      acked: histogram(registry, {
        name: 'shoal_xds_change_to_ack_seconds',
        help: 'Catalog change until the client ACKed the DiscoveryResponse carrying it, by resource type.',
        labelNames: ['type'],
        buckets: PUSH_BUCKETS,
      }),
    }
    // Every series from the start, at zero (a quiet agent answers every dashboard panel).
    for (const kind of NODE_KINDS) {
      this.m.clients.set({ kind }, 0)
      this.m.held.set({ kind }, 0)
      this.m.heldTotal.inc({ kind }, 0)
    }
    for (const { label: type } of XDS_TYPES) {
      for (const m of [this.m.pushes, this.m.acks, this.m.nacks, this.m.invalid]) m.inc({ type }, 0)
      this.m.sent.zero({ type })
      this.m.acked.zero({ type })
    }
    for (const reason of BAD_REQUEST_REASONS) this.m.badRequests.inc({ reason }, 0)
    for (const reason of ['tls', 'http1', 'not_http2', 'silent'] as const) this.m.refused.inc({ reason }, 0)
    for (const reason of DROP_REASONS) this.m.dropped.set({ reason, network: 'host' }, 0)
    for (const problem of AUTHZ_PROBLEMS) this.m.authz.set({ problem }, 0)
  }

  /** Bind and serve. Idempotent. Resolves to the bound port. */
  start(): Promise<{ port: number }> {
    if (this.starting) return this.starting
    this.starting = this.doStart()
    return this.starting
  }

  private async doStart(): Promise<{ port: number }> {
    checkXdsInstall()
    this.protos = lazyXdsProtos()
    this.builder = new SnapshotBuilder(
      this.protos,
      {
        envoyBind: this.opts.envoyBind,
        connectTimeoutMs: this.opts.connectTimeoutMs,
        outlierIntervalMs: this.opts.outlierIntervalMs,
        trustDomain: this.opts.tls?.trustDomain,
        node: this.opts.localHost,
        strict: this.opts.tls?.mode === 'strict',
      },
      (flavour, bad) => {
        const type = xdsType(bad.typeUrl)!.label
        this.m.invalid.inc({ type })
        logProblem(this.log, 'warn', invalidResource(type, bad.name, bad.errors), {
          kind: flavourName(flavour),
          type,
          resource: bad.name,
          errors: bad.errors,
        })
      },
    )
    this.servers = new ServerListeners(
      { tls: this.opts.tls, localHost: this.opts.localHost },
      {
        protos: this.protos,
        log: this.log,
        identities: this.components.identities ? { has: (s) => this.withIdentity.has(s) } : undefined,
        allowProblems: this.m.allowProblems,
        badRequests: this.m.badRequests,
        invalid: this.m.invalid,
      },
    )
    const tls = this.opts.tls
    if (tls && tls.mode !== 'off' && this.opts.localHost !== undefined) {
      this.extras = new EnvoyExtras(
        {
          trustDomain: tls.trustDomain,
          node: this.opts.localHost,
          strict: tls.mode === 'strict',
          connectTimeoutMs: this.opts.connectTimeoutMs,
        },
        { protos: this.protos, log: this.log, invalid: this.m.invalid, badInbound: this.m.badInbound },
      )
    }
    this.watchIdentities()
    const server = this.adsServer('tcp')
    try {
      this.port = await server.listen(this.opts.bind, '')
      for (const host of this.opts.alsoOn ?? []) await server.listen({ host, port: this.port }, '')
    } catch (err) {
      await server.close(0, this.clock)
      throw err
    }
    this.server = server
    if (this.opts.socket !== undefined) {
      const unix = this.adsServer('unix')
      this.unixServer = unix
      this.removeSocket = await bindUnixSocket(unix.listener(), this.opts.socket)
    }
    this.unsubscribe = this.components.catalog.subscribe(() => this.onCatalogChange())
    this.refreshGroups()
    this.servers.update(this.components.catalog.snapshot())
    this.extras?.update(this.components.catalog.snapshot())
    // At debug: the agent's one "shoal agent started" line says where it listens, once every
    // listener is bound (a later listener's failure must not follow a line claiming it runs).
    this.log.debug(
      { bind: formatHostPort({ ...this.opts.bind, port: this.port }), alsoOn: this.opts.alsoOn ?? [], socket: this.opts.socket },
      'xDS server bound',
    )
    return { port: this.port }
  }

  /** The ADS listeners of one transport; grpc-js loads with their first connection (grpc.ts). */
  private adsServer(transport: Transport): LazyGrpcServer {
    return new LazyGrpcServer(
      (g) => {
        const server = new g.Server()
        server.addService(this.protos!.adsService, {
          StreamAggregatedResources: (call: AdsStream) => this.onStream(call, transport),
        })
        return server
      },
      (err) =>
        logProblem(
          this.log,
          'error',
          {
            what: `cannot serve an xDS connection: @grpc/grpc-js failed to load (${(err as Error).message})`,
            input: transport,
            fix: INTERNAL_FAULT,
          },
          { err },
        ),
      undefined,
      (kind, peer) => this.refused(kind, peer),
    )
  }

  /** A connection to an ADS listener that did not begin as HTTP/2 (grpc.ts refusedKind): closed, counted, logged (rate-limited). */
  private refused(kind: RefusedKind, peer: string): void {
    this.m.refused.inc({ reason: kind })
    const held = this.warnLimit.admit(`refused|${peer.replace(/:\d+$/, '')}|${kind}`)
    if (held === undefined) return
    const what = {
      tls: 'sent a TLS ClientHello to the xDS port, which speaks plain-text gRPC (HTTP/2 without TLS)',
      http1: 'sent an HTTP/1 request to the xDS port, which speaks gRPC (HTTP/2)',
      not_http2: 'sent bytes that are not HTTP/2 to the xDS port, which speaks gRPC (HTTP/2)',
      silent: `connected to the xDS port and sent nothing for ${FIRST_BYTES_WAIT_MS / 1000} s (a gRPC client sends its preface at once)`,
    }[kind]
    const fix = {
      tls: "drop the TLS transport_socket of the client's xDS cluster (or use insecure channel credentials); connection closed",
      http1: "the HTTP API and UI are on --http; an Envoy's xDS cluster needs http2_protocol_options; connection closed",
      not_http2: 'point only Envoy or gRPC xDS clients at this port; connection closed',
      silent: 'point only Envoy or gRPC xDS clients at this port (a health check may connect and close); connection closed',
    }[kind]
    logProblem(
      this.log,
      'warn',
      { what: `xDS connection from ${peer} ${what}`, input: peer, fix: fix + LogLimiter.suffix(held) },
      { reason: kind },
    )
  }

  /** Close all streams (graceful, then forced after the grace period). Idempotent. */
  async stop(): Promise<void> {
    const starting = this.starting
    if (!starting) return
    this.starting = null
    await starting.catch(() => undefined)
    this.unsubscribe?.()
    this.unsubscribe = null
    this.unwatchIdentities?.()
    this.unwatchIdentities = null
    for (const c of [...this.clients.values()]) {
      this.dropClient(c)
      try {
        c.call.end()
      } catch {
        // already closed by the peer
      }
    }
    const servers = [this.server, this.unixServer].filter((x): x is LazyGrpcServer => x !== null)
    this.server = null
    this.unixServer = null
    await Promise.all(servers.map((server) => server.close(this.opts.shutdownGraceMs ?? 2000, this.clock)))
    await this.removeSocket?.()
    this.removeSocket = null
  }

  /**
   * Warm start: nothing is served until ready; streams opened before get their responses now.
   * With `holdResuming`, the view is known to be partial (the agent's warm start ended with no
   * peer exchange): a client whose first request presented a `version_info` other than what it
   * would be sent now (an Envoy that had a configuration from before this agent restarted)
   * keeps what it holds, unanswered, until `setReady(true)` without it. Clients that hold
   * nothing, or exactly what they would be sent, are served.
   */
  setReady(ready: boolean, opts: { holdResuming?: boolean } = {}): void {
    const hold = ready && (opts.holdResuming ?? false)
    if (this.ready === ready && this.holdResuming === hold) return
    const served = new Set([...this.clients.values()].filter((c) => this.serves(c)))
    this.ready = ready
    this.holdResuming = hold
    this.log.info({ ready, holdResuming: hold }, 'xDS readiness changed')
    for (const c of this.clients.values()) {
      const was = c.held
      c.held = hold && (c.held || this.differs(c))
      if (c.held && !was) this.m.heldTotal.inc({ kind: c.kind })
    }
    this.countClients()
    for (const c of this.clients.values()) {
      if (served.has(c) || !this.serves(c)) continue
      // Requests that arrived before readiness are answered now; a reconnecting client's
      // version is compared with the view it would get.
      for (const sub of c.types.values())
        if (sub.held === null && sub.sentVersion) sub.resume(sub.sentVersion, this.select(this.snapshotFor(c), sub))
      c.dirtySince ??= this.clock.now()
      this.pushClient(c)
    }
  }

  /** Whether this client is answered now (setReady). */
  private serves(c: Client): boolean {
    return this.ready && !(this.holdResuming && c.held)
  }

  /** Some version the client presented is not that of what it would be sent now. */
  private differs(c: Client): boolean {
    for (const [url, version] of c.presented) {
      const sub = c.types.get(url)
      if (sub && versionOfSet(this.select(this.snapshotFor(c), sub)) !== version) return true
    }
    return false
  }

  debugInfo(): XdsDebugInfo {
    this.settleCatalog()
    const snaps = new Map<string, KindSnapshot>()
    const snapOf = (c: Client): KindSnapshot | null => {
      if (!this.builder || !this.ready) return null
      const key = `${flavourName(c.flavour)}|${c.network ?? ''}`
      let s = snaps.get(key)
      if (!s) snaps.set(key, (s = this.snapshotFor(c)))
      return s
    }
    const clients = [...this.clients.values()].map((c) => ({
      stream: c.stream,
      nodeId: c.node?.id ?? '',
      cluster: c.node?.cluster ?? '',
      userAgent: c.node?.user_agent_name ?? '',
      kind: c.kind,
      network: c.network,
      dropped: this.builder?.dropped(c.network) ?? [],
      mtls: c.flavour.mtls,
      transport: c.transport,
      service: nodeService(c.node) ?? '',
      connectedAt: c.connectedAt,
      held: this.isHeld(c),
      types: [...c.types.values()].map((sub) => {
        const snap = snapOf(c)
        const target = snap ? this.select(snap, sub) : null
        return {
          type: sub.type.label,
          wildcard: sub.wildcard,
          names: [...sub.names].sort().slice(0, DEBUG_NAMES_SHOWN),
          nameCount: sub.names.size,
          sentVersion: sub.sentVersion,
          ackedVersion: sub.ackedVersion,
          nackedVersion: sub.lastNack?.version ?? null,
          nackError: sub.lastNack?.error ?? null,
          pushes: sub.pushes,
          // What the client ACKed, less what it unsubscribed since, is what it would get now.
          upToDate: target !== null && !sub.inFlight && holdsExactly(sub, sub.acked, target),
        }
      }),
    }))
    const invalid: XdsDebugInfo['invalid'] = []
    for (const f of this.builder?.flavours() ?? []) {
      for (const bad of this.builder!.invalid(f))
        invalid.push({ kind: f.kind, type: xdsType(bad.typeUrl)!.label, name: bad.name, errors: bad.errors })
    }
    return {
      ready: this.ready,
      holdResuming: this.holdResuming,
      clients,
      conflicts: this.conflicts,
      dropped: this.builder?.dropped(null) ?? [],
      authz: this.builder?.authzIssues ?? [],
      invalid,
    }
  }

  /** The version a node last ACKed for a type (first stream of that node id), or null: a cheap probe for benches and tests. */
  ackedVersion(nodeId: string, type: TypeLabel): string | null {
    const url = xdsTypeOfLabel(type).url
    for (const c of this.clients.values()) if (c.node?.id === nodeId) return c.types.get(url)?.ackedVersion ?? null
    return null
  }

  // ---- streams ----

  private onStream(call: AdsStream, transport: Transport): void {
    const c: Client = {
      stream: this.nextStream++,
      call,
      transport,
      node: null,
      kind: 'envoy',
      network: null,
      releaseNetwork: null,
      flavour: { kind: 'envoy', mtls: false },
      connectedAt: this.clock.wallNow(),
      types: new Map(),
      resumeUntil: -Infinity,
      presented: new Map(),
      held: false,
      removalDueAt: null,
      graceTimer: null,
      edsCheck: null,
      resent: new Set(),
      waiting: false,
      lastPushAt: -Infinity,
      timer: null,
      dirtySince: null,
      unknownTypes: new Set(),
      closed: false,
    }
    this.clients.set(c.stream, c)
    this.countClients()
    call.on('data', (req: DiscoveryRequest) => {
      try {
        this.onRequest(c, req)
      } catch (err) {
        this.m.badRequests.inc({ reason: 'error' })
        logProblem(
          this.log,
          'warn',
          {
            what: `DiscoveryRequest handling failed (${(err as Error).message})`,
            input: `xDS client ${c.node?.id ?? `stream ${c.stream}`}`,
            fix: INTERNAL_FAULT,
          },
          { err, stream: c.stream, node: c.node?.id },
        )
      }
    })
    const done = (): void => {
      if (c.closed) return
      this.dropClient(c)
      try {
        call.end()
      } catch {
        // the peer is gone already
      }
    }
    call.on('end', done)
    call.on('error', done)
    call.on('cancelled', done)
    call.on('close', done)
  }

  private countClients(): void {
    const n = new Map<NodeKind, number>(NODE_KINDS.map((k) => [k, 0]))
    const held = new Map<NodeKind, number>(NODE_KINDS.map((k) => [k, 0]))
    for (const c of this.clients.values()) {
      n.set(c.kind, (n.get(c.kind) ?? 0) + 1)
      if (this.isHeld(c)) held.set(c.kind, (held.get(c.kind) ?? 0) + 1)
    }
    for (const [kind, v] of n) this.m.clients.set({ kind }, v)
    for (const [kind, v] of held) this.m.held.set({ kind }, v)
  }

  /** Held now: its resume waits for the first peer exchange (setReady). */
  private isHeld(c: Client): boolean {
    return this.ready && this.holdResuming && c.held
  }

  private dropClient(c: Client): void {
    c.closed = true
    c.releaseNetwork?.()
    c.releaseNetwork = null
    c.timer?.cancel()
    c.timer = null
    c.graceTimer?.cancel()
    c.graceTimer = null
    c.edsCheck?.cancel()
    c.edsCheck = null
    if (this.clients.delete(c.stream)) {
      this.countClients()
      this.log.debug({ stream: c.stream, node: c.node?.id }, 'ADS stream closed')
    }
  }

  private onRequest(c: Client, req: DiscoveryRequest): void {
    if (req.node && !c.node) {
      const fields: Array<[string, unknown]> = [
        ['node.id', req.node.id],
        ['node.cluster', req.node.cluster],
        ['node.user_agent_name', req.node.user_agent_name],
        [`node metadata ${NodeMeta.service}`, nodeService(req.node as XdsNode)],
      ]
      for (const [field, v] of fields) {
        if (typeof v === 'string' && v.length > NODE_FIELD_MAX) {
          this.refuse(c, 'node_field_too_long', grpcJs().status.INVALID_ARGUMENT, {
            what: `xDS client sent ${field} of ${v.length} characters, at most ${NODE_FIELD_MAX}: stream refused`,
            input: `xDS client at ${c.call.getPeer()}`,
            fix: `shorten ${field} in the client's bootstrap`,
          })
          return
        }
      }
    }
    if (Array.isArray(req.resource_names) && req.resource_names.length > MAX_NAMES_PER_TYPE) {
      const who = c.node?.id ?? `stream ${c.stream}`
      this.refuse(c, 'too_many_names', grpcJs().status.RESOURCE_EXHAUSTED, {
        what: `xDS client ${who} subscribed to ${req.resource_names.length} names of one type (${String(req.type_url ?? '').slice(0, 200)}), at most ${MAX_NAMES_PER_TYPE}: stream refused`,
        input: `xDS client ${who}`,
        fix: 'subscribe to the names the client routes to, or split it over several clients',
      })
      return
    }
    if (req.node && (req.node.id || req.node.user_agent_name) && !c.node) {
      c.node = req.node as XdsNode
      c.kind = nodeKindOf(c.node)
      const { network, error } = clientNetworkOf(c.node)
      if (error) {
        this.m.badRequests.inc({ reason: 'bad_network' })
        this.warnLimited(
          `bad-network|${c.node.id}`,
          {
            what: `${error}: served as a client on a host's network`,
            input: `xDS client ${c.node.id}`,
            fix: "write the network's name (shoal envoy-bootstrap or grpc-bootstrap --network NAME)",
          },
          { stream: c.stream, node: c.node.id, error },
        )
      }
      c.network = network
      if (network !== null && this.builder) {
        c.releaseNetwork = this.builder.useNetwork(network)
        this.report()
      }
      c.flavour = this.flavourOf(c)
      this.warnAtConnect(c)
      this.countClients()
      // A client that reconnects in a loop (a crash-looping proxy) is one line a minute.
      const held = this.warnLimit.admit(`connect|${c.node.id}`)
      if (held !== undefined)
        this.log.info(
          {
            stream: c.stream,
            node: c.node.id,
            kind: c.kind,
            network: c.network ?? 'host',
            mtls: c.flavour.mtls,
            service: nodeService(c.node),
            userAgent: c.node.user_agent_name,
            suppressed: held,
          },
          `ADS client connected${LogLimiter.suffix(held)}`,
        )
    }
    const typeUrl = String(req.type_url ?? '')
    const type = xdsType(typeUrl)
    if (!type) {
      this.m.badRequests.inc({ reason: 'unknown_type' })
      if (!c.unknownTypes.has(typeUrl) && c.unknownTypes.size < UNKNOWN_TYPES_KEPT) {
        c.unknownTypes.add(typeUrl)
        const who = c.node?.id ?? `stream ${c.stream}`
        logProblem(
          this.log,
          'warn',
          {
            what: `xDS client ${who} asked for type ${JSON.stringify(typeUrl.slice(0, 200))}, which Shoal does not serve: not answered`,
            input: `xDS client ${who}`,
            fix: `Shoal serves ${XDS_TYPES.map((t) => t.url).join(', ')}; take the other type from another source in the client's bootstrap (shoal_xds_bad_requests_total{reason="unknown_type"} counts these requests)`,
          },
          { stream: c.stream, node: c.node?.id, typeUrl: typeUrl.slice(0, 200) },
        )
      } else this.log.debug({ stream: c.stream, typeUrl: typeUrl.slice(0, 200) }, 'DiscoveryRequest for a type Shoal does not serve')
      return
    }
    if (type.url === TypeUrl.secret && c.transport === 'tcp' && this.refuseKeys(c, req)) return
    let sub = c.types.get(type.url)
    if (!sub) c.types.set(type.url, (sub = new TypeSubscription(type)))
    const o = sub.onRequest(req)
    switch (o.kind) {
      case 'stale':
        this.m.badRequests.inc({ reason: 'stale_nonce' })
        this.log.debug({ stream: c.stream, type: type.label, nonce: o.nonce, current: sub.nonce }, 'stale nonce: not answered')
        // A changed subscription is served after the client's next request (the ACK of the response in flight).
        if (o.changed) c.waiting = true
        return
      case 'repeat':
        // Its ACK or NACK was counted when it first came; its names were applied.
        break
      case 'nack': {
        this.m.nacks.inc({ type: type.label })
        const who = c.node?.id ?? `stream ${c.stream}`
        const held = this.warnLimit.admit(`nack\u0000${who}\u0000${type.url}`)
        if (held === undefined) break
        logProblem(
          this.log,
          'warn',
          {
            what: `xDS NACK from ${who}: ${type.label} version ${o.version} rejected (${o.error}), never re-sent`,
            input: `xDS client ${who}`,
            fix: `${
              nackHint(o.error) ??
              'the client keeps its previous version; read its error and its bootstrap (/debug/xds lists it), and report the line if both are sound'
            }${LogLimiter.suffix(held)}`,
          },
          { stream: c.stream, node: c.node?.id, type: type.label, version: o.version, error: o.error, hint: nackHint(o.error) },
        )
        break
      }
      case 'ack':
        this.m.acks.inc({ type: type.label })
        if (sub.changeAt !== null) {
          this.m.acked.observe({ type: type.label }, Math.max(0, this.clock.now() - sub.changeAt) / 1000)
          sub.changeAt = null
        }
        if (c.kind === 'grpc' && type.url === TypeUrl.cluster && c.edsCheck === null) {
          c.edsCheck = this.clock.setTimer(this.grace, () => {
            c.edsCheck = null
            if (!c.closed && this.serves(c)) this.checkAssignments(c)
          })
        }
        break
      case 'initial':
        if (o.versionInfo) {
          // A reconnecting client (this server restarted, or the client moved here) says what it holds.
          if (c.resumeUntil === -Infinity) c.resumeUntil = this.clock.now() + this.grace
          c.presented.set(type.url, o.versionInfo)
          if (this.ready && this.holdResuming && !c.held && this.differs(c)) {
            c.held = true
            this.m.heldTotal.inc({ kind: c.kind })
            this.countClients()
            this.log.info(
              { stream: c.stream, node: c.node?.id, type: type.label, version: o.versionInfo },
              'a reconnecting client holds a configuration other than this host-only view: it keeps it, unanswered, until a peer exchange',
            )
          }
          if (this.serves(c)) sub.resume(o.versionInfo, this.select(this.snapshotFor(c), sub))
          else sub.resume(o.versionInfo, new Map())
        }
        break
    }
    if (!this.serves(c)) return
    if (o.kind === 'initial' || o.changed || sub.mustAnswer || c.waiting) this.sync(c, null)
  }

  // ---- pushes ----

  /**
   * A catalog change marks the catalog unsettled; it is regrouped once, after every change of
   * this event-loop turn (setImmediate: a static reload's 1000 records, or every gossip packet
   * read in one poll phase): a regroup walks the whole catalog, so one per record would be
   * O(n^2) and freeze the loop long enough for peers to suspect this node.
   */
  private onCatalogChange(): void {
    if (this.catalogUnsettled) return
    this.catalogUnsettled = true
    setImmediate(() => this.settleCatalog())
  }

  /** Apply pending catalog changes now (also called before anything reads the grouping). */
  private settleCatalog(): void {
    if (!this.catalogUnsettled) return
    this.catalogUnsettled = false
    if (!this.unsubscribe) return
    this.m.regroups.inc()
    this.refreshGroups()
    this.servers?.update(this.components.catalog.snapshot())
    this.extras?.update(this.components.catalog.snapshot())
    this.dirtyAll()
  }

  /** Something every client may be served changed: push to each (coalesced per client). */
  private dirtyAll(): void {
    if (!this.ready) return
    const now = this.clock.now()
    for (const c of this.clients.values()) {
      c.dirtySince ??= now
      this.schedule(c)
    }
  }

  /**
   * End a stream for bad input: counted (shoal_xds_bad_requests_total{reason}, or for a key asked
   * over TCP shoal_xds_key_requests_refused_total), warned at most once a minute per reason, node
   * id and peer address (a refused client retries at once and for ever), and the status carries
   * `details` (default: the problem and its fix).
   */
  private refuse(
    c: Client,
    reason: (typeof BAD_REQUEST_REASONS)[number] | 'key_over_tcp',
    code: grpc.status,
    p: Problem,
    more: { fields?: Record<string, unknown>; details?: string } = {},
  ): void {
    if (reason === 'key_over_tcp') this.m.keyRefused.inc()
    else this.m.badRequests.inc({ reason })
    const held = this.warnLimit.admit(`${reason}\u0000${c.node?.id ?? ''}\u0000${c.call.getPeer().replace(/:\d+$/, '')}`)
    if (held !== undefined)
      logProblem(
        this.log,
        'warn',
        { ...p, fix: `${p.fix}${LogLimiter.suffix(held)}` },
        { stream: c.stream, node: c.node?.id, reason, ...more.fields },
      )
    this.dropClient(c)
    const details = more.details ?? `${p.what}; ${p.fix}`
    c.call.emit('error', Object.assign(new Error(details), { code, details }))
  }

  /**
   * A TCP client asked for a Secret that holds a private key: the stream ends with
   * PERMISSION_DENIED, a warning names the peer, and a count. True when refused.
   */
  private refuseKeys(c: Client, req: DiscoveryRequest): boolean {
    // `*` asks for every Secret, keys included.
    const keys = (req.resource_names ?? []).map(String).filter((n) => n === '*' || isKeySecretName(n))
    if (keys.length === 0) return false
    const peer = c.call.getPeer()
    this.refuse(
      c,
      'key_over_tcp',
      grpcJs().status.PERMISSION_DENIED,
      {
        what: `xDS client at ${peer} asked over TCP for a Secret that holds a private key: refused`,
        input: peer,
        fix: 'point the local Envoy at the socket (`shoal envoy-bootstrap --xds-socket PATH`)',
      },
      {
        fields: { peer, secrets: keys },
        details: `Secrets that hold a private key (${keys.join(', ')}) are served only over the agent's Unix socket (--xds-socket), never over TCP`,
      },
    )
    return true
  }

  /**
   * What a client is served (README, Service identity): a gRPC client the mTLS form under
   * `strict`, or under `permissive` when its bootstrap has Shoal's certificate providers; an
   * Envoy the mTLS form over the Unix socket, or over TCP under `strict` (it then cannot have
   * the keys: nothing is served in plain text), once the node's identity exists (every Secret
   * its resources name must be served).
   */
  private flavourOf(c: Client): Flavour {
    const mode = this.opts.tls?.mode ?? 'off'
    if (mode === 'off') return { kind: c.kind, mtls: false }
    if (c.kind === 'envoy') return { kind: 'envoy', mtls: this.extras?.ready === true && (c.transport === 'unix' || mode === 'strict') }
    return { kind: c.kind, mtls: mode === 'strict' || mtlsCapable(c.node) }
  }

  /** A client that will not get what it likely expects is told so when it connects (once a minute per node id). */
  private warnAtConnect(c: Client): void {
    const mode = this.opts.tls?.mode ?? 'off'
    if (mode === 'strict' && c.kind === 'grpc' && !mtlsCapable(c.node)) {
      this.warnLimited(
        `no-providers|${c.node?.id}`,
        {
          what: `gRPC client ${c.node?.id ?? `stream ${c.stream}`} without Shoal certificate providers in its bootstrap: --tls-mode strict serves it mTLS resources, which it will NACK`,
          input: `xDS client ${c.node?.id ?? `stream ${c.stream}`}`,
          fix: 'make its bootstrap with `shoal grpc-bootstrap --service NAME --tls-dir DIR`',
        },
        { stream: c.stream, node: c.node?.id, userAgent: c.node?.user_agent_name },
      )
    }
    if (mode === 'permissive' && c.kind === 'envoy' && c.transport === 'tcp' && this.extras) {
      this.warnLimited(
        `plain-tcp|${c.node?.id}`,
        {
          what: `Envoy ${c.node?.id ?? `stream ${c.stream}`} connected over TCP: it gets plain-text resources (mTLS needs its keys, which go only over the Unix socket)`,
          input: `xDS client ${c.node?.id ?? `stream ${c.stream}`}`,
          fix: 'connect it through --xds-socket (`shoal envoy-bootstrap --xds-socket PATH`)',
        },
        { stream: c.stream, node: c.node?.id, peer: c.call.getPeer() },
      )
    }
  }

  /** Follow which local services hold an identity: an mTLS server Listener waits for one. */
  private watchIdentities(): void {
    const ids = this.components.identities
    if (!ids) return
    const changed = (): void => {
      this.servers?.identitiesChanged()
      this.dirtyAll()
    }
    const onChange = (id: ServiceIdentity): void => {
      // A renewal changes only the Envoy's Secrets (a new version of each), nothing that names them.
      if (this.extras) {
        const before = this.extras.epoch
        this.extras.setIdentity(id)
        if (this.extras.epoch !== before) this.dirtyAll()
      }
      if (id.node !== undefined || this.withIdentity.has(id.service)) return
      this.withIdentity.add(id.service)
      changed()
    }
    const onRemoved = (service: string): void => {
      this.extras?.removeIdentity(service)
      if (this.withIdentity.delete(service)) changed()
      else this.dirtyAll()
    }
    for (const id of ids.identities()) {
      this.withIdentity.add(id.service)
      this.extras?.setIdentity(id)
    }
    const node = ids.nodeIdentity?.()
    if (node) this.extras?.setIdentity(node)
    ids.on('change', onChange)
    ids.on('removed', onRemoved)
    this.unwatchIdentities = () => {
      ids.off('change', onChange)
      ids.off('removed', onRemoved)
    }
  }

  /** First change after a quiet period: at once (next tick, so a burst lands together); then at most one push per interval. */
  private schedule(c: Client): void {
    if (c.timer || c.closed) return
    const delay = Math.max(0, c.lastPushAt + this.minInterval - this.clock.now())
    c.timer = this.clock.setTimer(delay, () => {
      c.timer = null
      if (!c.closed && this.serves(c)) this.pushClient(c)
    })
  }

  /** Regroup after every burst of catalog changes (settleCatalog), client or not, so conflicts and dropped endpoints are reported as they happen. */
  private refreshGroups(): void {
    if (!this.builder) return
    this.builder.update(this.components.catalog.snapshot())
    this.report()
  }

  /** Show conflicts; log, count and show dropped endpoints when they change (each dropped endpoint logged once). */
  private report(): void {
    const b = this.builder!
    // Conflicts are logged and counted by the registry (ServicePortConflicts); /debug/xds shows the ones xDS applied.
    this.conflicts = b.conflicts
    const authz = b.authzIssues
    if (authz !== this.lastAuthz) {
      this.lastAuthz = authz
      const counts: Record<string, number> = Object.fromEntries(AUTHZ_PROBLEMS.map((p) => [p, 0]))
      const keys = new Map<string, AuthzIssue>()
      for (const a of authz) {
        counts[a.problem] = (counts[a.problem] ?? 0) + 1
        const key = `${a.servicePort}|${a.target}|${a.failureModeAllow}|${a.detail}`
        keys.set(key, a)
        if (this.loggedAuthz.has(key)) continue
        this.warnLimited(
          `authz|${key}`,
          {
            what: `${a.service}:${a.servicePort} asks for external authorization by "${a.target}": ${a.detail}`,
            input: `${a.service}:${a.servicePort}`,
            fix: `until then its Envoy listener ${a.failureModeAllow ? 'lets everything through (failure_mode_allow)' : 'denies everything'}`,
          },
          { ...a },
        )
      }
      for (const [key, a] of this.loggedAuthz) {
        if (keys.has(key) || authz.some((x) => x.servicePort === a.servicePort)) continue
        const held = this.warnLimit.admit(`authz-cleared|${a.servicePort}`)
        if (held !== undefined)
          this.log.info(
            { servicePort: a.servicePort, service: a.service, target: a.target, suppressed: held },
            `external authorization problem cleared (resolved, or the service is gone)${LogLimiter.suffix(held)}`,
          )
      }
      this.loggedAuthz = keys
      for (const [problem, n] of Object.entries(counts)) this.m.authz.set({ problem }, n)
    }
    const views = b.networks()
    const now = new Set(views.map((v) => v.network ?? ''))
    let changed = false
    for (const key of this.lastDropped.keys()) {
      if (now.has(key)) continue
      this.lastDropped.delete(key)
      changed = true
    }
    for (const v of views) {
      const key = v.network ?? ''
      if (this.lastDropped.get(key) === v.dropped) continue
      this.lastDropped.set(key, v.dropped)
      changed = true
    }
    if (!changed) return
    this.m.dropped.reset()
    const keys = new Set<string>()
    for (const v of views) {
      const counts: Record<string, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0]))
      for (const d of v.dropped) {
        counts[d.reason] = (counts[d.reason] ?? 0) + 1
        const key = `${d.network ?? ''}|${d.servicePort}|${d.host}|${d.id}|${d.address}|${d.reason}`
        keys.add(key)
        if (!this.loggedDrops.has(key)) this.warnLimited(`drop|${key}`, droppedProblem(d), { ...d })
      }
      for (const [reason, n] of Object.entries(counts)) this.m.dropped.set({ reason, network: v.network ?? 'host' }, n)
    }
    this.loggedDrops = keys
  }

  /**
   * A warning about the catalog's content that can come and go with every change (an
   * endpoint left out, an authorization request that does not resolve): at most one a minute
   * per `key` (the shared warnLimit), the next one saying how many were held back, so a
   * flapping instance or service writes a line a minute, not one per change.
   */
  private warnLimited(key: string, p: Problem, fields: Record<string, unknown>): void {
    const held = this.warnLimit.admit(key)
    if (held === undefined) return
    logProblem(this.log, 'warn', { ...p, fix: `${p.fix}${LogLimiter.suffix(held)}` }, { ...fields, suppressed: held })
  }

  private snapshotFor(c: Client): KindSnapshot {
    this.settleCatalog()
    const out = this.builder!.build(this.components.catalog.snapshot(), c.flavour, c.network)
    this.report()
    return c.flavour.kind === 'envoy' && c.flavour.mtls && this.extras ? this.withExtras(out, this.extras) : out
  }

  /** The Envoy mTLS snapshot with the inbound Listeners, local Clusters and Secrets added (cached per input). */
  private withExtras(base: KindSnapshot, extras: EnvoyExtras): KindSnapshot {
    const hit = this.merged.get(base)
    if (hit && hit.epoch === extras.epoch) return hit.snap
    const m = extras.maps
    const add = (a: Map<string, ServedResource>, b: Map<string, ServedResource>) => (b.size ? new Map([...a, ...b]) : a)
    const resources = {
      ...base.resources,
      [TypeUrl.cluster]: add(base.resources[TypeUrl.cluster], m.clusters),
      [TypeUrl.listener]: add(base.resources[TypeUrl.listener], m.listeners),
      [TypeUrl.secret]: m.secrets,
    }
    const snap: KindSnapshot = { ...base, resources }
    this.merged.set(base, { epoch: extras.epoch, snap })
    return snap
  }

  /** One catalog-driven push: every subscribed type, in order. */
  private pushClient(c: Client): void {
    if (c.closed) return
    const changeAt = c.dirtySince
    c.dirtySince = null
    c.lastPushAt = this.clock.now()
    this.sync(c, changeAt)
  }

  /**
   * Bring one stream towards the current snapshot, in one ordered pass: make before break
   * (CDS, EDS, LDS, RDS; a full-set type still carries what the client holds and loses, and
   * EDS/RDS never drop a name: the client unsubscribes it once its Cluster or Listener is
   * gone), then removals in removal order, each only after the referring type's removal was
   * ACKed. A type whose holdings are unknown and that may lose something waits the same way.
   */
  private sync(c: Client, changeAt: number | null): void {
    if (c.closed) return
    c.flavour = this.flavourOf(c)
    const snap = this.snapshotFor(c)
    c.waiting = false
    const changedClusters: string[] = []
    const removals = new Set<XdsType>()
    for (const type of XDS_TYPES) {
      const sub = c.types.get(type.url)
      if (!sub) continue
      const target = this.select(snap, sub)
      let content = target
      if (sub.held) {
        const kept: ServedResource[] = []
        if (sub.held !== target) for (const r of sub.held.values()) if (!target.has(r.name) && sub.subscribed(r.name)) kept.push(r)
        if (kept.length) {
          content = new Map(target)
          for (const r of kept) content.set(r.name, r)
          if (type.fullSet) removals.add(type)
        }
      } else if (type.fullSet && this.mayLose(sub, target) && !this.removalAllowed(c, type, snap)) {
        c.waiting = true
        continue
      }
      const before = sub.held
      // A changed Cluster makes Envoy wait for its ClusterLoadAssignment: send EDS after it
      // when the client asks for one of those assignments (never an EDS response for nothing).
      const force = sub.mustAnswer || (type.url === TypeUrl.endpoint && changedClusters.some((n) => sub.subscribed(n)))
      if (this.send(c, sub, content, force, changeAt) && type.url === TypeUrl.cluster) {
        for (const r of content.values()) if (before?.get(r.name)?.hash !== r.hash) changedClusters.push(r.name)
      }
    }
    let graceUntil = this.clock.now() < c.resumeUntil ? c.resumeUntil : null
    if (removals.size === 0) c.removalDueAt = null
    for (const type of REMOVAL_TYPES) {
      if (!removals.has(type)) continue
      const sub = c.types.get(type.url)!
      if (!this.removalAllowed(c, type, snap)) {
        c.waiting = true
        continue
      }
      if (!sub.wildcard && type.removalOrder! > 0) {
        // The client names its Clusters and will unsubscribe this one now that no Listener
        // names it; removing it first would make it report "does not exist" in between.
        const now = this.clock.now()
        c.removalDueAt ??= now + this.grace
        if (now < c.removalDueAt) {
          c.waiting = true
          graceUntil = Math.max(graceUntil ?? 0, c.removalDueAt)
          continue
        }
      }
      this.send(c, sub, this.select(snap, sub), false, changeAt)
    }
    if (c.waiting && c.graceTimer === null && graceUntil !== null) {
      c.graceTimer = this.clock.setTimer(graceUntil - this.clock.now(), () => {
        c.graceTimer = null
        if (!c.closed && this.serves(c)) this.sync(c, null)
      })
    }
  }

  /**
   * A gRPC client asks for the assignment of every Cluster it uses, right after it gets the
   * Cluster. One that ACKed a Cluster but has not asked for its assignment a grace later may
   * have lost it: gRPC C-core 1.51 drops a Cluster it unsubscribed and subscribes again
   * between two requests, and ignores the copy that arrives meanwhile, then waits 15 s for
   * it. Such Clusters are sent once more (one response), once per time they are missing.
   */
  private checkAssignments(c: Client): void {
    const cds = c.types.get(TypeUrl.cluster)
    const eds = c.types.get(TypeUrl.endpoint)
    if (!cds?.acked || !eds || cds.inFlight) return
    let missing = false
    for (const name of cds.acked.keys()) {
      if (eds.subscribed(name)) c.resent.delete(name)
      else if (!c.resent.has(name)) {
        c.resent.add(name)
        missing = true
      }
    }
    for (const name of c.resent) if (!cds.acked.has(name)) c.resent.delete(name)
    if (!missing) return
    this.log.debug({ stream: c.stream, node: c.node?.id }, 'a Cluster the client holds has no assignment asked for: sent again')
    cds.mustAnswer = true
    this.sync(c, null)
  }

  /** With unknown holdings: could a response of `target` delete something the client holds? */
  private mayLose(sub: TypeSubscription, target: Map<string, ServedResource>): boolean {
    if (sub.wildcard) return true
    for (const n of sub.names) if (!target.has(n)) return true
    return false
  }

  /**
   * May `type` lose resources now? Only when every type before it in removal order (the
   * Listeners that name its Clusters) holds a known content with nothing left to remove and
   * has no response in flight. A reconnecting client's Listener subscription is waited for
   * during the resume grace.
   */
  private removalAllowed(c: Client, type: XdsType, snap: KindSnapshot): boolean {
    for (const prior of REMOVAL_TYPES) {
      if (prior === type) return true
      const sub = c.types.get(prior.url)
      if (!sub) {
        if (this.clock.now() < c.resumeUntil) return false
        continue
      }
      if (sub.inFlight || !sub.held) return false
      const target = this.select(snap, sub)
      if (sub.held !== target) for (const name of sub.held.keys()) if (!target.has(name) && sub.subscribed(name)) return false
    }
    return true
  }

  private select(snap: KindSnapshot, sub: TypeSubscription): Map<string, ServedResource> {
    const all = snap.resources[sub.type.url]
    // Wildcard plus explicit names: the names add nothing beyond the full set.
    if (sub.wildcard) return all
    // A gRPC server names its own Listener (gRFC A36), made apart from the snapshot.
    const servers = sub.type.url === TypeUrl.listener && snap.kind === 'grpc' ? this.servers : null
    const epoch = servers?.epoch ?? 0
    // The same map for the same inputs keeps its cached version (an Envoy names all 1000 CLAs).
    const sel = sub.selection
    if (sel && sel.from === all && sel.names === sub.names && sel.epoch === epoch) return sel.out
    const out = new Map<string, ServedResource>()
    for (const n of sub.names) {
      const r = all.get(n) ?? servers?.resource(n, snap.flavour.mtls)
      if (r) out.set(n, r)
    }
    sub.selection = { from: all, names: sub.names, epoch, out }
    return out
  }

  /**
   * A gRPC client gets a Listener or Cluster that was deleted while it held its normal form
   * back in its restored form (snapshot.ts restoredVariant), until the resource changes.
   */
  private restoredForms(sub: TypeSubscription, content: Map<string, ServedResource>): Map<string, ServedResource> {
    let out: Map<string, ServedResource> | null = null
    for (const [name, r] of content) {
      let rf = sub.restored.get(name)
      if (rf && rf.from !== r.hash) {
        sub.restored.delete(name)
        rf = undefined
      }
      // Held in its normal form when it was deleted: the restored form, whatever changed since.
      if (!rf && sub.deleted.get(name) === false) {
        rf = { from: r.hash, variant: restoredVariant(this.protos!, r) }
        sub.restored.set(name, rf)
      }
      if (rf) (out ??= new Map(content)).set(name, rf.variant)
    }
    for (const name of sub.restored.keys()) if (!content.has(name)) sub.restored.delete(name)
    return out ?? content
  }

  /** Send `content` unless the client holds it already (and no answer is due) or rejected it before; true when sent. */
  private send(c: Client, sub: TypeSubscription, content: Map<string, ServedResource>, force: boolean, changeAt: number | null): boolean {
    const label = sub.type.label
    if (c.kind === 'grpc' && sub.type.fullSet && (sub.deleted.size || sub.restored.size)) content = this.restoredForms(sub, content)
    // The last guard (refuseKeys ends such streams first): a key never leaves over TCP.
    if (c.transport === 'tcp' && sub.type.url === TypeUrl.secret && [...content.keys()].some(isKeySecretName))
      content = new Map([...content].filter(([name]) => !isKeySecretName(name)))
    const version = versionOfSet(content)
    if (sub.nacked.has(version)) {
      this.log.debug({ stream: c.stream, type: label, version }, 'version was NACKed before: not re-sent')
      return false
    }
    if (!force && version === sub.heldVersion()) return false
    const nonce = randomBytes(6).toString('base64url')
    const entries: Buffer[] = []
    for (const r of content.values()) entries.push(r.wire)
    // Pre-encoded: a response is the cached wire bytes of its resources, not a re-encoding.
    c.call.write(encodeDiscoveryResponse(version, entries, sub.type.url, nonce))
    sub.recordSent(version, content, nonce, changeAt)
    this.m.pushes.inc({ type: label })
    if (changeAt !== null) this.m.sent.observe({ type: label }, Math.max(0, this.clock.now() - changeAt) / 1000)
    this.log.debug({ stream: c.stream, node: c.node?.id, type: label, version, count: entries.length }, 'xDS response sent')
    return true
  }
}

/** The log line (and the UI's text) of an instance left out: what, for whom, why, and what to do. */
export function droppedProblem(d: DroppedEndpoint): Problem {
  const input = `${d.host}/${d.id}`
  const who = `${d.service}:${d.servicePort}: ${input}`
  const where = d.network === null ? "a host's network" : `network "${d.network}"`
  switch (d.reason) {
    case 'duplicate_address':
      return {
        what: `${who} lists ${d.address}, which ${d.keptBy!.host}/${d.keptBy!.id} already serves: left out for clients on ${where} (one endpoint per address)`,
        input,
        fix: 'give each instance its own ip:port',
      }
    case 'no_reachable_address':
      return d.network === null
        ? {
            what: `${who} has no address reachable from a host's network (no published port${d.networks?.length ? `; on network ${d.networks.join(', ')} only` : ''}): not sent to clients there`,
            input,
            fix: "publish the port (docker service --publish mode=host,target=PORT) or declare the client's network (--network NAME in its bootstrap)",
          }
        : {
            what: `${who} has no address on network "${d.network}" and no published port: not sent to clients on it`,
            input,
            fix: "attach the service to that network (and name it in the agent's --docker-network) or publish the port",
          }
    default:
      return {
        what: `${who} has address ${d.address}, which no xDS client accepts (${d.reason}): left out for clients on ${where}`,
        input,
        fix: "fix the record's ip or port",
      }
  }
}

/** What an operator can do about a NACK, when its reason is one Shoal knows. */
function nackHint(error: string): string | undefined {
  if (/certificate.?provider/i.test(error))
    return "the client's bootstrap lacks Shoal's certificate providers: make it with `shoal grpc-bootstrap --service NAME --tls-dir DIR`"
  if (/rbac/i.test(error))
    return 'a grpc-js server applies the allow-list (RBAC) only with GRPC_XDS_EXPERIMENTAL_RBAC=true in its environment'
  return undefined
}

/** `held` is `target`, resource by resource (a restored form counts as its normal form). */
function holdsExactly(
  sub: TypeSubscription,
  held: ReadonlyMap<string, ServedResource> | null,
  target: Map<string, ServedResource>,
): boolean {
  if (!held || held.size !== target.size) return false
  for (const [name, r] of target) {
    const h = held.get(name)
    if (!h) return false
    if (h.hash !== r.hash && !(sub.restored.get(name)?.from === r.hash && sub.restored.get(name)?.variant.hash === h.hash)) return false
  }
  return true
}
