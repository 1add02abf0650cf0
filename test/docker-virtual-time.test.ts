/**
 * The Docker source's reconnect backoff on virtual time (issue 22, point 11): with no engine at
 * the socket, every attempt fails at once (real I/O), and the next one starts exactly when the
 * jittered, doubling delay has passed on the injected clock. The grace period and the
 * stop-timeout bound are on the same clock: test/system/docker-virtual-time.test.ts.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../src/clock.js'
import { DockerSource } from '../src/docker/source.js'
import { silentLogger } from '../src/log.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('reconnect attempts follow the backoff on the clock: 150, 300, 600 ms … capped at 3750', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-docker-vt-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clock = new VirtualClock({ startWall: 1_700_000_000_000 })
  // random 0.5: each delay is 3/4 of its base (base/2 + base/2 * 0.5), the base doubling from 200 up to 5000.
  const src = new DockerSource(
    { dockerHost: `unix://${join(dir, 'no-engine.sock')}`, advertiseIp: '127.0.0.1', backoffMs: 200, maxBackoffMs: 5000 },
    { logger: silentLogger(), clock, random: () => 0.5 },
  )
  t.teardown(() => src.stop())
  const attempts = () => src.status().rejected
  /** Real time for a connection attempt to fail (real I/O) while the virtual clock stands still. */
  const settle = async (want: number) => {
    const end = Date.now() + 10_000
    while (attempts() < want && Date.now() < end) await sleep(10)
    return attempts()
  }
  src.start()
  t.equal(await settle(1), 1, 'the first attempt at start')
  t.match(src.status().error, { message: /no Docker engine at unix:\/\/.*no-engine\.sock/, at: '2023-11-14T22:13:20.000Z' })
  await sleep(500)
  t.equal(attempts(), 1, 'half a real second later: no retry, the clock stood still')
  let n = 1
  for (const delay of [150, 300, 600, 1200, 2400, 3750, 3750]) {
    await clock.advance(delay - 1)
    await sleep(50)
    t.equal(attempts(), n, `not 1 ms before the ${delay} ms delay`)
    await clock.advance(1)
    n++
    t.equal(await settle(n), n, `attempt ${n} after ${delay} virtual ms`)
  }
  src.stop()
  t.equal(clock.pending(), 0, 'stop() leaves no timer on the clock')
})
