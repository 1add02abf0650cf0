import t from 'tap'
import http from 'node:http'
import { Registry } from 'prom-client'
import { HealthScheduler } from '../src/health/scheduler.js'
import { silentLogger } from '../src/log.js'
import { serve } from './lib/listen.js'

t.test('alive turns unhealthy after 3 failures in a row and alive again after 2 passes', async (t) => {
  let healthy = true
  let failsServed = 0
  let passesServed = 0
  const s = http.createServer((_req, res) => {
    if (healthy) {
      passesServed++
      res.writeHead(200).end('ok')
    } else {
      failsServed++
      res.writeHead(500).end('no')
    }
  })
  const port = await serve(t, s)

  const registry = new Registry()
  const hs = new HealthScheduler({ intervalMs: 30, timeoutMs: 500 }, { logger: silentLogger(), registry })
  t.teardown(() => hs.stop())
  const changes: Array<[string, number, number]> = []
  hs.on('change', (_id: string, st: string) => changes.push([st, failsServed, passesServed]))
  hs.set('svc', { type: 'HttpGet', args: `http://{{ host }}:${port}/` }, { host: '127.0.0.1', ports: [] })
  hs.start()
  hs.start() // idempotent

  const until = async (pred: () => boolean) => {
    const end = Date.now() + 5000
    while (!pred()) {
      if (Date.now() > end) throw new Error('timed out')
      await new Promise((r) => setTimeout(r, 5))
    }
  }
  await until(() => hs.status('svc') === 'alive')
  // a few more passes while alive change nothing
  await until(() => passesServed >= 4)
  healthy = false
  const failsBefore = failsServed
  await until(() => hs.status('svc') === 'unhealthy')
  const down = changes.find((c) => c[0] === 'unhealthy')!
  t.equal(down[1] - failsBefore, 3, 'unhealthy exactly at the third failure')
  healthy = true
  const passesBefore = passesServed
  await until(() => hs.status('svc') === 'alive' && changes.length === 3)
  const up = changes[2]!
  t.equal(up[0], 'alive')
  t.equal(up[2] - passesBefore, 2, 'alive again exactly at the second pass')
  t.same(
    changes.map((c) => c[0]),
    ['alive', 'unhealthy', 'alive'],
    'no other transitions',
  )

  const text = await registry.metrics()
  t.match(text, /shoal_health_checks_total\{type="HttpGet",result="pass"\} \d+/)
  t.match(text, /shoal_health_checks_total\{type="HttpGet",result="fail"\} [3-9]/)
})

t.test('per-check rise/fall override the defaults; stop() halts checking', async (t) => {
  let hits = 0
  let healthy = true
  const s = http.createServer((_req, res) => {
    hits++
    res.writeHead(healthy ? 200 : 500).end()
  })
  const port = await serve(t, s)
  const hs = new HealthScheduler({ intervalMs: 20 }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.set('svc', { type: 'HttpGet', args: `http://127.0.0.1:${port}/`, fall: 1 }, { host: '127.0.0.1', ports: [] })
  hs.start()
  await new Promise<void>((r) => hs.once('change', () => r()))
  healthy = false
  const at = hits
  await new Promise<void>((r) => hs.once('change', () => r()))
  t.equal(hs.status('svc'), 'unhealthy')
  t.equal(hits - at, 1, 'fall: 1 -> one failure is enough')
  hs.stop()
  hs.stop()
  await new Promise((r) => setTimeout(r, 30))
  const frozen = hits
  await new Promise((r) => setTimeout(r, 100))
  t.equal(hits, frozen, 'no check runs after stop()')
})
