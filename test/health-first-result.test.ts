import t from 'tap'
import http from 'node:http'
import { HealthScheduler } from '../src/health/scheduler.js'
import { silentLogger } from '../src/log.js'
import { serve } from './lib/listen.js'

async function server(t: { teardown: (f: () => unknown) => void }, code: number) {
  const s = http.createServer((_req, res) => res.writeHead(code).end('x'))
  return serve(t, s)
}

function waitChange(hs: HealthScheduler, id: string) {
  return new Promise<string>((resolve) => {
    const f = (i: string, st: string) => {
      if (i !== id) return
      hs.off('change', f)
      resolve(st)
    }
    hs.on('change', f)
  })
}

t.test('a new check starts starting (not served) and takes its first result, without waiting for rise/fall', async (t) => {
  const okPort = await server(t, 204)
  const badPort = await server(t, 503)
  const redirectPort = await server(t, 302)
  // A long interval: only the first run can have happened when the status changes.
  const hs = new HealthScheduler({ intervalMs: 60_000, rise: 5, fall: 5 }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const ctx = { host: '127.0.0.1', ports: [] }
  const ok = waitChange(hs, 'ok')
  const bad = waitChange(hs, 'bad')
  const redir = waitChange(hs, 'redir')
  hs.set('ok', { type: 'HttpGet', args: `http://{{ host }}:${okPort}/health` }, ctx)
  hs.set('bad', { type: 'HttpGet', args: `http://{{ host }}:${badPort}/health` }, ctx)
  hs.set('redir', { type: 'HttpGet', args: `http://127.0.0.1:${redirectPort}/` }, ctx)
  t.equal(hs.status('ok'), 'starting', 'starting before the first result')
  t.equal(await ok, 'alive', '2xx -> alive')
  t.equal(await bad, 'unhealthy', '5xx -> unhealthy')
  t.equal(await redir, 'alive', '3xx -> alive')
  t.equal(hs.status('ok'), 'alive')
  t.equal(hs.status('bad'), 'unhealthy')
})

t.test('no check means unknown; removing a check makes it unknown', async (t) => {
  const okPort = await server(t, 200)
  const hs = new HealthScheduler({ intervalMs: 60_000 }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  hs.set('none', undefined, { host: '127.0.0.1', ports: [] })
  t.equal(hs.status('none'), 'unknown')
  t.equal(hs.status('never-set'), 'unknown')
  const up = waitChange(hs, 'a')
  hs.set('a', { type: 'Tcp', args: `127.0.0.1:${okPort}` }, { host: '127.0.0.1', ports: [] })
  t.equal(await up, 'alive')
  const down = waitChange(hs, 'a')
  hs.set('a', undefined, { host: '127.0.0.1', ports: [] })
  t.equal(await down, 'unknown')
})

t.test('setting the same spec again does not restart the check', async (t) => {
  let hits = 0
  const s = http.createServer((_req, res) => {
    hits++
    res.end('ok')
  })
  const port = await serve(t, s)
  const hs = new HealthScheduler({ intervalMs: 60_000 }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const spec = { type: 'HttpGet' as const, args: `http://127.0.0.1:${port}/` }
  const up = waitChange(hs, 'x')
  hs.set('x', spec, { host: '127.0.0.1', ports: [] })
  await up
  hs.set('x', { ...spec }, { host: '127.0.0.1', ports: [] })
  hs.set('x', { ...spec }, { host: '127.0.0.1', ports: [] })
  await new Promise((r) => setTimeout(r, 100))
  t.equal(hits, 1, 'only the first run hit the server')
  t.equal(hs.status('x'), 'alive')
})

t.test('a new instance is served from its first passing check: a first pass after failures is taken at once', async (t) => {
  let up = false
  let hits = 0
  const s = http.createServer((_req, res) => {
    hits++
    res.writeHead(up ? 200 : 503).end('x')
  })
  const port = await serve(t, s)
  // rise 5 and a long interval: only the start interval (50 ms) and the waived rise can make it alive soon.
  const hs = new HealthScheduler({ intervalMs: 60_000, startIntervalMs: 50, rise: 5, fall: 5 }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const seen: string[] = []
  hs.on('change', (id: string, st: string) => id === 'late' && seen.push(st))
  const down = waitChange(hs, 'late')
  hs.set('late', { type: 'HttpGet', args: `http://127.0.0.1:${port}/` }, { host: '127.0.0.1', ports: [] })
  t.equal(await down, 'unhealthy', 'a failing first check is taken at once: not served')
  const alive = waitChange(hs, 'late')
  up = true
  t.equal(await alive, 'alive', 'the first pass is taken at once, without rise')
  t.same(seen, ['unhealthy', 'alive'], 'never served before the first pass')
  const after = hits
  await new Promise((r) => setTimeout(r, 300))
  t.equal(hits, after, 'once passed, the check keeps its interval (60 s), not the start interval')
})
