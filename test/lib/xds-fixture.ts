// Test fixtures for the xDS tests: an in-test CatalogView holding a snapshot the test mutates,
// a raw ADS client on @grpc/grpc-js, and a server starter with teardown.
import * as grpc from '@grpc/grpc-js'
import type { Test } from 'tap'
import { silentLogger } from '../../src/log.js'
import type {
  CatalogEvent,
  CatalogSnapshot,
  CatalogView,
  HostView,
  ProxyMode,
  ServiceRecord,
  ServiceStatus,
} from '../../src/registry/types.js'
import { DECODE_OPTIONS, loadXdsProtos, TypeUrl } from '../../src/xds/protos.js'
import { XdsServer, type XdsServerComponents, type XdsServerOptions } from '../../src/xds/server.js'

export { TypeUrl }

export class FixtureCatalog implements CatalogView {
  private snap: CatalogSnapshot
  private readonly listeners = new Set<(ev: CatalogEvent) => void>()
  constructor(hosts: HostView[] = []) {
    this.snap = { cluster: 'test', seq: 1, hosts }
  }
  snapshot(): CatalogSnapshot {
    return this.snap
  }
  subscribe(l: (ev: CatalogEvent) => void): () => void {
    this.listeners.add(l)
    return () => this.listeners.delete(l)
  }
  /** Replace the hosts (a new immutable snapshot) and emit one event. */
  set(hosts: HostView[]): void {
    this.snap = { cluster: 'test', seq: this.snap.seq + 1, hosts }
    for (const l of this.listeners) l({ type: 'host-up', host: hosts[0]?.name ?? '' })
  }
}

export function rec(o: {
  host: string
  id: string
  name: string
  servicePort: number
  port: number
  mode?: ProxyMode
  status?: ServiceStatus
  ip?: string
  labels?: Record<string, string>
}): ServiceRecord {
  return {
    id: o.id,
    name: o.name,
    image: o.name,
    created: 0,
    host: o.host,
    bootId: 'boot-' + o.host,
    ports: [{ type: 'tcp', port: o.port, servicePort: o.servicePort, ip: o.ip ?? '127.0.0.1' }],
    proxyMode: o.mode ?? 'http',
    status: o.status ?? 'alive',
    version: [1, 0],
    updated: 0,
    labels: o.labels ?? {},
  }
}

export function host(name: string, services: ServiceRecord[], state: HostView['state'] = 'alive'): HostView {
  return { name, address: '127.0.0.1:7946', state, bootId: 'boot-' + name, services }
}

export interface DecodedResponse {
  version_info: string
  nonce: string
  type_url: string
  resources: Array<Record<string, any>>
  names: string[]
  at: number
}

/** A raw ADS client: send DiscoveryRequests, read decoded DiscoveryResponses in order. */
export class AdsClient {
  private readonly client: grpc.Client
  private readonly call: grpc.ClientDuplexStream<any, any>
  private readonly queue: DecodedResponse[] = []
  private waiters: Array<() => void> = []
  closed = false
  /** The status the stream ended with, once it ended with an error. */
  error: grpc.ServiceError | null = null

  /** `target`: a port on 127.0.0.1, or a grpc target such as `unix:/path`. */
  constructor(target: number | string) {
    const protos = loadXdsProtos()
    const Ctor = grpc.makeGenericClientConstructor(protos.adsService, 'ads')
    this.client = new Ctor(typeof target === 'number' ? `127.0.0.1:${target}` : target, grpc.credentials.createInsecure())
    this.call = (this.client as any).StreamAggregatedResources()
    this.call.on('data', (res: any) => {
      const type = protos.typeOf(res.type_url)!
      const resources = (res.resources as Array<{ value: Uint8Array }>).map((a) => type.toObject(type.decode(a.value), DECODE_OPTIONS))
      this.queue.push({
        version_info: res.version_info,
        nonce: res.nonce,
        type_url: res.type_url,
        resources,
        names: resources.map((r) => (r.name ?? r.cluster_name) as string),
        at: performance.now(),
      })
      for (const w of this.waiters.splice(0)) w()
    })
    this.call.on('error', (err: grpc.ServiceError) => {
      this.error = err
      this.closed = true
      for (const w of this.waiters.splice(0)) w()
    })
    this.call.on('end', () => {
      this.closed = true
      for (const w of this.waiters.splice(0)) w()
    })
  }

  send(req: {
    type_url: string
    resource_names?: string[]
    version_info?: string
    response_nonce?: string
    node?: object
    error_detail?: object
  }): void {
    this.call.write({ resource_names: [], version_info: '', response_nonce: '', ...req })
  }

  ack(res: DecodedResponse, names?: string[]): void {
    this.send({ type_url: res.type_url, version_info: res.version_info, response_nonce: res.nonce, resource_names: names ?? res.names })
  }

