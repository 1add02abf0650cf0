/**
 * The agent's HTTP debug endpoint: JSON API, the `/api/watch` change stream, Prometheus
 * metrics, health and readiness, the xDS debug view and the web UI. It reads the catalog
 * and membership through their public views and changes nothing but drain state.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Counter, Gauge, Registry } from 'prom-client'
import { counter, gauge } from '../metrics.js'
import { listenError, type HostPort } from '../address.js'
import { isShoalError } from '../errors.js'
import { INTERNAL_FAULT, LogLimiter, logProblem, type Logger } from '../log.js'
import { MEMBER_EVENTS, type KeyUse, type Member, type MemberEvent } from '../gossip/types.js'
import type { ServicePortConflict } from '../registry/index.js'
import type { CatalogEvent, CatalogSnapshot, CatalogView, LocalInstanceDetails, SourceStatus } from '../registry/types.js'
import { authorizeMutation } from './auth.js'
import { quoteText, unsafeChar } from '../text.js'
import { defaultUiDir, loadUiAssets, UI_FILES, type Asset } from './static.js'
import {
  keysView,
  memberView,
  membersView,
  oneServiceView,
  servicesView,
  stateView,
  watchCatalogEvent,
  type LocalDetails,
  type MemberView,
} from './views.js'
import { WatchHub } from './watch.js'

export interface HttpServerOptions {
  /** Address to listen on (`127.0.0.1:7777`; port 0 picks a free port). */
  bind: HostPort
  /** When set, drain/undrain need `Authorization: Bearer <apiToken>`; else loopback callers only. */
  apiToken?: string
  cluster: string
  /** This agent's node name. */
  node: string
  /** Bytes queued for one `/api/watch` reader before it is dropped. Default 1 MiB. */
  maxSseBufferBytes?: number
  /** Most concurrent `/api/watch` streams (`--http-watch-max`); one more is answered 503. Default 256. */
  maxWatchStreams?: number
  /** Interval of SSE heartbeat comments. Default 15 s. */
  heartbeatMs?: number
  /** Folder of the UI files. Default: src/http/ui. */
  uiDir?: string
  /**
   * Where the caller's address is read from for the loopback rule. Default: the socket's
   * remote address (never a forwarded header). Tests use it to play a remote caller.
   */
  clientAddress?: (req: IncomingMessage) => string | undefined
  /**
   * Open connections at most (watch streams included); the next is closed at once and
   * counted in `shoal_http_connections_dropped_total`. Default 512.
   */
  maxConnections?: number
}

/** The largest request body taken, in bytes: no route reads one (drain's reason is a query parameter). */
export const MAX_BODY_BYTES = 1024
/** How long a client may take to send its request headers, and its whole request (ms). */
export const HEADERS_TIMEOUT_MS = 10_000
export const REQUEST_TIMEOUT_MS = 30_000

/** The membership surface the endpoint reads (Gossip satisfies it). */
export interface MembershipView {
  members(): Member[]
  on(ev: MemberEvent, fn: (m: Member) => void): unknown
  off(ev: MemberEvent, fn: (m: Member) => void): unknown
}

/**
 * Control and details of local instances (LocalServices): drain and undrain throw
 * SHOAL_ERR_NOT_FOUND or SHOAL_ERR_UNKNOWN_INSTANCE (404), SHOAL_ERR_NOT_LOCAL (403).
 */
export interface LocalControl {
  /** `reason`: what the operator says (`maintenance`), shown in the record's reason. */
  drain(id: string, reason?: string): void
  undrain(id: string): void
  /** What only the owner knows of a local instance (its last check run, origin, drain); undefined for others. */
  details?(id: string): LocalInstanceDetails | undefined
}

