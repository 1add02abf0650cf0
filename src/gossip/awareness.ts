/**
 * Lifeguard local health ("awareness"): a score in [0, max - 1]. Failed probes, missing
 * nacks and having to refute a suspicion about ourselves raise it; successful probes lower
 * it. Probe interval and timeout are multiplied by (score + 1), so a node that is itself
 * slow probes less often and accuses others less readily.
 */
export class Awareness {
  private score = 0
  constructor(private readonly max: number) {}

  /** Add delta (may be negative), clamped to [0, max - 1]. */
  apply(delta: number): void {
    this.score = Math.min(this.max - 1, Math.max(0, this.score + delta))
  }

  health(): number {
    return this.score
  }

  /** ms x (score + 1). */
  scale(ms: number): number {
    return ms * (this.score + 1)
  }
}
