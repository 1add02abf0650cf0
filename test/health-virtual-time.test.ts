/**
 * The health scheduler on virtual time (issue 22, point 11): its intervals, start-up pace and
 * timeouts are counted on the injected clock, so these tests say exactly how many runs happen
 * in a window and when a hanging check fails, whatever the machine's load.
 */
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { HealthScheduler } from '../src/health/scheduler.js'
import { silentLogger } from '../src/log.js'
import { processesWith } from './lib/proc.js'

const ctx = { host: '127.0.0.1', ports: [] }

t.test('a passing check: its first result at once, then one run per interval', async (t) => {
  const clock = new VirtualClock()
  const hs = new HealthScheduler({ intervalMs: 3000 }, { logger: silentLogger(), clock })
  t.teardown(() => hs.stop())
  hs.start()
  hs.set('web-1', { type: 'AlwaysSuccessful' }, ctx)
  await clock.advance(0)
  t.equal(hs.status('web-1'), 'alive', 'served from its first passing check, at t=0')
  t.equal(hs.result('web-1')?.passes, 1)
  await clock.advance(30_000)
  t.equal(hs.result('web-1')?.passes, 11, 'ten more runs in 30 virtual seconds at a 3 s interval')
  await clock.advance(2_999)
  t.equal(hs.result('web-1')?.passes, 11, 'none before the next interval is over')
  await clock.advance(1)
  t.equal(hs.result('web-1')?.passes, 12)
})

t.test('a hanging check fails at its timeout on the clock, not before', async (t) => {
  const clock = new VirtualClock()
  const hs = new HealthScheduler({ intervalMs: 3000, allowExternal: true }, { logger: silentLogger(), clock })
  t.teardown(() => hs.stop())
  hs.start()
  // Sleeps 61.75 real seconds: only the virtual timeout can end it within the test.
  hs.set('slow-1', { type: 'External', args: "/bin/sh -c 'sleep 61.75'", timeoutMs: 2000 }, ctx)
  await clock.advance(1999)
  t.equal(hs.status('slow-1'), 'starting', 'no result 1 ms before the timeout')
  await clock.advance(1)
  // The abort kills the process; its exit is real I/O, so wait for it (bounded by the test's own timeout).
  while (hs.status('slow-1') === 'starting') await new Promise((r) => setTimeout(r, 10))
  t.equal(hs.status('slow-1'), 'unhealthy', 'failed at exactly 2000 virtual ms')
  t.match(hs.result('slow-1'), { outcome: 'timeout', error: 'timed out after 2000 ms' })
  hs.stop()
  while (processesWith('sleep 61.75').length > 0) await new Promise((r) => setTimeout(r, 20))
  t.pass('and its process is gone')
})
