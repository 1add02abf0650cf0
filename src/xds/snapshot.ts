/**
 * Per-node-kind snapshots of encoded, validated resources. Building is memoized per
 * ServicePort group (keyed by the group's inputs), so a catalog change re-encodes and
 * re-validates only the ServicePorts it touched.
 */
import { createHash } from 'node:crypto'
import type { CatalogSnapshot } from '../registry/types.js'
import { TypeUrl, type PackedAny, type XdsProtos } from './protos.js'
import { buildGroupResources, groupServicePorts, type NodeKind, type ResourceOptions, type ServicePortConflict, type ServicePortGroup } from './resources.js'
import { validateResource } from './validate.js'

/** One resource ready to send: its Any and a content hash. */
export interface ServedResource {
  name: string
  any: PackedAny
  hash: string
}

export interface KindSnapshot {
  kind: NodeKind
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

type GroupEntry = { byType: Array<[TypeUrl, ServedResource]>; invalid: InvalidResource[] }

export function contentHash(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('base64url').slice(0, 22)
}

/** Version of a set of resources: a hash of their names and content hashes. */
export function versionOf(resources: Iterable<ServedResource>): string {
  const parts: string[] = []
  for (const r of resources) parts.push(`${r.name}=${r.hash}`)
  parts.sort()
  return contentHash(parts.join(';'))
}

interface Memo {
  g: ServicePortGroup
  entry: GroupEntry
}

export class SnapshotBuilder {
  private memo: Record<NodeKind, Map<number, Memo>> = { envoy: new Map(), grpc: new Map() }
  private last: Record<NodeKind, { snap: CatalogSnapshot; seq: number; out: KindSnapshot; invalid: InvalidResource[] } | undefined> = { envoy: undefined, grpc: undefined }
  private grouped: { snap: CatalogSnapshot; seq: number; groups: ServicePortGroup[]; conflicts: ServicePortConflict[] } | undefined

  constructor(
    private readonly protos: XdsProtos,
    private readonly opts: ResourceOptions,
    /** Called once for each newly built resource that fails validation (it is not served). */
    private readonly onInvalid: (kind: NodeKind, bad: InvalidResource) => void,
  ) {}

  /** Resources that currently fail validation, per kind, from the last build. */
  invalid(kind: NodeKind): InvalidResource[] {
    return this.last[kind]?.invalid ?? []
  }

  build(snap: CatalogSnapshot, kind: NodeKind): KindSnapshot {
    const prev = this.last[kind]
    if (prev && prev.snap === snap && prev.seq === snap.seq) return prev.out
    // Grouping is shared by both kinds of the same snapshot.
    if (!this.grouped || this.grouped.snap !== snap || this.grouped.seq !== snap.seq) this.grouped = { snap, seq: snap.seq, ...groupServicePorts(snap) }
    const { groups, conflicts } = this.grouped
    const memo = this.memo[kind]
    const next = new Map<number, Memo>()
    const out: KindSnapshot = {
      kind,
      conflicts,
      resources: { [TypeUrl.cluster]: new Map(), [TypeUrl.endpoint]: new Map(), [TypeUrl.listener]: new Map(), [TypeUrl.route]: new Map() },
    }
    const invalid: InvalidResource[] = []
    for (const g of groups) {
      let m = memo.get(g.servicePort)
      if (!m || !sameGroup(m.g, g)) {
        m = { g, entry: this.buildGroup(g, kind) }
        for (const bad of m.entry.invalid) this.onInvalid(kind, bad)
      }
      next.set(g.servicePort, m)
      for (const [t, r] of m.entry.byType) out.resources[t].set(r.name, r)
      if (m.entry.invalid.length) invalid.push(...m.entry.invalid)
    }
    // Keep only the groups of this snapshot: memory stays proportional to the catalog.
    this.memo[kind] = next
    this.last[kind] = { snap, seq: snap.seq, out, invalid }
    return out
  }

  private buildGroup(g: ServicePortGroup, kind: NodeKind): GroupEntry {
    const set = buildGroupResources(g, kind, this.opts)
    const entry: GroupEntry = { byType: [], invalid: [] }
    for (const [k, typeUrl] of SETS) {
      for (const [name, obj] of set[k]) {
        const errors = validateResource(this.protos, typeUrl, obj)
        if (errors.length) {
          entry.invalid.push({ typeUrl, name, errors })
          continue
        }
        const any = this.protos.pack(typeUrl, obj)
        entry.byType.push([typeUrl, { name, any, hash: contentHash(any.value) }])
      }
    }
    return entry
  }
}

/** Same inputs: instance objects are identical for unchanged records, else compared by value. */
function sameGroup(a: ServicePortGroup, b: ServicePortGroup): boolean {
  if (a === b) return true
  if (a.name !== b.name || a.mode !== b.mode || a.singlePort !== b.singlePort || a.instances.length !== b.instances.length) return false
  for (let k = 0; k < a.instances.length; k++) {
    const x = a.instances[k]!
    const y = b.instances[k]!
    if (x === y) continue
    if (x.host !== y.host || x.id !== y.id || x.status !== y.status || x.ip !== y.ip || x.port !== y.port) return false
  }
  return true
}
