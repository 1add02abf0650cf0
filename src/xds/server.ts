/**
 * The ADS server (state of the world) for the local Envoy and proxyless gRPC clients.
 *
 * Per stream and per type it keeps the subscription (wildcard and/or names), the last sent
 * version and nonce, the last ACKed state and the NACKed versions. Versions are content
 * hashes of what a response holds, so an unchanged view sends nothing and a NACKed version
 * is recognised (and never sent again) when the catalog produces it again.
 */
import * as grpc from '@grpc/grpc-js'
import { randomBytes } from 'node:crypto'
import type { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { counter, gauge, histogram } from '../metrics.js'
import type { Logger } from '../log.js'
import { formatHostPort, listenError, type HostPort } from '../address.js'
import { RealClock, type Clock, type Timer } from '../clock.js'
import type { CatalogView } from '../registry/types.js'
import { encodeDiscoveryResponse, loadXdsProtos, TypeLabel, TypeUrl, type XdsProtos } from './protos.js'
import { nodeKindOf, type NodeKind, type ServicePortConflict, type XdsNode } from './resources.js'
import { SnapshotBuilder, versionOfSet, type KindSnapshot, type ServedResource } from './snapshot.js'

export interface XdsServerOptions {
  /** HOST:PORT of the ADS server; port 0 picks a free one. */
  bind: HostPort
  /** IP the Envoy listeners bind (`--envoy-bind`). */
  envoyBind: string
  /** At most one catalog-driven push per client per this many ms (default 100). */
  minPushIntervalMs?: number
  /** Upstream connect timeout of the Clusters (default 1000 ms). */
  connectTimeoutMs?: number
  /** Graceful shutdown wait before streams are cut (default 2000 ms). */
  shutdownGraceMs?: number
}

export interface XdsServerComponents {
  logger: Logger
  catalog: CatalogView
  registry?: Registry
  clock?: Clock
}

/** What `/debug/xds` shows for one resource type of one client. */
export interface XdsTypeDebug {
  type: 'cds' | 'eds' | 'lds' | 'rds'
  wildcard: boolean
  names: string[]
  sentVersion: string | null
  ackedVersion: string | null
  nackedVersion: string | null
  nackError: string | null
  pushes: number
}

/** What `/debug/xds` shows for one connected client. */
export interface XdsClientDebug {
  stream: number
  nodeId: string
  cluster: string
  userAgent: string
  kind: NodeKind
  connectedAt: number
  types: XdsTypeDebug[]
}

export interface XdsDebugInfo {
  ready: boolean
  clients: XdsClientDebug[]
  conflicts: ServicePortConflict[]
  invalid: Array<{ kind: NodeKind; type: string; name: string; errors: string[] }>
}

/** Make before break: clusters and their endpoints first, then listeners and routes. */
const ORDER: TypeUrl[] = [TypeUrl.cluster, TypeUrl.endpoint, TypeUrl.listener, TypeUrl.route]
/** Removals last, the referring resource before the referred one. */
const REMOVAL_ORDER: TypeUrl[] = [TypeUrl.listener, TypeUrl.cluster]
/** Types whose response is the full set: omitting a subscribed resource deletes it. */
const FULL_SET = new Set<string>([TypeUrl.cluster, TypeUrl.listener])
const KNOWN = new Set<string>(ORDER)

interface TypeState {
  wildcard: boolean
  /** Only ever sent empty lists so far: an empty list still means wildcard (legacy). */
  legacy: boolean
  names: Set<string>
  nonce: string | null
  /** Version and content the client holds, as far as we know (reverted on NACK). */
  sentVersion: string | null
  sent: Map<string, ServedResource>
  ackedVersion: string | null
  acked: Map<string, ServedResource>
  nacked: Set<string>
  lastNack: { version: string; error: string } | null
  /** Clock.now() of the catalog change the in-flight response carries (for the latency metric). */
  changeAt: number | null
  pushes: number
  /** Last named selection: reused while neither the snapshot map nor the names changed. */
  selection: { from: Map<string, ServedResource>; names: Set<string>; out: Map<string, ServedResource> } | null
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

/** One ADS stream: requests in, pre-encoded DiscoveryResponses out. */
type AdsStream = grpc.ServerDuplexStream<DiscoveryRequest, Buffer>

interface Client {
  stream: number
  call: AdsStream
  node: XdsNode | null
  kind: NodeKind
  connectedAt: number
  types: Map<string, TypeState>
  lastPushAt: number
  timer: Timer | null
  /** Clock.now() of the first catalog change not yet pushed to this client. */
  dirtySince: number | null
  closed: boolean
}

export class XdsServer {
  private readonly log: Logger
  private readonly clock: Clock
  private readonly minInterval: number
  private server: grpc.Server | null = null
  private port = 0
  private starting: Promise<{ port: number }> | null = null
  private unsubscribe: (() => void) | null = null
  private ready = false
  private readonly clients = new Map<number, Client>()
  private nextStream = 1
  private protos: XdsProtos | null = null
  private builder: SnapshotBuilder | null = null
  private lastConflicts: ServicePortConflict[] | null = null
  private conflicts: ServicePortConflict[] = []
  private readonly m: {
    clients: Gauge
    pushes: Counter
    acks: Counter
    nacks: Counter
    invalid: Counter
    badRequests: Counter
    conflicts: Gauge
    latency: Histogram
  }

  constructor(
    private readonly opts: XdsServerOptions,
    private readonly components: XdsServerComponents,
  ) {
    this.log = components.logger.child({ component: 'xds' })
    this.clock = components.clock ?? new RealClock()
    this.minInterval = opts.minPushIntervalMs ?? 100
    const registry = components.registry
    this.m = {
      clients: gauge(registry, { name: 'shoal_xds_connected_clients', help: 'Connected ADS streams' }),
      pushes: counter(registry, { name: 'shoal_xds_pushes_total', help: 'DiscoveryResponses sent', labelNames: ['type'] }),
      acks: counter(registry, { name: 'shoal_xds_acks_total', help: 'ACKs received', labelNames: ['type'] }),
      nacks: counter(registry, { name: 'shoal_xds_nacks_total', help: 'NACKs received', labelNames: ['type'] }),
      invalid: counter(registry, {
        name: 'shoal_xds_invalid_resources_total',
        help: 'Resources that failed validation and were not served',
        labelNames: ['type'],
      }),
      badRequests: counter(registry, {
        name: 'shoal_xds_bad_requests_total',
        help: 'DiscoveryRequests ignored',
        labelNames: ['reason'],
      }),
      conflicts: gauge(registry, {
        name: 'shoal_xds_serviceport_conflicts',
        help: 'ServicePorts claimed by more than one service name',
      }),
      latency: histogram(registry, {
        name: 'shoal_xds_push_latency_seconds',
        help: 'Catalog change until the client ACKed the response carrying it',
        labelNames: ['type'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      }),
    }
  }

  /** Bind and serve. Idempotent. Resolves to the bound port. */
  start(): Promise<{ port: number }> {
    if (this.starting) return this.starting
    this.starting = this.doStart()
    return this.starting
  }

  private async doStart(): Promise<{ port: number }> {
    this.protos = loadXdsProtos()
    this.builder = new SnapshotBuilder(
      this.protos,
      { envoyBind: this.opts.envoyBind, connectTimeoutMs: this.opts.connectTimeoutMs },
      (kind, bad) => {
        this.m.invalid.inc({ type: TypeLabel[bad.typeUrl] })
        this.log.warn({ kind, type: TypeLabel[bad.typeUrl], resource: bad.name, errors: bad.errors }, 'invalid xDS resource not served')
      },
    )
    const server = new grpc.Server()
    server.addService(this.protos.adsService, {
      StreamAggregatedResources: (call: AdsStream) => this.onStream(call),
    })
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(formatHostPort(this.opts.bind), grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(listenError('', this.opts.bind, err)) : resolve(port),
      ),
    )
    this.server = server
    this.unsubscribe = this.components.catalog.subscribe(() => this.onCatalogChange())
    this.log.info({ bind: formatHostPort({ ...this.opts.bind, port: this.port }) }, 'xDS server listening')
    return { port: this.port }
  }

  /** Close all streams (graceful, then forced after the grace period). Idempotent. */
  async stop(): Promise<void> {
    const starting = this.starting
    if (!starting) return
    this.starting = null
    await starting.catch(() => undefined)
    this.unsubscribe?.()
    this.unsubscribe = null
    for (const c of [...this.clients.values()]) {
      this.dropClient(c)
      try {
        c.call.end()
      } catch {
        // already closed by the peer
      }
    }
    const server = this.server
    this.server = null
    if (!server) return
    await new Promise<void>((resolve) => {
      const force = this.clock.setTimer(this.opts.shutdownGraceMs ?? 2000, () => {
        server.forceShutdown()
        resolve()
      })
      server.tryShutdown(() => {
        force.cancel()
        resolve()
      })
    })
  }

  /** Warm start: nothing is served until ready; streams opened before get their responses now. */
  setReady(ready: boolean): void {
    if (this.ready === ready) return
    this.ready = ready
    this.log.info({ ready }, 'xDS readiness changed')
    if (!ready) return
    for (const c of this.clients.values()) {
      c.dirtySince ??= this.clock.now()
      this.pushClient(c)
    }
  }

  debugInfo(): XdsDebugInfo {
    const clients = [...this.clients.values()].map((c) => ({
      stream: c.stream,
      nodeId: c.node?.id ?? '',
      cluster: c.node?.cluster ?? '',
      userAgent: c.node?.user_agent_name ?? '',
      kind: c.kind,
      connectedAt: c.connectedAt,
      types: [...c.types].map(([url, ts]) => ({
        type: TypeLabel[url as TypeUrl],
        wildcard: ts.wildcard,
        names: [...ts.names].sort(),
        sentVersion: ts.sentVersion,
        ackedVersion: ts.ackedVersion,
        nackedVersion: ts.lastNack?.version ?? null,
        nackError: ts.lastNack?.error ?? null,
        pushes: ts.pushes,
      })),
    }))
    const invalid: XdsDebugInfo['invalid'] = []
    for (const kind of ['envoy', 'grpc'] as const) {
      for (const bad of this.builder?.invalid(kind) ?? [])
        invalid.push({ kind, type: TypeLabel[bad.typeUrl], name: bad.name, errors: bad.errors })
    }
    return { ready: this.ready, clients, conflicts: this.conflicts, invalid }
  }

  /** The version a node last ACKed for a type (first stream of that node id), or null: a cheap probe for benches and tests. */
  ackedVersion(nodeId: string, type: 'cds' | 'eds' | 'lds' | 'rds'): string | null {
    const url = ORDER.find((u) => TypeLabel[u] === type)!
    for (const c of this.clients.values()) if (c.node?.id === nodeId) return c.types.get(url)?.ackedVersion ?? null
    return null
  }

  // ---- streams ----

  private onStream(call: AdsStream): void {
    const c: Client = {
      stream: this.nextStream++,
      call,
      node: null,
      kind: 'envoy',
      connectedAt: this.clock.wallNow(),
      types: new Map(),
      lastPushAt: -Infinity,
      timer: null,
      dirtySince: null,
      closed: false,
    }
    this.clients.set(c.stream, c)
    this.m.clients.set(this.clients.size)
    call.on('data', (req: DiscoveryRequest) => {
      try {
        this.onRequest(c, req)
      } catch (err) {
        this.m.badRequests.inc({ reason: 'error' })
        this.log.warn({ err, stream: c.stream, node: c.node?.id }, 'DiscoveryRequest handling failed')
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

  private dropClient(c: Client): void {
    c.closed = true
    c.timer?.cancel()
    c.timer = null
    if (this.clients.delete(c.stream)) {
      this.m.clients.set(this.clients.size)
      this.log.debug({ stream: c.stream, node: c.node?.id }, 'ADS stream closed')
    }
  }

  private onRequest(c: Client, req: DiscoveryRequest): void {
    if (req.node && (req.node.id || req.node.user_agent_name) && !c.node) {
      c.node = req.node as XdsNode
      c.kind = nodeKindOf(c.node)
      this.log.info({ stream: c.stream, node: c.node.id, kind: c.kind, userAgent: c.node.user_agent_name }, 'ADS client connected')
    }
    const typeUrl = String(req.type_url ?? '')
    if (!KNOWN.has(typeUrl)) {
      this.m.badRequests.inc({ reason: 'unknown_type' })
      this.log.debug({ stream: c.stream, typeUrl }, 'DiscoveryRequest for a type Shoal does not serve')
      return
    }
    const label = TypeLabel[typeUrl as TypeUrl]
    const names: string[] = Array.isArray(req.resource_names) ? req.resource_names.map(String) : []
    const nonce = String(req.response_nonce ?? '')
    let ts = c.types.get(typeUrl)
    if (ts && nonce !== '' && nonce !== ts.nonce) {
      this.m.badRequests.inc({ reason: 'stale_nonce' })
      this.log.debug({ stream: c.stream, type: label, nonce, current: ts.nonce }, 'stale nonce ignored')
      return
    }
    if (!ts) {
      ts = {
        wildcard: false,
        legacy: true,
        names: new Set(),
        nonce: null,
        sentVersion: null,
        sent: new Map(),
        ackedVersion: null,
        acked: new Map(),
        nacked: new Set(),
        lastNack: null,
        changeAt: null,
        pushes: 0,
        selection: null,
      }
      c.types.set(typeUrl, ts)
    }
    const initial = nonce === '' || ts.nonce === null
    if (!initial) {
      const detail = req.error_detail
      if (detail && (detail.message || detail.code)) {
        const version = ts.sentVersion ?? ''
        ts.nacked.add(version)
        ts.lastNack = { version, error: String(detail.message ?? `code ${detail.code}`) }
        // The client keeps what it had: fall back to the last ACKed state.
        ts.sentVersion = ts.ackedVersion
        ts.sent = ts.acked
        ts.changeAt = null
        this.m.nacks.inc({ type: label })
        this.log.warn(
          { stream: c.stream, node: c.node?.id, type: label, version, error: ts.lastNack.error },
          'xDS NACK: version rejected, never re-sent',
        )
      } else {
        ts.ackedVersion = ts.sentVersion
        ts.acked = ts.sent
        this.m.acks.inc({ type: label })
        if (ts.changeAt !== null) {
          this.m.latency.observe({ type: label }, Math.max(0, this.clock.now() - ts.changeAt) / 1000)
          ts.changeAt = null
        }
      }
    } else if (req.version_info) {
      // A reconnecting client tells what it holds; if our view hashes the same, it needs nothing.
      ts.sentVersion = String(req.version_info)
      ts.ackedVersion = ts.sentVersion
    }
    const changed = this.updateSubscription(typeUrl, ts, names)
    if (!this.ready) return
    // A first request always gets an answer, unless it says it holds what we would send.
    if (initial) this.respond(c, typeUrl, ts, { force: !req.version_info, changeAt: null })
    else if (changed) this.respond(c, typeUrl, ts, { force: true, changeAt: null })
  }

  /** Apply a request's resource_names; true when the subscription changed. */
  private updateSubscription(typeUrl: string, ts: TypeState, names: string[]): boolean {
    const wildcardBefore = ts.wildcard
    const namesBefore = ts.names
    if (names.length === 0) {
      // Legacy: an empty list is a wildcard for LDS/CDS until the client names something.
      ts.wildcard = FULL_SET.has(typeUrl) && ts.legacy
      ts.names = new Set()
    } else {
      ts.legacy = false
      ts.wildcard = names.includes('*')
      ts.names = new Set(names.filter((n) => n !== '*'))
    }
    // Every ACK repeats the subscription (an Envoy's EDS ACK names every cluster): compare sets, no sort.
    if (ts.wildcard !== wildcardBefore || ts.names.size !== namesBefore.size) return true
    for (const n of ts.names) if (!namesBefore.has(n)) return true
    // Unchanged: keep the old set, so selections made from it stay valid.
    ts.names = namesBefore
    return false
  }

  // ---- pushes ----

  private onCatalogChange(): void {
    if (!this.ready) return
    const now = this.clock.now()
    for (const c of this.clients.values()) {
      c.dirtySince ??= now
      this.schedule(c)
    }
  }

  /** First change after a quiet period: at once (next tick, so a burst lands together); then at most one push per interval. */
  private schedule(c: Client): void {
    if (c.timer || c.closed) return
    const delay = Math.max(0, c.lastPushAt + this.minInterval - this.clock.now())
    c.timer = this.clock.setTimer(delay, () => {
      c.timer = null
      if (!c.closed && this.ready) this.pushClient(c)
    })
  }

  private snapshotFor(kind: NodeKind): KindSnapshot {
    const out = this.builder!.build(this.components.catalog.snapshot(), kind)
    // The builder hands out a new conflicts array only when the conflicts changed.
    if (out.conflicts !== this.lastConflicts) {
      const same = JSON.stringify(out.conflicts) === JSON.stringify(this.lastConflicts ?? [])
      this.lastConflicts = out.conflicts
      if (same) return out
      this.conflicts = out.conflicts
      this.m.conflicts.set(out.conflicts.length)
      for (const cf of out.conflicts) this.log.warn(cf, 'two service names claim one ServicePort: the smallest name wins')
    }
    return out
  }

  /** One catalog-driven push: every subscribed type, make before break, removals last. */
  private pushClient(c: Client): void {
    if (c.closed) return
    const changeAt = c.dirtySince
    c.dirtySince = null
    c.lastPushAt = this.clock.now()
    const snap = this.snapshotFor(c.kind)
    let clustersChanged = false
    const deferred: TypeUrl[] = []
    for (const typeUrl of ORDER) {
      const ts = c.types.get(typeUrl)
      if (!ts) continue
      const target = this.select(snap, typeUrl, ts)
      let content = target
      if (FULL_SET.has(typeUrl)) {
        // Keep what is being removed for now; it goes in a second response after the others.
        const kept: ServedResource[] = []
        if (ts.sent !== target)
          for (const r of ts.sent.values()) if (!target.has(r.name) && (ts.wildcard || ts.names.has(r.name))) kept.push(r)
        if (kept.length) {
          content = new Map(target)
          for (const r of kept) content.set(r.name, r)
          deferred.push(typeUrl)
        }
      }
      if (typeUrl === TypeUrl.cluster && content !== ts.sent) {
        for (const r of content.values()) {
          if (ts.sent.get(r.name)?.hash !== r.hash) {
            clustersChanged = true
            break
          }
        }
      }
      // A changed Cluster makes Envoy wait for its ClusterLoadAssignment: always send EDS after it.
      const force = typeUrl === TypeUrl.endpoint && clustersChanged
      this.send(c, typeUrl, ts, content, { force, changeAt })
    }
    for (const typeUrl of REMOVAL_ORDER) {
      if (!deferred.includes(typeUrl)) continue
      const ts = c.types.get(typeUrl)!
      this.send(c, typeUrl, ts, this.select(snap, typeUrl, ts), { force: false, changeAt })
    }
  }

  /** Answer a request for one type (new stream, new names). */
  private respond(c: Client, typeUrl: string, ts: TypeState, o: { force: boolean; changeAt: number | null }): void {
    const snap = this.snapshotFor(c.kind)
    this.send(c, typeUrl, ts, this.select(snap, typeUrl, ts), o)
  }

  private select(snap: KindSnapshot, typeUrl: string, ts: TypeState): Map<string, ServedResource> {
    const all = snap.resources[typeUrl as TypeUrl]
    // Wildcard plus explicit names: the names add nothing beyond the full set.
    if (ts.wildcard) return all
    // The same map for the same inputs keeps its cached version (an Envoy names all 1000 CLAs).
    const sel = ts.selection
    if (sel && sel.from === all && sel.names === ts.names) return sel.out
    const out = new Map<string, ServedResource>()
    for (const n of ts.names) {
      const r = all.get(n)
      if (r) out.set(n, r)
    }
    ts.selection = { from: all, names: ts.names, out }
    return out
  }

  private send(
    c: Client,
    typeUrl: string,
    ts: TypeState,
    content: Map<string, ServedResource>,
    o: { force: boolean; changeAt: number | null },
  ): void {
    const label = TypeLabel[typeUrl as TypeUrl]
    const version = versionOfSet(content)
    if (ts.nacked.has(version)) {
      this.log.debug({ stream: c.stream, type: label, version }, 'version was NACKed before: not re-sent')
      return
    }
    if (version === ts.sentVersion && !o.force) return
    const nonce = randomBytes(6).toString('base64url')
    const entries: Buffer[] = []
    for (const r of content.values()) entries.push(r.wire)
    // Pre-encoded: a response is the cached wire bytes of its resources, not a re-encoding.
    c.call.write(encodeDiscoveryResponse(version, entries, typeUrl, nonce))
    ts.nonce = nonce
    ts.sentVersion = version
    ts.sent = content
    ts.changeAt = o.changeAt
    ts.pushes++
    this.m.pushes.inc({ type: label })
    this.log.debug({ stream: c.stream, node: c.node?.id, type: label, version, count: entries.length }, 'xDS response sent')
  }
}
