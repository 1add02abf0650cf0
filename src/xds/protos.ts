/**
 * Envoy v3 protos, loaded once per process from `descriptors.json`: protobufjs JSON descriptors
 * of exactly the types Shoal serves, packs and reads (`DESCRIBED_TYPES`) and of every type their
 * fields reach, with each field's protoc-gen-validate rules, generated from the protos
 * @grpc/grpc-js-xds ships by scripts/xds-descriptors.ts (keepCase). Loading them costs about
 * 2 MiB of heap where parsing the .proto files cost about 20 MiB (README "Memory"). One Root
 * serves three needs: packing resources as Any, reading the `(validate.rules)` annotations,
 * and the ADS method's (de)serializers.
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ShoalError } from '../errors.js'
import { createRequire } from 'node:module'
import type { ServiceDefinition } from '@grpc/grpc-js'
import type * as Protobuf from 'protobufjs'

const require = createRequire(import.meta.url)

/** Type URLs of the resource types Shoal serves. */
export const TypeUrl = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  /** SDS: certificates, keys and validation contexts for Envoy (README, mTLS between Envoy sidecars). */
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const
export type TypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl]

/** Type URLs of the extension configs Shoal puts inside resources. */
export const ExtUrl = {
  hcm: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  httpProtocolOptions: 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  extAuthzHttp: 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
  extAuthzNetwork: 'type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz',
  rbacHttp: 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
  rbacNetwork: 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC',
  upstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  downstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  tlsInspector: 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
} as const

/**
 * A google.protobuf.Duration of `ms` milliseconds, as a plain object for `fromObject`.
 *
 * @example
 *   protoDuration(1500) // { seconds: 1, nanos: 500_000_000 }
 */
export function protoDuration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 }
}

/** Short name of a resource type, for metrics, logs and `/debug/xds`. */
export type TypeLabel = 'cds' | 'eds' | 'sds' | 'lds' | 'rds'

/** What the server needs to know about one resource type. */
export interface XdsType {
  url: TypeUrl
  label: TypeLabel
  /**
   * State of the world carries every subscribed resource: a subscribed name missing from a
   * response deletes it on the client (Listener and Cluster; xDS protocol, "Resource types
   * ... LDS and CDS"; grpc-js-xds `allResourcesRequiredInSotW`, gRFC A53).
   */
  fullSet: boolean
  /**
   * Make before break: position in a push (Envoy's xDS protocol, "Eventual consistency
   * considerations": CDS, then EDS for those clusters, then LDS, then RDS). Secrets go after
   * EDS and before LDS: a warming Cluster or Listener waits for the Secrets it names (Envoy's SDS
   * doc), and Envoy asks for a Secret only once a resource names it.
   */
  pushOrder: number
  /**
   * Removals last, the referring type before the referred one (Listeners stop naming a
   * Cluster before the Cluster goes); null: the type is never removed by omission.
   */
  removalOrder: number | null
}

/**
 * The type table: one row per resource type Shoal serves (go-control-plane's ResponseType
 * plays this role there). Rows are in push order.
 */
export const XDS_TYPES: readonly XdsType[] = [
  { url: TypeUrl.cluster, label: 'cds', fullSet: true, pushOrder: 0, removalOrder: 1 },
  { url: TypeUrl.endpoint, label: 'eds', fullSet: false, pushOrder: 1, removalOrder: null },
  { url: TypeUrl.secret, label: 'sds', fullSet: false, pushOrder: 2, removalOrder: null },
  { url: TypeUrl.listener, label: 'lds', fullSet: true, pushOrder: 3, removalOrder: 0 },
  { url: TypeUrl.route, label: 'rds', fullSet: false, pushOrder: 4, removalOrder: null },
]

const BY_URL = new Map<string, XdsType>(XDS_TYPES.map((t) => [t.url, t]))
const BY_LABEL = new Map<string, XdsType>(XDS_TYPES.map((t) => [t.label, t]))

/** The row of a type URL, or undefined for a type Shoal does not serve. */
export function xdsType(url: string): XdsType | undefined {
  return BY_URL.get(url)
}

/** The row of a label. */
export function xdsTypeOfLabel(label: TypeLabel): XdsType {
  return BY_LABEL.get(label)!
}

