/**
 * Per-flavour snapshots (node kind, mTLS or plain) of encoded, validated resources, built incrementally: the
 * GroupIndex names the ServicePorts a catalog change touched, only those groups are rebuilt,
 * and within a rebuilt group a resource whose object is unchanged (same JSON) keeps its
 * validated, encoded form. The per-type maps of a snapshot are never mutated once built (a
 * change copies the maps it touches), so a client may keep holding the one it was sent.
 */
import { createHash } from 'node:crypto'
import type { CatalogSnapshot } from '../registry/types.js'
import { GroupIndex, sameAuthz, type AuthzIssue, type DroppedEndpoint, type ServicePortConflict, type ServicePortGroup } from './groups.js'
import { encodeAnyEntry, TypeUrl, XDS_TYPES, type PackedAny, type XdsProtos } from './protos.js'
import { buildGroupResources, type NodeKind, type ResourceOptions } from './resources.js'
import { withEnvoyMtls } from './envoy-tls.js'
import { withGrpcUpstreamTls } from './tls.js'
import { validateResource } from './validate.js'

/**
 * What one client is served: resources for its node kind, in their mTLS form or plain (README,
 * Service identity: `--tls-mode` and the client's certificate providers decide).
 */
export interface Flavour {
  kind: NodeKind
  mtls: boolean
}

/** `grpc`, `grpc+mtls`, ...: a flavour as a key and a label. */
export function flavourName(f: Flavour): string {
  return f.mtls ? `${f.kind}+mtls` : f.kind
}

/** A node kind alone is its plain flavour. */
function asFlavour(f: NodeKind | Flavour): Flavour {
  return typeof f === 'string' ? { kind: f, mtls: false } : f
}

/** One resource ready to send: its Any, its wire form and a content hash. */
export interface ServedResource {
  name: string
  any: PackedAny
  /** Content hash of the type, name and encoded value. */
  hash: string
  /** The Any as a DiscoveryResponse `resources` entry (see encodeDiscoveryResponse). */
  wire: Buffer
  /** The hash as four 32-bit lanes; a set's version sums them, so it needs no sort. */
  lanes: readonly [number, number, number, number]
}

export interface KindSnapshot {
  kind: NodeKind
  flavour: Flavour
  resources: Record<TypeUrl, Map<string, ServedResource>>
  conflicts: ServicePortConflict[]
}

export interface InvalidResource {
  typeUrl: TypeUrl
  name: string
  errors: string[]
}

const SETS = [
  ['clusters', TypeUrl.cluster],
  ['endpoints', TypeUrl.endpoint],
  ['listeners', TypeUrl.listener],
  ['routes', TypeUrl.route],
] as const
const TYPES = XDS_TYPES.map((t) => t.url)

export function contentHash(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('base64url').slice(0, 22)
}

/** A ServedResource for an encoded value. */
export function servedResource(typeUrl: string, name: string, value: Uint8Array): ServedResource {
  const { entry, value: view } = encodeAnyEntry(typeUrl, value)
  const d = createHash('sha256').update(typeUrl).update('\0').update(name).update('\0').update(view).digest()
  return {
    name,
    any: { type_url: typeUrl, value: view },
    hash: d.toString('base64url', 0, 16),
    wire: entry,
    lanes: [d.readUInt32LE(0), d.readUInt32LE(4), d.readUInt32LE(8), d.readUInt32LE(12)],
  }
}

const variants = new WeakMap<ServedResource, ServedResource>()
const variantSet = new WeakSet<ServedResource>()

/** The resource is a restored form made by restoredVariant. */
export function isRestoredVariant(res: ServedResource): boolean {
  return variantSet.has(res)
}

/**
 * The "restored" form of a Listener or Cluster: the same configuration in different bytes,
 * for a client that held a resource of this name in its normal form when it was deleted.
 * grpc-js-xds 1.14 keeps a deleted resource in its cache and ignores a later one that decodes
 * equal to it (it compares the fields it reads, so even a changed proxy mode can look equal):
 * a service removed and added back would stay "does not exist" on that client (fixed
 * upstream in grpc-node #3074, not released). A normal form never decodes equal to a
 * restored one. The variant spells out a default:
 * Listener `stat_prefix` (the listener's name; gRPC does not read it), Cluster outlier
 * detection `max_ejection_time` 300 s (Envoy's and gRFC A50's default when unset). Other
 * types are returned unchanged.
 */
export function restoredVariant(protos: XdsProtos, res: ServedResource): ServedResource {
  const url = res.any.type_url
  if (url !== TypeUrl.listener && url !== TypeUrl.cluster) return res
  let v = variants.get(res)
  if (!v) {
    const T = protos.typeOf(url)!
    const obj = T.toObject(T.decode(res.any.value), { longs: Number }) as Record<string, unknown>
    const od = obj.outlier_detection as Record<string, unknown> | undefined
    if (url === TypeUrl.listener) obj.stat_prefix = obj.stat_prefix ? '' : res.name
    else if (od) {
      if (od.max_ejection_time) delete od.max_ejection_time
      else od.max_ejection_time = { seconds: 300, nanos: 0 }
    }
    v = servedResource(url, res.name, T.encode(T.fromObject(obj)).finish())
    variants.set(res, v)
    variantSet.add(v)
  }
  return v
}

