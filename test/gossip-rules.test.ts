// docs/gossip.md "Messages and how a receiver applies them": one subtest per row of the table,
// driven by real packets from a hand-written peer into a running node.
import t from 'tap'
import { MessageType } from '../src/gossip/messages.js'
import { alive, rig, type Rig } from './lib/gossip-rules.js'

async function drained(r: Rig): Promise<void> {
  await r.clock.runUntil(() => r.g.stats().queueDepth === 0, 5000)
}

async function withMembers(t: { teardown(fn: () => unknown): void }, names: string[]): Promise<Rig> {
  const r = await rig()
  t.teardown(() => r.stop())
  for (const n of names) await r.send(alive(r, n, 1))
  await drained(r)
  return r
}

t.test('alive, name unknown: added as alive and rebroadcast', async (t) => {
  const r = await withMembers(t, [])
  const joins: string[] = []
  r.g.on('join', (m) => joins.push(m.name))
  await r.send(alive(r, 'x', 5, { role: 'db' }))
  t.equal(r.member('x')?.state, 'alive')
  t.equal(r.member('x')?.incarnation, 5)
  t.same(r.member('x')?.meta, { role: 'db' })
  t.same(joins, ['x'])
  t.equal(r.g.stats().queueDepth, 1, 'queued for rebroadcast')
})

t.test('alive, inc > known: updated, alive, suspicion cancelled', async (t) => {
  const r = await withMembers(t, ['x', 'y', 'z'])
  r.answer = (n) => n !== 'x'
  await r.send({ type: MessageType.suspect, name: 'x', inc: 1, from: 'y' })
  t.equal(r.member('x')?.state, 'suspect')
  await drained(r)
  await r.send(alive(r, 'x', 2, { v: '2' }))
  t.equal(r.member('x')?.state, 'alive')
  t.equal(r.member('x')?.incarnation, 2)
  t.same(r.member('x')?.meta, { v: '2' })
  t.equal(r.g.stats().queueDepth, 1, 'rebroadcast')
  r.answer = () => true
  await r.clock.advance(8000)
  t.equal(r.member('x')?.state, 'alive', 'the cancelled suspicion never declares it dead')
})

t.test('alive, inc <= known: ignored and not rebroadcast', async (t) => {
  const r = await withMembers(t, [])
  await r.send(alive(r, 'x', 3, { v: '3' }))
  await drained(r)
  await r.send(alive(r, 'x', 3, { v: 'same-inc' }), alive(r, 'x', 2, { v: 'older' }))
  t.same(r.member('x')?.meta, { v: '3' })
  t.equal(r.g.stats().queueDepth, 0, 'nothing queued')
})

t.test('alive about myself, inc >= mine, not matching me: refute above it', async (t) => {
  const r = await withMembers(t, ['x'])
  const mine = r.g.localMember().incarnation
  await r.send({ type: MessageType.alive, name: 'me', inc: mine + 4, addr: r.gAddr.host, port: r.gAddr.port, meta: { boot: 'other' } })
  t.equal(r.g.localMember().incarnation, mine + 5)
  t.equal(r.g.localMember().meta.boot, r.g.bootId, 'my metadata kept')
  t.equal(r.g.stats().refutations, 1)
  await r.clock.advance(200)
  t.ok(
    r.received.some((m) => m.type === MessageType.alive && m.name === 'me' && m.inc === mine + 5),
    'refutation sent',
  )
  const me = r.g.localMember()
  await r.send({ type: MessageType.alive, name: 'me', inc: me.incarnation, addr: me.addr, port: me.port, meta: { ...me.meta } })
  t.equal(r.g.localMember().incarnation, mine + 5, 'an alive that matches me changes nothing')
})

t.test('suspect, inc >= known and alive: suspect, then dead when the timer runs out', async (t) => {
  const r = await withMembers(t, ['x'])
  r.answer = (n) => n !== 'x'
  const events: string[] = []
  r.g.on('suspect', (m) => events.push('suspect ' + m.name))
  r.g.on('dead', (m) => events.push('dead ' + m.name))
  await r.send({ type: MessageType.suspect, name: 'x', inc: 1, from: 'someone' })
  t.equal(r.member('x')?.state, 'suspect')
  t.equal(r.g.stats().queueDepth, 1, 'rebroadcast')
  // 2 other members: k = 0, timeout = min = 3 x 1 x 200 ms.
  await r.clock.advance(550)
  t.equal(r.member('x')?.state, 'suspect')
  await r.clock.advance(100)
  t.equal(r.member('x')?.state, 'dead')
  t.same(events, ['suspect x', 'dead x'])
})

