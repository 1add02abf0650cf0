import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { Suspicion, expectedConfirmations, suspicionMinMs, suspicionTimeoutMs } from '../src/gossip/suspicion.js'

t.test('min = mult x max(1, log10 N) x probe interval', async (t) => {
  t.equal(suspicionMinMs(4, 1, 1000), 4000, 'N=1: log10 floor of 1')
  t.equal(suspicionMinMs(4, 10, 1000), 4000)
  t.equal(suspicionMinMs(4, 100, 1000), 8000)
  t.equal(suspicionMinMs(4, 1000, 1000), 12000)
  t.equal(suspicionMinMs(3, 5000, 200), 3 * Math.log10(5000) * 200)
})

t.test('k = mult - 2, or 0 when N - 2 < k', async (t) => {
  t.equal(expectedConfirmations(4, 100), 2)
  t.equal(expectedConfirmations(4, 4), 2)
  t.equal(expectedConfirmations(4, 3), 0)
  t.equal(expectedConfirmations(6, 5), 0)
  t.equal(expectedConfirmations(6, 6), 4)
})

t.test('timeout shrinks from max to min with log(c + 1) / log(k + 1)', async (t) => {
  const min = 4000
  const max = 24000
  t.equal(suspicionTimeoutMs(0, 2, min, max), max)
  t.equal(suspicionTimeoutMs(1, 2, min, max), Math.floor(max - ((max - min) * Math.log(2)) / Math.log(3)))
  t.equal(suspicionTimeoutMs(2, 2, min, max), min)
  t.equal(suspicionTimeoutMs(5, 2, min, max), min, 'never below min')
  t.equal(suspicionTimeoutMs(0, 0, min, max), min, 'k = 0: min at once')
})

t.test('the timer fires at max without confirmations, once', async (t) => {
  const clock = new VirtualClock()
  const fired: number[] = []
  const s = new Suspicion('a', 2, 1000, 6000, clock, (c) => fired.push(clock.now() * 10 + c))
  await clock.advance(5999)
  t.same(fired, [])
  await clock.advance(1)
  t.same(fired, [60000], 'fired at 6000 ms with 0 confirmations')
  t.notOk(s.confirm('b'), 'a confirmation after expiry is ignored')
  await clock.advance(10000)
  t.equal(fired.length, 1)
})

t.test('confirmations are measured from the start and count once per member', async (t) => {
  const clock = new VirtualClock()
  const fired: number[] = []
  const s = new Suspicion('a', 2, 1000, 6000, clock, () => fired.push(clock.now()))
  await clock.advance(500)
  t.notOk(s.confirm('a'), 'the accuser itself is not a confirmation')
  t.ok(s.confirm('b'))
  t.notOk(s.confirm('b'), 'the same member twice counts once')
  t.equal(s.confirmations(), 1)
  const one = suspicionTimeoutMs(1, 2, 1000, 6000)
  t.equal(s.timeoutMs(), one)
  await clock.advance(one - 500 - 1)
  t.same(fired, [])
  t.ok(s.confirm('c'), 'second confirmation')
  t.same(fired, [], 'still waits for the jobs of this instant')
  await clock.advance(0)
  t.same(fired, [one - 1], 'k reached: min (1000) already elapsed, fires at once')
  t.notOk(s.confirm('d'), 'beyond k nothing changes')
})

t.test('cancel stops the timer', async (t) => {
  const clock = new VirtualClock()
  let fired = 0
  const s = new Suspicion('a', 0, 1000, 6000, clock, () => fired++)
  s.cancel()
  await clock.advance(10000)
  t.equal(fired, 0)
  t.equal(clock.pending(), 0, 'no timer left behind')
})

t.test('refusal evidence: two distinct members that saw a refused stream ping end the suspicion at once', async (t) => {
  const clock = new VirtualClock()
  const fired: Array<[number, number, number]> = []
  const s = new Suspicion('a', 1, 2000, 12000, clock, (c, r) => fired.push([clock.now(), c, r]), true)
  t.equal(s.refusals(), 1, 'the raiser refused')
  await clock.advance(100)
  t.notOk(s.confirm('a', true), 'the raiser again is no news')
  await clock.advance(100)
  t.same(fired, [], 'one refusal does not end it')
  t.ok(s.confirm('b'), 'a plain confirmation is news')
  t.equal(s.timeoutMs(), 2000, 'and takes the timer to min')
  t.ok(s.confirm('b', true), 'the same member now refused: news, though confirmations are full')
  await clock.advance(0)
  t.same(fired, [[200, 1, 2]], 'expired at once with two refusals')
})

t.test('refusal evidence: refusals from one member, or beside plain confirmations, keep the Lifeguard timer', async (t) => {
  const clock = new VirtualClock()
  const fired: number[] = []
  const s = new Suspicion('a', 1, 2000, 12000, clock, () => fired.push(clock.now()))
  t.ok(s.confirm('b', true), 'one refusal')
  t.notOk(s.confirm('b', true), 'the same one again')
  t.notOk(s.confirm('c'), 'confirmations are full and c saw no refusal')
  await clock.advance(1999)
  t.same(fired, [])
  await clock.advance(1)
  t.same(fired, [2000], 'fired at min, as without refusal evidence')
})

t.test('refusal evidence: two refusals end the suspicion at its floor, counted from its start', async (t) => {
  const clock = new VirtualClock()
  const fired: number[] = []
  const s = new Suspicion('a', 1, 2000, 12000, clock, () => fired.push(clock.now()), true, 1000)
  await clock.advance(100)
  t.ok(s.confirm('b', true))
  await clock.advance(899)
  t.same(fired, [], 'not before the floor')
  await clock.advance(1)
  t.same(fired, [1000], 'at the floor')
  const late = new Suspicion('a', 1, 2000, 12000, clock, () => fired.push(clock.now()), true, 1000)
  await clock.advance(1500)
  t.ok(late.confirm('b', true), 'a second refusal after the floor')
  await clock.advance(0)
  t.same(fired, [1000, 2500], 'ends it at once')
})
