/**
 * Per-view snapshots of encoded, validated resources, built incrementally. A view is a flavour
 * (node kind, mTLS or plain) on a client network (groups.ts ClientNetwork: a host's network, or
 * a Docker network a client declared), since a client is given the addresses it can reach in
 * the form it takes. The GroupIndex names the ServicePorts a catalog change touched; each
 * network resolves only those groups, each flavour on it rebuilds only those, and within a
 * rebuilt group a resource whose object is unchanged (same JSON) keeps its validated, encoded
 * form, whichever view built it first. The per-type maps of a snapshot are never mutated once
 * built (a change copies the maps it touches), so a client may keep holding the one it was sent.
 */
import { createHash } from 'node:crypto'
import type { CatalogSnapshot } from '../registry/types.js'
import {
  GroupIndex,
  resolveGroup,
  sameAuthz,
  type AuthzIssue,
  type ClientNetwork,
  type DroppedEndpoint,
  type EndpointGroup,
  type ServicePortConflict,
} from './groups.js'
import { encodeAnyEntry, TypeUrl, XDS_TYPES, type PackedAny, type XdsProtos } from './protos.js'
import { buildGroupResources, RESOURCE_SETS, type NodeKind, type ResourceOptions } from './resources.js'
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
  network: ClientNetwork
  resources: Record<TypeUrl, Map<string, ServedResource>>
  conflicts: ServicePortConflict[]
}

export interface InvalidResource {
  typeUrl: TypeUrl
  name: string
  errors: string[]
}

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
  g: EndpointGroup
  entries: Entry[]
  invalid: InvalidResource[]
}

interface FlavourState {
  flavour: Flavour
  changes: Set<number>
  memo: Map<number, GroupMemo>
  out: KindSnapshot | undefined
}

/** The groups of one client network, resolved (groups.ts resolveGroup), and each flavour's snapshot of them. */
interface NetworkView {
  network: ClientNetwork
  /** ServicePorts whose group changed since this view resolved it (a GroupIndex consumer). */
  pending: Set<number>
  groups: Map<number, EndpointGroup>
  droppedBySp: Map<number, DroppedEndpoint[]>
  /** Instances left out for this network, by ServicePort; a new array only when they changed. */
  dropped: DroppedEndpoint[]
  /** By flavourName, made when a client of that flavour on this network first asks. */
  kinds: Map<string, FlavourState>
  /** Clients using it (useNetwork); a Docker network's view goes with its last client. */
  users: number
}

/** Build statistics of the last build of a kind (for benches and debugging). */
export interface BuildStats {
  groupsRebuilt: number
  resourcesEncoded: number
  resourcesReused: number
}

const HOST_NETWORK = ''
const viewKey = (network: ClientNetwork): string => (network === null ? HOST_NETWORK : '=' + network)

