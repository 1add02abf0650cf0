/**
 * The member table: every node this one knows (self included, dead and left ones until
 * reaped), by name and in a dense list, with the count of members in each state and the
 * shuffled round-robin probe order of docs/gossip.md, "Probing".
 *
 * Invariants (test/gossip-members.test.ts):
 * - `list[n.idx] === n` for every entry, and `byName` holds exactly the entries of `list`;
 *   removal swaps the last entry into the hole, so add, remove and a random pick are O(1).
 * - `counts[s]` is the number of entries in state `s`.
 * - `self` is never a probe target and never a random pick.
 */
import type { Clock } from '../clock.js'
import { ShoalError } from '../errors.js'
import type { MemberRecord } from './messages.js'
import { MemberState, type Member } from './types.js'

/** What this node holds about one member; mutated in place by the rules (state.ts). */
export interface MemberEntry {
  name: string
  addr: string
  port: number
  meta: Record<string, string>
  incarnation: number
  state: MemberState
  /** Clock.now() of the last state change. */
  stateChangedAt: number
  /** Index in the table's list (for O(1) random choice and removal); -1 until added. */
  idx: number
}

/** Alive or suspect: probed, and its records visible. */
export function isLive(n: { state: MemberState }): boolean {
  return n.state === MemberState.alive || n.state === MemberState.suspect
}

/** Above this many entries a random pick samples the list instead of filtering it whole. */
const FILTER_ALL_BELOW = 64

export class MemberTable {
  private readonly byName = new Map<string, MemberEntry>()
  /** "addr port" to entry, checked on each use (the rules move a member's address in place). */
  private readonly byAddr = new Map<string, MemberEntry>()
  private readonly list: MemberEntry[] = []
  private readonly counts: Record<MemberState, number> = { alive: 0, suspect: 0, dead: 0, left: 0 }
  private probeOrder: string[] = []
  private probeIdx = 0
  private selfEntry: MemberEntry | undefined

  /**
   * @param components.clock stamps `stateChangedAt`
   * @param components.random the source of every random choice (probe order, picks)
   */
  constructor(private readonly components: { clock: Clock; random: () => number }) {}

  /** This node's own entry; set once by `addSelf` (at start). */
  get self(): MemberEntry {
    if (!this.selfEntry) throw new ShoalError('SHOAL_ERR_NOT_STARTED', 'member table: self is added at start()')
    return this.selfEntry
  }

  hasSelf(): boolean {
    return this.selfEntry !== undefined
  }

  addSelf(n: MemberEntry): void {
    this.selfEntry = n
    this.add(n)
  }

  get(name: string): MemberEntry | undefined {
    return this.byName.get(name)
  }

  /**
   * The member at `addr`:`port` (the sender of a datagram: gossip names it as the `via` of a
   * broadcast), or undefined. O(1) while members keep their addresses; a moved or unknown
   * address costs one pass over the table.
   */
  byAddress(addr: string, port: number): MemberEntry | undefined {
    const k = `${addr} ${port}`
    const hit = this.byAddr.get(k)
    if (hit && hit.idx >= 0 && hit.addr === addr && hit.port === port) return hit
    this.byAddr.delete(k)
    const found = this.list.find((n) => n.addr === addr && n.port === port)
    if (found) this.byAddr.set(k, found)
    return found
  }

  /** Members known, self, dead and left included: the N of docs/gossip.md's formulas. */
  get size(): number {
    return this.list.length
  }

  count(state: MemberState): number {
    return this.counts[state]
  }

  /** Every entry, in table order (not stable across removals). Do not mutate. */
  entries(): readonly MemberEntry[] {
    return this.list
  }

  /** A new member; it joins the current probe pass at a random position. */
  add(n: MemberEntry): void {
    n.idx = this.list.length
    this.list.push(n)
    this.byName.set(n.name, n)
    this.byAddr.set(`${n.addr} ${n.port}`, n)
    this.counts[n.state]++
    if (n !== this.selfEntry && this.probeOrder.length > 0) this.insertIntoProbeOrder(n.name)
  }

