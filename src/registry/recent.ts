/**
 * An index of this node's own records in the catalog, kept as they are stored (Catalog.store),
 * so that what the bridge asks on every local change needs no pass over every own record:
 * the highest version (Catalog.coverage(self)) and the records changed since a version, when
 * they are few (Catalog.localChangedSince, the records a notice carries inline).
 *
 * It holds the `keep` most recently written records (by id, in write order) and a floor:
 * every own record outside them has a version at most the floor. The catalog's records stay
 * the one truth: the index only points into them, is emptied with them (a new boot) and built
 * again from them by one pass when a record is dropped (a collected tombstone).
 *
 * Why the floor answers "more": a record leaves the index only when `keep` records were
 * written after it (own writes carry rising versions, registry/hlc.ts), so when the floor is
 * above a version, at least `keep` + 1 own records are above it too.
 */
import { compareVersions } from './hlc.js'
import type { ServiceRecord, Version } from './types.js'

export class RecentWrites {
  private readonly recent = new Map<string, ServiceRecord>()
  private floor: Version = [0, 0]
  private max: Version = [0, 0]
  private stale = false

  /** `keep`: how many of the latest written records are held (the most `since` answers without a pass). */
  constructor(readonly keep: number) {}

  /** A record of this node was stored (replacing the one of its id). */
  stored(rec: ServiceRecord): void {
    if (this.stale) return
    this.recent.delete(rec.id)
    this.recent.set(rec.id, rec)
    if (compareVersions(rec.version, this.max) > 0) this.max = rec.version
    if (this.recent.size > this.keep) {
      const [id, old] = this.recent.entries().next().value as [string, ServiceRecord]
      this.recent.delete(id)
      if (compareVersions(old.version, this.floor) > 0) this.floor = old.version
    }
  }

  /** Every own record was dropped (a new boot). */
  clear(): void {
    this.recent.clear()
    this.floor = [0, 0]
    this.max = [0, 0]
    this.stale = false
  }

  /** One own record was dropped: the index is built again from `all` at the next question. */
  dropped(): void {
    this.stale = true
  }

  /** The highest version among the own records ([0, 0] for none). `all`: the own records, read only when the index is stale. */
  highest(all: () => Iterable<ServiceRecord>): Version {
    this.fresh(all)
    return this.max
  }

  /**
   * The own records of a version above `base`, when at most `limit` (at most `keep`) of them;
   * undefined when more. `all` as for `highest`.
   */
  since(base: Version, limit: number, all: () => Iterable<ServiceRecord>): ServiceRecord[] | undefined {
    this.fresh(all)
    if (compareVersions(base, this.floor) < 0) return undefined
    const out: ServiceRecord[] = []
    for (const r of this.recent.values()) if (compareVersions(r.version, base) > 0 && out.push(r) > limit) return undefined
    return out
  }

  private fresh(all: () => Iterable<ServiceRecord>): void {
    if (!this.stale) return
    const sorted = [...all()].sort((a, b) => compareVersions(a.version, b.version))
    this.clear()
    const cut = Math.max(0, sorted.length - this.keep)
    if (cut > 0) this.floor = sorted[cut - 1]!.version
    for (let i = cut; i < sorted.length; i++) this.stored(sorted[i]!)
  }
}
