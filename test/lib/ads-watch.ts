/**
 * An Envoy-like ADS client for restart tests: it subscribes to every Cluster (wildcard) and
 * their ClusterLoadAssignments, ACKs like Envoy, and when its stream breaks it tries again
 * every `retryMs` and keeps the configuration it had meanwhile, as Envoy does. Every answer
 * is recorded, so a test can assert that none was ever empty or partial.
 *
 * @example
 *   const w = new AdsWatch('127.0.0.1:7776')
 *   ...restart the agent...
 *   w.answers.filter((a) => a.type === 'cds' && a.names.length < 20)   // none
 *   w.close()
 */
import { randomBytes } from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import { DECODE_OPTIONS, loadXdsProtos, TypeUrl } from '../../src/xds/protos.js'

/** The endpoints (`ip:port`, sorted) of one encoded ClusterLoadAssignment, with its cluster name. */
export function endpointsOf(
  cla: { decode(v: Uint8Array): any; toObject(m: any, o: object): any },
  value: Uint8Array,
  decodeOptions: object,
): [string, string[]] {
  const o: any = cla.toObject(cla.decode(value), decodeOptions)
  const eps: string[] = []
  for (const loc of o.endpoints ?? []) {
    for (const lb of loc.lb_endpoints ?? []) {
      const sa = lb.endpoint?.address?.socket_address
      if (sa) eps.push(`${sa.address}:${sa.port_value}`)
    }
  }
  return [o.cluster_name, eps.sort()]
}

export interface AdsAnswer {
  /** ms since the watch was created. */
  at: number
  type: 'cds' | 'eds' | 'lds'
  /** The stream (1, 2, ...: one per connection) it arrived on. */
  stream: number
  /** CDS: the cluster names; EDS: the cluster names of the assignments it carried; LDS: the listener names. */
  names: string[]
  /** EDS: endpoints per cluster. */
  endpoints?: Record<string, string[]>
}

/** Options of AdsWatch beyond its address. */
export interface AdsWatchOptions {
  /** Reconnect every `retryMs` (default 10). */
  retryMs?: number
  /** Present the last ACKed version_info of each type when a stream opens again, as Envoy does (default false). */
  resume?: boolean
  /** Subscribe to every Listener too (wildcard LDS), as Envoy does (default false). */
  listeners?: boolean
  /**
   * The Docker network the watch declares (node metadata `shoal.network`, as `shoal
   * envoy-bootstrap --network` writes it); none: an Envoy on a host's network.
   */
  network?: string
}

export class AdsWatch {
  readonly answers: AdsAnswer[] = []
  /** The configuration held now: cluster -> endpoints (kept across broken streams). */
  readonly view = new Map<string, string[]>()
  streams = 0
  private readonly t0 = performance.now()
  private readonly protos = loadXdsProtos()
  private readonly client: grpc.Client
  private call: grpc.ClientDuplexStream<any, any> | undefined
  private retry: NodeJS.Timeout | undefined
  private closed = false
  private readonly node: object
  private readonly retryMs: number
  private readonly opts: AdsWatchOptions
  /** The last version ACKed per type URL (presented on reconnect with `resume`). */
  private readonly acked = new Map<string, string>()

  constructor(address: string, opts: number | AdsWatchOptions = {}) {
    this.opts = typeof opts === 'number' ? { retryMs: opts } : opts
    const retryMs = (this.retryMs = this.opts.retryMs ?? 10)
    const network = this.opts.network
    this.node = {
      id: `${network ? `${network}-` : 'restart-'}watch-${randomBytes(3).toString('hex')}`,
      cluster: 'test',
      user_agent_name: 'envoy',
      // google.protobuf.Value is loaded with camelCase names (protos.ts).
      ...(network ? { metadata: { fields: { 'shoal.network': { stringValue: network } } } } : {}),
    }
    const Ctor = grpc.makeGenericClientConstructor(this.protos.adsService, 'ads')
    // Reconnect at our own pace, not grpc-js's backoff: Envoy retries within its own bounds.
    this.client = new Ctor(address, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': retryMs,
      'grpc.max_reconnect_backoff_ms': retryMs,
    })
    this.open()
  }

  private open(): void {
    if (this.closed) return
    const stream = ++this.streams
    const call = (this.client as any).StreamAggregatedResources() as grpc.ClientDuplexStream<any, any>
    this.call = call
    const cluster = this.protos.typeOf(TypeUrl.cluster)!
    const cla = this.protos.typeOf(TypeUrl.endpoint)!
    let clusters: string[] = []
    const again = (): void => {
      if (this.closed || this.call !== call || this.retry) return
      this.retry = setTimeout(() => {
        this.retry = undefined
        this.open()
      }, this.retryMs)
    }
    call.on('error', again)
    call.on('end', again)
    call.on('data', (res: any) => {
      const at = performance.now() - this.t0
      const ack = { node: this.node, type_url: res.type_url, version_info: res.version_info, response_nonce: res.nonce }
      this.acked.set(res.type_url, res.version_info)
      if (res.type_url === TypeUrl.cluster) {
        const names = (res.resources as any[])
          .map((a) => String((cluster.toObject(cluster.decode(a.value), DECODE_OPTIONS) as any).name))
          .sort()
        this.answers.push({ at, type: 'cds', stream, names })
        for (const c of [...this.view.keys()]) if (!names.includes(c)) this.view.delete(c)
        for (const c of names) if (!this.view.has(c)) this.view.set(c, [])
        call.write({ ...ack, resource_names: [] })
        if (names.join() !== clusters.join()) call.write({ node: this.node, type_url: TypeUrl.endpoint, resource_names: names })
        clusters = names
      } else if (res.type_url === TypeUrl.endpoint) {
        const endpoints: Record<string, string[]> = {}
        for (const a of res.resources as any[]) {
          const [name, eps] = endpointsOf(cla, a.value, DECODE_OPTIONS)
          endpoints[name] = eps
          this.view.set(name, eps)
        }
        this.answers.push({ at, type: 'eds', stream, names: Object.keys(endpoints).sort(), endpoints })
        call.write({ ...ack, resource_names: clusters })
      } else {
        if (res.type_url === TypeUrl.listener) {
          const listener = this.protos.typeOf(TypeUrl.listener)!
          const names = (res.resources as any[])
            .map((a) => String((listener.toObject(listener.decode(a.value), DECODE_OPTIONS) as any).name))
            .sort()
          this.answers.push({ at, type: 'lds', stream, names })
        }
        call.write({ ...ack, resource_names: [] })
      }
    })
    const first = (type_url: string) => ({
      node: this.node,
      type_url,
      resource_names: [],
      ...(this.opts.resume && this.acked.has(type_url) ? { version_info: this.acked.get(type_url) } : {}),
    })
    call.write(first(TypeUrl.cluster))
    if (this.opts.listeners) call.write(first(TypeUrl.listener))
    // Envoy asks again for the assignments of the Clusters it holds, with their version.
    if (this.opts.resume && this.view.size > 0) {
      clusters = [...this.view.keys()].sort()
      call.write({ ...first(TypeUrl.endpoint), resource_names: clusters })
    }
  }

  /** The node id it presents (for /debug/xds). */
  get nodeId(): string {
    return (this.node as { id: string }).id
  }

  /** Clusters held now that have at least one endpoint. */
  served(): number {
    let n = 0
    for (const eps of this.view.values()) if (eps.length > 0) n++
    return n
  }

  close(): void {
    this.closed = true
    if (this.retry) clearTimeout(this.retry)
    try {
      this.call?.cancel()
    } catch {
      // closed already
    }
    this.client.close()
  }
}