export interface HttpServerComponents {
  logger: Logger
  catalog: CatalogView
  membership: MembershipView
  control: LocalControl
  /** ServicePort conflicts now (the registry's ServicePortConflicts), for the API and UI. */
  conflicts?: () => readonly ServicePortConflict[]
  /** True once the warm start is done (first push-pull, or the bounded wait when alone). */
  ready: () => boolean
  /**
   * A second readiness condition: why this agent is not in a cluster yet (`--join` given and no
   * seed has answered), or undefined. /readyz is 200 only when both conditions hold.
   */
  joinPending?: () => string | undefined
  /** Gossip keys and which members use each, for /api/keys.json (Gossip.keyUse); without it the agent reports no keys. */
  keys?: () => KeyUse
  /** The service sources and their state, for /api/sources.json (a refused static file shows here). */
  sources?: () => SourceStatus[]
  /** JSON for /debug/xds (per connected xDS client). */
  xdsDebug: () => unknown
  /** Where `/metrics` reads from; the endpoint adds its own `shoal_http_*` metrics here. */
  registry: Registry
  /** The membership clock, to turn `stateChangedAt` into wall time. Default: performance.now / Date.now. */
  clock?: { now(): number; wallNow(): number }
}

type Handler = (req: IncomingMessage, res: ServerResponse, params: string[]) => void | Promise<void>

interface Route {
  /** The route label in metrics and logs. */
  name: string
  match: RegExp
  methods: Partial<Record<'GET' | 'POST', Handler>>
}

const JSON_TYPE = 'application/json; charset=utf-8'
const INSTANCE_ID = /^[A-Za-z0-9._:-]{1,128}$/
/** The longest drain text taken (the record's detail holds at most 120 characters of it with its prefix, fit.ts fitDetail). */
const MAX_DRAIN_REASON = 200
const SERVICE_NAME = /^[a-z0-9._-]{1,253}$/

/**
 * @example
 *   const http = new HttpServer({ bind: '127.0.0.1:7777', cluster: 'default', node: 'a' },
 *     { logger, catalog, membership: gossip, control: drains, ready: () => warm, xdsDebug: () => xds.debug(), registry })
 *   const { port } = await http.start()
 *   await http.stop()
 */
export class HttpServer {
  private readonly log: Logger
  private readonly routes: Route[]
  private readonly hub: WatchHub
  private readonly requests: Counter<'route' | 'code'>
  private readonly sseDropped: Counter
  private readonly sseClients: Gauge
  private readonly connectionsDropped: Counter
  private readonly connectionsOpen: Gauge
  private readonly sseRefused: Counter
  /** One warning a minute for refused watch streams: any client can send them. */
  private readonly refusedLimit: LogLimiter
  /**
   * The state view's JSON (stateView of a snapshot), serialised once per catalog sequence
   * (CatalogSnapshot.seq, raised on every change) and shared by every reader: the body of
   * /api/state.json and the catalog part of /api/watch's first event. See stateText.
   */
  private stateJson: { seq: number; json: string } | undefined
  private readonly clock: { now(): number; wallNow(): number }
  private server: Server | undefined
  private assets = new Map<string, Asset>()
  private starting: Promise<{ port: number }> | undefined
  private stopping: Promise<void> | undefined
  private unsubscribeCatalog: (() => void) | undefined
  private readonly memberListeners = new Map<MemberEvent, (m: Member) => void>()

  constructor(
    private readonly opts: HttpServerOptions,
    private readonly c: HttpServerComponents,
  ) {
    this.log = c.logger.child({ component: 'http' })
    this.clock = c.clock ?? { now: () => performance.now(), wallNow: () => Date.now() }
    this.requests = counter(c.registry, {
      name: 'shoal_http_requests_total',
      help: 'HTTP requests answered, by route and status code (route "unmatched" for unknown paths).',
      labelNames: ['route', 'code'],
    })
    this.sseDropped = counter(c.registry, {
      name: 'shoal_http_watch_dropped_total',
      help: '/api/watch readers dropped because they stopped reading.',
    })
    this.sseClients = gauge(c.registry, { name: 'shoal_http_watch_clients', help: 'Open /api/watch streams.' })
    this.connectionsDropped = counter(c.registry, {
      name: 'shoal_http_connections_dropped_total',
      help: 'HTTP connections closed on arrival because the endpoint already had its maximum (512) open.',
    })
    this.connectionsOpen = gauge(c.registry, { name: 'shoal_http_connections', help: 'Open HTTP connections (watch streams included).' })
    this.sseRefused = counter(c.registry, {
      name: 'shoal_http_watch_refused_total',
      help: '/api/watch streams refused (503) because --http-watch-max were open.',
    })
    this.refusedLimit = new LogLimiter({}, { clock: this.clock })
    this.hub = new WatchHub(
      this.log,
      { maxBufferBytes: opts.maxSseBufferBytes ?? 1_048_576, heartbeatMs: opts.heartbeatMs ?? 15_000 },
      { onDropped: () => this.sseDropped.inc(), onClients: (n) => this.sseClients.set(n) },
    )
    this.routes = this.buildRoutes()
  }

