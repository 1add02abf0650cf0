/**
 * Time, the ground floor every part shares: the `Clock` interface, real time for the agent,
 * virtual time for tests and the simulator. Parts take a Clock injected, so the same code
 * runs on both.
 */
import { performance } from 'node:perf_hooks'
import { setImmediate as nextMacrotask } from 'node:timers'

/** A cancellable one-shot timer. */
export interface Timer {
  cancel(): void
}

/**
 * Time, injected so the same protocol code runs on real time and on the simulator's
 * virtual time. Real timers are `unref()`ed: a clock never keeps a process alive.
 *
 * @example
 *   const t = clock.setTimer(500, () => probeTimedOut())
 *   t.cancel()
 */
export interface Clock {
  /** Milliseconds; monotonic within one process (virtual in the simulator). */
  now(): number
  /** Wall-clock milliseconds since the epoch (the simulator may skew it per node). */
  wallNow(): number
  setTimer(ms: number, fn: () => void): Timer
}

/** setTimeout's limit; a larger delay would fire after 1 ms instead. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

/**
 * Real time. `now()` is monotonic (performance.now()), `wallNow()` is Date.now(), and
 * every timer is unref()ed so a clock never keeps the process alive.
 *
 * @example
 *   const clock = new RealClock()
 *   const t = clock.setTimer(200, () => tick())
 *   t.cancel()
 */
export class RealClock implements Clock {
  now(): number {
    return performance.now()
  }

  wallNow(): number {
    return Date.now()
  }

  setTimer(ms: number, fn: () => void): Timer {
    const delay = Number.isFinite(ms) ? Math.min(Math.max(0, ms), MAX_TIMEOUT_MS) : 0
    const handle = setTimeout(fn, delay)
    handle.unref()
    return { cancel: () => clearTimeout(handle) }
  }
}

interface VirtualTimer {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
  fired: boolean
}

/** Min-heap on (at, seq): the earliest timer first, ties in insertion order. */
class TimerHeap {
  private items: VirtualTimer[] = []

  get size(): number {
    return this.items.length
  }

  peek(): VirtualTimer | undefined {
    return this.items[0]
  }

  push(t: VirtualTimer): void {
    const a = this.items
    a.push(t)
    let i = a.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(a[i]!, a[parent]!)) break
      swap(a, i, parent)
      i = parent
    }
  }

  pop(): VirtualTimer | undefined {
    const a = this.items
    if (a.length === 0) return undefined
    const top = a[0]!
    const last = a.pop()!
    if (a.length > 0) {
      a[0] = last
      this.siftDown(0)
    }
    return top
  }

  /** Drops cancelled timers; used when they make up most of the heap. */
  compact(): void {
    this.items = this.items.filter((t) => !t.cancelled)
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.siftDown(i)
  }

  clear(): void {
    this.items = []
  }

  private siftDown(i: number): void {
    const a = this.items
    const n = a.length
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < n && before(a[l]!, a[m]!)) m = l
      if (r < n && before(a[r]!, a[m]!)) m = r
      if (m === i) return
      swap(a, i, m)
      i = m
    }
  }
}

function before(x: VirtualTimer, y: VirtualTimer): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq)
}

function swap(a: VirtualTimer[], i: number, j: number): void {
  const t = a[i]!
  a[i] = a[j]!
  a[j] = t
}

/** Lets every queued promise job (and jobs they queue) run before the next timer fires. */
function flushJobs(): Promise<void> {
  return new Promise((resolve) => nextMacrotask(resolve))
}

/**
 * Virtual time for tests and the simulator: time only moves in `advance()`. Timers fire in
 * time order (ties in insertion order) with `now()` set to their due time, and promise jobs
 * are flushed after each instant, so request/response chains built on promises complete in
 * virtual time.
 *
 * @example
 *   const clock = new VirtualClock()
 *   clock.setTimer(100, () => fired.push(clock.now()))
 *   await clock.advance(1000)          // fired == [100], clock.now() == 1000
 *   const behind = clock.skewed(-600_000) // a host whose wall clock is 10 minutes late
 */
export class VirtualClock implements Clock {
  private current = 0
  private readonly startWall: number
  private readonly heap = new TimerHeap()
  private seq = 0
  private live = 0
  private cancelledInHeap = 0
  private running: Promise<void> = Promise.resolve()

  constructor(opts: { startWall?: number } = {}) {
    this.startWall = opts.startWall ?? 1_700_000_000_000
  }

  now(): number {
    return this.current
  }

  wallNow(): number {
    return this.startWall + this.current
  }

  setTimer(ms: number, fn: () => void): Timer {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0
    const timer: VirtualTimer = { at: this.current + delay, seq: this.seq++, fn, cancelled: false, fired: false }
    this.heap.push(timer)
    this.live++
    return {
      cancel: () => {
        if (timer.cancelled || timer.fired) return
        timer.cancelled = true
        this.live--
        this.cancelledInHeap++
        if (this.cancelledInHeap > 1024 && this.cancelledInHeap * 2 > this.heap.size) {
          this.heap.compact()
          this.cancelledInHeap = 0
        }
      },
    }
  }

  /** Timers scheduled and neither fired nor cancelled. */
  pending(): number {
    return this.live
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way (including timers that
   * fired timers schedule inside the window). Calls are serialized: a second advance()
   * started before the first resolves runs after it. A timer that throws rejects advance().
   */
  advance(ms: number): Promise<void> {
    const run = this.running.then(() => this.advanceNow(ms))
    this.running = run.catch(() => undefined)
    return run
  }

  /**
   * Advances in steps of `stepMs` (default 10) until `pred()` holds or `maxMs` of virtual
   * time passed; resolves to the final value of `pred()`.
   */
  async runUntil(pred: () => boolean, maxMs: number, stepMs = 10): Promise<boolean> {
    const step = stepMs > 0 ? stepMs : 10
    let elapsed = 0
    while (!pred()) {
      if (elapsed >= maxMs) return false
      const d = Math.min(step, maxMs - elapsed)
      await this.advance(d)
      elapsed += d
    }
    return true
  }

  /**
   * A Clock sharing this time base and timers whose wallNow() is off by `offsetMs`
   * (negative: behind), to simulate a host with a wrong wall clock.
   */
  skewed(offsetMs: number): Clock {
    return {
      now: () => this.now(),
      wallNow: () => this.wallNow() + offsetMs,
      setTimer: (ms, fn) => this.setTimer(ms, fn),
    }
  }

  private async advanceNow(ms: number): Promise<void> {
    const target = this.current + (Number.isFinite(ms) && ms > 0 ? ms : 0)
    await flushJobs()
    for (;;) {
      const top = this.heap.peek()
      if (top === undefined || top.at > target) break
      const instant = top.at
      this.current = instant
      // Fire everything due at this instant, including timers of 0 ms set meanwhile.
      for (;;) {
        const next = this.heap.peek()
        if (next === undefined || next.at !== instant) break
        this.heap.pop()
        if (next.cancelled) {
          this.cancelledInHeap--
          continue
        }
        next.fired = true
        this.live--
        next.fn()
      }
      await flushJobs()
    }
    this.current = target
  }
}
