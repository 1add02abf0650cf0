// The rule table (src/gossip/state.ts) over a real member table, queue, awareness and virtual
// clock, without sockets: what each message does, which event it raises, what it queues.
// test/gossip-rules.test.ts checks the same rows through real packets into a running node.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { Awareness } from '../src/gossip/awareness.js'
import { resolveTiming } from '../src/gossip/config.js'
import { MemberTable } from '../src/gossip/members.js'
import { MessageType, decodeMessage } from '../src/gossip/messages.js'
import { BroadcastQueue } from '../src/gossip/queue.js'
import { MembershipRules, memberKey } from '../src/gossip/state.js'
import type { MemberState } from '../src/gossip/types.js'
import { silentLogger, type Logger } from '../src/log.js'
import { capturedLogger } from './lib/log.js'
import { seeded } from './lib/random.js'

function setup(log: Logger = silentLogger()) {
  const clock = new VirtualClock()
  const timing = resolveTiming('local')
  const table = new MemberTable({ clock, random: seeded(1) })
  table.addSelf({
    name: 'me',
    addr: '10.0.0.1',
    port: 7946,
    meta: { boot: 'b0' },
    incarnation: 1,
    state: 'alive',
    stateChangedAt: 0,
    idx: -1,
  })
  const queue = new BroadcastQueue(timing.retransmitMult, () => table.size)
  const awareness = new Awareness(timing.awarenessMax)
  const counters = { suspicions: 0, refutations: 0, nameConflicts: 0, refusedDeaths: 0 }
  const events: string[] = []
  let running = true
  const rules = new MembershipRules({
    timing,
    table,
    queue,
    awareness,
    clock,
    log,
    counters,
    emit: (event, ...args) => events.push(`${event} ${(args[0] as { name: string }).name}`),
    running: () => running,
  })
  /** The message queued under a member's key, decoded (undefined when none). */
  const queued = (name: string) => {
    if (queue.transmitsOf(memberKey(name)) === undefined) return undefined
    const [bytes] = queue.take(10_000, 0).filter((b) => decodeMessage(b).type !== MessageType.user)
    queue.clear()
    return bytes && decodeMessage(bytes)
  }
  const alive = (name: string, inc: number, addr = '10.0.0.9', meta: Record<string, string> = { boot: 'b-' + name }) =>
    rules.applyAlive({ name, inc, addr, port: 7946, meta })
  return { clock, timing, table, queue, awareness, counters, events, rules, queued, alive, stop: () => (running = false) }
}

t.test('alive, unknown name: added, join, queued; an older or equal one changes nothing', async (t) => {
  const s = setup()
  t.equal(s.alive('x', 3), true)
  t.same(s.events, ['join x'])
  t.equal(s.queued('x')?.type, MessageType.alive)
  t.equal(s.alive('x', 3, '10.0.0.9', { boot: 'other' }), false)
  t.equal(s.alive('x', 2), false)
  t.equal(s.queue.size(), 0, 'not news, not queued')
  t.equal(s.table.get('x')?.meta.boot, 'b-x')
})

t.test('alive at another address for a live member: conflict, not applied; for a dead one: taken, join', async (t) => {
  const s = setup()
  s.alive('x', 1)
  s.alive('x', 2, '10.0.0.8')
  t.equal(s.table.get('x')?.addr, '10.0.0.9')
  t.same(s.events, ['join x', 'conflict x'])
  s.rules.applyDead({ name: 'x', inc: 2, from: 'me' })
  s.alive('x', 3, '10.0.0.8')
  t.equal(s.table.get('x')?.addr, '10.0.0.8')
  t.equal(s.table.get('x')?.state, 'alive')
  t.same(s.events.slice(2), ['dead x', 'join x'])
})

t.test('alive for a suspect: alive event, update when something changed, suspicion cancelled', async (t) => {
  const s = setup()
  for (const n of ['x', 'y', 'z']) s.alive(n, 1)
  s.rules.applySuspect({ name: 'x', inc: 1, from: 'y' })
  s.alive('x', 2, '10.0.0.9', { boot: 'b-x', v: '2' })
  t.same(s.events.slice(3), ['suspect x', 'alive x', 'update x'])
  await s.clock.advance(60_000)
  t.equal(s.table.get('x')?.state, 'alive', 'the cancelled timer never fires')
})

