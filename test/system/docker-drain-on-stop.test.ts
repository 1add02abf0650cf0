// Issue 14: a container that is stopping takes no new traffic. Docker sends the `kill` event
// (with the signal's number) the moment `docker stop` signals the process, and `die` only when
// the process has exited, up to the stop timeout later. Before, the agent re-inspected on
// `kill`, saw the container still running and withdrew it on `die`: another host went on
// serving a process that was shutting down. Now the other host sees it `draining` (reason
// `stopping`) before Docker reports it dead; a process that survives the signal comes back
// after its stop timeout plus a margin; a signal that is not a stop signal changes nothing; a
// container whose HEALTHCHECK is still `starting` is not routed at all.
import t from 'tap'
import type { Agent } from '../../src/agent/agent.js'
import { SLEEP, runArgs, startDockerd, stubbornArgs, waitFor } from './dockerd.js'
import { dockerAgents, dockerEvents, StatusLog } from './docker-agents.js'

async function killEvents(a: Agent): Promise<number> {
  const m = await a.registry.getSingleMetric('shoal_docker_events_total')?.get()
  return m?.values.find((v) => v.labels.action === 'kill')?.value ?? 0
}

t.test('a stopping container drains on every other host before its process exits', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const events = await dockerEvents(t, d.docker)
  const { b } = await dockerAgents(t, d)
  const log = new StatusLog(t, b)

  // httpd keeps serving for 3 s after SIGTERM, then exits.
  const lingering = await d.cli(
    runArgs({
      name: 'lingering',
      labels: { ServiceName: 'web', ServicePort_80: '10080' },
      publish: ['80'],
      cmd: ['sh', '-c', "httpd -f -p 80 -h /www & trap 'sleep 3; kill $!; exit 0' TERM; wait"],
    }),
  )
  const id = lingering.slice(0, 12)
  await waitFor(() => log.serving(id), 60_000, 'host-b to serve the container')

  await d.cli(['stop', 'lingering'])
  await waitFor(() => log.of(id).at(-1)?.status === 'gone', 60_000, 'host-b to see it gone')
  const died = events.at(lingering, 'die')
  t.ok(died, 'Docker reported the process dead')
  const draining = log.first(id, (s) => s.status === 'draining')
  t.ok(
    draining && draining.at < died!,
    `host-b saw it draining before Docker reported it dead (${died! - (draining?.at ?? Infinity)} ms before)`,
  )
  t.equal(draining?.reason, 'stopping', 'the drain reason says why')
  t.same(
    log.of(id).map((s) => s.status),
    ['unknown', 'draining', 'gone'],
    'served, draining, withdrawn: never served again once draining',
  )
})

t.test('a process that survives its stop signal is served again after its stop timeout and a margin', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const { a, b } = await dockerAgents(t, d)
  const log = new StatusLog(t, b)

  // `sleep` as PID 1 has no handler: SIGTERM and SIGHUP do nothing to it.
  const full = await d.cli(stubbornArgs('stubborn', 10081))
  const id = full.slice(0, 12)
  await waitFor(() => log.serving(id), 60_000, 'host-b to serve the container')

  const kills = await killEvents(a)
  await d.cli(['kill', '-s', 'HUP', 'stubborn'])
  await waitFor(async () => (await killEvents(a)) > kills, 10_000, "host-a to handle the HUP's kill event")
  const own = a
    .view()
    .snapshot()
    .hosts.find((h) => h.name === 'host-a')!
    .services.find((r) => r.id === id)!
  t.equal(own.status, 'unknown', 'SIGHUP is not a stop signal: nothing changes')

  const usr1 = (
    await d.cli(
      runArgs({
        name: 'usr1',
        options: ['--stop-signal', 'SIGUSR1'],
        labels: { ServiceName: 'usr1', ServicePort_80: '10082' },
        publish: ['80'],
        cmd: SLEEP,
      }),
    )
  ).slice(0, 12)
  await waitFor(() => log.serving(usr1), 60_000, 'host-b to serve usr1')
  await d.cli(['kill', '-s', 'USR1', 'usr1'])
  await waitFor(() => log.first(usr1, (s) => s.status === 'draining') !== undefined, 60_000, 'host-b to see usr1 draining')
  t.pass("SIGUSR1, the container's StopSignal, drains it")

  const sent = Date.now()
  await d.cli(['kill', '-s', 'TERM', 'stubborn'])
  await waitFor(() => log.first(id, (s) => s.status === 'draining', sent) !== undefined, 60_000, 'host-b to see it draining')
  await waitFor(() => log.serving(id), 30_000, 'host-b to serve it again')
  const back = log.of(id).at(-1)!
  t.ok(back.at - sent >= 1000, `served again ${back.at - sent} ms after SIGTERM (stop timeout 1 s, plus a margin)`)
  t.equal((await d.docker.getContainer(full).inspect()).State.Running, true, 'the container still runs')
})

t.test('a container whose HEALTHCHECK is still starting is not routed', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const { b } = await dockerAgents(t, d)
  const log = new StatusLog(t, b)

  // Healthy once /tmp/ok exists; the test makes it after host-b has listed both containers.
  const health = ['--health-cmd', 'test -f /tmp/ok', '--health-interval', '300ms', '--health-retries', '1', '--health-timeout', '1s']
  const labelled = (
    await d.cli(
      runArgs({
        name: 'labelled',
        options: health,
        labels: { ServiceName: 'hc', ServicePort_80: '10083', HealthCheck: 'Docker' },
        publish: ['80'],
        cmd: SLEEP,
      }),
    )
  ).slice(0, 12)
  const plain = (
    await d.cli(
      runArgs({ name: 'plain', options: health, labels: { ServiceName: 'hc2', ServicePort_80: '10084' }, publish: ['80'], cmd: SLEEP }),
    )
  ).slice(0, 12)
  await waitFor(() => log.of(labelled).length > 0 && log.of(plain).length > 0, 60_000, 'host-b to list both')
  await new Promise((r) => setTimeout(r, 1000))
  t.notOk(log.serving(labelled), 'a HEALTHCHECK still starting is not routed (HealthCheck=Docker)')
  t.notOk(log.serving(plain), 'nor without a check label: the engine says it is not ready')
  const madeHealthy = Date.now()
  await d.cli(['exec', 'labelled', 'touch', '/tmp/ok'])
  await d.cli(['exec', 'plain', 'touch', '/tmp/ok'])
  await waitFor(() => log.serving(labelled) && log.serving(plain), 60_000, 'both served once healthy')
  for (const id of [labelled, plain]) {
    const before = log.of(id).filter((s) => s.at < madeHealthy)
    t.notOk(
      before.some((s) => s.status === 'alive' || s.status === 'unknown'),
      `${id}: never served before it was healthy (${log
        .of(id)
        .map((s) => s.status)
        .join(' → ')})`,
    )
  }
})
