import t from 'tap'
import { DockerSource } from '../../src/docker/source.js'
import { silentLogger } from '../../src/log.js'
import { createService, startDockerd, waitFor } from './dockerd.js'

t.test('50 containers started at once are all registered', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const src = new DockerSource({ dockerHost: d.host, advertiseIp: '127.0.0.1' }, { logger: silentLogger() })
  t.teardown(() => src.stop())
  src.start()
  await waitFor(() => src.connected(), 10_000, 'connected')
  const n = 50
  const ids: string[] = []
  for (let i = 0; i < n; i += 10) {
    ids.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(10, n - i) }, (_x, j) => createService(d, `burst-${i + j}`, 20000 + i + j).then((c) => c.id)),
      )),
    )
  }
  await Promise.all(ids.map((id) => d.docker.getContainer(id).start()))
  const took = await waitFor(() => src.services().length === n, 10_000, `${n} services`)
  t.equal(new Set(src.services().map((s) => s.ports[0]?.servicePort)).size, n, 'every ServicePort distinct and present')
  t.pass(`all ${n} registered ${took} ms after the last start returned`)
  await Promise.all(ids.map((id) => d.docker.getContainer(id).remove({ force: true })))
  await waitFor(() => src.services().length === 0, 10_000, 'all gone')
})