t.test('suspect: timer expires to dead; confirmations at the same incarnation count once each', async (t) => {
  const s = setup()
  for (const n of ['x', 'y', 'z', 'w']) s.alive(n, 1)
  s.queue.clear()
  t.equal(s.rules.applySuspect({ name: 'x', inc: 1, from: 'y' }), true)
  t.equal(s.counters.suspicions, 1)
  t.equal(s.rules.applySuspect({ name: 'x', inc: 1, from: 'y' }), false, 'the accuser does not confirm')
  t.equal(s.rules.applySuspect({ name: 'x', inc: 2, from: 'z' }), false, 'a higher incarnation is no confirmation')
  t.equal(s.rules.applySuspect({ name: 'x', inc: 1, from: 'z' }), true, 'an independent confirmation')
  t.equal(s.rules.applySuspect({ name: 'x', inc: 1, from: 'w' }), false, 'k = 1 confirmations reached')
  await s.clock.runUntil(() => s.table.get('x')?.state === 'dead', 60_000)
  t.equal(s.table.get('x')?.state, 'dead')
  t.same(s.events.slice(4), ['suspect x', 'dead x'])
  t.equal(s.queued('x')?.type, MessageType.dead)
})

t.test('suspect or dead about myself: refute above it, awareness +1; not while leaving', async (t) => {
  const s = setup()
  t.equal(s.rules.applySuspect({ name: 'me', inc: 4, from: 'x' }), true)
  t.equal(s.table.self.incarnation, 5)
  t.equal(s.awareness.health(), 1)
  t.equal(s.counters.refutations, 1)
  const msg = s.queued('me')
  t.equal(msg?.type === MessageType.alive && msg.inc, 5, 'an alive at the new incarnation is queued')
  t.equal(s.rules.applyDead({ name: 'me', inc: 5, from: 'x' }), true)
  t.equal(s.table.self.incarnation, 6)
  s.rules.leaving = true
  t.equal(s.rules.applyDead({ name: 'me', inc: 9, from: 'x' }), false)
  t.equal(s.table.self.incarnation, 6)
})

t.test('alive about myself: refuted when newer or different, conflict when the address differs', async (t) => {
  const s = setup()
  t.equal(s.rules.applyAlive({ name: 'me', inc: 1, addr: '10.0.0.1', port: 7946, meta: { boot: 'b0' } }), false, 'that is me')
  t.equal(s.rules.applyAlive({ name: 'me', inc: 1, addr: '10.0.0.7', port: 7946, meta: { boot: 'b0' } }), true)
  t.equal(s.table.self.incarnation, 2)
  t.same(s.events, ['conflict me'])
})

t.test('dead from the member itself is left; a dead member stays dead', async (t) => {
  const s = setup()
  s.alive('x', 1)
  s.alive('y', 1)
  t.equal(s.rules.applyDead({ name: 'x', inc: 1, from: 'x' }), true)
  t.equal(s.table.get('x')?.state, 'left')
  t.equal(s.rules.applyDead({ name: 'x', inc: 1, from: 'y' }), false)
  t.equal(s.rules.applyDead({ name: 'nobody', inc: 1, from: 'y' }), false, 'unknown names are ignored')
  t.equal(s.rules.applySuspect({ name: 'x', inc: 1, from: 'y' }), false, 'no suspicion of the departed')
  t.same(s.events.slice(2), ['left x'])
})

t.test('mergeRemote: alive as alive, left as left, suspect and dead as a suspicion from the sender', async (t) => {
  const s = setup()
  for (const n of ['a', 'l', 'su', 'd']) s.alive(n, 1)
  s.events.length = 0
  const rec = (name: string, state: MemberState, inc = 2) => ({
    name,
    addr: '10.0.0.9',
    port: 7946,
    meta: { boot: 'b-' + name },
    inc,
    state,
  })
  s.rules.mergeRemote([rec('a', 'alive'), rec('l', 'left'), rec('su', 'suspect'), rec('d', 'dead'), rec('new', 'alive')], 'peer')
  t.same(s.events, ['update a', 'left l', 'suspect su', 'suspect d', 'join new'])
  t.equal(s.table.get('d')?.state, 'suspect', 'a remote death is only a suspicion here')
})

