// 100,000+ random and mutated packets at a live node over real UDP: it keeps answering
// probes and its member list does not change.
import t from 'tap'
import { NetTransport } from '../src/gossip/transport-net.js'
import { Wire, decodeRefusal } from '../src/gossip/wire.js'
import { MessageType, decodeNotes, decodePacket, encodeCompound, encodeMessage, type Message } from '../src/gossip/messages.js'
import { silentLogger } from '../src/log.js'
import type { Gossip } from '../src/gossip/gossip.js'
import { addr, netNode, until } from './lib/gossip-net.js'
import { seeded } from './lib/gossip-sim.js'

const TOTAL = 100_000

// The member list without incarnations: a loaded machine can starve the target's probes during the
// flood, and the peer then refutes a real suspicion with a higher incarnation of its own. That is
// SWIM at work, not the fuzz; `incarnationsForged` names an incarnation the target holds above the
// one its owner announced, which only a forged message makes (one below is a refutation on its way).
function view(g: Gossip): string {
  return g
    .members()
    .map((m) => `${m.name}@${m.addr}:${m.port}/${m.state}/${JSON.stringify(m.meta)}`)
    .sort()
    .join('\n')
}

function incarnationsForged(g: Gossip, owners: Gossip[]): string[] {
  return owners.flatMap((o) => {
    const own = o.localMember()
    const held = g.members().find((m) => m.name === own.name)?.incarnation ?? 0
    return held > own.incarnation ? [`${own.name}: held at ${held}, its owner at ${own.incarnation}`] : []
  })
}

