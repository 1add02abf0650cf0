// The gossip TCP port before any authentication: an absolute deadline per incoming request
// (bytes that keep dribbling do not extend it), a cap on streams open at once and on request
// bytes in flight, a request frame cap, counters exported as shoal_gossip_* metrics and one
// warning per peer host and reason a minute. Real sockets on 127.0.0.1, port 0.
import t from 'tap'
import net from 'node:net'
import { Registry } from 'prom-client'
import { RealClock } from '../src/clock.js'
import { Gossip } from '../src/gossip/gossip.js'
import { NetTransport, type NetTransportOptions } from '../src/gossip/transport-net.js'
import type { Address } from '../src/gossip/types.js'
import { registerGossipMetrics } from '../src/http/metrics.js'
import { silentLogger, type Logger } from '../src/log.js'
import { capturedLogger } from './lib/log.js'
import { seeded } from './lib/random.js'
import { until } from './lib/gossip-net.js'

const local = { host: '127.0.0.1', port: 0 }
type Teardown = { teardown(fn: () => unknown): void }

async function started(t: Teardown, opts: Omit<NetTransportOptions, 'bind'> = {}, logger: Logger = silentLogger()) {
  const tr = new NetTransport({ bind: local, ...opts }, { logger })
  t.teardown(() => tr.stop())
  const addr = await tr.start()
  tr.onRequest(async (data) => Buffer.from(`ok ${data.length}`))
  return { tr, addr }
}

function header(length: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(length)
  return b
}

/** A raw client: `closed` resolves once the server ends it, with what came back. */
function client(t: Teardown, addr: Address) {
  const s = net.connect(addr.port, addr.host)
  t.teardown(() => s.destroy())
  const got: Buffer[] = []
  s.on('data', (d) => got.push(d))
  s.on('error', () => undefined)
  const connected = new Promise<void>((r) => s.once('connect', () => r()))
  const closed = new Promise<Buffer>((r) => s.once('close', () => r(Buffer.concat(got))))
  let isClosed = false
  void closed.then(() => (isClosed = true))
  return { s, connected, closed, isClosed: () => isClosed }
}

t.test('a request still dribbling in is closed at its absolute deadline, counted and warned once', async (t) => {
  const { logger, lines } = capturedLogger('warn')
  const a = await started(t, { requestDeadlineMs: 300, idleTimeoutMs: 60_000 }, logger)
  const c = client(t, a.addr)
  await c.connected
  c.s.write(Buffer.concat([header(100_000), Buffer.alloc(100)]))
  // One byte every 20 ms, never the whole frame: an inactivity timer would never fire.
  let sent = 0
  const drip = setInterval(() => {
    if (c.isClosed()) return
    c.s.write(Buffer.alloc(1))
    sent++
  }, 20)
  t.teardown(() => clearInterval(drip))
  // The bound only keeps a broken build from hanging the run; 300 ms is the deadline under test.
  t.ok(await until(c.isClosed, 30_000), 'the server closed the stream')
  clearInterval(drip)
  t.ok(sent > 0, `bytes kept arriving after the frame header (${sent})`)
  t.equal((await c.closed).length, 0, 'no answer')
  t.equal(a.tr.stats().streamsRefused.deadline, 1)
  t.ok(a.tr.stats().streamErrors >= 1)
  await until(() => a.tr.stats().incomingStreams === 0, 5000)
  t.equal(a.tr.stats().incomingBytes, 0, 'its reserved bytes are released')
  const warns = lines.filter((l) => l.level === 40)
  t.equal(warns.length, 1)
  t.match(
    warns[0]?.msg,
    /gossip stream from 127\.0\.0\.1:\d+ closed \(deadline\): \d+ bytes of 100004 bytes arrived within the 300 ms request deadline/,
  )

  // A request that arrives whole within the deadline is answered as before.
  const ok = client(t, a.addr)
  await ok.connected
  ok.s.write(Buffer.concat([header(5), Buffer.from('hello')]))
  t.equal((await ok.closed).subarray(4).toString(), 'ok 5')
})

