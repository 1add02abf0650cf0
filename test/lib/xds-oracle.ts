/**
 * Test oracles for the xDS snapshot: a whole-catalog grouping written independently of the
 * incremental GroupIndex (src/xds/groups.ts), resolved for the clients of one network, and
 * every resource of a catalog built from it. Tests compare the served state against these; the
 * server never uses them.
 *
 * @example
 *   const { clusters, conflicts } = buildResources(catalog.snapshot(), 'grpc', { envoyBind: '127.0.0.1' })
 *   const overlay = buildResources(catalog.snapshot(), 'grpc', { envoyBind: '127.0.0.1' }, 'shoal-apps')
 */
import { liveRecords, type CatalogSnapshot } from '../../src/registry/types.js'
import {
  authzRequestOf,
  compareInstances,
  endpointFilter,
  instancesOf,
  resolveAuthz,
  type AuthzIssue,
  type ClientNetwork,
  type DroppedEndpoint,
  type EndpointGroup,
  type Instance,
  type ServicePortConflict,
  type ServicePortGroup,
} from '../../src/xds/groups.js'
import type { TypeUrl } from '../../src/xds/protos.js'
import { buildGroupResources, RESOURCE_SETS, type NodeKind, type ResourceOptions, type ResourceSet } from '../../src/xds/resources.js'

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Group live records by ServicePort (tcp ports only), resolving name conflicts
 * deterministically: `groups` with every instance, `endpoints` as the clients on `network`
 * are given them, and the instances left out for those clients.
 */
export function groupServicePorts(
  snap: CatalogSnapshot,
  network: ClientNetwork = null,
): {
  groups: ServicePortGroup[]
  endpoints: EndpointGroup[]
  conflicts: ServicePortConflict[]
  dropped: DroppedEndpoint[]
  authzIssues: AuthzIssue[]
} {
  const bySp = new Map<number, Map<string, Instance[]>>()
  // Hosts by name, records by id (HostView's order): instances arrive sorted by (host, id).
  const hosts = [...snap.hosts].sort((a, b) => cmp(a.name, b.name))
  for (const r of liveRecords({ ...snap, hosts })) {
    for (const i of instancesOf(r)) {
      const sp = i.servicePort
      let names = bySp.get(sp)
      if (!names) bySp.set(sp, (names = new Map()))
      const list = names.get(r.name)
      if (list) list.push(i)
      else names.set(r.name, [i])
    }
  }
  const conflicts: ServicePortConflict[] = []
  const dropped: DroppedEndpoint[] = []
  const winners: Array<{ sp: number; name: string; all: Instance[]; kept: EndpointGroup['instances'] }> = []
  const portsPerName = new Map<string, number>()
  for (const [sp, names] of [...bySp].sort((a, b) => a[0] - b[0])) {
    const sorted = [...names.keys()].sort(cmp)
    const name = sorted[0]!
    if (sorted.length > 1) conflicts.push({ servicePort: sp, winner: name, losers: sorted.slice(1) })
    const all = [...names.get(name)!].sort(compareInstances)
    const f = endpointFilter(sp, name, all, network)
    dropped.push(...f.dropped)
    winners.push({ sp, name, all, kept: f.kept })
    portsPerName.set(name, (portsPerName.get(name) ?? 0) + 1)
  }
  const groups: ServicePortGroup[] = winners.map((w) => ({
    servicePort: w.sp,
    name: w.name,
    mode: w.all[0]!.mode,
    singlePort: portsPerName.get(w.name) === 1,
    idempotent: w.all.every((i) => i.idempotent),
    instances: w.all,
  }))
  // Authorization is resolved against the final groups of the whole snapshot.
  const bySpFinal = new Map(groups.map((g) => [g.servicePort, g]))
  const spsOf = (name: string) => groups.filter((g) => g.name === name).map((g) => g.servicePort)
  const authzIssues: AuthzIssue[] = []
  for (const w of winners) {
    const req = authzRequestOf(w.all)
    if (req.kind === 'none') continue
    const a = resolveAuthz(req, (sp) => bySpFinal.get(sp), spsOf)
    bySpFinal.get(w.sp)!.authz = a
    if (a.problem)
      authzIssues.push({
        servicePort: w.sp,
        service: w.name,
        target: a.target,
        problem: a.problem,
        detail: a.detail!,
        failureModeAllow: a.failureModeAllow,
      })
  }
  const endpoints: EndpointGroup[] = groups.map((g, k) => ({ ...g, instances: winners[k]!.kept }))
  return { groups, endpoints, conflicts, dropped, authzIssues }
}

/** Every resource of a set with its set, type URL and name (for checks over all of them, such as validation). */
export function* resourcesOf(set: ResourceSet): Generator<[set: keyof ResourceSet, typeUrl: TypeUrl, name: string, resource: object]> {
  for (const [k, url] of RESOURCE_SETS) for (const [name, o] of set[k]) yield [k, url, name, o]
}

/** Every resource for a node kind on a client network (default: a host's), keyed by resource name. */
export function buildResources(
  snap: CatalogSnapshot,
  kind: NodeKind,
  opts: ResourceOptions,
  network: ClientNetwork = null,
): ResourceSet & { conflicts: ServicePortConflict[]; dropped: DroppedEndpoint[]; authzIssues: AuthzIssue[] } {
  const { endpoints: groups, conflicts, dropped, authzIssues } = groupServicePorts(snap, network)
  const out: ResourceSet = { clusters: new Map(), endpoints: new Map(), listeners: new Map(), routes: new Map() }
  for (const g of groups) {
    const r = buildGroupResources(g, kind, opts)
    for (const k of ['clusters', 'endpoints', 'listeners', 'routes'] as const) for (const [n, v] of r[k]) out[k].set(n, v)
  }
  return { ...out, conflicts, dropped, authzIssues }
}
