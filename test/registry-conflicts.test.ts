// Issue 15, item 8: ServicePort conflicts are found from the catalog itself, with no xDS
// client connected: logged once when one appears (not again when another appears or anything
// else changes), logged when it goes, and shown in /api/services.json, the service's own view
// and `shoal_catalog_serviceport_conflicts`, all cleared when it is resolved. The built CLI, a
// static file edited under it.
import t from 'tap'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cliAgent, type CliAgent } from './lib/agent-process.js'
import { until } from './lib/wait.js'

interface Conflict {
  servicePort: number
  winner: string
  losers: string[]
}

const services = async (a: CliAgent) =>
  (await (await fetch(`${a.http}/api/services.json`)).json()) as {
    conflicts: Conflict[]
    services: Array<{ name: string; conflicts: Conflict[] }>
  }
const gauge = async (a: CliAgent) =>
  /^shoal_catalog_serviceport_conflicts (\d+)$/m.exec(await (await fetch(`${a.http}/metrics`)).text())?.[1]

t.test('a ServicePort conflict is logged once when it appears and cleared when it goes, with no xDS client', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-conflict-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'static.json')
  const write = (entries: Array<[id: string, name: string, servicePort: number]>) => {
    const body = { services: entries.map(([id, name, sp], i) => ({ id, name, ports: [{ port: 20000 + i, servicePort: sp }] })) }
    writeFileSync(file + '.tmp', JSON.stringify(body))
    renameSync(file + '.tmp', file)
  }
  write([
    ['web-1', 'web', 10001],
    ['api-1', 'api', 10002],
  ])
  const a = await cliAgent(t, ['--node', 'a', '--profile', 'local', '--advertise', '127.0.0.1', '--discovery', 'static', '--static', file])
  t.same((await services(a)).conflicts, [], 'no conflict to start with')
  t.equal(await gauge(a), '0')

  write([
    ['web-1', 'web', 10001],
    ['api-1', 'api', 10002],
    ['x-1', 'x', 10001],
  ])
  const appeared = await until('the conflict line', () => a.lines.find((l) => l.servicePort === 10001 && l.level === 40))
  t.equal(
    appeared.msg,
    "ServicePort 10001 is claimed by web (on a), x (on a): only web is served (xDS and DNS); give x another ServicePort (ServicePort_<port> label or the static entry's servicePort) on the hosts named",
  )
  t.same(appeared.hosts, { web: ['a'], x: ['a'] }, 'the line names the hosts of each claim')
  const want = [{ servicePort: 10001, winner: 'web', losers: ['x'] }]
  t.same((await services(a)).conflicts, want, '/api/services.json lists it')
  t.same((await services(a)).services.find((s) => s.name === 'x')?.conflicts, want, "and the loser's own entry")
  t.equal(await gauge(a), '1', 'shoal_catalog_serviceport_conflicts 1')

  // Another conflict appears, and an unrelated service comes: the first is not logged again.
  write([
    ['web-1', 'web', 10001],
    ['api-1', 'api', 10002],
    ['x-1', 'x', 10001],
    ['b-1', 'b', 10002],
    ['z-1', 'z', 10009],
  ])
  await until('the second conflict', async () => ((await services(a)).conflicts.length === 2 ? true : undefined))
  t.equal(await gauge(a), '2')
  t.equal(a.lines.filter((l) => l.servicePort === 10001 && l.level === 40).length, 1, 'the first conflict was logged once')
  t.match(
    a.lines.find((l) => l.servicePort === 10002 && l.level === 40)?.msg,
    /^ServicePort 10002 is claimed by api \(on a\), b \(on a\): only api is served/,
  )

  // Both resolved: x moves to its own ServicePort, b goes.
  write([
    ['web-1', 'web', 10001],
    ['api-1', 'api', 10002],
    ['x-1', 'x', 10011],
  ])
  const resolved = await until('the resolved line', () => a.lines.find((l) => l.servicePort === 10001 && l.level === 30))
  t.equal(resolved.msg, 'ServicePort 10001 conflict resolved: only web claims it now')
  await until('no conflict in the API', async () => ((await services(a)).conflicts.length === 0 ? true : undefined))
  t.equal(await gauge(a), '0', 'the gauge is back to 0')
  t.equal(a.lines.filter((l) => l.servicePort === 10001).length, 2, 'one line when it appeared, one when it went')
  t.equal(await a.stop('SIGTERM'), 0)
})
