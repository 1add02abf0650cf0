// LocalServices with the real health scheduler and a real loopback TCP backend: sources in,
// statuses from checks, drain/undrain, disappearing specs become tombstones.
import t from 'tap'
import type { Server } from 'node:net'
import { tcpService } from './lib/listen.js'
import { RealClock } from '../src/clock.js'
import { HealthScheduler } from '../src/health/scheduler.js'
import { silentLogger } from '../src/log.js'
import { Catalog } from '../src/registry/catalog.js'
import { LocalServices } from '../src/registry/local.js'
import type { LocalServiceSpec, ServiceStatus } from '../src/registry/types.js'

const logger = silentLogger()

function spec(
  id: string,
  port: number,
  check?: LocalServiceSpec['check'],
  source: LocalServiceSpec['source'] = 'static',
): LocalServiceSpec {
  const s: LocalServiceSpec = {
    id,
    name: `svc-${id}`,
    image: 'img',
    created: 1,
    ports: [{ type: 'tcp', port, servicePort: 10000 + (port % 1000), ip: '127.0.0.1' }],
    proxyMode: 'tcp',
    labels: {},
    source,
  }
  if (check) s.check = check
  return s
}

async function listen(): Promise<{ server: Server; port: number }> {
  const server = tcpService()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const addr = server.address()
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0 }
}

async function until(pred: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 20))
  }
  return true
}

function setup(t: { teardown(fn: () => unknown): void }) {
  const catalog = new Catalog({ cluster: 'c', self: 'me' }, { clock: new RealClock(), logger })
  catalog.setLocalBoot('boot-1')
  const health = new HealthScheduler({ intervalMs: 50, timeoutMs: 500, rise: 1, fall: 1 }, { logger })
  const local = new LocalServices({ advertiseIp: '127.0.0.1' }, { catalog, health, logger })
  health.start()
  local.start()
  t.teardown(() => {
    local.stop()
    health.stop()
  })
  const status = (id: string): ServiceStatus | undefined => catalog.get('me', id)?.status
  return { catalog, health, local, status }
}

t.test('no check: unknown; a passing check: alive after its first run; failing: unhealthy', async (t) => {
  const { local, status, catalog } = setup(t)
  const { server, port } = await listen()
  t.teardown(() => server.close())
  const closed = await listen()
  const deadPort = closed.port
  await new Promise((r) => closed.server.close(r))
  local.setSource('static', [
    spec('nocheck', 1111),
    spec('up', port, { type: 'Tcp', args: `{{ host }}:${port}` }),
    spec('down', deadPort, { type: 'Tcp', args: `127.0.0.1:${deadPort}` }),
  ])
  t.equal(status('nocheck'), 'unknown')
  t.equal(status('up'), 'unhealthy', 'a checked instance is not served before its first result')
  t.equal(catalog.get('me', 'up')?.reason, 'starting', 'reason: starting')
  t.ok(await until(() => status('up') === 'alive'), 'alive after its first check')
  t.ok(await until(() => status('down') === 'unhealthy'), 'unhealthy after its first failing check')
  t.equal(status('nocheck'), 'unknown')
})

t.test('a spec that disappears becomes a tombstone; sources are merged', async (t) => {
  const { local, status, catalog } = setup(t)
  local.setSource('static', [spec('a', 1), spec('b', 2)])
  local.setSource('docker', [spec('c', 3, undefined, 'docker')])
  t.same(
    local
      .list()
      .map((s) => s.id)
      .sort(),
    ['a', 'b', 'c'],
  )
  const before = catalog.get('me', 'a')!.version
  local.setSource('static', [spec('a', 1)])
  t.equal(status('b'), 'tombstone')
  t.equal(status('c'), 'unknown', "the other source's instances stay")
  t.same(catalog.get('me', 'a')!.version, before, 'an unchanged spec is not rewritten')
  local.setSource('docker', [])
  t.equal(status('c'), 'tombstone')
})

t.test('drain and undrain a local instance; refused for unknown or remote ids', async (t) => {
  const { local, status, catalog } = setup(t)
  local.setSource('static', [spec('a', 1)])
  local.drain('a')
  t.equal(status('a'), 'draining')
  t.equal(catalog.get('me', 'a')?.reason, 'operator', 'drained by an operator')
  t.ok(local.isDraining('a'))
  local.drain('a')
  local.undrain('a')
  t.equal(status('a'), 'unknown', 'back to its health status')
  t.throws(() => local.drain('nope'), { code: 'SHOAL_ERR_UNKNOWN_INSTANCE' })
  const other = new Catalog({ cluster: 'c', self: 'other' }, { clock: new RealClock(), logger })
  other.setLocalBoot('o1')
  catalog.setHost('other', { state: 'alive', bootId: 'o1', address: '' })
  catalog.mergeRemote(
    other.upsertLocal({ id: 'remote1', name: 'r', image: '', created: 1, ports: [], proxyMode: 'http', status: 'alive', labels: {} }),
  )
  t.throws(() => local.undrain('remote1'), { code: 'SHOAL_ERR_NOT_LOCAL', message: /runs on other/ })
})

t.test('why an instance drains: stopping (its source says so), operator, agent-leaving; each counted when it starts', async (t) => {
  const { local, status, catalog } = setup(t)
  const reason = (id: string) => catalog.get('me', id)?.reason
  local.setSource('docker', [spec('web', 1, undefined, 'docker'), spec('api', 2, undefined, 'docker')])
  local.drain('api')
  t.equal(reason('api'), 'operator')
  local.setSource('docker', [
    { ...spec('web', 1, undefined, 'docker'), stopping: true },
    { ...spec('api', 2, undefined, 'docker'), stopping: true },
  ])
  t.equal(status('web'), 'draining')
  t.equal(reason('web'), 'stopping', 'the source says it is stopping')
  t.equal(reason('api'), 'stopping', 'stopping says more than an operator drain')
  local.setSource('docker', [spec('web', 1, undefined, 'docker'), spec('api', 2, undefined, 'docker')])
  t.equal(status('web'), 'unknown', 'a container that survived its stop signal is served again')
  t.equal(reason('web'), undefined, 'with no reason')
  t.equal(reason('api'), 'operator', 'the operator drain still holds')
  t.equal(local.drainAll(), 2, 'the agent leaves: two instances drain')
  t.same([reason('web'), reason('api')], ['agent-leaving', 'agent-leaving'])
  local.setSource('static', [spec('late', 3)])
  t.equal(reason('late'), 'agent-leaving', 'an instance that appears while the agent leaves drains too')
  t.same(local.stats.drains, { operator: 2, stopping: 2, 'agent-leaving': 3 }, 'counted whenever the reason changes')
  local.setSource('docker', [])
  t.equal(status('web'), 'tombstone')
  t.equal(reason('web'), undefined, 'a tombstone carries no reason')
})
