// A Tcp check of a container's loopback host binding goes through docker-proxy, which accepts
// every connection whether or not anything listens in the container and closes it only once
// its own connection is refused. The check holds the connection (TCP_HOLD_MS) and fails on
// that close; and since the agent reaches the container's bridge address, it connects there
// too (CheckContext.behind), which refuses at once whatever the load: the container is not
// served until its server listens. (Measured in the Swarm roll before: Tcp checks of starting
// tasks passed about 1 s before the echo server listened; and beside stress-ng, docker-proxy's
// close once came after the 100 ms hold, and the container was served early.)
import t from 'tap'
import { connect } from 'node:net'
import { dockerAgents, StatusLog } from './docker-agents.js'
import { IMAGE, startDockerd, waitFor } from './dockerd.js'
import { liveRecords } from '../../src/registry/types.js'

t.test('a container behind docker-proxy with nothing listening yet is not served until its server listens', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const { a } = await dockerAgents(t, d)
  const log = new StatusLog(t, a)

  // The server starts only when told to (the file /tmp/go).
  const full = await d.cli([
    'run',
    '-d',
    '--name',
    'late',
    '-p',
    '8080',
    ...['ServiceName=late', 'ServicePort_8080=10080', 'HealthCheck=Tcp', 'HealthCheckArgs={{ host }}:{{ tcp 8080 }}'].flatMap((l) => [
      '-l',
      l,
    ]),
    IMAGE,
    'sh',
    '-c',
    'until test -f /tmp/go; do sleep 0.1; done; exec httpd -f -p 8080 -h /www',
  ])
  const id = full.slice(0, 12)
  const [ip, port] = (await d.cli(['port', 'late', '8080'])).split('\n')[0]!.split(':') as [string, string]
  t.match(ip, /^127\./, `the host binding is on loopback (${ip}:${port}): docker-proxy serves it`)
  const accepted = await new Promise<boolean>((resolve) => {
    const s = connect({ host: ip, port: Number(port) })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
  t.ok(accepted, 'docker-proxy accepts a connection while nothing listens in the container')

  const record = () => liveRecords(a.view().snapshot()).find((r) => r.id === id)
  // Several runs of the check (every 0.5 s while starting), each finding the close.
  await waitFor(
    () => /nothing listens in the container yet/.test(record()?.detail ?? ''),
    60_000,
    "the check to find the container's own address refusing",
  )
  t.notOk(
    log.first(id, (s) => s.status === 'alive'),
    `not served while nothing listens: ${record()?.status}, "${record()?.detail}"`,
  )

  const go = Date.now()
  await d.cli(['exec', 'late', 'touch', '/tmp/go'])
  await waitFor(() => record()?.status === 'alive', 60_000, 'alive once httpd listens')
  t.ok(log.first(id, (s) => s.status === 'alive')!.at >= go, 'served only after the server was told to listen')
})