  /** Forget a member (reaped after reapAfterMs): the last entry takes its slot. */
  remove(n: MemberEntry): void {
    if (this.list[n.idx] !== n) return
    const last = this.list.pop()!
    if (last !== n) {
      this.list[n.idx] = last
      last.idx = n.idx
    }
    n.idx = -1
    this.byName.delete(n.name)
    if (this.byAddr.get(`${n.addr} ${n.port}`) === n) this.byAddr.delete(`${n.addr} ${n.port}`)
    this.counts[n.state]--
  }

  /** Change a member's state and stamp the time; a member back from dead or left is probed again this pass. */
  setState(n: MemberEntry, s: MemberState): void {
    if (n.state === s) return
    const wasDown = !isLive(n)
    this.counts[n.state]--
    this.counts[s]++
    n.state = s
    n.stateChangedAt = this.components.clock.now()
    if (wasDown && isLive(n) && n !== this.selfEntry && this.probeOrder.length > 0 && !this.probeOrder.includes(n.name)) {
      this.insertIntoProbeOrder(n.name)
    }
  }

  /** Up to k distinct random members passing `ok`, never self. */
  randomNodes(k: number, ok: (n: MemberEntry) => boolean): MemberEntry[] {
    const out: MemberEntry[] = []
    if (k <= 0) return out
    const { random } = this.components
    const len = this.list.length
    if (len <= FILTER_ALL_BELOW) {
      const pool = this.list.filter((n) => n !== this.selfEntry && ok(n))
      for (let i = 0; i < k && pool.length > 0; i++) {
        out.push(pool.splice(Math.floor(random() * pool.length), 1)[0]!)
      }
      return out
    }
    // Sampling with a bounded number of tries: at thousands of members a full filter per
    // gossip round costs more than the rare short answer.
    for (let tries = 0; tries < k * 8 + 16 && out.length < k; tries++) {
      const n = this.list[Math.floor(random() * len)]!
      if (n !== this.selfEntry && !out.includes(n) && ok(n)) out.push(n)
    }
    return out
  }

  /**
   * The next member to probe: a shuffled round-robin of every other live member, reshuffled
   * after each pass (docs/gossip.md, "Probing", step 2). Undefined when there is none.
   */
  nextProbeTarget(): MemberEntry | undefined {
    const { random } = this.components
    for (let checked = 0; checked <= this.probeOrder.length; checked++) {
      if (this.probeIdx >= this.probeOrder.length) {
        this.probeOrder = this.list.filter((n) => n !== this.selfEntry && isLive(n)).map((n) => n.name)
        for (let i = this.probeOrder.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1))
          const t = this.probeOrder[i]!
          this.probeOrder[i] = this.probeOrder[j]!
          this.probeOrder[j] = t
        }
        this.probeIdx = 0
        if (this.probeOrder.length === 0) return undefined
      }
      const n = this.byName.get(this.probeOrder[this.probeIdx++]!)
      if (n && n !== this.selfEntry && isLive(n)) return n
    }
    return undefined
  }

  /** A copy for the outside: later changes to the entry do not show in it. */
  snapshot(n: MemberEntry): Member {
    return {
      name: n.name,
      addr: n.addr,
      port: n.port,
      meta: { ...n.meta },
      bootId: n.meta.boot ?? '',
      incarnation: n.incarnation,
      state: n.state,
      stateChangedAt: n.stateChangedAt,
    }
  }

  members(): Member[] {
    return this.list.map((n) => this.snapshot(n))
  }

  /** Every entry as a push-pull member record. */
  records(): MemberRecord[] {
    return this.list.map((n) => ({ name: n.name, addr: n.addr, port: n.port, meta: n.meta, inc: n.incarnation, state: n.state }))
  }

  private insertIntoProbeOrder(name: string): void {
    this.probeOrder.splice(Math.floor(this.components.random() * (this.probeOrder.length + 1)), 0, name)
  }
}
