// Probing on the simulator: direct ping, indirect ping with nacks, the stream fallback,
// the suspect piggybacked on pings to a suspect, and refutation.
import t from 'tap'
import { MessageType } from '../src/gossip/messages.js'
import { rig, alive } from './lib/gossip-rules.js'
import { simCluster } from './lib/gossip-sim.js'

t.test('direct probe: ping, ack, nobody suspected', async (t) => {
  const r = await rig()
  t.teardown(() => r.stop())
  await r.send(alive(r, 'x', 1))
  await r.clock.advance(2000)
  const pings = r.received.filter((m) => m.type === MessageType.ping)
  t.ok(pings.length >= 5, `${pings.length} pings in 2 s at a 200 ms interval`)
  t.equal(r.member('x')?.state, 'alive')
  t.equal(r.g.stats().probesFailed, 0)
  t.equal(r.g.stats().awareness, 0)
})

t.test('a probe to a suspect carries the suspect message, so it can refute at once', async (t) => {
  const r = await rig()
  t.teardown(() => r.stop())
  await r.send(alive(r, 'x', 1), alive(r, 'y', 1), alive(r, 'z', 1))
  await r.send({ type: MessageType.suspect, name: 'x', inc: 1, from: 'y' })
  r.packets.length = 0
  await r.clock.advance(1000)
  const toX = r.packets.filter((p) => p.some((m) => m.type === MessageType.ping && m.target === 'x'))
  t.ok(toX.length > 0, 'x was probed')
  for (const p of toX)
    t.ok(
      p.some((m) => m.type === MessageType.suspect && m.name === 'x'),
      'the ping carries suspect(x)',
    )
  const toY = r.packets.filter((p) => p.some((m) => m.type === MessageType.ping && m.target === 'y'))
  t.ok(
    toY.every((p) => !p.some((m) => m.type === MessageType.suspect && m.name === 'y')),
    'no suspect piggybacked for a healthy target',
  )
})

t.test('indirect probe: a direct path that drops is bridged by k members, no suspicion', async (t) => {
  const c = await simCluster(5, { seed: 11 })
  t.teardown(() => c.stop())
  const [a, , , , target] = c.nodes
  const ha = a!.localMember().addr
  const ht = target!.localMember().addr
  c.net.setFilter((from, to) => ((from.host === ha && to.host === ht) || (from.host === ht && to.host === ha) ? { drop: true } : undefined))
  const susp: string[] = []
  for (const g of c.nodes) g.on('suspect', (m) => susp.push(m.name))
  await c.clock.advance(5000)
  t.ok((a!.stats().packetsOut.indirectPing ?? 0) > 0, 'a sent indirect pings')
  t.same(susp, [], 'nobody suspected anybody')
  t.equal(a!.stats().awareness, 0)
})

t.test('nacks: probing a crashed node, the helpers nack and the prober stays healthy', async (t) => {
  const c = await simCluster(5, { seed: 12 })
  t.teardown(() => c.stop())
  const a = c.nodes[0]!
  c.net.crash(c.nodes[4]!.localMember().addr)
  await c.clock.runUntil(() => a.members().find((m) => m.name === 'n4')?.state === 'dead', 10_000)
  t.equal(a.members().find((m) => m.name === 'n4')?.state, 'dead')
  t.ok(
    c.nodes.slice(0, 4).some((g) => (g.stats().packetsIn.nack ?? 0) > 0),
    'nacks received',
  )
  for (const g of c.nodes.slice(0, 4)) t.equal(g.stats().awareness, 0, `${g.localMember().name} awareness 0`)
})

t.test('stream fallback: a member unreachable over UDP but reachable over TCP is not suspected', async (t) => {
  const c = await simCluster(4, { seed: 13 })
  t.teardown(() => c.stop())
  const target = c.nodes[3]!
  const ht = target.localMember().addr
  c.net.setFilter((_from, to) => (to.host === ht ? { drop: true } : undefined))
  const susp: string[] = []
  for (const g of c.nodes) g.on('suspect', (m) => susp.push(m.name))
  await c.clock.advance(5000)
  t.ok((target.stats().packetsIn.streamPing ?? 0) > 0, 'stream pings reached it')
  t.notOk(susp.includes('n3'), 'not suspected')
  t.ok(c.nodes.every((g) => g.members().find((m) => m.name === 'n3')?.state === 'alive'))
})

t.test('refutation: a member cut off briefly is suspected, refutes, and is never declared dead', async (t) => {
  const c = await simCluster(6, { seed: 14 })
  t.teardown(() => c.stop())
  const target = c.nodes[5]!
  const inc0 = target.localMember().incarnation
  const others = c.nodes.slice(0, 5)
  const suspected = new Set<string>()
  const dead: string[] = []
  for (const g of others) {
    g.on('suspect', (m) => {
      if (m.name === 'n5') suspected.add(g.localMember().name)
    })
    g.on('dead', (m) => dead.push(m.name))
  }
  c.net.partition(
    [target.localMember().addr],
    others.map((g) => g.localMember().addr),
  )
  await c.clock.runUntil(() => suspected.size > 0, 5000)
  c.net.heal()
  t.ok(suspected.size > 0, 'suspected')
  const ok = await c.clock.runUntil(
    () =>
      others.every((g) => {
        const m = g.members().find((x) => x.name === 'n5')
        return m?.state === 'alive' && m.incarnation > inc0
      }),
    5000,
  )
  t.ok(ok, 'alive again everywhere with a higher incarnation')
  t.ok(target.stats().refutations >= 1)
  t.same(dead, [])
})
