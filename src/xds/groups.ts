/**
 * Incremental ServicePort grouping: the same groups as `groupServicePorts` (resources.ts),
 * kept up to date from one catalog snapshot to the next by diffing each host's live records
 * by identity, so a change costs work in proportion to the ServicePorts it touched, not to
 * the catalog. Consumers (one per node kind) each drain their own set of changed ServicePorts.
 */
import { liveRecordsOf, type CatalogSnapshot, type HostView, type ServiceRecord } from '../registry/types.js'
import { compareInstances, instancesOf, type Instance, type ServicePortConflict, type ServicePortGroup } from './resources.js'

interface HostState {
  state: HostView['state']
  bootId: string
  services: readonly ServiceRecord[]
  /** Live records of this host (alive or suspect host, not tombstoned, of its current boot). */
  live: ServiceRecord[]
}

function sameList(a: readonly ServiceRecord[], b: readonly ServiceRecord[]): boolean {
  if (a.length !== b.length) return false
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false
  return true
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * @example
 *   const index = new GroupIndex()
 *   const changes = index.consumer()
 *   index.update(catalog.snapshot())
 *   for (const sp of changes) index.groups.get(sp) // new group, or undefined: gone
 *   changes.clear()
 */
export class GroupIndex {
  /** Current groups by ServicePort. A group object is replaced (never mutated) when it changes. */
  readonly groups = new Map<number, ServicePortGroup>()
  private hosts = new Map<string, HostState>()
  /** Live records with at least one tcp port on the ServicePort. */
  private bySp = new Map<number, Set<ServiceRecord>>()
  private spsOfName = new Map<string, Set<number>>()
  private conflictBySp = new Map<number, ServicePortConflict>()
  private conflictList: ServicePortConflict[] = []
  private consumers: Array<Set<number>> = []
  private applied: { snap: CatalogSnapshot; seq: number } | undefined

  /** Conflicts sorted by ServicePort; a new array only when they changed. */
  get conflicts(): ServicePortConflict[] {
    return this.conflictList
  }

  /** A set that collects every ServicePort whose group changed (or went) from now on; the consumer clears it. */
  consumer(): Set<number> {
    const s = new Set<number>(this.groups.keys())
    this.consumers.push(s)
    return s
  }

  /** Bring the groups up to `snap`. Cheap when `snap` is the one applied last. */
  update(snap: CatalogSnapshot): void {
    if (this.applied && this.applied.snap === snap && this.applied.seq === snap.seq) return
    this.applied = { snap, seq: snap.seq }
    const touched = new Set<number>()
    const seen = new Set<string>()
    for (const h of snap.hosts) {
      seen.add(h.name)
      const prev = this.hosts.get(h.name)
      if (prev && prev.services === h.services && prev.state === h.state && prev.bootId === h.bootId) continue
      const live = liveRecordsOf(h)
      const old = prev?.live ?? []
      this.hosts.set(h.name, { state: h.state, bootId: h.bootId, services: h.services, live })
      if (sameList(old, live)) continue
      const now = new Set(live)
      const before = new Set(old)
      for (const r of old) if (!now.has(r)) this.remove(r, touched)
      for (const r of live) if (!before.has(r)) this.add(r, touched)
    }
    for (const [name, prev] of this.hosts) {
      if (seen.has(name)) continue
      this.hosts.delete(name)
      for (const r of prev.live) this.remove(r, touched)
    }
    if (touched.size) this.regroup(touched)
  }

  private add(r: ServiceRecord, touched: Set<number>): void {
    for (const i of instancesOf(r)) {
      let set = this.bySp.get(i.servicePort)
      if (!set) this.bySp.set(i.servicePort, (set = new Set()))
      set.add(r)
      touched.add(i.servicePort)
    }
  }

  private remove(r: ServiceRecord, touched: Set<number>): void {
    for (const i of instancesOf(r)) {
      const set = this.bySp.get(i.servicePort)
      if (!set) continue
      set.delete(r)
      if (set.size === 0) this.bySp.delete(i.servicePort)
      touched.add(i.servicePort)
    }
  }

  private regroup(touched: Set<number>): void {
    const changed = new Set<number>()
    const namesChanged = new Set<string>()
    let conflictsChanged = false
    for (const sp of touched) {
      const prev = this.groups.get(sp)
      const records = this.bySp.get(sp)
      let next: { name: string; instances: Instance[]; losers: string[] } | undefined
      if (records) {
        const names = new Map<string, Instance[]>()
        for (const r of records) {
          for (const i of instancesOf(r)) {
            if (i.servicePort !== sp) continue
            const list = names.get(r.name)
            if (list) list.push(i)
            else names.set(r.name, [i])
          }
        }
        const sorted = [...names.keys()].sort(cmp)
        const name = sorted[0]!
        next = { name, instances: names.get(name)!.sort(compareInstances), losers: sorted.slice(1) }
      }
      const hadConflict = this.conflictBySp.get(sp)
      if (next && next.losers.length) {
        const cf = { servicePort: sp, winner: next.name, losers: next.losers }
        if (!hadConflict || hadConflict.winner !== cf.winner || hadConflict.losers.join() !== cf.losers.join()) {
          this.conflictBySp.set(sp, cf)
          conflictsChanged = true
        }
      } else if (hadConflict) {
        this.conflictBySp.delete(sp)
        conflictsChanged = true
      }
      if (prev?.name !== next?.name) {
        if (prev) {
          const s = this.spsOfName.get(prev.name)!
          s.delete(sp)
          if (s.size === 0) this.spsOfName.delete(prev.name)
          namesChanged.add(prev.name)
        }
        if (next) {
          let s = this.spsOfName.get(next.name)
          if (!s) this.spsOfName.set(next.name, (s = new Set()))
          s.add(sp)
          namesChanged.add(next.name)
        }
      }
      if (!next) {
        if (prev) {
          this.groups.delete(sp)
          changed.add(sp)
        }
        continue
      }
      const g: ServicePortGroup = {
        servicePort: sp,
        name: next.name,
        // Instances may disagree on the mode; the first by (host, id) decides, so every agent agrees.
        mode: next.instances[0]!.mode,
        singlePort: this.spsOfName.get(next.name)!.size === 1,
        instances: next.instances,
      }
      this.groups.set(sp, g)
      changed.add(sp)
    }
    // A name that won or lost a ServicePort may change singlePort on its other groups.
    for (const name of namesChanged) {
      const sps = this.spsOfName.get(name)
      if (!sps) continue
      const single = sps.size === 1
      for (const sp of sps) {
        const g = this.groups.get(sp)!
        if (g.singlePort !== single) {
          this.groups.set(sp, { ...g, singlePort: single })
          changed.add(sp)
        }
      }
    }
    if (conflictsChanged) this.conflictList = [...this.conflictBySp.values()].sort((a, b) => a.servicePort - b.servicePort)
    for (const c of this.consumers) for (const sp of changed) c.add(sp)
  }
}
