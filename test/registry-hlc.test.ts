import t from 'tap'
import { compareVersions, Hlc, isVersion } from '../src/registry/hlc.js'

t.test('versions order by wall time, then counter', async (t) => {
  t.ok(compareVersions([2, 0], [1, 9]) > 0)
  t.ok(compareVersions([1, 1], [1, 2]) < 0)
  t.equal(compareVersions([5, 5], [5, 5]), 0)
})

t.test('every now() is greater than the last, even when the wall clock steps back', async (t) => {
  let wall = 1_000_000
  const hlc = new Hlc(() => wall)
  const a = hlc.now()
  t.same(a, [1_000_000, 0])
  const b = hlc.now()
  t.same(b, [1_000_000, 1], 'same millisecond: counter raised')
  wall -= 600_000 // NTP steps the clock 10 minutes back
  const c = hlc.now()
  t.ok(compareVersions(c, b) > 0, 'still after the previous version')
  t.same(c, [1_000_000, 2])
  wall = 1_000_005
  t.same(hlc.now(), [1_000_005, 0], 'wall time moving past the last version resets the counter')
})

t.test('observe() makes later versions exceed a version seen elsewhere', async (t) => {
  const hlc = new Hlc(() => 100)
  hlc.observe([700_000, 3]) // written by an earlier boot whose clock was 10 minutes ahead
  const v = hlc.now()
  t.ok(compareVersions(v, [700_000, 3]) > 0)
  hlc.observe([5, 0])
  t.ok(compareVersions(hlc.now(), v) > 0, 'observing an older version changes nothing')
})

t.test('isVersion accepts only two non-negative integers', async (t) => {
  t.ok(isVersion([1, 0]))
  t.notOk(isVersion([1]))
  t.notOk(isVersion([1.5, 0]))
  t.notOk(isVersion([-1, 0]))
  t.notOk(isVersion('1,0'))
  t.notOk(isVersion([1, 0, 0]))
})
