// An idle agent wakes for probes, not for empty gossip rounds (issue 17, idle CPU): the round
// timer is armed only while a broadcast is queued, on the phase it would have had (gossip.ts,
// armRound). Counted on the simulator: every timer any node or the network sets, per node and
// virtual second, at lan timing.
import t from 'tap'
import { simCluster } from './lib/gossip-sim.js'

t.test('an idle 2-node cluster sets timers for probes only; a queued broadcast re-arms the round on its phase', async (t) => {
  const c = await simCluster(2, { seed: 7, profile: 'lan' })
  t.teardown(() => c.stop())
  let timers = 0
  const setTimer = c.clock.setTimer.bind(c.clock)
  c.clock.setTimer = (ms, fn) => {
    timers++
    return setTimer(ms, fn)
  }
  await c.clock.advance(10_000) // the join's broadcasts run out
  timers = 0
  await c.clock.advance(20_000)
  const perNodeSecond = timers / 2 / 20
  // lan probes every 700 ms (a probe tick, its ack timeouts, the deliveries of ping and ack):
  // 7.4 a second per node; the 200 ms round, armed always, made it 12.4.
  t.ok(perNodeSecond < 10, `${perNodeSecond.toFixed(1)} timers per node per second at rest (under 10)`)

  // A membership broadcast (no early round): setMeta queues n0's alive message, which must
  // reach n1 at the next round slot, at most one interval (200 ms) away, even though no round
  // timer was armed when it was queued. Without the round it waits for a probe to carry it
  // (probes every 700 ms).
  const waits: number[] = []
  for (let k = 1; k <= 8; k++) {
    await c.clock.advance(137 * k) // idle, at varied phases
    const at = c.clock.now()
    c.nodes[0]!.setMeta({ v: String(k) })
    const seen = await c.clock.runUntil(() => c.nodes[1]!.members().find((m) => m.name === 'n0')?.meta['v'] === String(k), 2000, 1)
    t.ok(seen, `meta update ${k} arrives`)
    waits.push(c.clock.now() - at)
  }
  t.ok(
    waits.every((w) => w <= 205),
    `each within one round interval and the network's delay (${waits.join(', ')} ms)`,
  )
  await c.clock.advance(5000)
  timers = 0
  await c.clock.advance(20_000)
  t.ok(timers / 2 / 20 < 10, 'and the rounds stop again once the broadcasts were sent to their limit')
})

t.test('an agent alone with a broadcast queued wakes for its probe ticks, not every round; a peer that joins gets it', async (t) => {
  const c = await simCluster(1, { seed: 3, profile: 'lan' })
  t.teardown(() => c.stop())
  c.nodes[0]!.setMeta({ v: 'alone' }) // queued, and nobody to send it to
  let timers = 0
  const setTimer = c.clock.setTimer.bind(c.clock)
  c.clock.setTimer = (ms, fn) => {
    timers++
    return setTimer(ms, fn)
  }
  await c.clock.advance(1000)
  timers = 0
  await c.clock.advance(20_000)
  // lan: a probe tick every 700 ms (nothing to probe) and the agent's other periodic tasks,
  // about 3 a second; a round re-armed every 200 ms while its broadcasts wait adds 5.
  t.ok(timers / 20 < 5, `${(timers / 20).toFixed(1)} timers a second (under 5)`)
  const n1 = await c.add('n1')
  const joined = n1.join([`${c.nodes[0]!.localMember().addr}:${c.nodes[0]!.localMember().port}`])
  await c.clock.advance(20)
  await joined
  const seen = await c.clock.runUntil(() => n1.members().find((m) => m.name === 'n0')?.meta['v'] === 'alone', 5000, 10)
  t.ok(seen, "the peer that joins holds the lone agent's metadata")
})