  /** Listens; resolves to the bound port. Idempotent. */
  start(): Promise<{ port: number }> {
    this.starting ??= this.doStart()
    return this.starting
  }

  private async doStart(): Promise<{ port: number }> {
    const { host, port } = this.opts.bind
    this.assets = await loadUiAssets(this.opts.uiDir ?? defaultUiDir())
    const server = createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS }, (req, res) =>
      this.handle(req, res),
    )
    server.keepAliveTimeout = 5_000
    server.maxConnections = this.opts.maxConnections ?? 512
    server.on('drop', () => this.connectionsDropped.inc())
    server.on('connection', (socket) => {
      this.connectionsOpen.inc()
      socket.once('close', () => this.connectionsOpen.dec())
    })
    this.server = server
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(listenError('', this.opts.bind, err))
      server.once('error', onError)
      server.listen(port, host, () => {
        server.off('error', onError)
        resolve()
      })
    })
    server.on('error', (err) =>
      logProblem(
        this.log,
        'error',
        { what: `http server error (${err.message})`, input: `--http ${host}:${port}`, fix: INTERNAL_FAULT },
        { err },
      ),
    )
    this.hub.start()
    this.unsubscribeCatalog = this.c.catalog.subscribe((ev) => this.onCatalogEvent(ev))
    for (const name of MEMBER_EVENTS) {
      const fn = (m: Member): void => this.hub.publish('member', { event: name, member: memberView(m, this.toWall) })
      this.memberListeners.set(name, fn)
      this.c.membership.on(name, fn)
    }
    const bound = (server.address() as AddressInfo).port
    // At debug: the agent's "shoal agent started" line says where it listens, once all are bound.
    this.log.debug({ address: `${host}:${bound}` }, 'http endpoint bound')
    return { port: bound }
  }

  /** Closes the listener, every open connection and every watch stream. Idempotent. */
  stop(): Promise<void> {
    if (!this.starting) return Promise.resolve()
    this.stopping ??= this.doStop()
    return this.stopping
  }

  private async doStop(): Promise<void> {
    await this.starting?.catch(() => undefined)
    this.unsubscribeCatalog?.()
    this.unsubscribeCatalog = undefined
    for (const [name, fn] of this.memberListeners) this.c.membership.off(name, fn)
    this.memberListeners.clear()
    this.hub.stop()
    const server = this.server
    this.server = undefined
    if (!server) return
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }

  private readonly toWall = (monotonicMs: number): number => this.clock.wallNow() - (this.clock.now() - monotonicMs)

  private onCatalogEvent(ev: CatalogEvent): void {
    this.hub.publish('catalog', watchCatalogEvent(ev))
  }

  private membersList(): MemberView[] {
    return membersView(this.opts.cluster, this.opts.node, this.c.membership.members(), this.toWall).members
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    let routeName = 'unmatched'
    res.on('close', () => this.requests.inc({ route: routeName, code: String(res.statusCode) }))
    // No route takes a body: one over MAX_BODY_BYTES is refused before it is read, and a
    // small one is read (after the handler's checks) only to keep keep-alive usable.
    if (!this.bodyAllowed(req, res)) return
    let path: string
    try {
      path = new URL(req.url ?? '/', 'http://agent').pathname
    } catch {
      return this.fail(res, 400, 'SHOAL_ERR_BAD_REQUEST', `malformed request target ${JSON.stringify(req.url)}`)
    }
    for (const route of this.routes) {
      const m = route.match.exec(path)
      if (!m) continue
      routeName = route.name
      const method = req.method === 'HEAD' ? 'GET' : req.method
      const handler = route.methods[method as 'GET' | 'POST']
      if (!handler) {
        const allow = Object.keys(route.methods)
          .flatMap((x) => (x === 'GET' ? ['GET', 'HEAD'] : [x]))
          .join(', ')
        res.setHeader('allow', allow)
        return this.fail(res, 405, 'SHOAL_ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}; allowed: ${allow}`)
      }
      let params: string[]
      try {
        params = m.slice(1).map((p) => decodeURIComponent(p))
      } catch {
        return this.fail(res, 400, 'SHOAL_ERR_BAD_REQUEST', `malformed percent-encoding in ${JSON.stringify(path)}`)
      }
      try {
        const done = handler(req, res, params)
        if (done) done.catch((err: unknown) => this.internal(res, path, err))
      } catch (err) {
        this.internal(res, path, err)
      }
      return
    }
    this.fail(res, 404, 'SHOAL_ERR_NOT_FOUND', notFoundMessage(path, this.routes))
  }

  /**
   * False (and the request answered 413, its connection closed) when the request declares a
   * body over MAX_BODY_BYTES. Otherwise the body is read only once the response is sent (so a
   * refused caller's body is never read: its connection is closed instead), and a chunked
   * body that grows past the limit closes the connection.
   */
  private bodyAllowed(req: IncomingMessage, res: ServerResponse): boolean {
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > MAX_BODY_BYTES) {
      this.closeUnread(req, res)
      this.fail(
        res,
        413,
        'SHOAL_ERR_BODY_TOO_LARGE',
        `request body of ${declared} bytes: at most ${MAX_BODY_BYTES}; no route takes a body (drain's reason is ?reason=TEXT)`,
      )
      return false
    }
    if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) return true
    let seen = 0
    res.once('finish', () => {
      if (res.statusCode >= 400) return this.closeUnread(req, res)
      req.on('data', (chunk: Buffer) => {
        seen += chunk.length
        if (seen > MAX_BODY_BYTES) req.socket.destroy()
      })
      req.resume()
    })
    return true
  }

  /** Closes the connection after the answer instead of reading the rest of the request. */
  private closeUnread(req: IncomingMessage, res: ServerResponse): void {
    if (!res.headersSent) res.setHeader('connection', 'close')
    const cut = (): void => {
      if (!req.complete) req.socket.destroy()
    }
    if (res.writableFinished) cut()
    else res.once('finish', cut)
  }

  private internal(res: ServerResponse, path: string, err: unknown): void {
    logProblem(
      this.log,
      'error',
      { what: `http handler failed (${(err as Error)?.message ?? String(err)})`, input: path, fix: INTERNAL_FAULT },
      { err, path },
    )
    if (res.headersSent) res.destroy()
    else this.fail(res, 500, 'SHOAL_ERR_INTERNAL', `internal error answering ${path}: ${(err as Error)?.message ?? String(err)}`)
  }

  /** Answers an error. Logged at debug: a fault that needs an operator (internal, a full watch) logs its own problem. */
  private fail(res: ServerResponse, status: number, code: string, message: string, extra?: Record<string, unknown>): void {
    this.log.debug({ status, code }, message)
    sendJson(res, status, { error: { code, message }, ...extra })
  }

  private buildRoutes(): Route[] {
    const r = (name: string, match: RegExp, methods: Route['methods']): Route => ({ name, match, methods })
    const routes: Route[] = [
      r('/api/state.json', /^\/api\/state\.json$/, {
        GET: (_q, res) => sendJsonText(res, 200, this.stateText(this.c.catalog.snapshot())),
      }),
      r('/api/services.json', /^\/api\/services\.json$/, {
        GET: (_q, res) => sendJson(res, 200, servicesView(this.c.catalog.snapshot(), this.opts.node, this.membersList(), this.viewOpts())),
      }),
      r('/api/services/{name}.json', /^\/api\/services\/([^/]+)\.json$/, { GET: (_q, res, [name]) => this.oneService(res, name!) }),
      r('/api/members.json', /^\/api\/members\.json$/, {
        GET: (_q, res) => sendJson(res, 200, membersView(this.opts.cluster, this.opts.node, this.c.membership.members(), this.toWall)),
      }),
      r('/api/keys.json', /^\/api\/keys\.json$/, {
        GET: (_q, res) => sendJson(res, 200, keysView(this.opts.cluster, this.opts.node, this.c.keys?.() ?? { keys: [], unknown: [] })),
      }),
      r('/api/sources.json', /^\/api\/sources\.json$/, {
        GET: (_q, res) => sendJson(res, 200, { node: this.opts.node, sources: this.c.sources?.() ?? [] }),
      }),
      r('/api/watch', /^\/api\/watch$/, { GET: (req, res) => this.watch(req, res) }),
      r('/api/instances/{id}/drain', /^\/api\/instances\/([^/]+)\/drain$/, { POST: (req, res, [id]) => this.drain(req, res, id!, true) }),
      r('/api/instances/{id}/undrain', /^\/api\/instances\/([^/]+)\/undrain$/, {
        POST: (req, res, [id]) => this.drain(req, res, id!, false),
      }),
      r('/metrics', /^\/metrics$/, { GET: (_q, res) => this.metrics(res) }),
      r('/healthz', /^\/healthz$/, {
        GET: (_q, res) => sendJson(res, 200, { status: 'ok', node: this.opts.node, cluster: this.opts.cluster }),
      }),
      r('/readyz', /^\/readyz$/, { GET: (_q, res) => this.readyz(res) }),
      r('/debug/xds', /^\/debug\/xds$/, { GET: (_q, res) => sendJson(res, 200, { node: this.opts.node, clients: this.c.xdsDebug() }) }),
    ]
    for (const path of Object.keys(UI_FILES)) {
      routes.push(
        r(path === '/' ? '/' : '/ui/*', new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`), {
          GET: (_q, res) => this.asset(res, path),
        }),
      )
    }
    return routes
  }

  private oneService(res: ServerResponse, name: string): void {
    if (!SERVICE_NAME.test(name)) {
      return this.fail(res, 400, 'SHOAL_ERR_BAD_SERVICE_NAME', `service name ${JSON.stringify(name)} is not of [a-z0-9._-]`)
    }
    const view = oneServiceView(this.c.catalog.snapshot(), this.opts.node, name, this.viewOpts())
    if (!view) return this.fail(res, 404, 'SHOAL_ERR_SERVICE_NOT_FOUND', `no live instance of service ${JSON.stringify(name)}`)
    sendJson(res, 200, view)
  }

  private viewOpts(): { details?: LocalDetails; conflicts: readonly ServicePortConflict[] } {
    const control = this.c.control
    const conflicts = this.c.conflicts?.() ?? []
    return control.details ? { details: (id) => control.details!(id), conflicts } : { conflicts }
  }

  private watch(req: IncomingMessage, res: ServerResponse): void {
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' })
      res.end()
      return
    }
    const max = this.opts.maxWatchStreams ?? 256
    if (this.hub.size >= max) {
      this.sseRefused.inc()
      const held = this.refusedLimit.admit('watch-limit')
      if (held !== undefined)
        logProblem(this.log, 'warn', {
          what: `refused an /api/watch stream from ${req.socket.remoteAddress}: ${this.hub.size} streams are open, the most allowed`,
          input: `--http-watch-max ${max}`,
          fix: `close idle watchers or raise --http-watch-max; shoal_http_watch_refused_total counts refusals${LogLimiter.suffix(held)}`,
        })
      return this.fail(
        res,
        503,
        'SHOAL_ERR_WATCH_LIMIT',
        `${this.hub.size} /api/watch streams are open, the most this agent serves (--http-watch-max ${max}); close some or raise --http-watch-max`,
      )
    }
    const state = this.stateText(this.c.catalog.snapshot())
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`
    this.hub.addJson(res, peer, 'snapshot', `{"state":${state},"members":${JSON.stringify(this.membersList())}}`)
  }

  /**
   * The state view of `snap` as JSON text. It is as large as the catalog, so it is serialised
   * once per snapshot (its `seq`) and shared by /api/state.json and /api/watch readers, not once
   * per request.
   */
  private stateText(snap: CatalogSnapshot): string {
    if (this.stateJson?.seq === snap.seq) return this.stateJson.json
    const json = JSON.stringify(stateView(snap, this.opts.node))
    this.stateJson = { seq: snap.seq, json }
    return json
  }

  private drain(req: IncomingMessage, res: ServerResponse, id: string, on: boolean): void {
    const clientAddress = this.opts.clientAddress ? this.opts.clientAddress(req) : req.socket.remoteAddress
    const auth = authorizeMutation(req, { apiToken: this.opts.apiToken, clientAddress })
    if (!auth.ok) {
      if (auth.status === 401) res.setHeader('www-authenticate', 'Bearer realm="shoal"')
      return this.fail(res, auth.status, auth.code, auth.message)
    }
    if (!INSTANCE_ID.test(id)) {
      return this.fail(res, 400, 'SHOAL_ERR_BAD_INSTANCE_ID', `instance id ${quoteText(id)} is not 1-128 characters of [A-Za-z0-9._:-]`)
    }
    const reason = new URL(req.url ?? '/', 'http://agent').searchParams.get('reason') ?? undefined
    const bad = reason === undefined ? undefined : unsafeChar(reason)
    if (bad) {
      return this.fail(
        res,
        400,
        'SHOAL_ERR_BAD_DRAIN_REASON',
        `parameter "reason" holds ${bad.codePoint} at character ${bad.index}: control characters, line breaks and bidi controls are refused (they would forge log lines or reorder text); send plain text`,
      )
    }
    if (reason !== undefined && reason.length > MAX_DRAIN_REASON) {
      return this.fail(
        res,
        400,
        'SHOAL_ERR_BAD_DRAIN_REASON',
        `drain reason of ${reason.length} characters for ${JSON.stringify(id)}: at most ${MAX_DRAIN_REASON}; say it shorter`,
      )
    }
    try {
      if (on) this.c.control.drain(id, reason)
      else this.c.control.undrain(id)
    } catch (err) {
      // LocalServices names an unknown id SHOAL_ERR_UNKNOWN_INSTANCE; both mean 404.
      if (isShoalError(err, 'SHOAL_ERR_NOT_FOUND') || isShoalError(err, 'SHOAL_ERR_UNKNOWN_INSTANCE'))
        return this.fail(res, 404, err.code, err.message)
      if (isShoalError(err, 'SHOAL_ERR_NOT_LOCAL')) return this.fail(res, 403, err.code, err.message)
      if (isShoalError(err)) return this.fail(res, 400, err.code, err.message)
      throw err
    }
    this.log.info(
      { id, draining: on, caller: clientAddress, ...(on && reason ? { reason } : {}) },
      on
        ? `instance ${id} drained by ${clientAddress ?? 'a caller'}${reason ? `: ${reason}` : ''}`
        : `instance ${id} undrained by ${clientAddress ?? 'a caller'}`,
    )
    sendJson(res, 200, on && reason ? { id, node: this.opts.node, draining: on, reason } : { id, node: this.opts.node, draining: on })
  }

  private async metrics(res: ServerResponse): Promise<void> {
    const body = await this.c.registry.metrics()
    res.writeHead(200, { 'content-type': this.c.registry.contentType, 'cache-control': 'no-store' })
    res.end(body)
  }

  private readyz(res: ServerResponse): void {
    const warm = this.c.ready()
    const join = this.c.joinPending?.()
    if (warm && join === undefined) return sendJson(res, 200, { ready: true, node: this.opts.node })
    const why = [
      ...(warm ? [] : ['warm start not done: waiting for the first push-pull with a peer (or the bounded wait when alone)']),
      ...(join === undefined ? [] : [join]),
    ]
    this.fail(res, 503, 'SHOAL_ERR_NOT_READY', why.join('; '), { ready: false, warmStart: warm, join: join ?? null })
  }

  private asset(res: ServerResponse, path: string): void {
    const a = this.assets.get(path)
    if (!a) return this.fail(res, 404, 'SHOAL_ERR_NOT_FOUND', `no such path ${JSON.stringify(path)}`)
    res.writeHead(200, {
      'content-type': a.contentType,
      'content-length': a.body.length,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
    })
    res.end(a.body)
  }
}

/**
 * The 404 answer: every route once with its methods, and for `/api/services/NAME` (no `.json`)
 * the path that was probably meant.
 */
function notFoundMessage(path: string, routes: readonly Route[]): string {
  const seen = new Set<string>()
  const listed: string[] = []
  for (const r of routes) {
    for (const method of Object.keys(r.methods)) {
      const label = `${method} ${r.name}`
      if (!seen.has(label)) listed.push(label)
      seen.add(label)
    }
  }
  const service = /^\/api\/services\/([^/]+?)\/?$/.exec(path)
  const hint = service ? ` (did you mean /api/services/${service[1]}.json?)` : ''
  return `no such path ${quoteText(path)}${hint}; routes: ${listed.join(', ')}`
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendJsonText(res, status, JSON.stringify(body))
}

/** A JSON body already serialised (`json`, without the closing newline). */
function sendJsonText(res: ServerResponse, status: number, json: string): void {
  const text = json + '\n'
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}
