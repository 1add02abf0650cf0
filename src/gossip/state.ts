/**
 * The rule table of docs/gossip.md, "Messages and how a receiver applies them": what an
 * alive, suspect or dead message (or a push-pull member record) does to the member table,
 * the broadcast queue, the suspicion timers and awareness, and which event it raises.
 * Probing, dissemination and push-pull (gossip.ts) decide when a rule runs; this file
 * decides what it does. Unit tests: test/gossip-state.test.ts; the same rows through real
 * packets: test/gossip-rules.test.ts.
 */
import { formatHostPort } from '../address.js'
import type { Clock } from '../clock.js'
import { LogLimiter, logProblem, type Logger } from '../log.js'
import type { Awareness } from './awareness.js'
import type { Timing } from './config.js'
import { isLive, type MemberEntry, type MemberTable } from './members.js'
import { MessageType, encodeMessage, type AliveMsg, type DeadMsg, type MemberRecord, type SuspectMsg } from './messages.js'
import type { BroadcastQueue } from './queue.js'
import { REFUSALS_FOR_DEATH, Suspicion, expectedConfirmations, shortestSuspicionMs, suspicionMinMs } from './suspicion.js'
import { MemberState, type GossipEvents } from './types.js'

/** The queue key of member messages: alive, suspect and dead about one member replace each other. */
export function memberKey(name: string): string {
  return 'm:' + name
}

function addrOf(a: { addr: string; port: number }): string {
  return formatHostPort({ host: a.addr, port: a.port })
}

function sameMeta(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  return ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k])
}

/**
 * A member's transitions as an operator reads them in the log, one info line each
 * (MembershipRules.logTransition): `joined` (first heard of, or back after dead or left),
 * `suspect`, `alive` (a suspect refuted), `dead`, `left`, and `refuted` (this node, suspected or
 * declared dead by another, raised its incarnation).
 */
export type MemberTransition = 'joined' | 'suspect' | 'alive' | 'dead' | 'left' | 'refuted'

/**
 * One line per member and transition at most this often (ms): a real member cannot flap this
 * fast, but forged messages (a cluster without keys) could make one line per packet.
 */
export const TRANSITION_LOG_WINDOW_MS = 10_000

const TRANSITION_WORDS: Record<MemberTransition, string> = {
  joined: 'joined',
  suspect: 'is suspect',
  alive: 'is alive again',
  dead: 'is dead',
  left: 'left',
  refuted: 'refuted',
}

/** What the rules act on; gossip.ts owns every part and hands them in. */
export interface RulesComponents {
  timing: Timing
  table: MemberTable
  queue: BroadcastQueue
  awareness: Awareness
  clock: Clock
  log: Logger
  /** Counted here, reported by Gossip.stats(). */
  counters: { suspicions: number; refutations: number; nameConflicts: number; refusedDeaths: number }
  /** Raise a Gossip event (a throwing listener must not break the rule). */
  emit: <K extends keyof GossipEvents>(event: K, ...args: GossipEvents[K]) => void
  /** False once the node stops: an expiring suspicion then does nothing. */
  running: () => boolean
}

export class MembershipRules {
  /** Set by Gossip.leave: a leaving node does not refute. */
  leaving = false
  private readonly suspicions = new Map<string, Suspicion>()
  /**
   * One warning and one `conflict` event per name a minute: a conflict notice is a plain
   * packet anyone can forge (without keys), each with another address, so neither the log
   * nor this memory may grow with them (bounded to 1024 names, oldest forgotten).
   */
  private readonly conflictLog: LogLimiter
  /** Member transitions: one line each, at most one per member and transition every TRANSITION_LOG_WINDOW_MS. */
  private readonly transitionLog: LogLimiter

  constructor(private readonly c: RulesComponents) {
    this.conflictLog = new LogLimiter({}, { clock: c.clock })
    this.transitionLog = new LogLimiter({ windowMs: TRANSITION_LOG_WINDOW_MS }, { clock: c.clock })
  }

  /** Cancel every suspicion timer (Gossip.stop). */
  stop(): void {
    for (const s of this.suspicions.values()) s.cancel()
    this.suspicions.clear()
  }

