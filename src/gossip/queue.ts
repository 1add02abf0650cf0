/**
 * The transmit-limited broadcast queue. Each broadcast is sent at most
 * `limit = retransmitMult x ceil(log10(n + 1))` times. Filling a packet takes fewest
 * transmits first and newest first among equals, skips what does not fit, and drops a
 * broadcast once it reached the limit. A broadcast with the key of a queued one replaces it.
 */
import { retransmitLimit } from './config.js'

export interface QueuedBroadcast {
  key: string
  msg: Uint8Array
  transmits: number
  /** Insertion order: higher is newer. */
  id: number
  /** Called once when the broadcast leaves the queue: `sent` false when replaced or pruned. */
  onDone?: ((sent: boolean) => void) | undefined
}

export class BroadcastQueue {
  private readonly items = new Map<string, QueuedBroadcast>()
  private nextId = 0
  private sorted: QueuedBroadcast[] | undefined

  /** `onQueued` runs after every queue() (the gossip layer arms its round timer there). */
  constructor(
    private readonly retransmitMult: number,
    private readonly numNodes: () => number,
    private readonly onQueued?: () => void,
  ) {}

  /** Queue a broadcast; replaces (and finishes unsent) a queued one with the same key. */
  queue(key: string, msg: Uint8Array, onDone?: (sent: boolean) => void): void {
    const old = this.items.get(key)
    if (old) {
      this.items.delete(key)
      old.onDone?.(false)
    }
    this.items.set(key, { key, msg, transmits: 0, id: this.nextId++, onDone })
    this.sorted = undefined
    this.onQueued?.()
  }

  size(): number {
    return this.items.size
  }

  limit(): number {
    return retransmitLimit(this.retransmitMult, this.numNodes())
  }

  /** The number of times the broadcast under `key` has been sent, or undefined when it is not queued. */
  transmitsOf(key: string): number | undefined {
    return this.items.get(key)?.transmits
  }

  /**
   * Take broadcasts that fit in `budget` bytes, each costing its length plus `overhead`.
   * Every broadcast returned counts one transmit.
   */
  take(budget: number, overhead: number): Uint8Array[] {
    if (this.items.size === 0) return []
    const order = this.order()
    const limit = this.limit()
    const out: Uint8Array[] = []
    let used = 0
    let changed = false
    for (const b of order) {
      if (budget - used < overhead + 1) break
      const cost = b.msg.length + overhead
      if (used + cost > budget) continue
      used += cost
      out.push(b.msg)
      b.transmits++
      changed = true
      if (b.transmits >= limit) {
        this.items.delete(b.key)
        b.onDone?.(true)
      }
    }
    if (changed) this.sorted = undefined
    return out
  }

  /** Drop everything beyond the `max` most important broadcasts. */
  prune(max: number): void {
    const order = this.order()
    for (const b of order.slice(max)) {
      this.items.delete(b.key)
      b.onDone?.(false)
    }
    this.sorted = undefined
  }

  /** Drop all queued broadcasts (on stop). */
  clear(): void {
    const all = [...this.items.values()]
    this.items.clear()
    this.sorted = undefined
    for (const b of all) b.onDone?.(false)
  }

  private order(): QueuedBroadcast[] {
    if (!this.sorted) {
      this.sorted = [...this.items.values()].sort((a, b) => a.transmits - b.transmits || b.id - a.id)
    }
    return this.sorted
  }
}
