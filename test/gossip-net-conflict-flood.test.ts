// Without gossip keys a conflict notice is a plain CRC envelope anyone can forge. A flood of
// them, each naming another address, must give one warning and one `conflict` event a minute
// (the line counting the rest), count every one, and keep no memory per forged address.
import t from 'tap'
import dgram from 'node:dgram'
import { RealClock } from '../src/clock.js'
import { Gossip } from '../src/gossip/gossip.js'
import { encodeMessage, MessageType } from '../src/gossip/messages.js'
import { NetTransport } from '../src/gossip/transport-net.js'
import { Wire } from '../src/gossip/wire.js'
import { LogLimiter } from '../src/log.js'
import { capturedLogger } from './lib/log.js'
import { until } from './lib/gossip-net.js'

t.test('20,000 forged conflict notices: one warning, one event, all counted', async (t) => {
  const { logger, lines } = capturedLogger('warn')
  const g = new Gossip(
    { name: 'a1', cluster: 'test', profile: 'local' },
    { transport: new NetTransport({ bind: { host: '127.0.0.1', port: 0 } }, { logger }), clock: new RealClock(), logger },
  )
  t.teardown(() => g.stop())
  await g.start()
  const events: number[] = []
  g.on('conflict', (c) => events.push(c.suppressed))
  const { addr, port } = g.localMember()
  const sock = dgram.createSocket('udp4')
  t.teardown(() => new Promise<void>((r) => sock.close(() => r())))
  const wire = new Wire({ label: 'test' })
  const total = 20_000
  for (let i = 0; i < total; i++) {
    const packet = wire.seal(
      encodeMessage({
        type: MessageType.conflict,
        name: 'a1',
        otherAddr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        otherPort: 1000 + (i % 60_000),
      }),
    )
    await new Promise<void>((r) => sock.send(packet, port, addr, () => r()))
    // Let the receiver drain now and then: the loopback buffer drops what it cannot hold.
    if (i % 200 === 199) await new Promise((r) => setImmediate(r))
  }
  // UDP may drop some under load; what arrives is counted, and at least a good share arrives.
  await until(() => g.stats().nameConflicts >= total, 5000)
  const counted = g.stats().nameConflicts
  t.ok(counted > total / 10, `conflict notices counted: ${counted}`)
  const claimed = lines.filter((l) => l.level === 40 && /is claimed by/.test(l.msg))
  t.equal(claimed.length, 1, 'one warning line')
  t.match(claimed[0]?.msg, /node name "a1" is claimed by 127\.0\.0\.1:\d+ and 10\.0\.0\.0:1000; give each node its own --node name/)
  t.same(events, [0], 'one conflict event')
  t.ok(lines.length <= 2, `the log stays bounded (${lines.length} lines)`)
})

t.test('LogLimiter: once a window per key, counts the held-back ones, remembers a bounded number of keys', async (t) => {
  let now = 0
  const limit = new LogLimiter({ windowMs: 60_000, maxKeys: 100 }, { clock: { now: () => now } })
  t.equal(limit.admit('a'), 0)
  t.equal(limit.admit('a'), undefined)
  t.equal(limit.admit('a'), undefined)
  t.equal(limit.admit('b'), 0, 'another key has its own window')
  now = 59_999
  t.equal(limit.admit('a'), undefined)
  now = 60_000
  t.equal(limit.admit('a'), 3, 'the next line says three were held back')
  t.equal(LogLimiter.suffix(3), ' (3 more from there since the last line)')
  t.equal(LogLimiter.suffix(0), '')
  for (let i = 0; i < 10_000; i++) limit.admit(`forged-${i}`)
  t.equal(limit.size, 100, 'a flood of distinct keys keeps at most maxKeys')
})