t.test('streams over the cap are closed at once and counted; the ones open stay served', async (t) => {
  const a = await started(t, { maxIncomingStreams: 3 })
  const open = [client(t, a.addr), client(t, a.addr), client(t, a.addr)]
  for (const c of open) await c.connected
  t.ok(await until(() => a.tr.stats().incomingStreams === 3, 10_000), 'three streams open')
  const excess = client(t, a.addr)
  t.equal((await excess.closed).length, 0, 'the fourth is closed without an answer')
  t.equal(a.tr.stats().streamsRefused.streams, 1)
  t.equal(a.tr.stats().incomingStreams, 3)
  // The open ones are still served.
  open[0]!.s.write(Buffer.concat([header(2), Buffer.from('hi')]))
  t.equal((await open[0]!.closed).subarray(4).toString(), 'ok 2')
  for (const c of open) c.s.destroy()
  t.ok(await until(() => a.tr.stats().incomingStreams === 0, 10_000))
  const later = client(t, a.addr)
  await later.connected
  later.s.write(Buffer.concat([header(1), Buffer.from('x')]))
  t.equal((await later.closed).subarray(4).toString(), 'ok 1', 'a stream is taken again once others closed')
})

t.test('request bytes in flight are capped; frames over the request limit are refused', async (t) => {
  const a = await started(t, { maxRequestBytes: 1000, maxIncomingBytes: 2500 })
  const first = client(t, a.addr)
  const second = client(t, a.addr)
  for (const c of [first, second]) {
    await c.connected
    c.s.write(Buffer.concat([header(1000), Buffer.alloc(10)]))
  }
  t.ok(await until(() => a.tr.stats().incomingBytes === 2000, 10_000), 'two announced frames reserved')
  const third = client(t, a.addr)
  await third.connected
  third.s.write(Buffer.concat([header(1000), Buffer.alloc(10)]))
  t.equal((await third.closed).length, 0, 'the third would pass the byte budget: closed')
  t.equal(a.tr.stats().streamsRefused.bytes, 1)
  const small = client(t, a.addr)
  await small.connected
  small.s.write(Buffer.concat([header(400), Buffer.alloc(400)]))
  t.equal((await small.closed).subarray(4).toString(), 'ok 400', 'a request that fits the budget is answered')

  const big = client(t, a.addr)
  await big.connected
  big.s.write(header(1001))
  t.equal((await big.closed).length, 0)
  t.equal(a.tr.stats().streamsRefused.oversize, 1)
  t.equal(a.tr.stats().oversizeFrames, 1)
  second.s.write(Buffer.alloc(990))
  t.equal((await second.closed).subarray(4).toString(), 'ok 1000', 'a frame at the request limit passes')
})

t.test('the default request limit refuses the 8 MiB frame of the report; a push-pull-sized one passes', async (t) => {
  const a = await started(t)
  const c = client(t, a.addr)
  await c.connected
  c.s.write(Buffer.concat([header(8 * 1024 * 1024), Buffer.alloc(64)]))
  t.equal((await c.closed).length, 0)
  t.equal(a.tr.stats().streamsRefused.oversize, 1)
  const b = await started(t)
  const reply = await b.tr.request(a.addr, Buffer.alloc(2 * 1024 * 1024), 30_000)
  t.equal(Buffer.from(reply).toString(), `ok ${2 * 1024 * 1024}`, 'a 2 MiB push-pull (1,800 hosts at worst-case sizes) is answered')
})

t.test('one warning per peer host and reason a minute; the counters reach /metrics', async (t) => {
  const { logger, lines } = capturedLogger('warn')
  const a = await started(t, { maxRequestBytes: 100 }, logger)
  for (let i = 0; i < 20; i++) {
    const c = client(t, a.addr)
    await c.connected
    c.s.write(header(101))
    await c.closed
  }
  t.equal(a.tr.stats().streamsRefused.oversize, 20)
  const warns = lines.filter((l) => l.level === 40)
  t.equal(warns.length, 1, 'twenty refusals, one line')
  t.match(warns[0], { peer: /^127\.0\.0\.1:\d+$/, reason: 'oversize', msg: /frame of 101 bytes exceeds the 100-byte limit/ })

  const gossip = new Gossip(
    { name: 'm', cluster: 'test', profile: 'local' },
    { transport: a.tr, clock: new RealClock(), logger: silentLogger() },
  )
  const registry = new Registry()
  registerGossipMetrics(
    registry,
    () => gossip.stats(),
    () => gossip.members(),
    () => a.tr.stats(),
  )
  const text = await registry.metrics()
  t.match(text, /shoal_gossip_streams_refused_total\{reason="oversize"\} 20\n/)
  t.match(text, /shoal_gossip_streams_refused_total\{reason="deadline"\} 0\n/)
  t.match(text, /shoal_gossip_oversize_frames_total 20\n/)
  t.match(text, /shoal_gossip_stream_errors_total 20\n/)
  t.match(text, /shoal_gossip_incoming_streams 0\n/)
  t.match(text, /shoal_gossip_name_conflicts_total 0\n/)
})

