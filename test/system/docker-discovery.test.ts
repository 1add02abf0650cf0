import t from 'tap'
import { Registry } from 'prom-client'
import { DockerSource } from '../../src/docker/source.js'
import { silentLogger } from '../../src/log.js'
import type { LocalServiceSpec } from '../../src/registry/types.js'
import { fetchLocal } from '../lib/route.js'
import { IMAGE, freePort, runArgs, startDockerd, waitFor } from './dockerd.js'

t.test('labelled containers appear with their names, ServicePorts, IPs and ports; stopped, they are gone', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const registry = new Registry()
  const src = new DockerSource({ dockerHost: d.host, advertiseIp: '127.0.0.1' }, { logger: silentLogger(), registry })
  t.teardown(() => src.stop())
  const changes: LocalServiceSpec[][] = []
  src.on('change', (specs: LocalServiceSpec[]) => changes.push(specs))
  src.start()
  await waitFor(() => src.connected(), 10_000, 'connected')
  t.same(src.services(), [], 'no containers yet')

  const webPublished = await freePort()
  const web = await d.cli(
    runArgs({
      name: 'web',
      labels: {
        ServiceName: 'Web Front',
        ServicePort_80: '10080',
        HealthCheck: 'HttpGet',
        HealthCheckArgs: 'http://{{ host }}:{{ tcp 80 }}/',
      },
      publish: [`0.0.0.0:${webPublished}:80`, `[::]:${webPublished}:80`],
    }),
  )
  const echo = await d.cli(
    runArgs({
      name: 'echo',
      labels: { 'shoal.port.7000': '17000', 'shoal.proxy': 'tcp' },
      publish: [`127.0.0.1:${await freePort()}:7000`],
      cmd: ['nc', '-ll', '-p', '7000', '-e', 'cat'],
    }),
  )
  const plain = await d.cli(runArgs({ name: 'plain', publish: ['9000'], cmd: ['sleep', '600'] }))
  await waitFor(() => src.services().length === 2, 5000, 'two services')
  const byName = new Map(src.services().map((s) => [s.name, s]))
  const w = byName.get('web-front')!
  const webPort = Number(
    (await d.cli(['port', 'web', '80/tcp']))
      .split('\n')
      .find((l) => l.startsWith('0.0.0.0'))!
      .split(':')[1],
  )
  t.equal(w.id, web.slice(0, 12), 'instance id = 12 hex of the container id')
  t.equal(w.containerId, web)
  t.equal(w.image, IMAGE)
  t.same(
    w.ports,
    [{ type: 'tcp', port: webPort, servicePort: 10080, ip: '127.0.0.1', containerPort: 80 }],
    'one port for the paired 0.0.0.0/:: binding',
  )
  t.same(w.check, { type: 'HttpGet', args: 'http://{{ host }}:{{ tcp 80 }}/' })
  t.equal(w.proxyMode, 'http')
  const e = byName.get('shoal-busybox')!
  t.ok(e, 'no ServiceName: the image name')
  t.equal(e.id, echo.slice(0, 12))
  t.equal(e.proxyMode, 'tcp')
  t.equal(e.ports[0]!.ip, '127.0.0.1', 'loopback binding advertised in a loopback cluster')
  t.equal(e.ports[0]!.servicePort, 17000)
  t.notOk(
    src.services().some((s) => s.id === plain.slice(0, 12)),
    'an unlabelled container is not a service',
  )

  // The advertised port really reaches the container.
  const res = await fetch(`http://127.0.0.1:${webPort}/`)
  t.equal(res.status, 200)
  t.equal((await res.text()).trim(), 'ok')

  await d.cli(['stop', '-t', '1', 'web'])
  await waitFor(() => !src.services().some((s) => s.name === 'web-front'), 5000, 'web gone after stop')
  t.same(
    src.services().map((s) => s.name),
    ['shoal-busybox'],
  )
  await d.cli(['kill', 'echo'])
  await waitFor(() => src.services().length === 0, 5000, 'echo gone after kill')
  t.equal(changes.at(-1)!.length, 0, 'the last change event lists nothing')
  t.match(await registry.metrics(), /shoal_docker_events_total\{action="start"\} [3-9]/)
  t.match(await registry.metrics(), /shoal_docker_events_total\{action="die"\} [2-9]/)
})

t.test(
  'a second source with a non-loopback advertise IP skips loopback-only ports, and --docker-network advertises container IPs beside them',
  async (t) => {
    const d = await startDockerd(t)
    if (!d) return
    const registry = new Registry()
    const lan = new DockerSource({ dockerHost: d.host, advertiseIp: '192.0.2.10' }, { logger: silentLogger(), registry })
    const net = new DockerSource({ dockerHost: d.host, advertiseIp: '192.0.2.10', networks: ['bridge'] }, { logger: silentLogger() })
    t.teardown(() => {
      lan.stop()
      net.stop()
    })
    await d.cli(
      runArgs({
        name: 'both',
        labels: { ServiceName: 'both', ServicePort_80: '10080', ServicePort_81: '10081' },
        publish: [`0.0.0.0:${await freePort()}:80`, `127.0.0.1:${await freePort()}:81`],
      }),
    )
    lan.start()
    net.start()
    await waitFor(() => lan.services().length === 1 && net.services().length === 1, 5000, 'listed at start (resync)')
    const l = lan.services()[0]!
    t.same(
      l.ports.map((p) => [p.containerPort, p.ip]),
      [[80, '192.0.2.10']],
      'the loopback-only port 81 is skipped',
    )
    t.match(await registry.metrics(), /shoal_docker_skipped_labels_total\{reason="loopback-binding"\} 1/)
    const ip = (await d.cli(['inspect', '-f', '{{ .NetworkSettings.Networks.bridge.IPAddress }}', 'both'])).trim()
    t.ok(ip.startsWith(d.gateway.slice(0, d.gateway.lastIndexOf('.'))), `container IP ${ip} is on the test bridge`)
    const n = net.services()[0]!
    t.same(
      n.ports.map((p) => [p.containerPort, p.port, p.ip]),
      [
        [80, l.ports[0]!.port, '192.0.2.10'],
        [81, undefined, undefined],
      ],
      'port 80 keeps its host binding; the loopback-only port 81 is listed without one',
    )
    t.same(n.networks, { bridge: ip }, 'and the container IP on the network is advertised beside them')
    const res = await fetchLocal(`http://${ip}:80/`)
    t.equal(res.status, 200, 'the container IP answers')
  },
)