/**
 * Version of a set of resources: a content hash of their names and contents that does not
 * depend on their order (lane-wise sums of the per-resource hashes, and the count).
 */
export function versionOf(resources: Iterable<ServedResource>): string {
  let a = 0
  let b = 0
  let c = 0
  let d = 0
  let n = 0
  for (const r of resources) {
    a = (a + r.lanes[0]) >>> 0
    b = (b + r.lanes[1]) >>> 0
    c = (c + r.lanes[2]) >>> 0
    d = (d + r.lanes[3]) >>> 0
    n++
  }
  const buf = Buffer.alloc(20)
  buf.writeUInt32LE(a, 0)
  buf.writeUInt32LE(b, 4)
  buf.writeUInt32LE(c, 8)
  buf.writeUInt32LE(d, 12)
  buf.writeUInt32LE(n >>> 0, 16)
  return buf.toString('base64url')
}

// Snapshot maps and selections are never mutated once versioned: their version is cached.
const versionCache = new WeakMap<Map<string, ServedResource>, string>()

/** versionOf a map that will not be mutated afterwards, cached by identity. */
export function versionOfSet(set: Map<string, ServedResource>): string {
  let v = versionCache.get(set)
  if (v === undefined) {
    v = versionOf(set.values())
    versionCache.set(set, v)
  }
  return v
}

interface Entry {
  typeUrl: TypeUrl
  res: ServedResource
  /** Hash of the resource object's JSON: equal means "same input, same validated bytes". */
  key: string
}

interface GroupMemo {
  g: ServicePortGroup
  entries: Entry[]
  invalid: InvalidResource[]
}

interface KindState {
  changes: Set<number>
  memo: Map<number, GroupMemo>
  out: KindSnapshot | undefined
}

/** Build statistics of the last build of a kind (for benches and debugging). */
export interface BuildStats {
  groupsRebuilt: number
  resourcesEncoded: number
  resourcesReused: number
}

export class SnapshotBuilder {
  private readonly index = new GroupIndex()
  /** Per flavour, made when a client of that flavour first asks. */
  private readonly kinds = new Map<string, KindState & { flavour: Flavour }>()
  /** Stats of the most recent build that did any work. */
  lastStats: BuildStats = { groupsRebuilt: 0, resourcesEncoded: 0, resourcesReused: 0 }

  constructor(
    private readonly protos: XdsProtos,
    /**
     * mTLS flavours need `trustDomain`; Envoy's also `node` (this agent: its own instances are
     * reached directly, and it shows the node's identity) and `strict` (other hosts' instances
     * without an inbound address are left out).
     */
    private readonly opts: ResourceOptions & { trustDomain?: string; node?: string; strict?: boolean },
    /** Called once for each newly built resource that fails validation (it is not served). */
    private readonly onInvalid: (flavour: Flavour, bad: InvalidResource) => void,
  ) {}

  private state(f: Flavour): KindState & { flavour: Flavour } {
    const key = flavourName(f)
    let st = this.kinds.get(key)
    // A new flavour's change set starts with every group: its first build is a full one.
    if (!st) this.kinds.set(key, (st = { flavour: f, changes: this.index.consumer(), memo: new Map(), out: undefined }))
    return st
  }

  /** The flavours built so far. */
  flavours(): Flavour[] {
    return [...this.kinds.values()].map((k) => k.flavour)
  }

  /** ServicePorts claimed by two or more names, as of the last update or build. */
  get conflicts(): ServicePortConflict[] {
    return this.index.conflicts
  }

  /** Instances left out of their ClusterLoadAssignment, as of the last update or build. */
  get dropped(): DroppedEndpoint[] {
    return this.index.dropped
  }

  /** Authorization requests that cannot be served (the protected listener denies everything unless failure_mode_allow). */
  get authzIssues(): AuthzIssue[] {
    return this.index.authzIssues
  }

  /** Bring the grouping up to `snap` without building resources (so conflicts and dropped endpoints are known with no client). */
  update(snap: CatalogSnapshot): void {
    this.index.update(snap)
  }

  /** Resources that currently fail validation, per flavour, from the last build. */
  invalid(flavour: NodeKind | Flavour): InvalidResource[] {
    const out: InvalidResource[] = []
    for (const m of this.kinds.get(flavourName(asFlavour(flavour)))?.memo.values() ?? []) if (m.invalid.length) out.push(...m.invalid)
    return out
  }

