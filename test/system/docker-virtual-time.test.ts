// The Docker source's timers on virtual time (issue 22, point 11), against a real engine: the
// grace period that keeps a lost engine's services, and the bound after which a container that
// survived its stop signal is served again. Both are counted on the injected clock, so these
// tests say to the millisecond when each happens, whatever the machine's load; the engine, its
// events and inspections are real I/O and given real time between steps of the clock.
import t from 'tap'
import { VirtualClock } from '../../src/clock.js'
import { DockerSource } from '../../src/docker/source.js'
import { silentLogger } from '../../src/log.js'
import { startDockerd, stubbornArgs, waitFor } from './dockerd.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('a lost engine’s services are kept for graceMs on the clock, then withdrawn', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  await d.cli(stubbornArgs('kept', 10080))
  const clock = new VirtualClock()
  const graceMs = 30_000
  const src = new DockerSource(
    { dockerHost: d.host, advertiseIp: '127.0.0.1', graceMs, backoffMs: 100, maxBackoffMs: 400 },
    { logger: silentLogger(), clock },
  )
  t.teardown(() => src.stop())
  src.start()
  await waitFor(() => src.services().length === 1, 30_000, 'the container listed')

  await d.kill()
  await waitFor(() => !src.connected(), 30_000, 'the lost engine noticed')
  await sleep(1000)
  t.equal(src.services().length, 1, 'a real second later: kept')
  // Reconnect attempts fail meanwhile (the engine is down); each is real I/O between steps.
  for (let left = graceMs - 1; left > 0; left -= 1000) {
    await clock.advance(Math.min(1000, left))
    await sleep(10)
  }
  t.equal(src.services().length, 1, 'kept 1 ms before the grace period ends')
  await clock.advance(1)
  t.equal(src.services().length, 0, 'withdrawn when it ends')
})

t.test('a container that survives its stop signal is served again after stop timeout + margin on the clock', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const clock = new VirtualClock()
  const marginMs = 60_000
  const src = new DockerSource({ dockerHost: d.host, advertiseIp: '127.0.0.1', stopMarginMs: marginMs }, { logger: silentLogger(), clock })
  t.teardown(() => src.stop())
  src.start()
  await waitFor(() => src.connected(), 30_000, 'connected')
  await d.cli(stubbornArgs('stubborn', 10081))
  const spec = () => src.services().find((s) => s.name === 'stubborn')
  await waitFor(() => spec() !== undefined, 30_000, 'the container listed')
  t.notOk(spec()!.stopping, 'served')

  await d.cli(['kill', '-s', 'TERM', 'stubborn'])
  await waitFor(() => spec()?.stopping === true, 30_000, 'the kill event to drain it')
  t.pass('SIGTERM drains it')
  await sleep(1500)
  t.equal(spec()?.stopping, true, 'still draining 1.5 real seconds later (its stop timeout is 1 s): the clock stood still')
  await clock.advance(1000 + marginMs - 1)
  await sleep(500)
  t.equal(spec()?.stopping, true, 'still draining 1 virtual ms before stop timeout + margin')
  await clock.advance(1)
  // survived() inspects the container: real I/O.
  await waitFor(() => spec()?.stopping === undefined, 30_000, 'it to be served again')
  t.equal((await d.docker.getContainer('stubborn').inspect()).State.Running, true, 'the container still runs')
  src.stop()
  t.equal(clock.pending(), 0, 'stop() leaves no timer on the clock')
})
