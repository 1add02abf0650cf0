import t from 'tap'
import net from 'node:net'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { HealthScheduler } from '../src/health/scheduler.js'
import { silentLogger } from '../src/log.js'

t.test('a hanging check times out and does not delay the others', async (t) => {
  // Accepts connections and never answers: an HttpGet against it hangs.
  const sockets = new Set<net.Socket>()
  const hang = net.createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  hang.listen(0, '127.0.0.1')
  await once(hang, 'listening')
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    return new Promise<void>((r) => hang.close(() => r()))
  })
  let okHits = 0
  const ok = http.createServer((_req, res) => {
    okHits++
    res.end('ok')
  })
  ok.listen(0, '127.0.0.1')
  await once(ok, 'listening')
  t.teardown(() => new Promise<void>((r) => ok.close(() => r())))

  // The hanging check's timeout is long next to the other's pace, and the test asserts order
  // (five runs of the other while the hanging one is in flight), never a wall-clock window: it
  // holds on a loaded machine.
  const HANG_TIMEOUT_MS = 5000
  const hs = new HealthScheduler({ intervalMs: 20, timeoutMs: 600 }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const ctx = { host: '127.0.0.1', ports: [] }
  const started = Date.now()
  let hungAt = 0
  const settled = new Promise<void>((resolve) =>
    hs.on('change', (id: string, st: string) => {
      if (id === 'hang' && st === 'unhealthy') {
        hungAt = Date.now() - started
        resolve()
      }
    }),
  )
  hs.set('hang', { type: 'HttpGet', args: `http://127.0.0.1:${(hang.address() as AddressInfo).port}/`, timeoutMs: HANG_TIMEOUT_MS }, ctx)
  hs.set('ok', { type: 'HttpGet', args: `http://127.0.0.1:${(ok.address() as AddressInfo).port}/` }, ctx)
  while (okHits < 5 || hs.status('ok') !== 'alive') await new Promise((r) => setTimeout(r, 10))
  t.equal(hs.status('hang'), 'starting', 'the hanging check has no result yet')
  t.pass(`the other check got its result and kept its own pace meanwhile (${okHits} runs in ${Date.now() - started} ms)`)
  await settled
  t.ok(hungAt >= HANG_TIMEOUT_MS - 50, `the hanging check failed at its timeout, not before (${hungAt} ms)`)
})

t.test('a Tcp check to a closed port fails at once', async (t) => {
  const s = net.createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  const hs = new HealthScheduler({ intervalMs: 60_000 }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const got = new Promise<string>((r) => hs.once('change', (_i: string, st: string) => r(st)))
  hs.set('closed', { type: 'Tcp', args: `127.0.0.1:${port}` }, { host: '127.0.0.1', ports: [] })
  t.equal(await got, 'unhealthy')
})