t.test('fuzz a live node', async (t) => {
  const target = await netNode(t, 'target')
  const peer = await netNode(t, 'peer')
  await peer.join([addr(target)])
  t.ok(await until(() => target.numAlive() === 2 && peer.numAlive() === 2, 5000))
  const got: Uint8Array[] = []
  target.onMessage((p) => {
    got.push(p)
  })

  const raw = new NetTransport({ bind: { host: '127.0.0.1', port: 0 } }, { logger: silentLogger() })
  t.teardown(() => raw.stop())
  const me = await raw.start()
  const acks = new Set<number>()
  const wire = new Wire({ label: 'test' })
  raw.onPacket((data) => {
    try {
      for (const m of decodePacket(wire.open(data))) if (m.type === MessageType.ack) acks.add(m.seq)
    } catch {
      /* not for us */
    }
  })
  const to = { host: target.localMember().addr, port: target.localMember().port }
  const tm = target.localMember()
  const valid: Message[] = [
    { type: MessageType.ping, seq: 1, target: 'target', from: 'fuzz', addr: me.host, port: me.port },
    {
      type: MessageType.alive,
      name: 'peer',
      inc: 1,
      addr: peer.localMember().addr,
      port: peer.localMember().port,
      meta: { ...peer.localMember().meta },
    },
    { type: MessageType.alive, name: 'target', inc: tm.incarnation, addr: tm.addr, port: tm.port, meta: { ...tm.meta } },
    { type: MessageType.suspect, name: 'peer', inc: 0, from: 'fuzz' },
    { type: MessageType.dead, name: 'ghost', inc: 5, from: 'fuzz' },
    { type: MessageType.nack, seq: 3 },
    {
      type: MessageType.indirectPing,
      seq: 9,
      target: 'peer',
      addr: '127.0.0.1',
      port: peer.localMember().port,
      from: 'fuzz',
      fromAddr: me.host,
      fromPort: me.port,
      nack: true,
    },
  ]
  const encoded = valid.map(encodeMessage)
  const known = new Set(encoded.map((e) => Buffer.from(e).toString('hex')))
  const compound = encodeCompound(encoded)
  const sealedValid = [...encoded, compound].map((p) => wire.seal(p))
  const before = view(target)
  const errsBefore = target.stats().decodeErrors
  const t0 = Date.now()
  const rnd = seeded(42)
  const byte = (): number => Math.floor(rnd() * 256)
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!
  let harmlessValid = 0
  let expectedBad = 0
  let sent = 0
  for (let i = 0; sent < TOTAL; i++) {
    // Yield often: sender and receiver share this process, and the kernel drops what overflows.
    if (i % 20 === 0) await new Promise((r) => setImmediate(r))
    const kind = i % 5
    let pkt: Buffer
    if (kind === 0) {
      pkt = Buffer.from(Array.from({ length: Math.floor(rnd() * 600) }, byte))
    } else if (kind === 1) {
      // A sealed packet with bytes flipped, cut or appended: caught by the envelope.
      pkt = Buffer.from(pick(sealedValid))
      const n = 1 + Math.floor(rnd() * 4)
      for (let k = 0; k < n; k++) pkt[Math.floor(rnd() * pkt.length)]! ^= 1 + Math.floor(rnd() * 255)
      if (rnd() < 0.3) pkt = pkt.subarray(0, Math.floor(rnd() * pkt.length))
    } else if (kind === 2 || kind === 3) {
      // A mutated payload sealed correctly: reaches the decoder, which drops the packet or its
      // malformed compound parts. Only payloads with something to reject and nothing new are sent
      // (a mutation that forms a valid message, or a type a newer release might use, is authentic
      // traffic, not fuzz).
      let p = Buffer.from(pick([...encoded, compound]))
      const n = 1 + Math.floor(rnd() * 3)
      for (let k = 0; k < n; k++) p[Math.floor(rnd() * p.length)] = byte()
      if (kind === 3) p = rnd() < 0.5 ? p.subarray(0, Math.floor(rnd() * p.length)) : Buffer.concat([p, Buffer.from([byte(), byte()])])
      const notes = decodeNotes()
      let bad = 1
      try {
        const kept = decodePacket(p, notes)
        const novel = kept.some((m) => !known.has(encodeMessage(m).toString('hex')))
        bad = novel || notes.unknownTypes > 0 || notes.extraFields > 0 ? 0 : notes.malformedParts
      } catch {
        /* invalid: send it */
      }
      if (bad === 0) {
        harmlessValid++
        continue
      }
      pkt = wire.seal(p)
      expectedBad += bad - 1
    } else {
      // Replays of valid packets: no state change, pings answered.
      pkt = pick(sealedValid)
      raw.sendPacket(to, pkt)
      sent++
      continue
    }
    expectedBad++
    sent++
    raw.sendPacket(to, pkt)
  }
  t.comment(`send loop done at ${Date.now() - t0} ms`)
  t.ok(expectedBad > 70_000, `${expectedBad} bad packets sent (${harmlessValid} mutations formed valid messages and were skipped)`)
  await until(() => target.stats().decodeErrors - errsBefore >= expectedBad * 0.9, 10_000)
  const counted = target.stats().decodeErrors - errsBefore
  t.ok(counted >= expectedBad * 0.9, `${counted} counted as decode errors (some UDP may be dropped by the kernel)`)
  t.ok(counted <= expectedBad, 'no valid replay counted as an error')

  t.comment(`counted at ${Date.now() - t0} ms`)
  // Garbage on the stream side too: answered with nothing but a 2-byte refusal naming the reason.
  const refusals = new Map<string, number>()
  for (let i = 0; i < 200; i++) {
    await raw.request(to, Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 300) }, byte)), 1000).then(
      (answer) => {
        const reason = decodeRefusal(answer)
        if (reason === undefined) t.fail(`garbage stream answered with ${answer.length} bytes that are not a refusal`)
        else refusals.set(reason, (refusals.get(reason) ?? 0) + 1)
      },
      () => undefined,
    )
  }
  t.ok(refusals.size > 0, `garbage streams refused: ${JSON.stringify(Object.fromEntries(refusals))}`)

  t.comment(`streams at ${Date.now() - t0} ms`)
  t.equal(view(target), before, 'member list unchanged')
  t.same(incarnationsForged(target, [target, peer]), [], 'no incarnation held above the one its owner announced')
  t.ok(sent >= TOTAL, `${sent} packets sent`)
  t.same(got, [], 'no application message delivered')
  acks.clear()
  raw.sendPacket(
    to,
    wire.seal(encodeMessage({ type: MessageType.ping, seq: 777, target: 'target', from: 'fuzz', addr: me.host, port: me.port })),
  )
  t.ok(await until(() => acks.has(777), 2000), 'still answers a probe')
  await new Promise((r) => setTimeout(r, 500))
  t.equal(peer.members().find((m) => m.name === 'target')?.state, 'alive', 'its peer still sees it alive')
  t.equal(view(target), before, 'member list still unchanged')
  t.same(incarnationsForged(target, [target, peer]), [], "still no incarnation held above its owner's")
})
