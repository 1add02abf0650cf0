// Issue 20, acceptance 1, on a real (private) dockerd: a container described only by
// Registrator's environment variables registers as a Registrator user expects, the same
// through labels; a bad Registrator key skips that port alone, counted; the rest of the
// container's environment is never read into the service.
import t from 'tap'
import { connectedSource, IMAGE, startDockerd, waitFor } from './dockerd.js'

t.test('Registrator environment variables and labels on real containers', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const { src, registry } = await connectedSource(t, d)
  const keys = ['SERVICE_TAGS=blue,canary', 'SERVICE_8080_IGNORE=true', 'SERVICE_9090_SERVICE_PORT=10090', 'SERVICE_REGION=us-east']
  const run = (name: string, flag: '-e' | '-l', kv: string[]) =>
    d.cli(['run', '-d', '--name', name, ...kv.flatMap((x) => [flag, x]), '-p', '8080', '-p', '9090', IMAGE, 'sleep', '600'])
  await run('by-env', '-e', ['SERVICE_NAME=web', 'DB_PASSWORD=secret', ...keys])
  await run('by-label', '-l', ['SERVICE_NAME=web-labels', ...keys])
  await run('bad', '-e', ['SERVICE_NAME=bad', 'SERVICE_9090_SERVICE_PORT=ninety', 'SERVICE_8080_SERVICE_PORT=10080'])
  await waitFor(() => src.services().length === 3, 10_000, 'three services')
  const byName = new Map(src.services().map((s) => [s.name, s]))
  for (const name of ['web', 'web-labels']) {
    const s = byName.get(name)
    t.same(
      s?.ports.map((p) => [p.containerPort, p.servicePort]),
      [[9090, 10090]],
      `${name}: port 8080 ignored, 9090 on ServicePort 10090`,
    )
    t.same([s?.tags, s?.attributes], [['blue', 'canary'], { region: 'us-east' }], `${name}: tags and attributes`)
  }
  t.notMatch(JSON.stringify(byName.get('web')), /secret|DB_PASSWORD/, 'nothing else of the environment is kept')
  t.same(
    byName.get('bad')?.ports.map((p) => p.servicePort),
    [10080],
    'a bad ServicePort skips its port alone',
  )
  t.match(await registry.metrics(), /shoal_docker_skipped_labels_total\{reason="bad-service-port"\} 1\n/)
})