/** The full-set types in removal order (Listener, then Cluster). */
export const REMOVAL_TYPES: readonly XdsType[] = XDS_TYPES.filter((t) => t.removalOrder !== null).sort(
  (a, b) => a.removalOrder! - b.removalOrder!,
)

/** A google.protobuf.Any as it goes on the wire. */
export interface PackedAny {
  type_url: string
  value: Uint8Array
}

export interface XdsProtos {
  root: Protobuf.Root
  /** ADS service definition for @grpc/grpc-js `server.addService`. */
  adsService: ServiceDefinition
  /** The message type of a type URL (resource or extension), or undefined when not loaded. */
  typeOf(typeUrl: string): Protobuf.Type | undefined
  /** Encode a plain object (keepCase field names; nested Any as `{ '@type', ...fields }`) as an Any. */
  pack(typeUrl: string, obj: object): PackedAny
}

const typeName = (url: string): string => url.slice(url.lastIndexOf('/') + 1)

/**
 * The types descriptors.json holds (with the closure of their fields): every resource type of
 * XDS_TYPES, every extension config packed inside one (ExtUrl), and the ADS messages. A type
 * Shoal starts to pack or check goes here, then `npm run xds:descriptors`.
 */
export const DESCRIBED_TYPES: readonly string[] = [
  ...XDS_TYPES.map((t) => typeName(t.url)),
  ...Object.values(ExtUrl).map(typeName),
  'envoy.service.discovery.v3.DiscoveryRequest',
  'envoy.service.discovery.v3.DiscoveryResponse',
]

/** The shape of descriptors.json (scripts/xds-descriptors.ts writes it). */
export interface XdsDescriptors {
  /** The package and version the protos came from. */
  generatedFrom: string
  /** DESCRIBED_TYPES when it was made. */
  types: string[]
  /** protobufjs JSON (`Root.fromJSON`): namespaces, types with fully qualified field types, enums. */
  root: Record<string, unknown>
  /** Per type (full name) and field: the field's `(validate.rules)`, as protobufjs parses them. */
  rules: Record<string, Record<string, Record<string, unknown>>>
}

/** Options for decoding DiscoveryRequests and DiscoveryResponses into plain objects. */
export const DECODE_OPTIONS = { longs: String, enums: String, defaults: true, oneofs: true } as const

let cached: XdsProtos | undefined

/**
 * A Root of the descriptors: protobufjs' light build (no .proto parser), the PGV rules put back
 * where a parsed .proto would hold them (`Field.parsedOptions`, which pgv.ts reads).
 */
export function rootOfDescriptors(d: XdsDescriptors): Protobuf.Root {
  const protobuf = require('protobufjs/light') as typeof Protobuf
  const root = protobuf.Root.fromJSON(d.root as Protobuf.INamespace)
  root.resolveAll()
  for (const [type, fields] of Object.entries(d.rules)) {
    const t = root.lookupType(type)
    for (const [field, rules] of Object.entries(fields)) {
      const f = t.fields[field]
      if (!f) throw new Error(`descriptors.json: ${type} has no field ${field}`)
      f.parsedOptions = [{ '(validate.rules)': rules }] as unknown as Protobuf.Field['parsedOptions']
    }
  }
  return root
}

/** Load (once; a few milliseconds) and return the protos of descriptors.json. */
export function loadXdsProtos(): XdsProtos {
  cached ??= xdsProtosOf(
    rootOfDescriptors(JSON.parse(readFileSync(new URL('./descriptors.json', import.meta.url), 'utf8')) as XdsDescriptors),
  )
  return cached
}

/**
 * Throws SHOAL_ERR_XDS_ASSET when the install lacks what the first xDS client loads
 * (descriptors.json, which scripts/copy-assets.mjs copies into a build, or @grpc/grpc-js), so
 * that a broken install fails when the agent starts, not when its Envoy first connects.
 */
export function checkXdsInstall(): void {
  const file = fileURLToPath(new URL('./descriptors.json', import.meta.url))
  if (!existsSync(file))
    throw new ShoalError(
      'SHOAL_ERR_XDS_ASSET',
      `${file} is missing: the build did not copy the xDS descriptors (npm run build runs scripts/copy-assets.mjs)`,
    )
  try {
    require.resolve('@grpc/grpc-js')
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_XDS_ASSET', '@grpc/grpc-js is not installed (run npm ci)', { cause: err })
  }
}

