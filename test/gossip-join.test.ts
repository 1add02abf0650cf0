// Join on the simulator: retry with jittered backoff until a seed answers, abort, errors,
// and stop() leaving no timer behind.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { Gossip } from '../src/gossip/gossip.js'
import { SimNetwork } from '../src/gossip/transport-sim.js'
import { silentLogger } from '../src/log.js'
import { seeded } from './lib/gossip-sim.js'

function setup() {
  const clock = new VirtualClock()
  const random = seeded(5)
  const net = new SimNetwork(clock, { latencyMs: 1, random })
  const mk = (name: string, host: string): Gossip =>
    new Gossip({ name, cluster: 'sim', profile: 'local' }, { transport: net.transport(host), clock, logger: silentLogger(), random })
  return { clock, net, mk }
}

t.test('with retry, join keeps trying with backoff until a seed comes up', async (t) => {
  const { clock, net, mk } = setup()
  const a = mk('a', '10.0.0.1')
  await a.start()
  t.teardown(() => a.stop())
  const attempts: number[] = []
  net.tap((_f, to, _d, kind) => {
    if (kind === 'request' && to.host === '10.0.0.2') attempts.push(clock.now())
  })
  let joined: number | undefined
  a.join(['10.0.0.2:7946'], { retry: true }).then((n) => {
    joined = n
  })
  await clock.advance(3000)
  t.equal(joined, undefined, 'nobody there yet')
  t.ok(attempts.length >= 3 && attempts.length <= 6, `${attempts.length} attempts in 3 s`)
  const gaps = attempts.slice(1).map((x, i) => x - attempts[i]!)
  t.ok(gaps[gaps.length - 1]! > gaps[0]!, `gaps grow: ${gaps.map(Math.round).join(', ')}`)
  const b = mk('b', '10.0.0.2')
  await b.start()
  t.teardown(() => b.stop())
  await clock.runUntil(() => joined !== undefined, 60_000)
  t.equal(joined, 1)
  await clock.advance(500)
  t.equal(b.numAlive(), 2)
})

t.test('without retry, join rejects naming each seed; abort stops a retrying join', async (t) => {
  const { clock, mk } = setup()
  const a = mk('a', '10.0.0.1')
  await a.start()
  t.teardown(() => a.stop())
  const p = a.join(['10.0.0.9:7946', '10.0.0.8:1'])
  const r = p.then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  )
  await clock.advance(3000)
  const err = await r
  t.equal(err?.code, 'SHOAL_ERR_JOIN')
  t.match(err?.message, '10.0.0.9:7946')
  t.match(err?.message, '10.0.0.8:1')
  await t.rejects(a.join(['not an address']), { code: 'SHOAL_ERR_ADDRESS' })
  const ac = new AbortController()
  const q = a.join(['10.0.0.9:7946'], { retry: true, signal: ac.signal }).then(
    () => 'joined',
    () => 'aborted',
  )
  await clock.advance(1000)
  ac.abort()
  await clock.advance(10)
  t.equal(await q, 'aborted')
})

t.test('stop() leaves no timer behind and is idempotent', async (t) => {
  const { clock, mk } = setup()
  const a = mk('a', '10.0.0.1')
  const b = mk('b', '10.0.0.2')
  await a.start()
  await b.start()
  const p = b.join(['10.0.0.1:7946'])
  await clock.advance(20)
  await p
  b.broadcast('k', Buffer.from('x'))
  await clock.advance(1000)
  await a.stop()
  await b.stop()
  await a.stop()
  await clock.advance(100)
  t.equal(clock.pending(), 0)
  t.throws(() => a.broadcast('k', Buffer.from('x')), { code: 'SHOAL_ERR_NOT_STARTED' })
})

t.test('setMeta: spreads with a higher incarnation; too big is refused', async (t) => {
  const { clock, mk } = setup()
  const a = mk('a', '10.0.0.1')
  const b = mk('b', '10.0.0.2')
  await a.start()
  await b.start()
  t.teardown(async () => {
    await a.stop()
    await b.stop()
  })
  const p = b.join(['10.0.0.1:7946'])
  await clock.advance(20)
  await p
  const updates: string[] = []
  b.on('update', (m) => updates.push(`${m.name}:${m.meta.zone}`))
  a.setMeta({ zone: 'eu' })
  await clock.advance(200)
  t.same(updates, ['a:eu'])
  t.equal(b.members().find((m) => m.name === 'a')?.meta.boot, a.bootId, 'boot kept')
  t.throws(() => a.setMeta({ big: 'x'.repeat(600) }), { code: 'SHOAL_ERR_META' })
  t.throws(
    () =>
      new Gossip({ name: 'c', cluster: 'sim', meta: { big: 'x'.repeat(600) } }, { transport: {} as never, clock, logger: silentLogger() }),
    { code: 'SHOAL_ERR_META' },
  )
})
