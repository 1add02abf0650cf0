// The endpoint over the real Catalog (src/registry/catalog.ts) rather than the test
// fixture: local writes, remote merges and a host going down show in services.json,
// state.json, /api/watch and the catalog metrics.
import t from 'tap'
import { Registry } from 'prom-client'
import { RealClock } from '../src/clock.js'
import { HttpServer } from '../src/http/server.js'
import { registerCatalogMetrics } from '../src/http/metrics.js'
import { silentLogger } from '../src/log.js'
import { Catalog, type LocalRecord } from '../src/registry/catalog.js'
import { FixtureMembership, openWatch } from './lib/http-fixture.js'

function local(id: string, name: string, port: number, servicePort: number): LocalRecord {
  return {
    id,
    name,
    image: `${name}:1`,
    created: Date.now(),
    ports: [{ type: 'tcp', port, servicePort, ip: '10.0.0.1' }],
    proxyMode: 'http',
    status: 'alive',
    labels: {},
  }
}

t.test('catalog changes reach the API, the stream and the metrics', async (t) => {
  const catalog = new Catalog(
    { cluster: 'prod', self: 'node-a', address: '10.0.0.1:7946' },
    { clock: new RealClock(), logger: silentLogger() },
  )
  catalog.setLocalBoot('boot-a')
  catalog.upsertLocal(local('aaaaaaaaaaaa', 'web', 32768, 10001))
  catalog.setHost('node-b', { state: 'alive', bootId: 'boot-b', address: '10.0.0.2:7946' })
  catalog.mergeRemote({
    ...local('bbbbbbbbbbbb', 'web', 32769, 10001),
    host: 'node-b',
    bootId: 'boot-b',
    version: [Date.now(), 0],
    updated: Date.now(),
  })
  const registry = new Registry()
  registerCatalogMetrics(registry, catalog)
  const server = new HttpServer(
    { bind: { host: '127.0.0.1', port: 0 }, cluster: 'prod', node: 'node-a' },
    {
      logger: silentLogger(),
      catalog,
      membership: new FixtureMembership(),
      control: { drain: () => undefined, undrain: () => undefined },
      ready: () => true,
      xdsDebug: () => [],
      registry,
    },
  )
  const { port } = await server.start()
  t.teardown(() => server.stop())
  const url = `http://127.0.0.1:${port}`
  const json = async (path: string): Promise<any> => (await fetch(url + path)).json()

  const web = await json('/api/services/web.json')
  t.same(
    web.instances.map((r: any) => [r.host, r.id]),
    [
      ['node-a', 'aaaaaaaaaaaa'],
      ['node-b', 'bbbbbbbbbbbb'],
    ],
  )
  t.same(web.servicePorts, [10001])

  const w = await openWatch(url)
  t.teardown(() => w.close())
  await w.waitFor((e) => e.length >= 1)
  t.equal(w.events[0]!.data.state.cluster, 'prod')

  catalog.upsertLocal(local('cccccccccccc', 'cache', 6379, 10003))
  await w.waitFor((e) => e.some((x) => x.data.type === 'service-added' && x.data.record.name === 'cache'))
  t.pass('a local write arrives on the stream')

  catalog.setHost('node-b', { state: 'dead', bootId: 'boot-b', address: '10.0.0.2:7946' })
  await w.waitFor((e) => e.some((x) => x.data.type === 'service-removed' && x.data.record.id === 'bbbbbbbbbbbb'))
  t.ok(
    w.events.some((x) => x.data.type === 'host-down' && x.data.host === 'node-b'),
    'host-down is streamed',
  )
  const after = await json('/api/services/web.json')
  t.same(
    after.instances.map((r: any) => r.host),
    ['node-a'],
    "the dead host's instance vanished from services",
  )
  const state = await json('/api/state.json')
  t.equal(state.hosts.find((h: any) => h.name === 'node-b').state, 'dead')

  const metrics = await (await fetch(url + '/metrics')).text()
  t.match(metrics, /^shoal_catalog_hosts\{state="dead"\} 1$/m)
  t.match(metrics, /^shoal_catalog_instances\{status="alive"\} 2$/m, 'web and cache on node-a')
})
