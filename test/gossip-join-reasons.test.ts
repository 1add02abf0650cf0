// Join failures on the simulator, one per reason: what Gossip.join hands `onAttempt` and counts in
// stats().joinFailures, and what the seed counts in stats().rejected and raises as `rejected`.
// test/agent-join-failures.test.ts shows the same reasons as the agent words them, on sockets.
import t, { type Test } from 'tap'
import { VirtualClock } from '../src/clock.js'
import { Gossip, type GossipOptions } from '../src/gossip/gossip.js'
import { Keyring } from '../src/gossip/keyring.js'
import { SimNetwork } from '../src/gossip/transport-sim.js'
import type { JoinAttempt, Rejection } from '../src/gossip/types.js'
import { silentLogger } from '../src/log.js'
import { seeded } from './lib/random.js'

const A = Buffer.alloc(32, 1)
const B = Buffer.alloc(32, 2)

async function pair(t: Test, seedOpts: Partial<GossipOptions>, joinerOpts: Partial<GossipOptions>, seedUp = true) {
  const clock = new VirtualClock()
  const random = seeded(11)
  const net = new SimNetwork(clock, { latencyMs: 1, random })
  const mk = (name: string, host: string, o: Partial<GossipOptions>) =>
    new Gossip({ name, cluster: 'sim', profile: 'local', ...o }, { transport: net.transport(host), clock, logger: silentLogger(), random })
  const seed = mk('seed', '10.0.0.1', seedOpts)
  const joiner = mk('joiner', '10.0.0.2', joinerOpts)
  if (seedUp) await seed.start()
  await joiner.start()
  t.teardown(async () => {
    await joiner.stop()
    await seed.stop()
  })
  const rejections: Rejection[] = []
  seed.on('rejected', (r) => rejections.push(r))
  const attempts: JoinAttempt[] = []
  const joined = joiner.join(['10.0.0.1:7946'], { onAttempt: (a) => attempts.push(a) }).then(
    (n) => n,
    (e: Error & { code?: string }) => e,
  )
  await clock.runUntil(() => attempts.length > 0, 30_000)
  return { seed, joiner, attempts, rejections, joined: await joined }
}

const cases: Array<{
  name: string
  seed: Partial<GossipOptions>
  joiner: Partial<GossipOptions>
  reason: string
  refusedBySeed: boolean
  seedSees?: string
  message: RegExp
}> = [
  {
    name: 'another cluster',
    seed: {},
    joiner: { cluster: 'prod' },
    reason: 'label',
    refusedBySeed: true,
    seedSees: 'label',
    message: /^10\.0\.0\.1:7946 refused our stream: its cluster label differs from ours$/,
  },
  {
    name: 'no common key',
    seed: { keyring: new Keyring([A]) },
    joiner: { keyring: new Keyring([B]) },
    reason: 'key',
    refusedBySeed: true,
    seedSees: 'key',
    message: /refused our stream: no key of its ring opens our messages/,
  },
  {
    name: 'plain to an encrypting seed',
    seed: { keyring: new Keyring([A]) },
    joiner: {},
    reason: 'plain',
    refusedBySeed: true,
    seedSees: 'plain',
    message: /it requires encryption and our messages are plain/,
  },
  {
    name: 'encrypted to a seed without keys',
    seed: {},
    joiner: { keyring: new Keyring([A]) },
    reason: 'encrypted',
    refusedBySeed: true,
    seedSees: 'encrypted',
    message: /it has no keys and our messages are encrypted/,
  },
  {
    name: "the seed's primary is not in our ring: its answer cannot be opened",
    seed: { keyring: new Keyring([B, A]) },
    joiner: { keyring: new Keyring([A]) },
    reason: 'key',
    refusedBySeed: false,
    message: /^answer from 10\.0\.0\.1:7946: message fails authentication with all 1 key\(s\) of the ring$/,
  },
]

for (const c of cases) {
  t.test(`${c.name}: ${c.reason}`, async (t) => {
    const r = await pair(t, c.seed, c.joiner)
    t.equal(r.attempts[0]?.answered, 0)
    const f = r.attempts[0]?.failures[0]
    t.equal(f?.seed, '10.0.0.1:7946')
    t.equal(f?.reason, c.reason)
    t.equal(f?.refusedBySeed, c.refusedBySeed)
    t.match(f?.message, c.message)
    t.equal(r.joiner.stats().joinFailures[c.reason], 1)
    t.equal((r.joined as Error & { code?: string }).code, 'SHOAL_ERR_JOIN', 'without retry the join rejects')
    if (c.seedSees) {
      t.equal(r.seed.stats().rejected[c.seedSees], 1)
      t.same(
        r.rejections.map((x) => [x.via, x.reason]),
        [['stream', c.seedSees]],
      )
    } else {
      t.same(r.rejections, [], 'the seed opened our frame')
      t.equal(r.joiner.stats().rejected.key, 1, 'the joiner counts the answer it could not open')
    }
  })
}

t.test('nothing listens: refused; with retry, every round is reported with its wait', async (t) => {
  const clock = new VirtualClock()
  const net = new SimNetwork(clock, { latencyMs: 1, random: seeded(3) })
  const g = new Gossip(
    { name: 'j', cluster: 'sim', profile: 'local' },
    { transport: net.transport('10.0.0.2'), clock, logger: silentLogger(), random: seeded(3) },
  )
  await g.start()
  t.teardown(() => g.stop())
  await net.transport('10.0.0.1').start()
  const attempts: JoinAttempt[] = []
  const abort = new AbortController()
  const p = g.join(['10.0.0.1:1'], { retry: true, signal: abort.signal, onAttempt: (a) => attempts.push(a) }).catch(() => undefined)
  await clock.runUntil(() => attempts.length >= 3, 60_000)
  abort.abort()
  await clock.advance(60_000)
  await p
  t.same(
    attempts.slice(0, 3).map((a) => [a.attempt, a.failures[0]?.reason]),
    [
      [0, 'refused'],
      [1, 'refused'],
      [2, 'refused'],
    ],
  )
  t.ok(
    attempts.slice(0, 3).every((a) => typeof a.retryInMs === 'number' && a.retryInMs > 0),
    'each round says when the next one comes',
  )
})
