/**
 * The receiving side of per-owner version notices (docs/gossip.md, "The registry on gossip"): a
 * notice says an owner is at version V; this replica, when it does not hold the owner's
 * records up to V, pulls them from the members that told it (the one whose datagram carried
 * the notice first, then the owner), and passes the notice on only once it holds them, so a
 * notice is always relayed by a member that can answer a pull for it.
 *
 * Bounds: at most `concurrency` pulls in flight; one pull asks one peer for up to `maxOwners`
 * owners (every owner waiting for that peer rides along); one waiting notice per owner (a
 * newer one replaces it, and the replaced one is not passed on).
 */
import { compareVersions } from './hlc.js'
import type { Version } from './types.js'

export interface PullQueueOptions {
  /** Pulls in flight at once. */
  concurrency: number
  /** Owners asked for in one pull. */
  maxOwners: number
}

export interface PullQueueDeps {
  /** Pulls these owners' records from `peer` and takes them in; rejects when the peer did not answer. */
  fetch(peer: string, owners: readonly string[]): Promise<void>
  /** Whether this replica now holds every record of (owner, bootId) up to `to`. */
  holds(owner: string, bootId: string, to: Version): boolean
}

interface Want {
  owner: string
  bootId: string
  to: Version
  /** Who to ask, in order; the first is asked next. */
  tellers: string[]
  resolve: (held: boolean) => void
}

function newer(a: Want, b: Want): boolean {
  return a.bootId !== b.bootId || compareVersions(a.to, b.to) > 0
}

/**
 * @example
 *   const q = new PullQueue({ concurrency: 4, maxOwners: 64 }, { fetch, holds })
 *   if (await q.want('web-1', boot, [1700000000000, 3], ['web-7', 'web-1'])) relay()
 */
export class PullQueue {
  /** Owners waiting for a pull, in arrival order. */
  private readonly queued = new Map<string, Want>()
  /** Owners in a pull now: the notice being pulled for, and the newer one that arrived meanwhile. */
  private readonly inflight = new Map<string, { cur: Want; next: Want | undefined }>()
  private active = 0
  private stopped = false
  private pumpQueued = false

  constructor(
    private readonly opts: PullQueueOptions,
    private readonly deps: PullQueueDeps,
  ) {}

  /** Pulls in flight now. */
  get pulling(): number {
    return this.active
  }

  /** Owners waiting for a pull now. */
  get waiting(): number {
    return this.queued.size
  }

  /**
   * Resolves true once this replica holds `owner`'s records of `bootId` up to `to`, pulled from
   * `tellers` in turn; false when none of them brought them, when a newer notice of the same
   * owner took this one's place, or after stop().
   */
  want(owner: string, bootId: string, to: Version, tellers: readonly string[]): Promise<boolean> {
    if (this.stopped || tellers.length === 0) return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      const w: Want = { owner, bootId, to, tellers: [...tellers], resolve }
      const busy = this.inflight.get(owner)
      if (busy) {
        if (!newer(w, busy.next ?? busy.cur)) return resolve(false)
        busy.next?.resolve(false)
        busy.next = w
        return
      }
      const q = this.queued.get(owner)
      if (q) {
        if (!newer(w, q)) return resolve(false)
        q.resolve(false)
        this.queued.delete(owner)
      }
      this.queued.set(owner, w)
      this.schedulePump()
    })
  }

  /** Every waiting notice resolves false; pulls in flight finish on their own. Idempotent. */
  stop(): void {
    this.stopped = true
    for (const w of this.queued.values()) w.resolve(false)
    this.queued.clear()
    for (const busy of this.inflight.values()) {
      busy.next?.resolve(false)
      busy.next = undefined
    }
  }

  /**
   * Pulls start in a microtask, so that the notices of one datagram (handled in one go) are
   * all waiting by then and ride in one pull per teller.
   */
  private schedulePump(): void {
    if (this.pumpQueued) return
    this.pumpQueued = true
    queueMicrotask(() => {
      this.pumpQueued = false
      this.pump()
    })
  }

  private pump(): void {
    while (!this.stopped && this.active < this.opts.concurrency && this.queued.size > 0) {
      const peer = this.queued.values().next().value!.tellers[0]!
      const batch: Want[] = []
      for (const w of this.queued.values()) {
        if (w.tellers[0] !== peer) continue
        batch.push(w)
        if (batch.length >= this.opts.maxOwners) break
      }
      for (const w of batch) {
        this.queued.delete(w.owner)
        this.inflight.set(w.owner, { cur: w, next: undefined })
      }
      this.active++
      void this.run(peer, batch)
    }
  }

  private async run(peer: string, batch: Want[]): Promise<void> {
    try {
      await this.deps.fetch(
        peer,
        batch.map((w) => w.owner),
      )
    } catch {
      // The caller logged it; the next teller is asked below.
    }
    this.active--
    for (const w of batch) {
      const next = this.inflight.get(w.owner)?.next
      this.inflight.delete(w.owner)
      if (this.deps.holds(w.owner, w.bootId, w.to)) w.resolve(true)
      else {
        w.tellers.shift()
        if (w.tellers.length > 0 && !this.stopped && !next) this.queued.set(w.owner, w)
        else w.resolve(false)
      }
      if (next) {
        if (this.deps.holds(next.owner, next.bootId, next.to)) next.resolve(true)
        else if (this.stopped) next.resolve(false)
        else this.queued.set(next.owner, next)
      }
    }
    this.schedulePump()
  }
}
