/**
 * The owner's hybrid logical clock. Versions are `[wallMs, counter]` and are only ever
 * compared between records of one owner, so no agreement between hosts' clocks is needed.
 */
import type { Version } from './types.js'

/**
 * Orders two versions of one owner: negative when `a` is older, 0 when equal, positive when newer.
 *
 * @example
 *   compareVersions([1000, 2], [1000, 1]) // > 0
 */
export function compareVersions(a: Version, b: Version): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1
  if (a[1] !== b[1]) return a[1] < b[1] ? -1 : 1
  return 0
}

/** True when `v` is a well-formed version: two non-negative safe integers. */
export function isVersion(v: unknown): v is Version {
  return (
    Array.isArray(v) &&
    v.length === 2 &&
    Number.isSafeInteger(v[0]) &&
    Number.isSafeInteger(v[1]) &&
    (v[0] as number) >= 0 &&
    (v[1] as number) >= 0
  )
}

/**
 * A hybrid logical clock: the wall time when it moves forward, else the last wall time with
 * a raised counter. Every `now()` is strictly greater than the previous one and than every
 * version passed to `observe()`, even when the wall clock steps back.
 *
 * @example
 *   const hlc = new Hlc(() => Date.now())
 *   const v1 = hlc.now()
 *   hlc.observe([v1[0] + 60_000, 0]) // a version of ours seen elsewhere, written before a restart
 *   compareVersions(hlc.now(), [v1[0] + 60_000, 0]) > 0 // true
 */
export class Hlc {
  private wall = 0
  private counter = 0

  constructor(private readonly wallNow: () => number) {}

  /** The next version, strictly greater than every version issued or observed so far. */
  now(): Version {
    const w = Math.floor(this.wallNow())
    if (w > this.wall) {
      this.wall = w
      this.counter = 0
    } else {
      this.counter++
    }
    return [this.wall, this.counter] as const
  }

  /** The last version issued or observed (not a new one). */
  last(): Version {
    return [this.wall, this.counter] as const
  }

  /** Makes later `now()` values exceed `v` (a version of this owner seen elsewhere). */
  observe(v: Version): void {
    if (compareVersions(v, [this.wall, this.counter]) > 0) {
      this.wall = v[0]
      this.counter = v[1]
    }
  }
}
