/**
 * The Lifeguard suspicion timer. A suspicion starts at the max timeout and shrinks towards
 * the min timeout as independent members confirm it, measured from the moment it started:
 *   timeout(c) = max(min, max - (max - min) * log(c + 1) / log(k + 1))
 * where c confirmations were received out of k expected.
 *
 * Refusal evidence (Shoal's addition, docs/gossip.md "Refusal evidence"): a suspector whose own
 * stream ping to the member was refused (a TCP reset) says so. Once REFUSALS_FOR_DEATH distinct
 * members have, the timer runs only to its floor (half the shortest suspicion of the profile,
 * measured from the start): the member's host answers and nothing listens on its gossip port,
 * so there is no process left to refute, except an agent restarting, which binds its gossip
 * port within that floor (the restart budget of the README's "Restarts").
 */
import type { Clock, Timer } from '../clock.js'

/** min = mult x max(1, log10(n)) x probe interval. */
export function suspicionMinMs(mult: number, n: number, probeIntervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)))
  return mult * nodeScale * probeIntervalMs
}

/**
 * The shortest suspicion of a timing profile: its `suspicionMinMs` in a cluster of up to ten
 * members (mult x probe interval): lan 2.1 s, local 0.6 s, wan 30 s. A member silent for less
 * than this is never declared dead (plus the probe that first misses it).
 */
export function shortestSuspicionMs(timing: { suspicionMult: number; probeIntervalMs: number }): number {
  return suspicionMinMs(timing.suspicionMult, 1, timing.probeIntervalMs)
}

/** Expected confirmations: mult - 2, or 0 when fewer than that many other members could confirm. */
export function expectedConfirmations(mult: number, n: number): number {
  const k = mult - 2
  return n - 2 < k ? 0 : Math.max(0, k)
}

/** The timeout after c confirmations of k expected. */
export function suspicionTimeoutMs(c: number, k: number, minMs: number, maxMs: number): number {
  if (k <= 0) return minMs
  const frac = Math.log(c + 1) / Math.log(k + 1)
  const raw = maxMs - (maxMs - minMs) * frac
  return Math.max(minMs, Math.floor(raw))
}

/**
 * Distinct members whose stream ping was refused that end a suspicion at once. Two, so that a
 * single member's fault (a stale address, a reset from its own firewall) never kills.
 */
export const REFUSALS_FOR_DEATH = 2

export class Suspicion {
  private readonly confirmers = new Set<string>()
  private readonly refusers = new Set<string>()
  private readonly start: number
  private timer: Timer | undefined
  private done = false

  /**
   * @param from the member that raised the suspicion (not counted as a confirmation)
   * @param onTimeout called once when the timer expires, with the number of confirmations
   *   and of members whose stream ping was refused
   * @param refused `from` saw its stream ping refused
   */
  constructor(
    from: string,
    private readonly k: number,
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly clock: Clock,
    private readonly onTimeout: (confirmations: number, refusals: number) => void,
    refused = false,
    /** With REFUSALS_FOR_DEATH refusals the suspicion ends this long after its start (ms). */
    private readonly refusedFloorMs = 0,
  ) {
    this.confirmers.add(from)
    if (refused) this.refusers.add(from)
    this.start = clock.now()
    this.arm(k > 0 ? maxMs : minMs)
  }

  /** Distinct members that reported a refused stream ping so far. */
  refusals(): number {
    return this.refusers.size
  }

  /** Number of independent confirmations so far. */
  confirmations(): number {
    return this.confirmers.size - 1
  }

  /** Current timeout, measured from the start of the suspicion. */
  timeoutMs(): number {
    return suspicionTimeoutMs(this.confirmations(), this.k, this.minMs, this.maxMs)
  }

  /**
   * A suspect message from `from`, `refused` when its stream ping was refused. True when it is
   * news: a new confirmation or a new refusal (the caller rebroadcasts it).
   */
  confirm(from: string, refused = false): boolean {
    if (this.done) return false
    const newRefusal = refused && !this.refusers.has(from)
    if (newRefusal) this.refusers.add(from)
    const newConfirmation = this.confirmations() < this.k && !this.confirmers.has(from)
    if (newConfirmation) this.confirmers.add(from)
    if (!newRefusal && !newConfirmation) return false
    const timeout = this.refusers.size >= REFUSALS_FOR_DEATH ? Math.min(this.refusedFloorMs, this.timeoutMs()) : this.timeoutMs()
    this.arm(this.start + timeout - this.clock.now())
    return true
  }

  cancel(): void {
    this.done = true
    this.timer?.cancel()
    this.timer = undefined
  }

  private arm(ms: number): void {
    this.timer?.cancel()
    this.timer = this.clock.setTimer(Math.max(0, ms), () => {
      if (this.done) return
      this.done = true
      this.onTimeout(this.confirmations(), this.refusers.size)
    })
  }
}
