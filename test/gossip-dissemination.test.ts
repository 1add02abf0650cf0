// Dissemination on the simulator: broadcasts reach everyone, datagrams never exceed the MTU,
// oversized messages go over streams, early rounds are rate-limited, push-pull carries the
// application state, and reconnect heals a partition.
import t from 'tap'
import { aliveView, simCluster } from './lib/gossip-sim.js'
import type { Gossip } from '../src/gossip/gossip.js'

t.test('many broadcasts: all delivered, every datagram within the MTU', async (t) => {
  for (const mtu of [1400, 600]) {
    // Transmit-limited gossip is probabilistic: at the `local` limit (3 x 2 = 6 sends per node)
    // a node misses one of 100 concurrent broadcasts now and then. A limit of 12 makes a miss
    // about 1 in 200 runs of this test; the registry's push-pull state covers the rest.
    const c = await simCluster(20, { seed: 21, gossip: { mtu, timing: { retransmitMult: 6 } } })
    let max = 0
    c.net.tap((_f, _to, data, kind) => {
      if (kind === 'packet') max = Math.max(max, data.length)
    })
    const got = c.nodes.map(() => new Set<string>())
    c.nodes.forEach((g, i) =>
      g.onMessage((p) => {
        got[i]!.add(Buffer.from(p).toString().slice(0, 8))
      }),
    )
    for (let k = 0; k < 100; k++) c.nodes[k % 20]!.broadcast(`k${k}`, Buffer.from(`m${String(k).padStart(7, '0')}`.padEnd(300, '.')))
    const ok = await c.clock.runUntil(() => got.every((s) => s.size === 95), 20_000)
    t.ok(ok, `mtu ${mtu}: every node got the 95 broadcasts of the others (${got.map((s) => s.size).join(',')})`)
    t.ok(max <= mtu && max > mtu / 2, `largest datagram ${max} <= ${mtu}`)
    await c.stop()
  }
})

t.test('a broadcast too big for a datagram is delivered over streams', async (t) => {
  const c = await simCluster(8, { seed: 22 })
  t.teardown(() => c.stop())
  let max = 0
  c.net.tap((_f, _to, data, kind) => {
    if (kind === 'packet') max = Math.max(max, data.length)
  })
  const got: string[] = []
  c.nodes.forEach((g) =>
    g.onMessage((p, from) => {
      got.push(`${from}:${p.length}`)
    }),
  )
  // The streams go to the members the origin knows alive: wait until it knows all of them (joins go through n0).
  t.ok(await c.clock.runUntil(() => aliveView(c.nodes[2]!).length === 8, 10_000), 'the origin knows every member alive')
  c.nodes[2]!.broadcast('big', Buffer.alloc(5000, 1))
  await c.clock.advance(1000)
  t.equal(got.length, 7)
  t.ok(got.every((x) => x === 'n2:5000'))
  t.ok(max <= 1400)
})

t.test('a new broadcast goes out at once (early round), and a burst is rate-limited', async (t) => {
  const c = await simCluster(10, { seed: 23, profile: 'lan' })
  t.teardown(() => c.stop())
  await c.clock.advance(3000)
  const first: number[] = []
  c.nodes.forEach((g) =>
    g.onMessage(() => {
      first.push(c.clock.now())
    }),
  )
  const t0 = c.clock.now()
  c.nodes[0]!.broadcast('a', Buffer.from('x'))
  await c.clock.advance(30)
  t.ok(first.length > 0 && first[0]! - t0 <= 5, `first delivery after ${first[0]! - t0} ms, not a 200 ms gossip interval`)
  const origin = c.nodes[1]!
  const before = origin.stats().packetsOut.total ?? 0
  for (let k = 0; k < 200; k++) {
    origin.broadcast(`burst${k}`, Buffer.from(String(k)))
    await c.clock.advance(1)
  }
  const sent = (origin.stats().packetsOut.total ?? 0) - before
  // 200 ms: at most burst (4) + 2 refills early rounds + 1 regular round, x fanout 3, plus probes/acks.
  t.ok(sent <= 40, `${sent} datagrams from the origin during a 200-broadcast burst`)
})

t.test('push-pull carries application state both ways, with the join flag on join', async (t) => {
  const c = await simCluster(2, { seed: 24 })
  t.teardown(() => c.stop())
  const calls: string[] = []
  const mk = (g: Gossip, label: string): void =>
    g.setDelegate({
      localState: (join) => Buffer.from(`${label}:${join}`),
      mergeRemoteState: (data, join, from) => calls.push(`${label}<-${Buffer.from(data).toString()} join=${join} from=${from.name}`),
    })
  mk(c.nodes[0]!, 'A')
  const late = await c.add('late')
  mk(late, 'L')
  const joined = late.join([`${c.nodes[0]!.localMember().addr}:${c.nodes[0]!.localMember().port}`])
  await c.clock.advance(50)
  t.equal(await joined, 1)
  t.same(calls.sort(), ['A<-L:true join=true from=late', 'L<-A:true join=true from=n0'])
  calls.length = 0
  await c.clock.advance(12_000)
  t.ok(
    calls.some((x) => x.includes('join=false')),
    'periodic push-pull: ' + calls.slice(0, 2).join('; '),
  )
})

t.test('reconnect: after a partition long enough for deaths, healing merges the halves again', async (t) => {
  const c = await simCluster(6, { seed: 25 })
  t.teardown(() => c.stop())
  await c.clock.runUntil(() => c.nodes.every((g) => g.numAlive() === 6), 5000)
  const left = c.nodes.slice(0, 3).map((g) => g.localMember().addr)
  const right = c.nodes.slice(3).map((g) => g.localMember().addr)
  c.net.partition(left, right)
  t.ok(await c.clock.runUntil(() => c.nodes.every((g) => g.numAlive() === 3), 20_000), 'each half declared the other dead')
  c.net.heal()
  t.ok(
    await c.clock.runUntil(() => c.nodes.every((g) => g.numAlive() === 6), 30_000),
    `merged without a rejoin: ${c.nodes.map((g) => g.numAlive())}`,
  )
})

t.test('app requests over streams', async (t) => {
  const c = await simCluster(3, { seed: 26 })
  t.teardown(() => c.stop())
  c.nodes[1]!.onRequest((p, from) => Buffer.from(`${from} asked ${Buffer.from(p).toString()}`))
  const p = c.nodes[0]!.request('n1', Buffer.from('q'), 1000)
  await c.clock.advance(50)
  t.equal(Buffer.from(await p).toString(), 'n0 asked q')
  const p2 = c.nodes[0]!.request('n2', Buffer.from('q'), 1000)
  const e = p2.then(
    () => undefined,
    (err: { code?: string }) => err.code,
  )
  await c.clock.advance(50)
  t.equal(await e, 'SHOAL_ERR_NO_HANDLER')
  await t.rejects(c.nodes[0]!.request('nobody', Buffer.from('q')), { code: 'SHOAL_ERR_UNKNOWN_NODE' })
})