  /** Next response (optionally of one type), or throws after timeoutMs. */
  async next(timeoutMs = 2000, typeUrl?: string): Promise<DecodedResponse> {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const i = this.queue.findIndex((r) => !typeUrl || r.type_url === typeUrl)
      if (i >= 0) return this.queue.splice(i, 1)[0]!
      const left = deadline - performance.now()
      if (left <= 0 || this.closed) throw new Error(`no ${typeUrl ?? 'response'} within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }

  /** Resolves true when no response arrives within ms. */
  async quiet(ms: number): Promise<boolean> {
    try {
      await this.next(ms)
      return false
    } catch {
      return true
    }
  }

  pending(): DecodedResponse[] {
    return this.queue.splice(0)
  }

  close(): void {
    try {
      this.call.cancel()
    } catch {
      // already closed
    }
    this.client.close()
  }
}

export const ENVOY_NODE = { id: 'envoy-1', cluster: 'test', user_agent_name: 'envoy' }
export const GRPC_NODE = {
  id: 'grpc-1',
  user_agent_name: 'gRPC Node Pure JS',
  client_features: ['envoy.lb.does_not_support_overprovisioning'],
}

/** Start a ready XdsServer on 127.0.0.1:0 with teardown; every resource it built must be valid. */
export async function startServer(
  t: Test,
  catalog: CatalogView,
  opts: Partial<XdsServerOptions> & { ready?: boolean } = {},
  components: Partial<XdsServerComponents> = {},
) {
  const server = new XdsServer(
    { bind: { host: '127.0.0.1', port: 0 }, envoyBind: '127.0.0.1', shutdownGraceMs: 200, ...opts },
    { logger: silentLogger(), catalog, ...components },
  )
  const { port } = await server.start()
  if (opts.ready !== false) server.setReady(true)
  const clients: AdsClient[] = []
  t.teardown(async () => {
    for (const c of clients) c.close()
    await server.stop()
  })
  const connect = () => {
    const c = new AdsClient(port)
    clients.push(c)
    return c
  }
  return { server, port, connect }
}

/**
 * The opening of the ACK/NACK tests: the echo catalog behind a started server, one Envoy
 * client that asked for every Cluster, and the first response it got (not ACKed yet).
 */
export async function envoyClusterStream(t: Test) {
  const catalog = echoCatalog()
  const { server, connect } = await startServer(t, catalog)
  const c = connect()
  c.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE })
  return { catalog, server, c, first: await c.next() }
}

/**
 * One event-loop turn: the XdsServer takes in a turn's catalog changes once, after it
 * (onCatalogChange), so what it logs or counts for a `catalog.set` is there after this.
 */
export function catalogTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

export function echoCatalog(): FixtureCatalog {
  return new FixtureCatalog([
    host('h1', [rec({ host: 'h1', id: 'a1', name: 'echo', servicePort: 10001, port: 9001, mode: 'grpc' })]),
    host('h2', [rec({ host: 'h2', id: 'b1', name: 'echo', servicePort: 10001, port: 9002, mode: 'grpc' })]),
  ])
}

/**
 * A catalog with every proxy mode, status and address family, idempotent services (they carry
 * the fuller retry policies, resources.ts retryPolicy) and a ServicePort on two hosts: for checks
 * over every resource Shoal builds.
 */
export function mixedCatalog(): FixtureCatalog {
  return new FixtureCatalog([
    host('h1', [
      rec({ host: 'h1', id: 'a', name: 'web', servicePort: 10002, port: 8080, mode: 'http' }),
      rec({ host: 'h1', id: 'b', name: 'chat', servicePort: 10003, port: 8081, mode: 'ws', status: 'unknown' }),
      rec({ host: 'h1', id: 'c', name: 'db', servicePort: 10004, port: 5432, mode: 'tcp', status: 'draining' }),
      rec({ host: 'h1', id: 'd', name: 'echo', servicePort: 10001, port: 9000, mode: 'grpc', ip: '::1' }),
      rec({ host: 'h1', id: 'e', name: 'cart', servicePort: 10005, port: 9001, mode: 'grpc', labels: { 'shoal.idempotent': 'true' } }),
      rec({ host: 'h1', id: 'f', name: 'shop', servicePort: 10006, port: 9002, mode: 'http', labels: { 'shoal.idempotent': 'true' } }),
    ]),
    host('h2', [rec({ host: 'h2', id: 'e', name: 'web', servicePort: 10002, port: 8080, mode: 'http', ip: '10.0.0.2' })]),
  ])
}

/** Decode every Any inside a decoded resource, recursively (what Envoy reads). */
export function deepDecode(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(deepDecode)
  if (!v || typeof v !== 'object' || Buffer.isBuffer(v) || v instanceof Uint8Array) return v
  const o = v as Record<string, unknown>
  if (typeof o.type_url === 'string' && (o.value instanceof Uint8Array || Buffer.isBuffer(o.value))) {
    const T = loadXdsProtos().typeOf(o.type_url)
    if (T)
      return {
        '@type': o.type_url,
        ...(deepDecode(T.toObject(T.decode(o.value as Uint8Array), { defaults: false, enums: String, longs: Number })) as object),
      }
  }
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, deepDecode(x)]))
}
