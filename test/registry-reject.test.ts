// Issue 12, part 1, between real registry nodes on the gossip simulator: a record a peer's
// decoder cannot take (written by an owner of the first release, which did not fit records to
// the limits) costs only itself; the peer counts it, warns at most once a minute, does not
// count itself synced with that owner (nor finish its warm start on that exchange), and pulls
// again only once per exchange, never in a loop. A long pull answer is cut at its byte budget
// and asked for again until the puller holds everything.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { SimNetwork } from '../src/gossip/transport-sim.js'
import { liveRecords } from '../src/registry/types.js'
import { capturedLogger } from './lib/log.js'
import { joinSim, simNode, type SimNode } from './lib/registry-node.js'
import { localRecord } from './lib/record.js'

const rec = (id: string, labels: Record<string, string> = {}) => localRecord(id, { name: `svc-${id}`, image: 'img:1', labels })

const idsOf = (n: SimNode, host: string): string[] =>
  liveRecords(n.catalog.snapshot())
    .filter((r) => r.host === host)
    .map((r) => r.id)
    .sort()

t.test('a record the peer cannot take costs only itself, and the peer is not synced with its owner', async (t) => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock, { latencyMs: 1 })
  const { logger, lines } = capturedLogger('info')
  const owner = await simNode(net, 'old', '10.0.0.1')
  const peer = await simNode(net, 'peer', '10.0.0.2', { logger })
  t.teardown(async () => {
    await peer.stop()
    await owner.stop()
  })
  // Written straight to the catalog, past the owner's build: what the first release's owners did.
  owner.catalog.upsertLocal(rec('r1'))
  owner.catalog.upsertLocal(rec('big', { 'io.buildpacks.lifecycle.metadata': 'x'.repeat(5000) }))
  owner.catalog.upsertLocal(rec('r2'))
  let synced = false
  peer.bridge.once('synced', () => (synced = true))
  await joinSim(net, peer, owner)
  await clock.advance(200)
  t.same(idsOf(peer, 'old'), ['r1', 'r2'], 'the neighbours of the bad record arrived')
  t.same(Object.keys(peer.bridge.stats.recordsRejected), ['label-value'], 'the bad record counted by its limit')
  t.same(peer.bridge.unsyncedOwners(), ['old'], 'not in sync with its owner')
  t.notOk(synced, 'and the warm start does not count that exchange')
  const warned = () => lines.filter((l) => l.level === 40 && l.msg.includes('record rejected'))
  t.equal(warned().length, 1, 'one warning')
  t.match(warned()[0], { owner: 'old', id: 'big', reason: 'label-value' }, 'naming the owner, the instance and the limit')

  const pulls = peer.bridge.stats.pullsSent
  const exchanges = peer.gossip.stats().pushPulls + owner.gossip.stats().pushPulls
  await clock.advance(50_000)
  const moreExchanges = peer.gossip.stats().pushPulls + owner.gossip.stats().pushPulls - exchanges
  const morePulls = peer.bridge.stats.pullsSent - pulls
  t.ok(moreExchanges >= 10, `${moreExchanges} push-pulls in 50 s`)
  t.ok(morePulls <= moreExchanges, `${morePulls} pulls: at most one per exchange, no loop`)
  t.ok(peer.bridge.stats.recordsRejected['label-value']! > 1, 'each exchange still says the owner differs')
  t.equal(warned().length, 1, 'the warning is not repeated within a minute')
  t.same(idsOf(peer, 'old'), ['r1', 'r2'])

  // The owner's record becomes one the peer can take: the next exchange is clean.
  owner.catalog.upsertLocal(rec('big', { 'io.buildpacks.lifecycle.metadata': 'short' }))
  await clock.advance(12_000)
  t.same(idsOf(peer, 'old'), ['big', 'r1', 'r2'], 'everything held')
  t.same(peer.bridge.unsyncedOwners(), [], 'in sync again')
  t.ok(synced, 'the warm start completes on a clean exchange')
})

t.test('a pull answer over its byte budget is cut; the puller asks again until it holds everything', async (t) => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock, { latencyMs: 1 })
  const owner = await simNode(net, 'owner', '10.0.0.1', { bridge: { answerBudgetBytes: 2000 } })
  const peer = await simNode(net, 'peer', '10.0.0.2')
  t.teardown(async () => {
    await peer.stop()
    await owner.stop()
  })
  for (let i = 0; i < 60; i++) owner.catalog.upsertLocal(rec(`r${String(i).padStart(2, '0')}`, { pad: 'p'.repeat(50) }))
  let synced = false
  peer.bridge.once('synced', () => (synced = true))
  await joinSim(net, peer, owner)
  await clock.advance(200)
  t.equal(idsOf(peer, 'owner').length, 60, 'all 60 records held')
  t.ok(peer.bridge.stats.pullsSent > 3, `in ${peer.bridge.stats.pullsSent} answers of at most 2000 bytes`)
  t.ok(synced, 'synced once the last answer arrived')
})
