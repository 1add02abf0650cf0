// A restarted node that has no seed (the first agent of a cluster, started without --join)
// learns its cluster from the first peer that probes it ("join back"): SWIM peers go on
// probing the old address, and the node push-pulls with the first prober it does not know.
// Property over seeded simulations of 2..7 real Gossip nodes on the simulator, with periodic
// push-pull and reconnect pushed out to an hour, so that only the join back can bring the
// restarted node its members: within (n + 2) probe intervals of virtual time it knows every
// live member, and the peer it joined back through holds its new boot alive (the others hear
// of it by dissemination, which this file does not test). Without the join back it stays alone.
import t from 'tap'
import { Gossip } from '../src/gossip/gossip.js'
import { silentLogger } from '../src/log.js'
import { Profiles } from '../src/gossip/config.js'
import { aliveView, seeded, simCluster } from './lib/gossip-sim.js'

const HOUR = 3600_000
const timing = { pushPullIntervalMs: HOUR, reconnectIntervalMs: HOUR }

for (let seed = 1; seed <= 12; seed++) {
  t.test(`seed ${seed}: a restarted node without seeds rejoins through the first peer that probes it`, async (t) => {
    const random = seeded(seed * 7919)
    const n = 2 + Math.floor(random() * 6)
    const c = await simCluster(n, { seed, profile: 'local', gossip: { timing } })
    t.teardown(() => c.stop())
    const names = c.nodes.map((g) => g.localMember().name).sort()
    // Every node exchanges with every other once (periodic push-pull is off): converged at once.
    const all = c.nodes.map((g) => `${g.localMember().addr}:${g.localMember().port}`)
    for (const g of c.nodes) {
      const p = g.join(all)
      await c.clock.advance(20)
      await p
    }
    const converged = () => c.nodes.every((g) => aliveView(g).join() === names.join())
    for (let ms = 0; ms < 20_000 && !converged(); ms += 100) await c.clock.advance(100)
    t.ok(converged(), `converged: ${n} nodes`)
    const i = Math.floor(random() * n)
    const old = c.nodes[i]!
    const { addr, port, name } = old.localMember()
    await old.stop()
    // Away for less than the shortest suspicion, so that the peers go on probing it.
    await c.clock.advance(Math.floor(random() * 300))
    const fresh = new Gossip(
      { name, cluster: 'sim', profile: 'local', timing },
      { transport: c.net.transport(addr, port), clock: c.clock, logger: silentLogger(), random },
    )
    t.teardown(() => fresh.stop())
    await fresh.start()
    const peers = c.nodes.filter((g) => g !== old)
    const bound = (n + 2) * Profiles.local.probeIntervalMs
    let tookMs = -1
    for (let ms = 0; ms <= bound; ms += 10) {
      await c.clock.advance(10)
      const whole = aliveView(fresh).join() === names.join()
      const seen = peers.some((g) => g.members().some((m) => m.name === name && m.state === 'alive' && m.bootId === fresh.bootId))
      if (whole && seen) {
        tookMs = ms + 10
        break
      }
    }
    if (tookMs < 0) t.comment(JSON.stringify({ fresh: fresh.members(), peers: peers.map((g) => g.members().find((m) => m.name === name)) }))
    t.ok(tookMs > 0, `the restarted ${name} knows all ${n} and a peer holds its new boot (${tookMs} ms, bound ${bound} ms)`)
    t.equal(fresh.stats().joinBacks.joined, 1, 'counted as one join back (shoal_gossip_join_backs_total{result="joined"})')
    t.equal(fresh.stats().joinBacks.conflict, 0)
    t.same(
      peers.map((g) => g.stats().joinBacks.joined),
      peers.map(() => 0),
      'the peers, never alone, joined back through nobody',
    )
  })
}
