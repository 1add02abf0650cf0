// Refusal evidence (docs/gossip.md, "Refusal evidence"): a member whose process died on a live
// host refuses the stream pings of the members probing it; once two of them have said so, every
// member declares it dead without waiting out the Lifeguard suspicion. A crashed host (silence)
// keeps the Lifeguard timer. Simulated network, virtual clock, lan profile.
import t from 'tap'
import { resolveTiming } from '../src/gossip/config.js'
import { shortestSuspicionMs, suspicionMinMs } from '../src/gossip/suspicion.js'
import { Gossip } from '../src/gossip/gossip.js'
import { silentLogger } from '../src/log.js'
import { seeded, simCluster } from './lib/gossip-sim.js'

const N = 6

async function lose(seed: number, how: 'process' | 'host') {
  const c = await simCluster(N, { seed, profile: 'lan' })
  const victim = c.nodes[3]!
  const others = c.nodes.filter((g) => g !== victim)
  await c.clock.advance(5_000)
  let firstSuspect: number | undefined
  const deadAt = new Map<string, number>()
  for (const g of others) {
    g.on('suspect', (m) => {
      if (m.name === 'n3') firstSuspect ??= c.clock.now()
    })
    g.on('dead', (m) => {
      if (m.name === 'n3') deadAt.set(g.localMember().name, c.clock.now())
    })
  }
  // The process dies (its sockets close, the host stays up and refuses) or the host goes silent.
  if (how === 'process') await victim.stop()
  else c.net.crash(victim.localMember().addr)
  for (let i = 0; i < 600 && deadAt.size < others.length; i++) await c.clock.advance(50)
  const refusedDeaths = others.reduce((a, g) => a + g.stats().refusedDeaths, 0)
  const falseDead = others.filter((g) => g.members().some((m) => m.name !== 'n3' && m.state !== 'alive')).length
  await c.stop()
  const last = Math.max(...deadAt.values())
  return { all: deadAt.size === others.length, fromSuspect: last - (firstSuspect ?? last), refusedDeaths, falseDead }
}

const lan = resolveTiming('lan')
const min = suspicionMinMs(lan.suspicionMult, N, lan.probeIntervalMs)
const floor = shortestSuspicionMs(lan) / 2

t.test('a process gone from a live host: dead everywhere before the shortest suspicion ends', async (t) => {
  for (const seed of [1, 2, 3]) {
    const r = await lose(seed, 'process')
    t.ok(r.all, `seed ${seed}: every member marks it dead`)
    t.ok(r.fromSuspect < min, `seed ${seed}: first suspicion -> dead everywhere ${r.fromSuspect} ms, under the Lifeguard min ${min} ms`)
    t.ok(r.fromSuspect >= floor, `seed ${seed}: and not before the floor ${floor} ms`)
    t.ok(r.refusedDeaths > 0, `seed ${seed}: counted as refusal deaths (${r.refusedDeaths})`)
    t.equal(r.falseDead, 0, `seed ${seed}: no one else suspected`)
  }
})

t.test('a silent host keeps the Lifeguard timer: no refusal, never before min', async (t) => {
  for (const seed of [1, 2, 3]) {
    const r = await lose(seed, 'host')
    t.ok(r.all, `seed ${seed}: every member marks it dead`)
    t.ok(r.fromSuspect >= min, `seed ${seed}: first suspicion -> dead everywhere ${r.fromSuspect} ms, at least min ${min} ms`)
    t.equal(r.refusedDeaths, 0, `seed ${seed}: no refusal deaths`)
  }
})

t.test(
  'an agent down for less than a probe interval and the floor is never declared dead: it is back before two refusals can end the suspicion',
  async (t) => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const c = await simCluster(N, { seed, profile: 'lan' })
      const victim = c.nodes[3]!
      const { addr, port } = victim.localMember()
      const others = c.nodes.filter((g) => g !== victim)
      await c.clock.advance(5_000)
      const dead: string[] = []
      for (const g of others) g.on('dead', (m) => m.name === 'n3' && dead.push(g.localMember().name))
      await victim.stop()
      // Down for the floor and 250 ms more: no suspicion starts before a failed probe interval
      // (700 ms), so none can end by refusals before 700 ms + the floor; the new boot's alive
      // takes the remaining 450 ms at most to reach everyone (about 200 ms here).
      await c.clock.advance(floor + 250)
      const fresh = new Gossip(
        { name: 'n3', cluster: 'sim', profile: 'lan' },
        { transport: c.net.transport(addr, port), clock: c.clock, logger: silentLogger(), random: seeded(seed + 100) },
      )
      await fresh.start()
      const joined = fresh.join([`${others[0]!.localMember().addr}:${others[0]!.localMember().port}`])
      await c.clock.advance(20)
      await joined
      await c.clock.advance(10_000)
      t.same(dead, [], `seed ${seed}: no member declared the restarted agent dead`)
      t.ok(
        others.every((g) => g.members().find((m) => m.name === 'n3')?.state === 'alive'),
        `seed ${seed}: alive everywhere`,
      )
      await fresh.stop()
      await c.stop()
    }
  },
)
