// A Tcp check passes on a connection that stays open, not on a connect alone: a userland
// proxy in front of a published port (docker-proxy on a loopback host binding, rootless
// Docker, Docker Desktop) accepts every connection and closes or resets it at once when
// nothing listens behind it. Each server here is a real listener on 127.0.0.1 doing what
// such a proxy does, or what a live service does; test/system/docker-tcp-proxy.test.ts
// checks it against the real docker-proxy.
import t from 'tap'
import net from 'node:net'
import { TCP_HOLD_MS, tcpCheck } from '../src/health/check-tcp.js'
import { HealthScheduler } from '../src/health/scheduler.js'
import { silentLogger } from '../src/log.js'
import { serve } from './lib/listen.js'

type T = { teardown: (f: () => unknown) => void }
/** A listener that does `onConnection` to each connection it accepts; its port. */
function listener(t: T, onConnection: (s: net.Socket) => void) {
  const sockets = new Set<net.Socket>()
  const s = net.createServer((c) => {
    sockets.add(c)
    c.on('close', () => sockets.delete(c))
    c.on('error', () => undefined)
    onConnection(c)
  })
  t.teardown(() => {
    for (const c of sockets) c.destroy()
  })
  return serve(t, s)
}
const check = (port: number) =>
  tcpCheck(`127.0.0.1:${port}`, AbortSignal.timeout(5000)).then(
    () => 'pass',
    (e: Error) => `fail: ${e.message}`,
  )

t.test('a Tcp check fails on a connection the other end closes or resets at once, and passes on one it keeps', async (t) => {
  const closes = await listener(t, (c) => c.end())
  const resets = await listener(t, (c) => c.resetAndDestroy())
  const keeps = await listener(t, () => undefined)
  const speaks = await listener(t, (c) => c.end('220 ready\r\n'))
  t.match(
    await check(closes),
    /^fail: connected, then closed by the other end at once/,
    'closed at once (docker-proxy with nothing behind it): fails',
  )
  // (On loopback the reset may come before the connect is reported: a connect error then.)
  t.match(await check(resets), /^fail: (connected, then reset by the other end at once|connect ECONNRESET)/, 'reset at once: fails')
  const began = Date.now()
  t.equal(await check(keeps), 'pass', 'kept open: passes')
  t.ok(Date.now() - began >= TCP_HOLD_MS - 5, `after holding it ${TCP_HOLD_MS} ms (${Date.now() - began} ms)`)
  t.equal(await check(speaks), 'pass', 'a server that sends bytes passes at once, even if it closes after them')
})

t.test('the scheduler does not serve an instance behind such a proxy: unhealthy, with the reason in its result', async (t) => {
  const closes = await listener(t, (c) => c.end())
  const hs = new HealthScheduler({ intervalMs: 60_000 }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const changed = new Promise<string>((r) => hs.once('change', (_id: string, st: string) => r(st)))
  hs.set('proxied', { type: 'Tcp', args: `{{ host }}:${closes}` }, { host: '127.0.0.1', ports: [] })
  t.equal(await changed, 'unhealthy', 'its first result: unhealthy, never alive')
  t.match(hs.result('proxied'), { outcome: 'fail', error: /closed by the other end at once/ })
})

t.test(
  "behind a host binding, the container's own address decides at once: a proxy that closes late is not taken for a server",
  async (t) => {
    // docker-proxy on a loaded machine: it accepts, and its close comes after the hold.
    const slowProxy = await listener(t, (c) => setTimeout(() => c.end(), 5 * TCP_HOLD_MS))
    const keeps = await listener(t, () => undefined)
    // A port nothing listens on: one that was just closed.
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port
        s.close(() => resolve(p))
      })
    })
    const run = (front: number, behind: string | undefined) =>
      tcpCheck(`127.0.0.1:${front}`, AbortSignal.timeout(5000), TCP_HOLD_MS, behind).then(
        () => 'pass',
        (e: Error) => `fail: ${e.message}`,
      )
    t.equal(await run(slowProxy, undefined), 'pass', 'the hold alone is fooled by a close that comes late')
    t.match(
      await run(slowProxy, `127.0.0.1:${closedPort}`),
      /^fail: nothing listens in the container yet: 127\.0\.0\.1:\d+, its own address behind 127\.0\.0\.1:\d+, refuses$/,
      'the container refusing behind it fails the check',
    )
    t.equal(await run(slowProxy, `127.0.0.1:${keeps}`), 'pass', 'something listening behind it passes')

    const hs = new HealthScheduler({ intervalMs: 60_000 }, { logger: silentLogger() })
    t.teardown(() => hs.stop())
    hs.start()
    const changed = new Promise<string>((r) => hs.once('change', (_id: string, st: string) => r(st)))
    hs.set(
      'late',
      { type: 'Tcp', args: '{{ host }}:{{ tcp 8080 }}' },
      {
        host: '127.0.0.1',
        ports: [{ port: slowProxy, containerPort: 8080 }],
        behind: { host: '127.0.0.1', ports: [{ port: closedPort, containerPort: 8080 }] },
      },
    )
    t.equal(await changed, 'unhealthy', 'the scheduler checks the address behind the binding: unhealthy, never alive')
    t.match(hs.result('late'), { outcome: 'fail', error: /^nothing listens in the container yet/ })
  },
)