  /**
   * Alive: returns true when applied (and queued for rebroadcast). `via` names where it came
   * from for the log (default an alive message; a push-pull names its peer).
   */
  applyAlive(m: Omit<AliveMsg, 'type'>, via = 'an alive message'): boolean {
    const { table, queue, emit } = this.c
    const self = table.self
    if (m.name === self.name) {
      const matches = m.addr === self.addr && m.port === self.port && sameMeta(m.meta, self.meta)
      if (this.leaving || m.inc < self.incarnation || (m.inc === self.incarnation && matches)) return false
      if (m.addr !== self.addr || m.port !== self.port) this.conflict(m.name, addrOf(self), addrOf(m))
      this.refute(m.inc, 'alive about us that does not match us')
      return true
    }
    const n = table.get(m.name)
    if (n && m.inc <= n.incarnation) return false
    if (n && isLive(n) && (n.addr !== m.addr || n.port !== m.port)) {
      this.conflict(m.name, addrOf(n), addrOf(m))
      return false
    }
    const enc = encodeMessage({ type: MessageType.alive, ...m })
    if (!n) {
      const fresh: MemberEntry = {
        name: m.name,
        addr: m.addr,
        port: m.port,
        meta: m.meta,
        incarnation: m.inc,
        state: MemberState.alive,
        stateChangedAt: this.c.clock.now(),
        idx: -1,
      }
      table.add(fresh)
      queue.queue(memberKey(m.name), enc)
      this.logTransition(fresh, 'joined', `first heard of, in ${via}`)
      emit('join', table.snapshot(fresh))
      return true
    }
    const before = n.state
    const changed = n.addr !== m.addr || n.port !== m.port || !sameMeta(n.meta, m.meta)
    const restarted = n.meta.boot !== m.meta.boot
    this.cancelSuspicion(n.name)
    n.addr = m.addr
    n.port = m.port
    n.meta = m.meta
    n.incarnation = m.inc
    table.setState(n, MemberState.alive)
    queue.queue(memberKey(m.name), enc)
    if (before === MemberState.dead || before === MemberState.left) {
      this.logTransition(n, 'joined', `back after ${before}, ${restarted ? 'restarted (a new boot)' : 'same boot'}, in ${via}`, before)
      emit('join', table.snapshot(n))
    } else if (before === MemberState.suspect) {
      this.logTransition(n, 'alive', `refuted the suspicion at a higher incarnation, in ${via}`, before)
      emit('alive', table.snapshot(n))
      if (changed) emit('update', table.snapshot(n))
    } else {
      emit('update', table.snapshot(n))
    }
    return true
  }

  /**
   * Suspect: starts or confirms a suspicion; about ourselves, a refutation. `via` names where
   * it came from for the log (default a suspect message from `m.from`).
   */
  applySuspect(m: Omit<SuspectMsg, 'type'>, via?: string): boolean {
    const { table, queue, timing } = this.c
    const n = table.get(m.name)
    if (!n || m.inc < n.incarnation) return false
    if (n === table.self) {
      if (this.leaving) return false
      this.refute(m.inc, via ?? `suspected by ${m.from}`)
      this.c.awareness.apply(1)
      return true
    }
    if (n.state === MemberState.suspect) {
      // Only confirmations at the suspected incarnation count; a higher one is ignored.
      const s = this.suspicions.get(n.name)
      if (s && m.inc === n.incarnation && s.confirm(m.from, m.refused === true)) {
        queue.queue(memberKey(m.name), encodeMessage({ type: MessageType.suspect, ...m }))
        return true
      }
      return false
    }
    if (n.state !== MemberState.alive) return false
    n.incarnation = m.inc
    table.setState(n, MemberState.suspect)
    this.logTransition(
      n,
      'suspect',
      via ?? (m.from === table.self.name ? "no answer to this node's probe, direct or indirect" : `suspected by ${m.from}`),
      MemberState.alive,
    )
    this.c.counters.suspicions++
    const size = table.size
    const k = expectedConfirmations(timing.suspicionMult, size)
    const min = suspicionMinMs(timing.suspicionMult, size, timing.probeIntervalMs)
    const max = timing.suspicionMaxMult * min
    this.cancelSuspicion(n.name)
    this.suspicions.set(
      n.name,
      new Suspicion(
        m.from,
        k,
        min,
        max,
        this.c.clock,
        (confirmations, refusals) => {
          this.suspicions.delete(n.name)
          if (!this.c.running() || n.state !== MemberState.suspect || n.incarnation !== m.inc) return
          const byRefusals = refusals >= REFUSALS_FOR_DEATH
          if (byRefusals) this.c.counters.refusedDeaths++
          const plural = (x: number, what: string) => `${x} ${what}${x === 1 ? '' : 's'}`
          this.applyDead(
            { name: n.name, inc: n.incarnation, from: table.self.name },
            byRefusals
              ? `${plural(refusals, 'member')} found its gossip port refusing connections`
              : `the suspicion expired unrefuted (${plural(confirmations, 'independent confirmation')})`,
          )
        },
        m.refused === true,
        shortestSuspicionMs(timing) / 2,
      ),
    )
    queue.queue(memberKey(m.name), encodeMessage({ type: MessageType.suspect, ...m }))
    this.c.emit('suspect', table.snapshot(n))
    return true
  }

