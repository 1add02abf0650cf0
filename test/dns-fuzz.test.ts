// Malformed DNS at a live agent, over UDP and TCP: random bytes, and well-formed queries
// mutated (bit flips, cuts, extensions, huge section counts, compression loops, long labels,
// odd EDNS). The agent keeps answering: after every batch a real query gets the right answer,
// every reply it sends decodes as a DNS response, and the bad messages are counted.
import t from 'tap'
import dnsPacket from 'dns-packet'
import { seeded } from './lib/random.js'
import { dnsAgent, type StaticEntry } from './lib/dns-agent.js'
import { frame, tcpClient, udpClient } from './lib/dns-client.js'

const UDP_PACKETS = Number(process.env.SHOAL_DNS_FUZZ_PACKETS ?? 20_000)
// Small batches: on a loaded machine a large burst overflows the server's receive buffer.
const BATCH = 100
const SEED = Number(process.env.SHOAL_FUZZ_SEED ?? Date.now() % 1_000_000)

const services: StaticEntry[] = [
  { id: 'web-1', name: 'web', ports: [{ port: 8080, servicePort: 10001, ip: '127.0.1.1' }] },
  { id: 'web-2', name: 'web', ports: [{ port: 8080, servicePort: 10001, ip: '127.0.1.2' }] },
]

const valid = [
  dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'web.service.shoal', type: 'A' }] }),
  dnsPacket.encode({ type: 'query', id: 2, questions: [{ name: 'web.service.shoal', type: 'SRV' }] }),
  dnsPacket.encode({ type: 'query', id: 3, questions: [{ name: 'web-1.web.instance.shoal', type: 'ANY' as 'A' }] }),
  dnsPacket.encode({
    type: 'query',
    id: 4,
    questions: [{ name: 'web.serviceport.shoal', type: 'SRV' }],
    additionals: [
      { name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] },
    ],
  }),
  dnsPacket.encode({ type: 'query', id: 5, questions: [{ name: '7f000001.addr.shoal', type: 'A' }] }),
]

function mutate(random: () => number): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
  const int = (n: number): number => Math.floor(random() * n)
  const kind = int(9)
  if (kind === 0) return Buffer.from(Array.from({ length: int(600) }, () => int(256)))
  const b = Buffer.from(pick(valid))
  // Most mutants stay queries (QR clear), so they go past the first check.
  const clearQr = (x: Buffer): Buffer => {
    if (x.length >= 3 && random() < 0.8) x[2] = x[2]! & 0x7f
    return x
  }
  switch (kind) {
    case 1:
      for (let i = 0, n = 1 + int(4); i < n; i++) {
        const k = int(b.length)
        b[k] = b[k]! ^ (1 << int(8))
      }
      return clearQr(b)
    case 2:
      return clearQr(b.subarray(0, int(b.length)))
    case 3:
      return clearQr(Buffer.concat([b, Buffer.from(Array.from({ length: int(300) }, () => int(256)))]))
    case 4:
      // Section counts that promise far more than the message holds.
      b.writeUInt16BE(int(65536), 4 + 2 * int(4))
      return clearQr(b)
    case 5: {
      // A compression pointer to itself, or forward, in the question name.
      const p = Buffer.from(b.subarray(0, 12))
      const ptr = random() < 0.5 ? 12 : 12 + int(200)
      return clearQr(Buffer.concat([p, Buffer.from([0xc0 | (ptr >> 8), ptr & 0xff, 0, 1, 0, 1])]))
    }
    case 6: {
      // Labels of bad lengths and bytes: 63+, 0x40/0x80 types, invalid UTF-8.
      const label = Buffer.from(Array.from({ length: pick([63, 64, 100, 1]) }, () => pick([0x41, 0xff, 0x2e, 0xc3, 0x00])))
      const len = pick([label.length & 0xff, 0x40 | int(64), 0x80 | int(64), 63])
      return clearQr(Buffer.concat([b.subarray(0, 12), Buffer.from([len]), label, Buffer.from([0, 0, int(256), 0, 1])]))
    }
    case 7: {
      // An OPT record with odd sizes, versions and option lengths.
      const head = Buffer.from(b.subarray(0, 12))
      head.writeUInt16BE(1, 4)
      head.writeUInt16BE(0, 6)
      head.writeUInt16BE(0, 8)
      head.writeUInt16BE(1 + int(3), 10)
      const q = Buffer.concat([
        Buffer.from([3, 0x77, 0x65, 0x62, 7]),
        Buffer.from('service'),
        Buffer.from([5]),
        Buffer.from('shoal'),
        Buffer.from([0, 0, 1, 0, 1]),
      ])
      const opt = Buffer.alloc(11)
      opt[0] = 0
      opt.writeUInt16BE(41, 1)
      opt.writeUInt16BE(int(65536), 3)
      opt[5] = int(256)
      opt[6] = int(256)
      opt.writeUInt16BE(int(65536), 7)
      opt.writeUInt16BE(int(40), 9)
      return Buffer.concat([head, q, opt, Buffer.from(Array.from({ length: int(40) }, () => int(256)))])
    }
    default: {
      // Another opcode, a response bit, or a type or class nobody asks for.
      const x = Buffer.from(b)
      if (random() < 0.5) x.writeUInt16BE((x.readUInt16BE(2) & ~0x7800) | (int(16) << 11), 2)
      else x.writeUInt32BE(int(2 ** 32), x.length - 4)
      return clearQr(x)
    }
  }
}

