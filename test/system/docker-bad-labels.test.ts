import t from 'tap'
import { connectedSource, IMAGE, startDockerd, waitFor } from './dockerd.js'

t.test('containers with every kind of bad label: the bad ones skipped, the rest registered', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const { src, registry } = await connectedSource(t, d)
  const run = (name: string, labels: string[], ports: string[]) =>
    d.cli(['run', '-d', '--name', name, ...labels.flatMap((l) => ['-l', l]), ...ports.flatMap((p) => ['-p', p]), IMAGE, 'sleep', '600'])
  await run('good', ['ServiceName=good', 'ServicePort_80=10080'], ['80'])
  await run(
    'badport',
    ['ServiceName=badport', 'ServicePort_http=10081', 'ServicePort_80=eighty', 'ServicePort_81=70000', 'ServicePort_82=10082'],
    ['80', '81', '82'],
  )
  await run('dup', ['ServiceName=dup', 'ServicePort_80=10090', 'ServicePort_81=10090', 'ServicePort_82=10092'], ['80', '81', '82'])
  await run('badcheck', ['ServiceName=badcheck', 'ServicePort_80=10100', 'HealthCheck=Ping'], ['80'])
  await run('badproxy', ['ServiceName=badproxy', 'ServicePort_80=10110', 'ProxyMode=smtp'], ['80'])
  await run('ignored', ['ServiceName=ignored', 'ServicePort_80=10120', 'SidecarDiscover=false'], ['80'])
  await run('good2', ['shoal.service=good2', 'shoal.port.80=10130'], ['80'])
  await waitFor(() => src.services().length === 4, 5000, 'four services')
  await new Promise((r) => setTimeout(r, 300))
  const got = Object.fromEntries(src.services().map((s) => [s.name, s.ports.map((p) => [p.containerPort, p.servicePort])]))
  t.same(
    got,
    {
      good: [[80, 10080]],
      badport: [[82, 10082]],
      dup: [[82, 10092]],
      good2: [[80, 10130]],
    },
    'bad ports skipped, bad containers (check type, proxy mode) and SidecarDiscover=false left out',
  )
  const m = await registry.metrics()
  for (const [reason, n] of [
    ['bad-container-port', 1],
    ['bad-service-port', 2],
    ['duplicate-service-port', 2],
    ['unknown-check-type', 1],
    ['unknown-proxy-mode', 1],
  ] as const) {
    t.match(m, new RegExp(`shoal_docker_skipped_labels_total\\{reason="${reason}"\\} ${n}\\n`), `${reason} counted ${n}x`)
  }
})
