// The DNS server's wire rules, with exact bytes on real sockets: FORMERR, NOTIMP and BADVERS
// for what is not a standard query, silence for responses, the UDP size limit of 512 bytes or
// the EDNS size, SERVFAIL until the warm start is done, several queries on one TCP connection,
// idle connections closed, bad messages counted and logged, and nothing left after stop().
import t from 'tap'
import net from 'node:net'
import dgram from 'node:dgram'
import { Writable } from 'node:stream'
import dnsPacket, { type Packet } from 'dns-packet'
import { Registry } from 'prom-client'
import { createLogger } from '../src/log.js'
import { DnsServer } from '../src/dns/index.js'
import { dnsAgent, type StaticEntry } from './lib/dns-agent.js'
import { frame, tcpClient, udpClient } from './lib/dns-client.js'

const services: StaticEntry[] = Array.from({ length: 40 }, (_, i) => ({
  id: `web-${i}`,
  name: 'web',
  ports: [{ port: 8080, servicePort: 10001, ip: `127.0.1.${i + 1}` }],
}))

const query = (id: number, name = 'web.service.shoal', more: Partial<Packet> = {}): Buffer =>
  dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }], ...more })

const rcodeOf = (b: Buffer): number => b.readUInt16BE(2) & 0xf

t.test('wire rules', async (t) => {
  const lines: Array<{ level: number; msg: string; reason?: string; from?: string }> = []
  const sink = new Writable({
    write(chunk, _e, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l))
      cb()
    },
  })
  const a = await dnsAgent(t, services, { logger: createLogger({ level: 'debug', destination: sink }) })
  const c = await udpClient(t)

  t.test('a well-formed query is answered, echoing id, question and RD', async (t) => {
    c.send(a.port, query(11))
    const r = dnsPacket.decode(await c.next())
    t.equal(r.id, 11)
    t.ok(r.flag_qr && r.flag_aa && r.flag_rd)
    t.same(r.questions, [{ name: 'web.service.shoal', type: 'A', class: 'IN' }])
  })

  t.test('a response sent to the server is never answered', async (t) => {
    c.send(a.port, dnsPacket.encode({ type: 'response', id: 21, questions: [{ name: 'web.service.shoal', type: 'A' }] }))
    c.send(a.port, query(22))
    t.equal(dnsPacket.decode(await c.next()).id, 22, 'the next datagram back answers the query after it')
  })

  t.test('undecodable: FORMERR with the id, without a question', async (t) => {
    const cut = query(31).subarray(0, 20)
    c.send(a.port, cut)
    const r = await c.next()
    t.equal(r.readUInt16BE(0), 31)
    t.equal(rcodeOf(r), 1, 'FORMERR')
    t.equal(r.readUInt16BE(4), 0, 'no question echoed')
  })

  t.test('two questions: FORMERR', async (t) => {
    c.send(
      a.port,
      dnsPacket.encode({
        type: 'query',
        id: 41,
        questions: [
          { name: 'web.service.shoal', type: 'A' },
          { name: 'web.service.shoal', type: 'AAAA' },
        ],
      }),
    )
    t.equal(rcodeOf(await c.next()), 1)
  })

  t.test('an opcode other than QUERY: NOTIMP', async (t) => {
    const msg = query(51)
    msg.writeUInt16BE(msg.readUInt16BE(2) | (2 << 11), 2) // STATUS
    c.send(a.port, msg)
    const r = await c.next()
    t.equal(rcodeOf(r), 4)
    t.equal((r.readUInt16BE(2) >> 11) & 0xf, 2, 'the opcode is echoed')
  })

  t.test('a zone transfer (AXFR, IXFR) over UDP or TCP: NOTIMP, not an empty NOERROR', async (t) => {
    for (const [i, type] of (['AXFR', 'IXFR'] as const).entries()) {
      c.send(a.port, dnsPacket.encode({ type: 'query', id: 71 + i, questions: [{ name: 'shoal', type }] }))
      const r = dnsPacket.decode(await c.next())
      t.equal(r.id, 71 + i)
      t.equal((r as { rcode?: string }).rcode, 'NOTIMP', `${type} over UDP`)
      t.same(r.answers, [], 'no records')
    }
    const tc = await tcpClient(t, a.port)
    tc.write(frame(dnsPacket.encode({ type: 'query', id: 73, questions: [{ name: 'service.shoal', type: 'AXFR' }] })))
    t.equal((dnsPacket.decode(await tc.next()) as { rcode?: string }).rcode, 'NOTIMP', 'AXFR over TCP')
  })

  t.test('EDNS version 1: BADVERS', async (t) => {
    c.send(
      a.port,
      query(61, 'web.service.shoal', {
        additionals: [
          { name: '.', type: 'OPT', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 1, flags: 0, flag_do: false, options: [] },
        ],
      }),
    )
    const r = dnsPacket.decode(await c.next())
    const opt = r.additionals?.find((x) => x.type === 'OPT') as { extendedRcode: number } | undefined
    t.equal(opt?.extendedRcode, 1, 'extended RCODE 1 with header RCODE 0: BADVERS (16)')
    t.equal(r.answers?.length, 0)
  })

  t.test('UDP size: 512 without EDNS, the advertised size with it', async (t) => {
    c.send(a.port, query(71))
    const plain = await c.next()
    t.ok(plain.length <= 512, `${plain.length} bytes`)
    t.ok(dnsPacket.decode(plain).flag_tc, '40 A records do not fit 512 bytes uncompressed: TC')
    const opt = (size: number): Partial<Packet> => ({
      additionals: [
        { name: '.', type: 'OPT', udpPayloadSize: size, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] },
      ],
    })
    c.send(a.port, query(72, 'web.service.shoal', opt(4096)))
    const large = dnsPacket.decode(await c.next())
    t.notOk(large.flag_tc)
    t.equal(large.answers?.length, 40, 'all of them with 4096')
    c.send(a.port, query(73, 'web.service.shoal', opt(100)))
    t.ok((await c.next()).length <= 512, 'an advertised size below 512 counts as 512')
  })

  t.test('SRV over 512 bytes: the glue goes first, TC only when answers have to go', async (t) => {
    // Six SRV records (about 60 bytes each) fit 512 bytes; with their six glue A records (about 40 each) they do not.
    const six = await dnsAgent(t, services.slice(0, 6), { node: 'six' })
    c.send(six.port, dnsPacket.encode({ type: 'query', id: 81, questions: [{ name: 'web.service.shoal', type: 'SRV' }] }))
    const r = dnsPacket.decode(await c.next())
    t.equal(r.answers?.length, 6, 'every SRV record')
    t.equal(r.additionals?.length, 0, 'no glue')
    t.notOk(r.flag_tc, 'and no TC: the answer is complete (RFC 2181 section 9)')
  })

  t.test('TCP: pipelined and byte-by-byte queries on one connection', async (t) => {
    const tc = await tcpClient(t, a.port)
    tc.write(Buffer.concat([frame(query(91)), frame(query(92))]))
    const first = dnsPacket.decode(await tc.next())
    const second = dnsPacket.decode(await tc.next())
    t.same([first.id, second.id], [91, 92], 'answered in order')
    t.equal(first.answers?.length, 40, 'whole over TCP')
    for (const byte of frame(query(93))) tc.write(Buffer.from([byte]))
    t.equal(dnsPacket.decode(await tc.next()).id, 93)
    // 500 queries in one write, more than the 16 a connection may have waiting: it is paused
    // and resumed, and every one is answered, in order.
    tc.write(Buffer.concat(Array.from({ length: 500 }, (_, i) => frame(query(1000 + i)))))
    const ids: number[] = []
    for (let i = 0; i < 500; i++) ids.push(dnsPacket.decode(await tc.next()).id!)
    t.same(
      ids,
      Array.from({ length: 500 }, (_, i) => 1000 + i),
      '500 pipelined queries answered in order',
    )
  })

  t.test('bad messages are counted and logged with their source', async (t) => {
    const metrics = await (await fetch(`${a.http}/metrics`)).text()
    for (const reason of ['response', 'malformed', 'questions', 'opcode', 'edns-version', 'transfer']) {
      t.match(metrics, new RegExp(`shoal_dns_bad_queries_total\\{transport="udp",reason="${reason}"\\} [1-9]`), reason)
    }
    t.match(metrics, /shoal_dns_queries_total\{transport="udp",rcode="NOERROR"\} [1-9]/)
    t.match(metrics, /shoal_dns_truncated_total [1-9]/)
    const bad = lines.filter((l) => /bad DNS message/.test(l.msg))
    t.ok(bad.length >= 5, 'one line per bad message (a warning, then debug lines)')
    t.equal(bad[0]?.level, 40, 'the first one is a warning')
    t.match(bad[0]?.from ?? '', /^127\.0\.0\.1:\d+$/, 'naming the source')
    t.match(bad[0]?.msg ?? '', /send a standard query/, 'saying what to do')
  })
})

