import t from 'tap'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { HealthScheduler } from '../src/health/scheduler.js'
import { silentLogger } from '../src/log.js'
import { capturedLogger } from './lib/log.js'

const ctx = { host: '127.0.0.1', ports: [] }
const change = (hs: HealthScheduler, id: string) =>
  new Promise<string>((r) => {
    const f = (i: string, st: string) => {
      if (i === id) {
        hs.off('change', f)
        r(st)
      }
    }
    hs.on('change', f)
  })

t.test('External checks are refused without allowExternal: the command never runs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-ext-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const marker = join(dir, 'ran')
  const registry = new Registry()
  const { logger, lines } = capturedLogger('warn')
  const hs = new HealthScheduler({ intervalMs: 20 }, { logger, registry })
  t.teardown(() => hs.stop())
  hs.start()
  const decided = [change(hs, 'ext'), change(hs, 'fals')]
  hs.set('ext', { type: 'External', args: `/usr/bin/touch ${marker}` }, ctx)
  hs.set('fals', { type: 'External', args: '/bin/false' }, ctx)
  // Fails closed: `unknown` would be served; a check that cannot run keeps the instance out.
  t.same(await Promise.all(decided), ['unhealthy', 'unhealthy'])
  await new Promise((r) => setTimeout(r, 100))
  t.notOk(existsSync(marker), 'the command did not run')
  t.equal(hs.status('ext'), 'unhealthy', 'and stays unhealthy')
  t.ok(
    lines.some((l) => l.id === 'ext' && /refused.*unhealthy.*--allow-external-checks/.test(l.msg)),
    'a warning names the instance and the flag',
  )
  t.match(await registry.metrics(), /shoal_health_checks_total\{type="External",result="refused"\} [1-9]/)
})

t.test('External checks run with allowExternal: exit 0 passes, others fail, no shell', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-ext-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const hs = new HealthScheduler({ intervalMs: 60_000, allowExternal: true }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const a = change(hs, 'true')
  const b = change(hs, 'false')
  const c = change(hs, 'shell')
  const d = change(hs, 'quoted')
  hs.set('true', { type: 'External', args: '/bin/true' }, ctx)
  hs.set('false', { type: 'External', args: '/bin/false' }, ctx)
  // Without a shell, `;` is an argument of `test`, which then fails.
  hs.set('shell', { type: 'External', args: `/usr/bin/test 1 = 2 ; /bin/true` }, ctx)
  const file = join(dir, 'a b')
  hs.set('quoted', { type: 'External', args: `/usr/bin/touch '${file}'` }, ctx)
  t.equal(await a, 'alive')
  t.equal(await b, 'unhealthy')
  t.equal(await c, 'unhealthy', 'shell syntax is not interpreted')
  t.equal(await d, 'alive')
  t.ok(existsSync(file), 'a quoted argument with a space stays one argument')
})

t.test('a hanging External check is killed at its timeout', async (t) => {
  const hs = new HealthScheduler({ intervalMs: 60_000, timeoutMs: 300, allowExternal: true }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const t0 = Date.now()
  const got = change(hs, 'sleep')
  hs.set('sleep', { type: 'External', args: '/bin/sleep 300' }, ctx)
  t.equal(await got, 'unhealthy')
  const took = Date.now() - t0
  // Far below the 300 s the command would run, without betting on how fast a loaded machine spawns it.
  t.ok(took < 60_000, `failed after ${took} ms, not after the command's 300 s`)
})
