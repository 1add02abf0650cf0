// Issue 12, part 2, between real registry nodes on the gossip simulator: an owner restarts
// (a new boot on the same address, without leaving) after 1.5 s away, long enough for the peer
// to suspect it, and its join waits a second (a seed slow to answer). The peer's next probe
// carries the suspicion, the owner refutes it, and so the peer learns of the new boot before
// its records: before, it hid the earlier boot's records at once and listed only what came
// piggybacked. Now, at every millisecond of virtual time the peer lists everything the owner
// ran; once the new boot's first full state has arrived the peer shows it in one step: a record
// the new boot no longer has is gone then, the owner tombstones it when it sees it, and it
// never comes back.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { SimNetwork } from '../src/gossip/transport-sim.js'
import type { LocalRecord } from '../src/registry/catalog.js'
import { liveRecords } from '../src/registry/types.js'
import { seeded } from './lib/random.js'
import { joinSim, simNode, type SimNode } from './lib/registry-node.js'

function rec(id: string, port: number): LocalRecord {
  return {
    id,
    name: `svc-${id}`,
    image: 'img:1',
    created: 1,
    ports: [{ type: 'tcp', port, servicePort: 10_000 + port, ip: '10.0.0.1' }],
    proxyMode: 'http',
    status: 'alive',
    labels: {},
  }
}

const onPeer = (peer: SimNode) =>
  liveRecords(peer.catalog.snapshot())
    .filter((r) => r.host === 'owner')
    .map((r) => `${r.id}:${r.ports[0]?.port}`)
    .sort()

for (const seed of [1, 2, 3]) {
  t.test(`seed ${seed}: a restarted owner's records never vanish from a peer, and a dropped one never returns`, async (t) => {
    const profile = 'lan'
    const random = seeded(seed)
    const clock = new VirtualClock()
    const net = new SimNetwork(clock, { latencyMs: 2, jitterMs: 2, random })
    const ids = Array.from({ length: 20 }, (_, i) => `s${String(i).padStart(2, '0')}`)
    const peer = await simNode(net, 'peer', '10.0.0.2', { profile })
    let owner = await simNode(net, 'owner', '10.0.0.1', {
      profile,
      firstViews: (n) => ids.forEach((id, i) => n.catalog.upsertLocal(rec(id, 8000 + i))),
    })
    t.teardown(async () => {
      await owner.stop()
      await peer.stop()
    })
    await joinSim(net, owner, peer)
    await clock.advance(500)
    const before = onPeer(peer)
    t.equal(before.length, 20)
    const oldS00 = peer.catalog.get('owner', 's00')!

    // The owner goes away without leaving and comes back 1.5 s later with a new boot: its first
    // view has 19 of the 20 (s00 stopped meanwhile) and a new port for s01.
    await owner.stop()
    await clock.advance(1500)
    t.equal(peer.gossip.members().find((m) => m.name === 'owner')?.state, 'suspect', 'the peer suspects the owner')
    const kept = ids.slice(1)
    owner = await simNode(net, 'owner', '10.0.0.1', {
      profile,
      firstViews: (n) => kept.forEach((id) => n.catalog.upsertLocal(rec(id, id === 's01' ? 9001 : 8000 + ids.indexOf(id)))),
    })
    const after = kept.map((id) => `${id}:${id === 's01' ? 9001 : 8000 + ids.indexOf(id)}`).sort()
    void clock.advance(0).then(() => clock.setTimer(1000, () => void joinSim(net, owner, peer)))
    let shortest = 20
    let switchedAt = -1
    for (let ms = 0; ms < 5000; ms++) {
      await clock.advance(1)
      const view = onPeer(peer)
      if (switchedAt < 0 && view.join() === after.join()) switchedAt = ms
      // Until the switch the earlier boot's 20, after it the new boot's 19: never anything less.
      shortest = Math.min(shortest, switchedAt < 0 ? view.length : view.length + 1)
      if (switchedAt < 0 && view.join() !== before.join()) {
        t.fail(`at ${ms} ms the peer listed ${view.length} records, a mix: ${view.join(' ')}`)
        return
      }
    }
    t.equal(shortest, 20, 'the peer never listed less than the owner ran')
    t.ok(switchedAt >= 0 && switchedAt < 2000, `the new boot shown in one step ${switchedAt} ms after the restart`)
    t.same(onPeer(peer), after, 'exactly what the new boot runs')
    t.equal(peer.catalog.stats.handoversCompleted, 1, 'with its full state (not at the timeout)')
    t.notOk(peer.catalog.mergeRemote(oldS00), "a stale copy of the earlier boot's s00 is refused")
    await clock.advance(10_000)
    t.same(onPeer(peer), after, 's00 never came back')
    owner.catalog.mergeRemote(oldS00)
    t.equal(owner.catalog.get('owner', 's00')?.status, 'tombstone', 'the owner tombstones it when it sees it')
  })
}
