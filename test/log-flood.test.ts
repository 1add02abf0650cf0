// Churn does not flood the log: a line that can come back with every catalog change, source
// change or client connection is written at most once a minute per thing it names (the shared
// LogLimiter), and the next line says how many were held back (issue 17). Each part is driven
// through 100 flaps; before the limiter each flap wrote a line.
import t from 'tap'
import { RealClock, VirtualClock } from '../src/clock.js'
import { HealthScheduler } from '../src/health/scheduler.js'
import { silentLogger } from '../src/log.js'
import { Catalog } from '../src/registry/catalog.js'
import { ServicePortConflicts } from '../src/registry/conflicts.js'
import { LocalServices } from '../src/registry/local.js'
import type { LocalServiceSpec } from '../src/registry/types.js'
import { capturedLogger } from './lib/log.js'
import { catalogTurn, ENVOY_NODE, FixtureCatalog, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

const FLAPS = 100
const MINUTE = 60_000

/** Two instances of web on one ip:port (a duplicate address), or the first alone. */
function webHosts(duplicate: boolean) {
  const a = rec({ host: 'h1', id: 'a1', name: 'web', servicePort: 10002, port: 8080 })
  const b = rec({ host: 'h2', id: 'b1', name: 'web', servicePort: 10002, port: 8080 })
  return duplicate ? [host('h1', [a]), host('h2', [b])] : [host('h1', [a]), host('h2', [])]
}

t.test('xDS: a duplicate address that comes and goes is one warning a minute', async (t) => {
  const clock = new VirtualClock({ startWall: Date.now() })
  const { logger, lines } = capturedLogger('info')
  const catalog = new FixtureCatalog(webHosts(false))
  await startServer(t, catalog, {}, { logger, clock })
  const drops = () => lines.filter((l) => l.reason === 'duplicate_address')
  for (let i = 0; i < FLAPS; i++) {
    catalog.set(webHosts(true))
    await catalogTurn()
    catalog.set(webHosts(false))
    await catalogTurn()
  }
  t.equal(drops().length, 1, `${FLAPS} flaps within a minute: one line (was one per flap)`)
  t.equal(drops()[0]!.suppressed, 0)
  await clock.advance(MINUTE)
  catalog.set(webHosts(true))
  await catalogTurn()
  t.equal(drops().length, 2, 'a minute later the next flap is logged')
  t.equal(drops()[1]!.suppressed, FLAPS - 1, 'saying how many were held back')
  t.match(drops()[1]!.msg, `(${FLAPS - 1} more from there since the last line)`)
})

t.test('xDS: a client that reconnects in a loop is one connect line a minute', async (t) => {
  const { logger, lines } = capturedLogger('info')
  const catalog = new FixtureCatalog(webHosts(false))
  const { connect } = await startServer(t, catalog, {}, { logger })
  for (let i = 0; i < 20; i++) {
    const c = connect()
    c.send({ type_url: TypeUrl.cluster, node: ENVOY_NODE })
    await c.next()
    c.close()
  }
  const connects = lines.filter((l) => l.msg.startsWith('ADS client connected'))
  t.equal(connects.length, 1, '20 connections of one node id: one line (was 20)')
})

t.test('catalog: a ServicePort conflict that comes and goes is one warning and one resolved line a minute', async (t) => {
  const clock = new VirtualClock({ startWall: Date.now() })
  const { logger, lines } = capturedLogger('info')
  const one = () => [host('h1', [rec({ host: 'h1', id: 'a1', name: 'web', servicePort: 10002, port: 8080 })])]
  const two = () => [
    host('h1', [
      rec({ host: 'h1', id: 'a1', name: 'web', servicePort: 10002, port: 8080 }),
      rec({ host: 'h1', id: 'x1', name: 'x', servicePort: 10002, port: 8081 }),
    ]),
  ]
  const catalog = new FixtureCatalog(one())
  const conflicts = new ServicePortConflicts({ catalog, logger, clock })
  conflicts.start()
  t.teardown(() => conflicts.stop())
  for (let i = 0; i < FLAPS; i++) {
    catalog.set(two())
    await catalogTurn()
    t.equal(conflicts.list().length, 1, 'the list follows every change')
    catalog.set(one())
    await catalogTurn()
  }
  t.equal(lines.filter((l) => l.msg.includes('is claimed by')).length, 1, 'one conflict line (was one per flap)')
  t.equal(lines.filter((l) => l.msg.includes('conflict resolved')).length, 1, 'one resolved line (was one per flap)')
  await clock.advance(MINUTE)
  catalog.set(two())
  await catalogTurn()
  const again = lines.filter((l) => l.msg.includes('is claimed by'))
  t.equal(again.length, 2)
  t.equal(again[1]!.suppressed, FLAPS - 1)
})

t.test('local services: a duplicate id that stays is not one warning per source change', async (t) => {
  const { logger, lines } = capturedLogger('info')
  const catalog = new Catalog({ cluster: 'c', self: 'me' }, { clock: new RealClock(), logger: silentLogger() })
  catalog.setLocalBoot('boot-1')
  const health = new HealthScheduler({}, { logger: silentLogger() })
  const local = new LocalServices({ advertiseIp: '127.0.0.1' }, { catalog, health, logger })
  local.start()
  t.teardown(() => {
    local.stop()
    health.stop()
  })
  const spec = (id: string, port: number, source: LocalServiceSpec['source']): LocalServiceSpec => ({
    id,
    name: `svc-${id}`,
    image: 'img',
    created: 1,
    ports: [{ type: 'tcp', port, servicePort: 10000 + port, ip: '127.0.0.1' }],
    proxyMode: 'tcp',
    labels: {},
    source,
  })
  local.setSource('static', [spec('s1', 1, 'static')])
  for (let i = 0; i < FLAPS; i++) {
    // Docker's set changes at every flap (a container comes and goes); d1 is in it twice, s1 in both sources.
    const flapping = i % 2 === 0 ? [spec('f1', 3, 'docker')] : []
    local.setSource('docker', [spec('d1', 2, 'docker'), spec('d1', 2, 'docker'), spec('s1', 1, 'docker'), ...flapping])
  }
  t.equal(lines.filter((l) => l.msg.startsWith('duplicate instance id d1')).length, 1, 'one duplicate-id line (was one per change)')
  t.equal(lines.filter((l) => l.msg.includes('announced by two sources')).length, 1, 'one two-sources line (was one per change)')
})