t.test('stop cancels suspicions; an expiry after stop does nothing', async (t) => {
  const s = setup()
  for (const n of ['x', 'y']) s.alive(n, 1)
  s.rules.applySuspect({ name: 'x', inc: 1, from: 'y' })
  s.rules.stop()
  await s.clock.advance(60_000)
  t.equal(s.table.get('x')?.state, 'suspect')
  s.rules.applyAlive({ name: 'x', inc: 2, addr: '10.0.0.9', port: 7946, meta: { boot: 'b-x' } })
  s.rules.applySuspect({ name: 'x', inc: 2, from: 'y' })
  s.stop()
  await s.clock.advance(60_000)
  t.equal(s.table.get('x')?.state, 'suspect', 'not running: the timer does not declare death')
})

t.test('transitions: one info line each, not one per relayed copy; forged flapping is bounded per member', async (t) => {
  const { logger, lines } = capturedLogger('info')
  const s = setup(logger)
  const of = (transition: string) => lines.filter((l) => l.member === 'x' && l.transition === transition)
  s.alive('x', 1)
  s.alive('x', 1)
  s.rules.applySuspect({ name: 'x', inc: 1, from: 'y' })
  s.rules.applySuspect({ name: 'x', inc: 1, from: 'y' })
  s.alive('x', 2)
  s.alive('x', 2)
  s.rules.applyDead({ name: 'x', inc: 2, from: 'y' })
  s.rules.applyDead({ name: 'x', inc: 2, from: 'z' })
  await s.clock.advance(10_000)
  s.alive('x', 3, '10.0.0.9', { boot: 'b-new' })
  s.rules.applySuspect({ name: 'x', inc: 3, from: 'me' })
  await s.clock.advance(10_000)
  s.alive('x', 4, '10.0.0.9', { boot: 'b-new' })
  s.rules.applyDead({ name: 'x', inc: 4, from: 'x' })
  s.rules.applyDead({ name: 'x', inc: 4, from: 'x' })
  t.same(
    lines.map((l) => l.msg),
    [
      'member x (10.0.0.9:7946, incarnation 1) joined: first heard of, in an alive message',
      'member x (10.0.0.9:7946, incarnation 1) is suspect: suspected by y',
      'member x (10.0.0.9:7946, incarnation 2) is alive again: refuted the suspicion at a higher incarnation, in an alive message',
      'member x (10.0.0.9:7946, incarnation 2) is dead: declared dead by y',
      'member x (10.0.0.9:7946, incarnation 3) joined: back after dead, restarted (a new boot), in an alive message',
      "member x (10.0.0.9:7946, incarnation 3) is suspect: no answer to this node's probe, direct or indirect",
      'member x (10.0.0.9:7946, incarnation 3) is dead: the suspicion expired unrefuted (0 independent confirmations)',
      'member x (10.0.0.9:7946, incarnation 4) joined: back after dead, same boot, in an alive message',
      'member x (10.0.0.9:7946, incarnation 4) left: a graceful leave',
    ],
    'one line per transition, none for the copies',
  )
  t.match(lines[3], {
    level: 30,
    member: 'x',
    addr: '10.0.0.9:7946',
    incarnation: 2,
    state: 'dead',
    previous: 'alive',
    reason: 'declared dead by y',
  })

  lines.length = 0
  s.rules.applySuspect({ name: 'me', inc: 1, from: 'y' })
  t.same(
    lines.map((l) => l.msg),
    ['this node me (10.0.0.1:7946, incarnation 2) refuted: suspected by y'],
    'this node says when it refutes',
  )

  await s.clock.advance(10_000)
  lines.length = 0
  // Forged dead and alive messages (a cluster without keys) flap x once per pair of packets.
  for (let inc = 10; inc < 110; inc++) {
    s.alive('x', inc)
    s.rules.applyDead({ name: 'x', inc, from: 'evil' })
  }
  t.equal(s.events.filter((e) => e === 'dead x').length, 102, 'every flap applied')
  t.equal(of('dead').length, 1, '100 deaths within 10 s: one line')
  t.equal(of('joined').length, 1, '100 returns within 10 s: one line')
  await s.clock.advance(10_000)
  s.alive('x', 300)
  s.rules.applyDead({ name: 'x', inc: 300, from: 'evil' })
  t.equal(of('dead').length, 2)
  t.equal(of('dead')[1]!.suppressed, 99)
  t.match(of('dead')[1]!.msg, '(99 more from there since the last line)')
})