t.test(`fuzz the DNS server (seed ${SEED}, SHOAL_FUZZ_SEED replays it)`, async (t) => {
  const random = seeded(SEED)
  const a = await dnsAgent(t, services)
  const c = await udpClient(t)
  let replies = 0
  let undecodable = 0
  // Probe ids far from the corpus's (1-5): a mutant flips at most 4 bits, so it never carries one.
  let probeId = 0xff00
  let resends = 0

  /** Sends a real query and reads replies until its answer comes, checking every reply on the way. */
  const probe = async (): Promise<void> => {
    const id = probeId++
    const q = dnsPacket.encode({ type: 'query', id, questions: [{ name: 'web.service.shoal', type: 'A' }] })
    c.send(a.port, q)
    // A lost datagram is asked again; the loop ends when the answer arrives (tap's timeout bounds it).
    const resend = setInterval(() => {
      resends++
      c.send(a.port, q)
    }, 250)
    try {
      for (;;) {
        const msg = await c.next()
        replies++
        let r: ReturnType<typeof dnsPacket.decode>
        try {
          r = dnsPacket.decode(msg)
        } catch {
          undecodable++
          continue
        }
        if (!r.flag_qr) undecodable++
        // A fuzzed packet's reply may still carry the probe's id (random bytes): ours names our question.
        if (r.id !== id || r.questions?.[0]?.name !== 'web.service.shoal' || r.questions[0].type !== 'A') continue
        const ips = (r.answers ?? []).map((x) => (x as { data?: unknown }).data).sort()
        if (ips.join() !== '127.0.1.1,127.0.1.2') throw new Error(`probe ${id}: wrong answer ${JSON.stringify(r)}`)
        return
      }
    } finally {
      clearInterval(resend)
    }
  }

  await probe()
  for (let sent = 0; sent < UDP_PACKETS; sent += BATCH) {
    for (let i = 0; i < BATCH; i++) c.send(a.port, mutate(random))
    await probe()
  }
  t.pass(`${UDP_PACKETS} UDP packets: the agent answered a real query after every ${BATCH}`)
  t.comment(`resends: ${resends}`)
  t.equal(undecodable, 0, `every one of ${replies} replies decodes as a DNS response`)

  // TCP: garbage frames and garbage bytes on a few connections, then a real query on a new one.
  for (let conn = 0; conn < 20; conn++) {
    const tc = await tcpClient(t, a.port)
    for (let i = 0; i < 50; i++) tc.write(random() < 0.7 ? frame(mutate(random)) : mutate(random))
    tc.socket.destroy()
  }
  const tc = await tcpClient(t, a.port)
  tc.write(frame(valid[0]!))
  const r = dnsPacket.decode(await tc.next())
  t.same(
    (r.answers ?? []).map((x) => (x as { data?: unknown }).data).sort(),
    ['127.0.1.1', '127.0.1.2'],
    'after 1,000 garbage writes over 20 TCP connections, a new connection is answered',
  )

  const metrics = await (await fetch(`${a.http}/metrics`)).text()
  const bad = [...metrics.matchAll(/^shoal_dns_bad_queries_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0)
  t.ok(bad > UDP_PACKETS / 4, `bad messages counted (${bad})`)
})
