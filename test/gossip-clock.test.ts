import t from 'tap'
import { RealClock, VirtualClock } from '../src/clock.js'

t.test('virtual timers fire in time order, ties in insertion order, now() at each due time', async (t) => {
  const clock = new VirtualClock()
  const fired: Array<[string, number]> = []
  clock.setTimer(30, () => fired.push(['c', clock.now()]))
  clock.setTimer(10, () => fired.push(['a', clock.now()]))
  clock.setTimer(10, () => fired.push(['b', clock.now()]))
  clock.setTimer(50, () => fired.push(['late', clock.now()]))
  t.equal(clock.pending(), 4)
  await clock.advance(40)
  t.same(fired, [
    ['a', 10],
    ['b', 10],
    ['c', 30],
  ])
  t.equal(clock.now(), 40)
  t.equal(clock.pending(), 1)
  await clock.advance(10)
  t.same(fired.at(-1), ['late', 50])
  t.equal(clock.pending(), 0)
})

t.test('cancelled timers do not fire; timers set by timers fire within the window', async (t) => {
  const clock = new VirtualClock()
  const fired: number[] = []
  const x = clock.setTimer(5, () => fired.push(-1))
  x.cancel()
  x.cancel()
  clock.setTimer(10, () => {
    fired.push(clock.now())
    clock.setTimer(0, () => fired.push(clock.now() + 0.5))
    clock.setTimer(15, () => fired.push(clock.now()))
  })
  t.equal(clock.pending(), 1)
  await clock.advance(30)
  t.same(fired, [10, 10.5, 25])
  t.equal(clock.pending(), 0)
})

t.test('promise chains started by a timer complete in virtual time', async (t) => {
  const clock = new VirtualClock()
  const sleep = (ms: number) => new Promise<void>((r) => clock.setTimer(ms, r))
  const seen: number[] = []
  const chain = async () => {
    for (let i = 0; i < 5; i++) {
      await Promise.resolve()
      await sleep(10)
      await Promise.resolve().then(() => undefined)
      seen.push(clock.now())
    }
  }
  void chain()
  await clock.advance(100)
  t.same(seen, [10, 20, 30, 40, 50], 'each await of a virtual sleep resumed at its due time')
})

t.test('advance calls are serialized and runUntil stops when the predicate holds', async (t) => {
  const clock = new VirtualClock()
  let n = 0
  const tick = () => {
    n++
    clock.setTimer(100, tick)
  }
  clock.setTimer(100, tick)
  await Promise.all([clock.advance(250), clock.advance(250)])
  t.equal(clock.now(), 500)
  t.equal(n, 5)
  const ok = await clock.runUntil(() => n >= 8, 10_000, 50)
  t.ok(ok)
  t.equal(clock.now(), 800)
  const no = await clock.runUntil(() => false, 1000)
  t.notOk(no)
  t.equal(clock.now(), 1800)
})

t.test('wallNow starts at startWall; skewed clocks share the time base', async (t) => {
  const clock = new VirtualClock({ startWall: 1000 })
  const behind = clock.skewed(-600_000)
  await clock.advance(5)
  t.equal(clock.wallNow(), 1005)
  t.equal(behind.wallNow(), 1005 - 600_000)
  t.equal(behind.now(), 5)
  let fired = false
  behind.setTimer(10, () => (fired = true))
  await clock.advance(10)
  t.ok(fired)
  t.equal(new VirtualClock().wallNow(), 1_700_000_000_000)
})

t.test('a heap scales: 200k timers, random times, fired in order', async (t) => {
  const clock = new VirtualClock()
  let last = -1
  let bad = 0
  let count = 0
  const timers = []
  for (let i = 0; i < 200_000; i++) {
    const due = Math.floor(Math.random() * 1000)
    timers.push(
      clock.setTimer(due, () => {
        if (clock.now() < last || clock.now() !== due) bad++
        last = clock.now()
        count++
      }),
    )
  }
  for (let i = 0; i < timers.length; i += 2) timers[i]!.cancel()
  t.equal(clock.pending(), 100_000)
  // No wall-time bound (it failed beside stress-ng at 13.6 s, where 5 s held at rest): a list
  // scanned per timer would take 10^10 steps here, far past the file's timeout, which is bound
  // enough; the figures of the simulator's speed are the benches'.
  await clock.advance(1000)
  t.equal(count, 100_000)
  t.equal(bad, 0)
})

t.test('RealClock: monotonic now, wall time, unref timers that cancel', async (t) => {
  const clock = new RealClock()
  const a = clock.now()
  t.ok(Math.abs(clock.wallNow() - Date.now()) < 50)
  const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = refTimers()
  let fired = 0
  const cancelled = clock.setTimer(5, () => fired--)
  t.equal(refTimers(), before, 'the timer does not keep the process alive')
  cancelled.cancel()
  // The clock's timers are unref()ed: hold the loop open with a timer of our own.
  const keep = setTimeout(() => undefined, 5000)
  t.teardown(() => clearTimeout(keep))
  await new Promise<void>((resolve) =>
    clock.setTimer(20, () => {
      fired++
      resolve()
    }),
  )
  t.equal(fired, 1)
  t.ok(clock.now() - a >= 15)
})