/**
 * The protos of descriptors.json, loaded at the first use of any member (README "Memory": about
 * 5 MiB of RSS that an agent pays only once it encodes a resource or serves a client).
 */
export function lazyXdsProtos(): XdsProtos {
  return {
    get root() {
      return loadXdsProtos().root
    },
    get adsService() {
      return loadXdsProtos().adsService
    },
    typeOf: (typeUrl) => loadXdsProtos().typeOf(typeUrl),
    pack: (typeUrl, obj) => loadXdsProtos().pack(typeUrl, obj),
  }
}

/** The packing, type lookup and ADS (de)serializers over a Root (descriptors.json's, or a test's parse of the .proto files). */
export function xdsProtosOf(root: Protobuf.Root): XdsProtos {
  const typeCache = new Map<string, Protobuf.Type | undefined>()
  const typeOf = (typeUrl: string): Protobuf.Type | undefined => {
    if (typeCache.has(typeUrl)) return typeCache.get(typeUrl)
    const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1)
    let t: Protobuf.Type | undefined
    try {
      t = root.lookupType(name)
    } catch {
      t = undefined
    }
    typeCache.set(typeUrl, t)
    return t
  }
  const pack = (typeUrl: string, obj: object): PackedAny => {
    const t = typeOf(typeUrl)
    if (!t) throw new Error(`type ${typeUrl} is not loaded`)
    return { type_url: typeUrl, value: t.encode(t.fromObject(obj)).finish() }
  }

  const req = root.lookupType('envoy.service.discovery.v3.DiscoveryRequest')
  const res = root.lookupType('envoy.service.discovery.v3.DiscoveryResponse')
  const adsService: ServiceDefinition = {
    StreamAggregatedResources: {
      path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
      requestStream: true,
      responseStream: true,
      requestSerialize: (o: object) => Buffer.from(req.encode(req.fromObject(o)).finish()),
      requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), DECODE_OPTIONS),
      // The server writes responses pre-encoded (encodeDiscoveryResponse); objects still work.
      responseSerialize: (o: object) => (Buffer.isBuffer(o) ? o : Buffer.from(res.encode(res.fromObject(o)).finish())),
      responseDeserialize: (b: Buffer) => res.toObject(res.decode(b), DECODE_OPTIONS),
    },
  }
  return { root, adsService, typeOf, pack }
}

function varint(n: number): number[] {
  const out: number[] = []
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  out.push(n)
  return out
}

function lengthDelimited(tag: number, body: Buffer): Buffer[] {
  return [Buffer.from([tag, ...varint(body.length)]), body]
}

/**
 * One google.protobuf.Any as a DiscoveryResponse `resources` entry (field 2, wire bytes), so a
 * response is a concatenation of cached entries instead of a re-encoding of every resource.
 * The value is returned as a view into the entry (no second copy).
 *
 * @example
 *   const { entry, value } = encodeAnyEntry(TypeUrl.cluster, clusterBytes)
 */
export function encodeAnyEntry(typeUrl: string, value: Uint8Array): { entry: Buffer; value: Buffer } {
  const any = Buffer.concat([
    ...lengthDelimited(0x0a, Buffer.from(typeUrl)),
    ...lengthDelimited(0x12, Buffer.from(value.buffer, value.byteOffset, value.byteLength)),
  ])
  const entry = Buffer.concat(lengthDelimited(0x12, any))
  return { entry, value: entry.subarray(entry.length - value.byteLength) }
}

/** A DiscoveryResponse (version_info = 1, resources = 2, type_url = 4, nonce = 5) from pre-encoded resource entries. */
export function encodeDiscoveryResponse(versionInfo: string, entries: Buffer[], typeUrl: string, nonce: string): Buffer {
  const parts: Buffer[] = []
  if (versionInfo) parts.push(...lengthDelimited(0x0a, Buffer.from(versionInfo)))
  for (const e of entries) parts.push(e)
  if (typeUrl) parts.push(...lengthDelimited(0x22, Buffer.from(typeUrl)))
  if (nonce) parts.push(...lengthDelimited(0x2a, Buffer.from(nonce)))
  return Buffer.concat(parts)
}
