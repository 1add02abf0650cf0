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
  type: 'cds' | 'eds'
  /** The stream (1, 2, ...: one per connection) it arrived on. */
  stream: number
  /** CDS: the cluster names; EDS: the cluster names of the assignments it carried. */
  names: string[]
  /** EDS: endpoints per cluster. */
  endpoints?: Record<string, string[]>
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

  /**
   * `network`: the Docker network the watch declares (node metadata `shoal.network`, as
   * `shoal envoy-bootstrap --network` writes it); none: an Envoy on a host's network.
   */
  constructor(
    address: string,
    private readonly retryMs = 10,
    network?: string,
  ) {
    const id = `${network ? `${network}-` : ''}watch-${randomBytes(3).toString('hex')}`
    this.node = {
      id,
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
      } else call.write({ ...ack, resource_names: [] })
    })
    call.write({ node: this.node, type_url: TypeUrl.cluster, resource_names: [] })
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