  /**
   * Dead, or left when `from` is the member itself; about ourselves, a refutation. `why`
   * is the reason the log gives (default: declared dead by `m.from`, or a graceful leave).
   */
  applyDead(m: Omit<DeadMsg, 'type'>, why?: string): boolean {
    const { table } = this.c
    const n = table.get(m.name)
    if (!n || m.inc < n.incarnation) return false
    if (n === table.self) {
      if (this.leaving) return false
      this.refute(m.inc, why ?? `declared dead by ${m.from}`)
      this.c.awareness.apply(1)
      return true
    }
    if (n.state === MemberState.dead || n.state === MemberState.left) return false
    this.cancelSuspicion(n.name)
    n.incarnation = m.inc
    const left = m.from === m.name
    const before = n.state
    table.setState(n, left ? MemberState.left : MemberState.dead)
    this.logTransition(n, left ? 'left' : 'dead', why ?? (left ? 'a graceful leave' : `declared dead by ${m.from}`), before)
    this.c.queue.queue(memberKey(m.name), encodeMessage({ type: MessageType.dead, ...m }))
    this.c.emit(left ? 'left' : 'dead', table.snapshot(n))
    return true
  }

  /**
   * A peer's member records from a push-pull: alive as an alive message, left as dead from
   * the member itself, suspect or dead as a suspicion from the sender (a remote verdict of
   * death is only a suspicion here; the local timer decides).
   */
  mergeRemote(records: MemberRecord[], from: string): void {
    const via = `a push-pull with ${from}`
    for (const r of records) {
      switch (r.state) {
        case MemberState.alive:
          this.applyAlive({ name: r.name, inc: r.inc, addr: r.addr, port: r.port, meta: r.meta }, via)
          break
        case MemberState.left:
          this.applyDead({ name: r.name, inc: r.inc, from: r.name }, `a graceful leave, in ${via}`)
          break
        default:
          this.applySuspect({ name: r.name, inc: r.inc, from }, `${r.state} in the member list of ${from} (a push-pull)`)
      }
    }
  }

  /** Queue an alive message about ourselves (after setMeta or a refutation). */
  queueAlive(): void {
    const s = this.c.table.self
    this.c.queue.queue(
      memberKey(s.name),
      encodeMessage({ type: MessageType.alive, name: s.name, inc: s.incarnation, addr: s.addr, port: s.port, meta: s.meta }),
    )
  }

  /**
   * Two addresses claim one name: counted (stats().nameConflicts), logged and raised as
   * `conflict` at most once a minute per name, the line saying how many more were held back.
   */
  conflict(name: string, localAddr: string, remoteAddr: string): void {
    this.c.counters.nameConflicts++
    const held = this.conflictLog.admit(name)
    if (held === undefined) return
    logProblem(
      this.c.log,
      'warn',
      {
        what: `node name "${name}" is claimed by ${localAddr} and ${remoteAddr}`,
        input: name,
        fix: `give each node its own --node name${LogLimiter.suffix(held)}`,
      },
      { name, localAddr, remoteAddr, suppressed: held },
    )
    this.c.emit('conflict', { name, localAddr, remoteAddr, suppressed: held })
  }

  /** Refute a suspicion, death or stale alive about ourselves: an incarnation above it. */
  private refute(inc: number, why: string): void {
    const self = this.c.table.self
    self.incarnation = Math.max(inc, self.incarnation) + 1
    this.c.counters.refutations++
    this.logTransition(self, 'refuted', why)
    this.queueAlive()
  }

  /**
   * The info line of a transition, once per transition (a relayed copy changes nothing and
   * logs nothing): `member web-2 (10.0.0.7:7946, incarnation 4) is dead: the suspicion expired
   * unrefuted (1 independent confirmation)`, with fields member, addr, incarnation, state,
   * previous, reason. At most one per member and transition every TRANSITION_LOG_WINDOW_MS,
   * the next saying how many were held back (`suppressed`).
   */
  private logTransition(n: MemberEntry, transition: MemberTransition, reason: string, previous?: MemberState): void {
    const held = this.transitionLog.admit(`${n.name}|${transition}`)
    if (held === undefined) return
    const addr = addrOf(n)
    const who = n === this.c.table.self ? `this node ${n.name}` : `member ${n.name}`
    this.c.log.info(
      { member: n.name, addr, incarnation: n.incarnation, transition, state: n.state, previous, reason, suppressed: held },
      `${who} (${addr}, incarnation ${n.incarnation}) ${TRANSITION_WORDS[transition]}: ${reason}${LogLimiter.suffix(held)}`,
    )
  }

  private cancelSuspicion(name: string): void {
    this.suspicions.get(name)?.cancel()
    this.suspicions.delete(name)
  }
}
