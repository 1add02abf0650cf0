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

export class SnapshotBuilder {
  private memo: Record<NodeKind, Map<string, GroupEntry>> = { envoy: new Map(), grpc: new Map() }
  private last: Record<NodeKind, { snap: CatalogSnapshot; seq: number; out: KindSnapshot; invalid: InvalidResource[] } | undefined> = { envoy: undefined, grpc: undefined }

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
    const { groups, conflicts } = groupServicePorts(snap)
    const memo = this.memo[kind]
    const next = new Map<string, GroupEntry>()
    const out: KindSnapshot = {
      kind,
      conflicts,
      resources: { [TypeUrl.cluster]: new Map(), [TypeUrl.endpoint]: new Map(), [TypeUrl.listener]: new Map(), [TypeUrl.route]: new Map() },
    }
    const invalid: InvalidResource[] = []
    for (const g of groups) {
      const key = groupKey(g)
      let entry = memo.get(key)
      if (!entry) {
        entry = this.buildGroup(g, kind)
        for (const bad of entry.invalid) this.onInvalid(kind, bad)
      }
      next.set(key, entry)
      for (const [t, r] of entry.byType) out.resources[t].set(r.name, r)
      invalid.push(...entry.invalid)
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

function groupKey(g: ServicePortGroup): string {
  let k = `${g.name}|${g.servicePort}|${g.mode}|${g.singlePort ? 1 : 0}`
  for (const i of g.instances) k += `|${i.host},${i.id},${i.status},${i.ip},${i.port}`
  return k
}