export class SnapshotBuilder {
  private readonly index = new GroupIndex()
  /** By viewKey; the host network's view always exists. */
  private readonly views = new Map<string, NetworkView>()
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
  ) {
    this.view(null)
  }

  /** A flavour's state on one network, made when a client of that flavour there first asks. */
  private state(v: NetworkView, f: Flavour): FlavourState {
    const key = flavourName(f)
    let st = v.kinds.get(key)
    // A new flavour's change set starts with every group of the view: its first build is a full one.
    if (!st) v.kinds.set(key, (st = { flavour: f, changes: new Set(v.groups.keys()), memo: new Map(), out: undefined }))
    return st
  }

  /** The flavours built so far, on any network. */
  flavours(): Flavour[] {
    const out = new Map<string, Flavour>()
    for (const v of this.views.values()) for (const [key, k] of v.kinds) out.set(key, k.flavour)
    return [...out.values()]
  }

  /** ServicePorts claimed by two or more names, as of the last update or build. */
  get conflicts(): ServicePortConflict[] {
    return this.index.conflicts
  }

  /** Instances left out of their ClusterLoadAssignment for clients on `network` (default: a host's network), as of the last update or build. */
  dropped(network: ClientNetwork = null): DroppedEndpoint[] {
    return this.views.get(viewKey(network))?.dropped ?? []
  }

  /** The networks with a view (a host's network first), each with what is left out there. */
  networks(): Array<{ network: ClientNetwork; dropped: DroppedEndpoint[] }> {
    return [...this.views.values()].map((v) => ({ network: v.network, dropped: v.dropped }))
  }

  /**
   * Keep a view for clients on `network` (a client that declared it connected) until the
   * returned release is called as many times as useNetwork was. A host's network always has one.
   */
  useNetwork(network: ClientNetwork): () => void {
    const v = this.view(network)
    v.users++
    let released = false
    return () => {
      if (released) return
      released = true
      v.users--
      if (v.users > 0 || v.network === null || this.views.get(viewKey(network)) !== v) return
      this.views.delete(viewKey(network))
      this.index.release(v.pending)
    }
  }

  /** Authorization requests that cannot be served (the protected listener denies everything unless failure_mode_allow). */
  get authzIssues(): AuthzIssue[] {
    return this.index.authzIssues
  }

  /** Bring the grouping up to `snap` without building resources (so conflicts and dropped endpoints are known with no client). */
  update(snap: CatalogSnapshot): void {
    this.index.update(snap)
    for (const v of this.views.values()) this.resolve(v)
  }

  /** Resources that currently fail validation, per flavour, from the last build of any network. */
  invalid(flavour: NodeKind | Flavour): InvalidResource[] {
    const out: InvalidResource[] = []
    const seen = new Set<string>()
    const fk = flavourName(asFlavour(flavour))
    for (const v of this.views.values()) {
      for (const m of v.kinds.get(fk)?.memo.values() ?? []) {
        for (const bad of m.invalid) {
          const key = `${bad.typeUrl}|${bad.name}|${bad.errors.join()}`
          if (!seen.has(key)) out.push(bad)
          seen.add(key)
        }
      }
    }
    return out
  }

  /** The snapshot of a flavour (a node kind alone: its plain flavour) for clients on `network` (default: a host's network). */
  build(snap: CatalogSnapshot, f: NodeKind | Flavour, network: ClientNetwork = null): KindSnapshot {
    const flavour = asFlavour(f)
    this.update(snap)
    const v = this.view(network)
    const st = this.state(v, flavour)
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
      const g = v.groups.get(sp)
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
    st.out = { kind: flavour.kind, flavour, network: v.network, resources, conflicts }
    if (stats.groupsRebuilt) this.lastStats = stats
    return st.out
  }

  private view(network: ClientNetwork): NetworkView {
    const key = viewKey(network)
    let v = this.views.get(key)
    if (!v) {
      v = {
        network,
        pending: this.index.consumer(),
        groups: new Map(),
        droppedBySp: new Map(),
        dropped: [],
        kinds: new Map(),
        users: 0,
      }
      this.views.set(key, v)
      this.resolve(v)
    }
    return v
  }

  /** Resolve the groups that changed for one network; its flavours rebuild them on their next build. */
  private resolve(v: NetworkView): void {
    if (v.pending.size === 0) return
    let droppedChanged = false
    for (const sp of v.pending) {
      const g = this.index.groups.get(sp)
      for (const k of v.kinds.values()) k.changes.add(sp)
      if (!g) {
        v.groups.delete(sp)
        if (v.droppedBySp.delete(sp)) droppedChanged = true
        continue
      }
      const r = resolveGroup(g, v.network)
      v.groups.set(sp, r.group)
      const had = v.droppedBySp.get(sp)
      if (r.dropped.length || had) {
        if (JSON.stringify(had ?? []) !== JSON.stringify(r.dropped)) droppedChanged = true
        if (r.dropped.length) v.droppedBySp.set(sp, r.dropped)
        else v.droppedBySp.delete(sp)
      }
    }
    v.pending.clear()
    if (droppedChanged) v.dropped = [...v.droppedBySp.entries()].sort((a, b) => a[0] - b[0]).flatMap(([, d]) => d)
  }

  /**
   * An entry of any view's memo of this ServicePort with the same type, name and input: clusters
   * do not depend on the network or the node kind, assignments and listeners not on mTLS.
   */
  private reusable(sp: number, typeUrl: TypeUrl, name: string, key: string): Entry | undefined {
    for (const v of this.views.values()) {
      for (const k of v.kinds.values()) {
        const e = k.memo.get(sp)?.entries.find((x) => x.typeUrl === typeUrl && x.key === key && x.res.name === name)
        if (e) return e
      }
    }
    return undefined
  }

  private buildGroup(g: EndpointGroup, flavour: Flavour, prev: GroupMemo | undefined, stats: BuildStats): GroupMemo {
    stats.groupsRebuilt++
    const set = buildGroupResources(g, flavour.kind, this.opts)
    if (flavour.mtls && flavour.kind === 'grpc') withGrpcUpstreamTls(set, this.opts.trustDomain!, g.name)
    if (flavour.mtls && flavour.kind === 'envoy')
      withEnvoyMtls(set, g, { trustDomain: this.opts.trustDomain!, node: this.opts.node!, strict: this.opts.strict === true })
    const out: GroupMemo = { g, entries: [], invalid: [] }
    for (const [k, typeUrl] of RESOURCE_SETS) {
      for (const [name, obj] of set[k]) {
        const key = contentHash(JSON.stringify(obj))
        const reuse =
          prev?.entries.find((e) => e.typeUrl === typeUrl && e.key === key && e.res.name === name) ??
          this.reusable(g.servicePort, typeUrl, name, key)
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
function sameGroup(a: EndpointGroup, b: EndpointGroup): boolean {
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
    // Endpoint metadata (resources.ts endpointMetadata): a record that changed only its tags is a new record.
    if (x.tags !== y.tags || x.attributes !== y.attributes) return false
  }
  return true
}
