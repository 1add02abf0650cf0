import t from 'tap'
import { Awareness } from '../src/gossip/awareness.js'
import { simCluster } from './lib/gossip-sim.js'

t.test('score is clamped to [0, max - 1] and scales time by score + 1', async (t) => {
  const a = new Awareness(8)
  t.equal(a.health(), 0)
  t.equal(a.scale(500), 500)
  a.apply(-1)
  t.equal(a.health(), 0, 'never below 0')
  a.apply(3)
  t.equal(a.scale(500), 2000)
  a.apply(100)
  t.equal(a.health(), 7, 'never above max - 1')
  t.equal(a.scale(1000), 8000)
  a.apply(-2)
  t.equal(a.health(), 5)
})

t.test('a node cut off from everyone raises its awareness and probes less; the others stay healthy', async (t) => {
  const c = await simCluster(6, { seed: 3 })
  t.teardown(() => c.stop())
  await c.clock.runUntil(() => c.nodes.every((g) => g.numAlive() === 6), 10_000)
  const lonely = c.nodes[5]!
  const host = lonely.localMember().addr
  const others = c.nodes.slice(0, 5).map((g) => g.localMember().addr)
  // Cut off both ways, streams included: its probes fail and its indirect probes get no nacks.
  c.net.partition([host], others)
  const probesBefore = lonely.stats().probes
  await c.clock.advance(3000)
  t.ok(lonely.stats().awareness >= 3, `awareness rose to ${lonely.stats().awareness}`)
  t.ok(
    lonely.stats().probes - probesBefore < 15,
    `probed ${lonely.stats().probes - probesBefore} times in 3 s at 200 ms interval: slowed down`,
  )
  for (const g of c.nodes.slice(0, 5))
    t.equal(g.stats().awareness, 0, `${g.localMember().name} healthy: its failed probes of the lonely node were nacked`)
  c.net.heal()
})

t.test('a successful probe lowers the score', async (t) => {
  const c = await simCluster(4, { seed: 4 })
  t.teardown(() => c.stop())
  const g = c.nodes[0]!
  c.net.partition(
    [g.localMember().addr],
    c.nodes.slice(1).map((n) => n.localMember().addr),
  )
  await c.clock.advance(1500)
  const high = g.stats().awareness
  t.ok(high > 0)
  c.net.heal()
  await c.clock.advance(10_000)
  t.ok(g.stats().awareness < high, `back down from ${high} to ${g.stats().awareness}`)
})
