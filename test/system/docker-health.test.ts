import t from 'tap'
import { DockerSource } from '../../src/docker/source.js'
import { HealthScheduler } from '../../src/health/scheduler.js'
import { silentLogger } from '../../src/log.js'
import { runArgs, startDockerd, waitFor } from './dockerd.js'

t.test('a HEALTHCHECK that turns unhealthy and healthy again drives the feed and the Docker check', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const src = new DockerSource({ dockerHost: d.host, advertiseIp: '127.0.0.1' }, { logger: silentLogger() })
  const hs = new HealthScheduler({ intervalMs: 60_000 }, { logger: silentLogger(), dockerHealth: src.healthFeed })
  t.teardown(() => {
    hs.stop()
    src.stop()
  })
  src.on('change', () => {
    for (const s of src.services())
      hs.set(s.id, s.check, {
        host: '127.0.0.1',
        containerId: s.containerId,
        ports: s.ports.flatMap((p) => (p.port ? [{ port: p.port }] : [])),
      })
  })
  const statuses: string[] = []
  hs.on('change', (_id: string, st: string) => statuses.push(st))
  src.start()
  hs.start()
  await waitFor(() => src.connected(), 10_000, 'connected')

  const id = await d.cli(
    runArgs({
      name: 'hc',
      options: ['--health-cmd', 'test -f /tmp/ok', '--health-interval', '300ms', '--health-retries', '1', '--health-timeout', '1s'],
      labels: { ServiceName: 'hc', ServicePort_80: '10080', HealthCheck: 'Docker' },
      publish: ['80'],
      cmd: ['sh', '-c', 'touch /tmp/ok; exec httpd -f -p 80 -h /www'],
    }),
  )
  const short = id.slice(0, 12)
  await waitFor(() => src.services().length === 1, 5000, 'service listed')
  t.ok(['starting', 'healthy'].includes(src.healthFeed.health(id)!), 'feed knows the container from inspect')
  t.equal(src.services()[0]!.check?.type, 'Docker')
  await waitFor(() => src.healthFeed.health(id) === 'healthy', 10_000, 'healthy')
  await waitFor(() => hs.status(short) === 'alive', 2000, 'scheduler alive')

  await d.cli(['exec', 'hc', 'rm', '/tmp/ok'])
  const down = await waitFor(() => src.healthFeed.health(id) === 'unhealthy', 10_000, 'unhealthy in the feed')
  await waitFor(() => hs.status(short) === 'unhealthy', 1000, 'scheduler unhealthy')
  t.pass(`unhealthy ${down} ms after the file was removed`)

  await d.cli(['exec', 'hc', 'touch', '/tmp/ok'])
  await waitFor(() => src.healthFeed.health(id) === 'healthy', 10_000, 'healthy again in the feed')
  await waitFor(() => hs.status(short) === 'alive', 1000, 'scheduler alive again')
  t.same(statuses, ['alive', 'unhealthy', 'alive'])
  t.equal(src.services().length, 1, 'health does not withdraw the container: the status does')

  await d.cli(['rm', '-f', 'hc'])
  await waitFor(() => src.healthFeed.health(id) === undefined, 5000, 'feed forgets a removed container')
})