// Property: whatever mix of honest, slow, oversize and abandoned streams arrives, the bytes
// reserved never pass the budget, the streams never pass the cap, every stream ends either
// answered or refused with a counted reason, and nothing stays reserved afterwards.
t.test('property: random stream mixes keep every limit and release everything', async (t) => {
  const runs = Number(process.env.SHOAL_STREAM_RUNS ?? 8)
  const seed0 = Number(process.env.SHOAL_STREAM_SEED ?? Date.now() % 100_000)
  for (let run = 0; run < runs; run++) {
    const seed = seed0 + run
    const random = seeded(seed)
    const opts = { maxRequestBytes: 4000, maxIncomingBytes: 10_000, maxIncomingStreams: 6, requestDeadlineMs: 400 }
    const a = await started(t, opts)
    let worst = { bytes: 0, streams: 0 }
    const watch = setInterval(() => {
      const s = a.tr.stats()
      worst = { bytes: Math.max(worst.bytes, s.incomingBytes), streams: Math.max(worst.streams, s.incomingStreams) }
    }, 2)
    const kinds = ['whole', 'slow', 'oversize', 'stall', 'abandon'] as const
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const kind = kinds[Math.floor(random() * kinds.length)]!
        const len = kind === 'oversize' ? 4001 + Math.floor(random() * 10_000) : Math.floor(random() * 4001)
        const pieces = 1 + Math.floor(random() * 5)
        await new Promise((r) => setTimeout(r, Math.floor(random() * 50)))
        const c = client(t, a.addr)
        await c.connected
        const body = Buffer.concat([header(len), Buffer.alloc(kind === 'oversize' ? 0 : len)])
        const cut = kind === 'stall' ? Math.max(5, body.length - 1) : body.length
        for (let i = 0; i < pieces && !c.isClosed(); i++) {
          c.s.write(body.subarray(Math.floor((cut * i) / pieces), Math.floor((cut * (i + 1)) / pieces)))
          if (kind === 'slow') await new Promise((r) => setTimeout(r, 10))
        }
        if (kind === 'abandon') c.s.destroy()
        const got = await c.closed
        return { kind, len, answered: got.length > 0 ? got.subarray(4).toString() === `ok ${len}` : false }
      }),
    )
    clearInterval(watch)
    t.ok(await until(() => a.tr.stats().incomingStreams === 0, 10_000), `seed ${seed}: every stream closed`)
    const s = a.tr.stats()
    t.equal(s.incomingBytes, 0, `seed ${seed}: nothing stays reserved`)
    t.ok(worst.bytes <= opts.maxIncomingBytes, `seed ${seed}: bytes in flight ${worst.bytes} <= ${opts.maxIncomingBytes}`)
    t.ok(worst.streams <= opts.maxIncomingStreams, `seed ${seed}: streams ${worst.streams} <= ${opts.maxIncomingStreams}`)
    for (const o of outcomes) {
      if (o.kind === 'oversize' || o.kind === 'stall') t.notOk(o.answered, `seed ${seed}: a ${o.kind} stream is never answered`)
    }
    const refused = Object.values(s.streamsRefused).reduce((x, y) => x + y, 0)
    const answered = outcomes.filter((o) => o.answered).length
    const abandoned = outcomes.filter((o) => o.kind === 'abandon' && !o.answered).length
    t.ok(
      s.streamsRefused.oversize <= outcomes.filter((o) => o.kind === 'oversize').length,
      `seed ${seed}: only oversize frames counted oversize`,
    )
    t.ok(answered + refused + abandoned >= outcomes.length, `seed ${seed}: each stream answered, refused or abandoned`)
    await a.tr.stop()
  }
})
