import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { SimNetwork } from '../src/gossip/transport-sim.js'
import type { Address, Transport } from '../src/gossip/types.js'
import { isShoalError } from '../src/errors.js'

interface Node {
  t: Transport
  addr: Address
  got: Array<{ at: number; data: string; from: Address }>
}

async function node(net: SimNetwork, clock: VirtualClock, host: string): Promise<Node> {
  const tr = net.transport(host)
  const addr = await tr.start()
  const n: Node = { t: tr, addr, got: [] }
  tr.onPacket((data, from) => n.got.push({ at: clock.now(), data: Buffer.from(data).toString(), from }))
  tr.onRequest(async (data) => Buffer.from('re:' + Buffer.from(data).toString()))
  return n
}

/** A seeded generator so runs repeat. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

t.test('packets arrive after latency + jitter, with the sender address, copied on send', async (t) => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock, { latencyMs: 5, jitterMs: 3, random: rng(1) })
  const a = await node(net, clock, '10.0.0.1')
  const b = await node(net, clock, '10.0.0.2')
  t.same(a.addr, { host: '10.0.0.1', port: 7946 })
  const buf = Buffer.from('hello')
  a.t.sendPacket(b.addr, buf)
  buf.write('XXXXX')
  await clock.advance(4.99)
  t.equal(b.got.length, 0, 'not before the latency')
  await clock.advance(4)
  t.equal(b.got.length, 1)
  t.equal(b.got[0]!.data, 'hello', 'the sender reusing its buffer does not change what arrives')
  t.same(b.got[0]!.from, a.addr)
  t.ok(b.got[0]!.at >= 5 && b.got[0]!.at <= 8)
  t.match(net.stats('10.0.0.1'), { packetsSent: 1, bytesSent: 5 })
  t.match(net.stats('10.0.0.2'), { packetsReceived: 1, bytesReceived: 5 })
  net.setLatency(100, 0)
  a.t.sendPacket(b.addr, Buffer.from('slow'))
  await clock.advance(99)
  t.equal(b.got.length, 1)
  await clock.advance(1)
  t.equal(b.got.length, 2)
})

t.test('loss drops about the given share of packets and of stream exchanges', async (t) => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock, { loss: 0.3, random: rng(7) })
  const a = await node(net, clock, 'a')
  const b = await node(net, clock, 'b')
  for (let i = 0; i < 2000; i++) a.t.sendPacket(b.addr, Buffer.from('x'))
  await clock.advance(10)
  t.ok(b.got.length > 1250 && b.got.length < 1550, `${b.got.length} of 2000 arrived`)
  t.equal(net.stats('a').packetsDropped, 2000 - b.got.length)
  const results = await Promise.all(
    Array.from({ length: 200 }, () =>
      a.t.request(b.addr, Buffer.from('q'), 50).then(
        () => 'ok',
        (e) => (isShoalError(e, 'SHOAL_ERR_STREAM') ? 'err' : 'other'),
      ),
    ).concat([clock.advance(100).then(() => 'advanced')]),
  )
  const ok = results.filter((r) => r === 'ok').length
  t.equal(results.filter((r) => r === 'other').length, 0)
  t.ok(ok > 70 && ok < 130, `${ok} of 200 requests answered (both legs can be lost: ~49%)`)
  net.setLoss(0)
  const before = b.got.length
  a.t.sendPacket(b.addr, Buffer.from('x'))
  await clock.advance(10)
  t.equal(b.got.length, before + 1)
})

t.test('request/response in virtual time; refusal; a lost request times out in virtual time', async (t) => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock, { latencyMs: 10 })
  const a = await node(net, clock, 'a')
  const b = await node(net, clock, 'b')
  const reply = a.t.request(b.addr, Buffer.from('ping'), 1000)
  await clock.advance(20)
  t.equal(Buffer.from(await reply).toString(), 're:ping')
  t.equal(clock.now(), 20)

  const refused = a.t.request({ host: 'b', port: 1 }, Buffer.from('x'), 1000)
  const refusedCheck = t.rejects(refused, { code: 'SHOAL_ERR_STREAM', message: /refused/ })
  await clock.advance(20)
  await refusedCheck

  net.setLoss(1)
  let settled = false
  const lost = a.t.request(b.addr, Buffer.from('x'), 500).finally(() => (settled = true))
  const lostCheck = t.rejects(lost, { code: 'SHOAL_ERR_STREAM', message: /500 ms/ })
  await clock.advance(499)
  t.notOk(settled, 'still waiting before its timeout')
  await clock.advance(1)
  await lostCheck

  net.setLoss(0)
  b.t.onRequest(async () => {
    throw new Error('boom')
  })
  const failing = a.t.request(b.addr, Buffer.from('x'), 1000)
  const failingCheck = t.rejects(failing, { code: 'SHOAL_ERR_STREAM', message: /without an answer/ })
  await clock.advance(20)
  await failingCheck
  t.equal(net.stats('b').handlerErrors, 1)

  b.t.onPacket(() => {
    throw new Error('packet boom')
  })
  a.t.sendPacket(b.addr, Buffer.from('x'))
  await clock.advance(20)
  t.equal(net.stats('b').handlerErrors, 2, 'a throwing packet handler is counted, not thrown')

  const pending = a.t.request(b.addr, Buffer.from('x'), 1000)
  const stopCheck = t.rejects(pending, { code: 'SHOAL_ERR_STREAM', message: /stopped/ })
  await a.t.stop()
  await stopCheck
  await a.t.stop()
  await clock.advance(1000)
  t.equal(clock.pending(), 0, 'no timer left behind once in-flight traffic has landed')
})

t.test('partition drops traffic both ways until heal', async (t) => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock)
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((h) => node(net, clock, h)))
  net.partition(['a'], ['b', 'c'])
  a!.t.sendPacket(b!.addr, Buffer.from('1'))
  b!.t.sendPacket(a!.addr, Buffer.from('2'))
  c!.t.sendPacket(b!.addr, Buffer.from('3'))
  const req = a!.t.request(c!.addr, Buffer.from('r'), 100)
  const reqCheck = t.rejects(req, { code: 'SHOAL_ERR_STREAM' })
  await clock.advance(200)
  await reqCheck
  t.equal(a!.got.length, 0)
  t.same(
    b!.got.map((g) => g.data),
    ['3'],
    'same side still talks',
  )
  net.heal()
  a!.t.sendPacket(b!.addr, Buffer.from('4'))
  const ok = a!.t.request(c!.addr, Buffer.from('r'), 100)
  await clock.advance(10)
  t.equal(Buffer.from(await ok).toString(), 're:r')
  t.same(
    b!.got.map((g) => g.data),
    ['3', '4'],
  )
})

t.test('a crashed host neither sends nor receives, until restored', async (t) => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock)
  const a = await node(net, clock, 'a')
  const b = await node(net, clock, 'b')
  net.crash('b')
  a.t.sendPacket(b.addr, Buffer.from('1'))
  b.t.sendPacket(a.addr, Buffer.from('2'))
  const req = a.t.request(b.addr, Buffer.from('r'), 100)
  const reqCheck = t.rejects(req, { code: 'SHOAL_ERR_STREAM', message: /no answer/ })
  await clock.advance(200)
  await reqCheck
  t.equal(a.got.length + b.got.length, 0)
  t.equal(net.stats('b').packetsSent, 0)
  net.restore('b')
  a.t.sendPacket(b.addr, Buffer.from('3'))
  await clock.advance(10)
  t.same(
    b.got.map((g) => g.data),
    ['3'],
  )
})

t.test('filter: duplicate, delay (reorder) and drop; tap sees every datagram', async (t) => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock, { latencyMs: 1 })
  const a = await node(net, clock, 'a')
  const b = await node(net, clock, 'b')
  const seen: Array<[string, number]> = []
  const untap = net.tap((_from, _to, data, kind) => seen.push([kind, data.length]))
  net.setFilter((_from, _to, data) => {
    const s = Buffer.from(data).toString()
    if (s === 'dup') return { duplicate: 2 }
    if (s === 'late') return { delayMs: 50 }
    if (s === 'drop') return { drop: true }
    return undefined
  })
  for (const m of ['late', 'dup', 'drop', 'plain']) a.t.sendPacket(b.addr, Buffer.from(m))
  await clock.advance(10)
  t.same(
    b.got.map((g) => g.data),
    ['dup', 'dup', 'dup', 'plain'],
  )
  await clock.advance(50)
  t.same(
    b.got.map((g) => g.data),
    ['dup', 'dup', 'dup', 'plain', 'late'],
    'delayed packet arrives after later ones',
  )
  t.equal(net.stats('a').packetsDropped, 1)
  t.same(seen, [
    ['packet', 4],
    ['packet', 3],
    ['packet', 4],
    ['packet', 5],
  ])
  const r = a.t.request(b.addr, Buffer.from('q'), 100)
  await clock.advance(10)
  await r
  t.same(seen.slice(4), [
    ['request', 1],
    ['response', 4],
  ])
  untap()
  net.setFilter(undefined)
  a.t.sendPacket(b.addr, Buffer.from('drop'))
  await clock.advance(10)
  t.equal(seen.length, 6)
  t.equal(b.got.at(-1)!.data, 'drop')
})

t.test('ports: 0 picks a free one, a taken one is refused; 3000 nodes deliver every packet', async (t) => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock, { latencyMs: 2, jitterMs: 2 })
  const x = await net.transport('h', 0).start()
  const y = await net.transport('h', 0).start()
  t.not(x.port, y.port)
  await t.rejects(net.transport('h', x.port).start(), { code: 'SHOAL_ERR_BIND' })

  const nodes: Node[] = []
  for (let i = 0; i < 3000; i++) nodes.push(await node(net, clock, `n${i}`))
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < nodes.length; i++) {
      for (let k = 1; k <= 3; k++) nodes[i]!.t.sendPacket(nodes[(i + k * 7) % nodes.length]!.addr, Buffer.alloc(200))
    }
    await clock.advance(100)
  }
  const total = nodes.reduce((s, n) => s + n.got.length, 0)
  t.equal(total, 90_000)
  t.equal(net.stats().packetsReceived, 90_000)
  // Speed is a benchmark matter (bench/gossip-sim.ts), not a timed assertion on a noisy machine.
})
