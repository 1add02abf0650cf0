/**
 * A histogram kept as plain numbers, for parts that stay free of prom-client on their hot
 * paths (gossip): `observe` is a few comparisons and additions. /metrics copies its snapshot
 * into a Prometheus histogram at scrape time (src/http/metrics.ts).
 *
 * @example
 *   const rtt = new Buckets([0.001, 0.01, 0.1, 1])
 *   rtt.observe(0.004)
 *   rtt.snapshot() // { bounds: [0.001, 0.01, 0.1, 1], cumulative: [0, 1, 1, 1, 1], sum: 0.004, count: 1 }
 */
export class Buckets {
  readonly bounds: readonly number[]
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  private readonly counts: number[]
  private sum = 0
  private count = 0

  /** `bounds`: ascending upper bounds, in the unit observed (seconds for durations). */
  constructor(bounds: readonly number[]) {
    this.bounds = [...bounds]
    this.counts = new Array<number>(bounds.length + 1).fill(0)
  }

  observe(v: number): void {
    let i = 0
    while (i < this.bounds.length && v > this.bounds[i]!) i++
    this.counts[i]!++
    this.sum += v
    this.count++
  }

  /** The histogram as Prometheus reads it: `cumulative[i]` observations at most `bounds[i]`, the last entry +Inf (= count). */
  snapshot(): BucketsSnapshot {
    const cumulative: number[] = []
    let n = 0
    for (const c of this.counts) cumulative.push((n += c))
    return { bounds: this.bounds, cumulative, sum: this.sum, count: this.count }
  }
}

export interface BucketsSnapshot {
  bounds: readonly number[]
  /** One longer than `bounds`: the last entry is the +Inf bucket. */
  cumulative: number[]
  sum: number
  count: number
}
