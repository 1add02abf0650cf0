import t from 'tap'
import { Registry } from 'prom-client'
import { DockerSource } from '../../src/docker/source.js'
import { silentLogger } from '../../src/log.js'
import { capturedLogger } from '../lib/log.js'
import type { LocalServiceSpec } from '../../src/registry/types.js'
import { runArgs, startDockerd, waitFor } from './dockerd.js'

t.test('dockerd killed and restarted: reconnect, nothing leaves during the grace period, resync picks up what changed', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const registry = new Registry()
  const { logger, lines } = capturedLogger('info')
  const src = new DockerSource({ dockerHost: d.host, advertiseIp: '127.0.0.1', backoffMs: 100, maxBackoffMs: 400 }, { logger, registry })
  // A second source with a short grace period shows that the period is what keeps services.
  const brief = new DockerSource(
    { dockerHost: d.host, advertiseIp: '127.0.0.1', graceMs: 400, backoffMs: 100, maxBackoffMs: 400 },
    { logger: silentLogger() },
  )
  t.teardown(() => {
    src.stop()
    brief.stop()
  })
  const run = (name: string) => d.cli(runArgs({ name, labels: { ServiceName: name, ServicePort_80: '10080' }, publish: ['80'] }))
  await run('stays')
  await run('dies')
  const diesPid = Number(await d.cli(['inspect', '-f', '{{ .State.Pid }}', 'dies']))
  src.start()
  brief.start()
  await waitFor(() => src.services().length === 2 && brief.services().length === 2, 10_000, 'both listed')
  const seen: LocalServiceSpec[][] = []
  src.on('change', (s: LocalServiceSpec[]) => seen.push(s))

  await d.kill()
  await waitFor(() => !src.connected(), 5000, 'disconnect noticed')
  process.kill(diesPid, 'SIGKILL') // changes while the engine is down
  await new Promise((r) => setTimeout(r, 1000))
  t.same(
    src
      .services()
      .map((s) => s.name)
      .sort(),
    ['dies', 'stays'],
    'both kept during the outage',
  )
  t.equal(seen.length, 0, 'no change event while the engine is down')
  t.same(brief.services(), [], 'a source with a 400 ms grace period withdrew them')
  const warns = lines.filter((l) => l.level === 40).map((l) => l.msg)
  t.match(
    warns[0],
    /^Docker engine at unix:\/\/\S+ lost \(.+\); reconnecting, its services kept for 60 s; if it does not come back, see why the engine stopped$/,
    'an engine that was there is "lost"',
  )
  t.notOk(
    warns.some((w) => w.startsWith('no Docker engine')),
    'and never "no Docker engine"',
  )

  await d.restart()
  await waitFor(() => src.connected() && brief.connected(), 10_000, 'reconnected')
  await waitFor(() => src.services().length === 1, 5000, 'the dead container is gone after the resync')
  t.same(
    src.services().map((s) => s.name),
    ['stays'],
  )
  t.same(
    brief.services().map((s) => s.name),
    ['stays'],
    'the other source is back to the live container',
  )
  t.ok(
    seen.every((s) => s.some((x) => x.name === 'stays')),
    'the surviving container never left',
  )
  t.match(await registry.metrics(), /shoal_docker_resyncs_total [2-9]/)

  // The stream is followed again after the reconnect.
  await run('after')
  await waitFor(() => src.services().some((s) => s.name === 'after'), 5000, 'a new container after the restart')
  t.pass('events flow after the reconnect')
})