  build(snap: CatalogSnapshot, f: NodeKind | Flavour): KindSnapshot {
    const flavour = asFlavour(f)
    this.index.update(snap)
    const st = this.state(flavour)
    const conflicts = this.index.conflicts
    if (st.out && st.changes.size === 0) {
      if (st.out.conflicts !== conflicts) st.out = { ...st.out, conflicts }
      return st.out
    }
    const stats: BuildStats = { groupsRebuilt: 0, resourcesEncoded: 0, resourcesReused: 0 }
    const sps = [...st.changes].sort((a, b) => a - b)
    st.changes.clear()
    const removed: Entry[] = []
    const added: Entry[] = []
    for (const sp of sps) {
      const g = this.index.groups.get(sp)
      const m = st.memo.get(sp)
      if (!g) {
        if (m) {
          removed.push(...m.entries)
          st.memo.delete(sp)
        }
        continue
      }
      if (m && sameGroup(m.g, g)) {
        m.g = g
        continue
      }
      const next = this.buildGroup(g, flavour, m, stats)
      for (const bad of next.invalid) this.onInvalid(flavour, bad)
      const kept = new Set(next.entries.map((e) => e.res))
      for (const e of m?.entries ?? []) if (!kept.has(e.res)) removed.push(e)
      const had = new Set(m?.entries.map((e) => e.res))
      for (const e of next.entries) if (!had.has(e.res)) added.push(e)
      st.memo.set(sp, next)
    }
    // Removals first: a bare-name listener may move from one group to another in one change.
    const resources = st.out ? { ...st.out.resources } : (Object.fromEntries(TYPES.map((t) => [t, new Map()])) as KindSnapshot['resources'])
    const copied = new Set<TypeUrl>()
    const writable = (t: TypeUrl): Map<string, ServedResource> => {
      if (st.out && !copied.has(t)) {
        resources[t] = new Map(resources[t])
        copied.add(t)
      }
      return resources[t]
    }
    for (const e of removed) {
      if (resources[e.typeUrl].get(e.res.name) === e.res) writable(e.typeUrl).delete(e.res.name)
    }
    for (const e of added) writable(e.typeUrl).set(e.res.name, e.res)
    st.out = { kind: flavour.kind, flavour, resources, conflicts }
    if (stats.groupsRebuilt) this.lastStats = stats
    return st.out
  }

  private buildGroup(g: ServicePortGroup, flavour: Flavour, prev: GroupMemo | undefined, stats: BuildStats): GroupMemo {
    stats.groupsRebuilt++
    const set = buildGroupResources(g, flavour.kind, this.opts)
    if (flavour.mtls && flavour.kind === 'grpc') withGrpcUpstreamTls(set, this.opts.trustDomain!, g.name)
    if (flavour.mtls && flavour.kind === 'envoy')
      withEnvoyMtls(set, g, { trustDomain: this.opts.trustDomain!, node: this.opts.node!, strict: this.opts.strict === true })
    const out: GroupMemo = { g, entries: [], invalid: [] }
    // The same object may have been validated for another flavour (clusters are kind-independent,
    // assignments and listeners do not depend on mTLS).
    const key = flavourName(flavour)
    const others = [...this.kinds.entries()].filter(([k]) => k !== key).map(([, k]) => k.memo.get(g.servicePort))
    for (const [k, typeUrl] of SETS) {
      for (const [name, obj] of set[k]) {
        const key = contentHash(JSON.stringify(obj))
        const same = (e: Entry) => e.typeUrl === typeUrl && e.key === key && e.res.name === name
        let reuse = prev?.entries.find(same)
        for (const o of others) reuse ??= o?.entries.find(same)
        if (reuse) {
          stats.resourcesReused++
          out.entries.push(reuse)
          continue
        }
        const errors = validateResource(this.protos, typeUrl, obj)
        if (errors.length) {
          out.invalid.push({ typeUrl, name, errors })
          continue
        }
        stats.resourcesEncoded++
        const any = this.protos.pack(typeUrl, obj)
        out.entries.push({ typeUrl, key, res: servedResource(typeUrl, name, any.value) })
      }
    }
    return out
  }
}

/** Same inputs: instance objects are identical for unchanged records, else compared by value. */
function sameGroup(a: ServicePortGroup, b: ServicePortGroup): boolean {
  if (a === b) return true
  if (a.name !== b.name || a.mode !== b.mode || a.singlePort !== b.singlePort || a.idempotent !== b.idempotent) return false
  if (a.instances.length !== b.instances.length) return false
  if (!sameAuthz(a.authz, b.authz)) return false
  for (let k = 0; k < a.instances.length; k++) {
    const x = a.instances[k]!
    const y = b.instances[k]!
    if (x === y) continue
    if (x.host !== y.host || x.id !== y.id || x.status !== y.status || x.ip !== y.ip || x.port !== y.port) return false
    if (x.inbound?.ip !== y.inbound?.ip || x.inbound?.port !== y.inbound?.port) return false
  }
  return true
}