t.test('SERVFAIL until ready; an idle TCP connection is closed; stop leaves the port free', async (t) => {
  const a = await dnsAgent(t, services.slice(0, 1))
  // A second server on the same live catalog, not ready yet: what a restarted agent shows before its first push-pull.
  const dns = new DnsServer(
    { bind: { host: '127.0.0.1', port: 0 }, tcpIdleMs: 200 },
    { logger: createLogger({ level: 'silent' }), catalog: a.agent.view(), registry: new Registry() },
  )
  t.teardown(() => dns.stop())
  const { port } = await dns.start()
  const c = await udpClient(t)
  c.send(port, query(1))
  t.equal(rcodeOf(await c.next()), 2, 'SERVFAIL before the warm start')
  c.send(port, query(2, 'example.com'))
  t.equal(rcodeOf(await c.next()), 5, 'names outside the domain are REFUSED all the same')
  dns.setReady(true)
  c.send(port, query(3))
  const raw = await c.next()
  t.equal(rcodeOf(raw), 0, 'NOERROR once ready')
  const r = dnsPacket.decode(raw)
  t.same(
    r.answers?.map((x) => (x as { data?: unknown }).data),
    ['127.0.1.1'],
  )

  const idle = await tcpClient(t, port)
  await idle.closed
  t.pass('an idle connection is closed by the server')

  const open = await tcpClient(t, port)
  await dns.stop()
  await open.closed
  t.pass('stop() closes open connections')
  // The port is free again on both protocols.
  const tcp = net.createServer()
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject)
    tcp.listen(port, '127.0.0.1', resolve)
  })
  await new Promise<void>((r) => tcp.close(() => r()))
  const udp = dgram.createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject)
    udp.bind(port, '127.0.0.1', resolve)
  })
  await new Promise<void>((r) => udp.close(() => r()))
  t.pass('UDP and TCP port free after stop()')
})