t.test('suspect, already suspect at that inc: a new accuser confirms and shrinks the timer', async (t) => {
  // x still answers our own probes, so only the injected accusers count.
  const r = await withMembers(t, ['x', 'y', 'z', 'w'])
  await r.send({ type: MessageType.suspect, name: 'x', inc: 1, from: 'y' })
  await drained(r)
  await r.send({ type: MessageType.suspect, name: 'x', inc: 1, from: 'y' })
  t.equal(r.g.stats().queueDepth, 0, 'the same accuser again is not news')
  // 5 members, mult 3: k = 1, min = 600 ms, max = 3600 ms; one confirmation -> min.
  await r.clock.advance(1000)
  t.equal(r.member('x')?.state, 'suspect', 'unconfirmed: still suspect after min')
  await r.send({ type: MessageType.suspect, name: 'x', inc: 1, from: 'z' })
  t.equal(r.g.stats().queueDepth, 1, 'a confirmation is rebroadcast')
  t.equal(r.member('x')?.state, 'dead', 'elapsed > min: the shrunk timer fires at once')
})

t.test('suspect or dead about myself: refute with max(inc, mine) + 1; not while leaving', async (t) => {
  const r = await withMembers(t, ['x'])
  await r.send({ type: MessageType.suspect, name: 'me', inc: 7, from: 'x' })
  t.equal(r.g.localMember().incarnation, 8)
  t.equal(r.g.localMember().state, 'alive')
  t.equal(r.g.stats().awareness, 1, 'refuting raises awareness')
  await r.send({ type: MessageType.dead, name: 'me', inc: 8, from: 'x' })
  t.equal(r.g.localMember().incarnation, 9)
  t.equal(r.g.stats().refutations, 2)
  const leaving = r.g.leave(100)
  await r.clock.advance(200)
  await leaving
  await r.send({ type: MessageType.suspect, name: 'me', inc: 9, from: 'x' })
  t.equal(r.g.localMember().incarnation, 9, 'no refutation while leaving')
  t.equal(r.g.localMember().state, 'left')
})

t.test('dead, inc >= known, not dead/left: dead; left when from == name', async (t) => {
  const r = await withMembers(t, ['x', 'y'])
  const events: string[] = []
  r.g.on('dead', (m) => events.push('dead ' + m.name))
  r.g.on('left', (m) => events.push('left ' + m.name))
  await r.send({ type: MessageType.dead, name: 'x', inc: 1, from: 'y' }, { type: MessageType.dead, name: 'y', inc: 3, from: 'y' })
  t.equal(r.member('x')?.state, 'dead')
  t.equal(r.member('y')?.state, 'left')
  t.equal(r.member('y')?.incarnation, 3)
  t.same(events, ['dead x', 'left y'])
  t.equal(r.g.stats().queueDepth, 2, 'both rebroadcast')
  await drained(r)
  await r.send({ type: MessageType.dead, name: 'x', inc: 1, from: 'z' }, { type: MessageType.dead, name: 'y', inc: 3, from: 'y' })
  t.equal(r.g.stats().queueDepth, 0, 'dead about a dead/left member changes nothing')
  await r.send({ type: MessageType.suspect, name: 'x', inc: 1, from: 'z' })
  t.equal(r.member('x')?.state, 'dead', 'suspect does not revive a dead member')
  await r.send(alive(r, 'y', 3))
  t.equal(r.member('y')?.state, 'left', 'left is final for that incarnation')
  await r.send(alive(r, 'y', 4))
  t.equal(r.member('y')?.state, 'alive', 'a higher incarnation rejoins')
})

t.test('any message with inc < known: ignored', async (t) => {
  const r = await withMembers(t, [])
  await r.send(alive(r, 'x', 5))
  await drained(r)
  await r.send(
    { type: MessageType.suspect, name: 'x', inc: 4, from: 'q' },
    { type: MessageType.dead, name: 'x', inc: 4, from: 'q' },
    alive(r, 'x', 4, { old: '1' }),
  )
  t.equal(r.member('x')?.state, 'alive')
  t.equal(r.member('x')?.incarnation, 5)
  t.same(r.member('x')?.meta, {})
  t.equal(r.g.stats().queueDepth, 0)
})

t.test('unknown members: suspect and dead about them are ignored', async (t) => {
  const r = await withMembers(t, [])
  await r.send(
    { type: MessageType.suspect, name: 'ghost', inc: 1, from: 'q' },
    { type: MessageType.dead, name: 'ghost2', inc: 1, from: 'q' },
  )
  t.equal(r.member('ghost'), undefined)
  t.equal(r.member('ghost2'), undefined)
  t.equal(r.g.stats().queueDepth, 0)
})
