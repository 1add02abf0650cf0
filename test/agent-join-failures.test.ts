// Issue "Say why", item 1: a join that cannot succeed says why, on both ends, with real agents
// on loopback: the joining agent warns per seed (naming it, the reason and what to do) while it
// retries, counts shoal_gossip_join_failures_total{reason} and answers /readyz 503 with the
// reason; the seed warns naming the sender and the reason and counts shoal_gossip_rejected_total.
import t, { type Test } from 'tap'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { until } from './lib/gossip-net.js'
import { unusedPort } from './lib/listen.js'
import { capturedLogger, type LogLine } from './lib/log.js'
import { LOOPBACK_AGENT_FLAGS } from './lib/agent-process.js'

const KEY_A = Buffer.alloc(32, 1).toString('base64')
const KEY_B = Buffer.alloc(32, 2).toString('base64')
const WARN = 40

interface Running {
  agent: Agent
  lines: LogLine[]
  gossip: string
  http: string
}

async function agent(t: Test, node: string, flags: string[] = []): Promise<Running> {
  const { logger, lines } = capturedLogger('info')
  const cfg = parseAgentConfig(['--node', node, ...LOOPBACK_AGENT_FLAGS, '--discovery', 'none', ...flags], {})
  const a = new Agent(cfg, { logger })
  t.teardown(() => a.stop({ leave: false }))
  await a.start()
  return { agent: a, lines, gossip: `127.0.0.1:${a.bound.gossip}`, http: `http://127.0.0.1:${a.bound.http}` }
}

function warnings(r: Running, pattern: RegExp): LogLine[] {
  return r.lines.filter((l) => l.level === WARN && pattern.test(l.msg))
}

async function metric(r: Running, name: string, reason: string): Promise<number> {
  const text = await r.agent.registry.metrics()
  const m = new RegExp(`^${name}\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text)
  return m ? Number(m[1]) : 0
}

async function readyz(
  r: Running,
): Promise<{ status: number; body: { ready: boolean; join?: string | null; error?: { message: string } } }> {
  const res = await fetch(`${r.http}/readyz`)
  return { status: res.status, body: (await res.json()) as { ready: boolean; join?: string | null; error?: { message: string } } }
}

const BOUND = 30_000

/** A joiner with `joinerFlags` against a seed with `seedFlags`: both ends' lines and counts. */
async function failingJoin(
  t: Test,
  seedFlags: string[],
  joinerFlags: string[],
): Promise<{ seed: Running; joiner: Running; joinLine: LogLine; seedLine: LogLine | undefined }> {
  const seed = await agent(t, 'seed', seedFlags)
  const joiner = await agent(t, 'joiner', [...joinerFlags, '--join', seed.gossip])
  const seedPrefix = `--join ${seed.gossip}: cannot join through this seed: `
  t.ok(
    await until(() => warnings(joiner, /cannot join through this seed/).length >= 2, BOUND),
    'the joiner warns, and again on the next try',
  )
  const joinLine = warnings(joiner, /cannot join through this seed/)[0]!
  t.equal(joinLine.msg.slice(0, seedPrefix.length), seedPrefix, 'the line names the flag and the seed')
  t.match(joinLine.msg, /; next try in \d+\.\d s$/, 'and when it tries again')
  await until(() => warnings(seed, /^gossip from 127\.0\.0\.1:\d+ rejected/).length > 0, 5000)
  return { seed, joiner, joinLine, seedLine: warnings(seed, /^gossip from 127\.0\.0\.1:\d+ rejected/)[0] }
}

t.test('wrong key: "none of its keys opens our messages" on the joiner, the sender named on the seed', async (t) => {
  const { seed, joiner, joinLine, seedLine } = await failingJoin(t, ['--key', KEY_A], ['--key', KEY_B])
  t.equal(joinLine.reason, 'key')
  t.match(
    joinLine.msg,
    /: the seed refused us: none of its keys opens our messages; every agent needs the key the others seal with: the same lines in --key-file \(or --key\); in a rotation, add a key everywhere before making it first; next try in/,
  )
  t.match(
    seedLine?.msg,
    /^gossip from 127\.0\.0\.1:\d+ rejected \(stream\): message fails authentication with all 1 key\(s\) of the ring; that agent seals with a key this agent does not hold: add it here \(--key-file\), or fix that agent's keys$/,
  )
  t.ok((await metric(joiner, 'shoal_gossip_join_failures_total', 'key')) >= 2, 'joiner: shoal_gossip_join_failures_total{reason="key"}')
  t.ok((await metric(seed, 'shoal_gossip_rejected_total', 'key')) >= 2, 'seed: shoal_gossip_rejected_total{reason="key"}')
  t.equal(warnings(seed, /rejected/).length, 1, 'the seed says it once a minute per sender and reason, however often it is tried')
})

t.test('wrong cluster: "its --cluster differs" on the joiner, the other label on the seed', async (t) => {
  const { seed, joiner, joinLine, seedLine } = await failingJoin(t, [], ['--cluster', 'prod'])
  t.equal(joinLine.reason, 'label')
  t.match(
    joinLine.msg,
    /: the seed refused us: its --cluster differs from ours; every agent of a cluster needs the same --cluster \(this agent has "prod"\); next try in/,
  )
  t.match(
    seedLine?.msg,
    /rejected \(stream\): packet label "prod" does not match this cluster's label "default"; an agent of another cluster sends here: check that agent's --join and --cluster$/,
  )
  t.ok((await metric(joiner, 'shoal_gossip_join_failures_total', 'label')) >= 2)
  t.ok((await metric(seed, 'shoal_gossip_rejected_total', 'label')) >= 2)
  const r = await readyz(joiner)
  t.equal(r.status, 503, '/readyz: not in a cluster')
  t.equal(
    r.body.join,
    `no seed of --join ${seed.gossip} has answered: ${seed.gossip}: the seed refused us: its --cluster differs from ours`,
  )
  t.match(r.body.error?.message, r.body.join!, 'the message carries the reason')
})

t.test('no key here, keys on the seed: "it requires encryption"', async (t) => {
  const { seed, joinLine, seedLine } = await failingJoin(t, ['--key', KEY_A], [])
  t.equal(joinLine.reason, 'plain')
  t.match(
    joinLine.msg,
    /the seed refused us: it requires encryption and this agent has no key; this agent has no gossip key: give it the cluster's key/,
  )
  t.match(
    seedLine?.msg,
    /rejected \(stream\): plain \(unencrypted\) packet, but this node requires encryption; that agent has no gossip key/,
  )
  t.ok((await metric(seed, 'shoal_gossip_rejected_total', 'plain')) >= 1)
})

t.test('a refused port: "connection refused"; /readyz 503 even after the warm start wait', async (t) => {
  const port = await unusedPort()
  const joiner = await agent(t, 'joiner', ['--join', `127.0.0.1:${port}`, '--ready-timeout', '100ms'])
  t.ok(await until(() => warnings(joiner, /cannot join/).length > 0, BOUND))
  const line = warnings(joiner, /cannot join/)[0]!
  t.equal(line.reason, 'refused')
  t.match(
    line.msg,
    new RegExp(
      `^--join 127\\.0\\.0\\.1:${port}: cannot join through this seed: connection refused \\(nothing listens there\\); check the address, and that the seed's agent runs with --bind on that port; next try in \\d+\\.\\d s$`,
    ),
  )
  t.ok(await until(() => joiner.agent.isReady(), BOUND), 'the warm start ends (xDS serves the local view)')
  const r = await readyz(joiner)
  t.equal(r.status, 503, 'but /readyz still says why the agent is alone')
  t.equal(r.body.join, `no seed of --join 127.0.0.1:${port} has answered: 127.0.0.1:${port}: connection refused (nothing listens there)`)
  t.ok((await metric(joiner, 'shoal_gossip_join_failures_total', 'refused')) >= 1)
})

t.test('a mixed list: one seed refused, one answers: joined, the dead seed still named once', async (t) => {
  const port = await unusedPort()
  const seed = await agent(t, 'seed')
  const joiner = await agent(t, 'joiner', ['--join', `127.0.0.1:${port},${seed.gossip}`])
  t.ok(await until(() => joiner.lines.some((l) => l.msg === 'joined the cluster'), BOUND), 'joined through the working seed')
  const lines = warnings(joiner, /cannot join/)
  t.equal(lines.length, 1, 'one warning: no retries once a seed answered')
  t.match(
    lines[0]?.msg,
    new RegExp(`^--join 127\\.0\\.0\\.1:${port}: cannot join through this seed: connection refused .*; another seed answered$`),
  )
  t.ok(await until(() => joiner.agent.isReady(), BOUND))
  t.equal((await readyz(joiner)).status, 200)
})

t.test('a peer that joins us clears the join condition of /readyz', async (t) => {
  const port = await unusedPort()
  const lonely = await agent(t, 'lonely', ['--join', `127.0.0.1:${port}`, '--ready-timeout', '100ms'])
  t.ok(await until(() => lonely.agent.isReady(), BOUND))
  t.equal((await readyz(lonely)).status, 503)
  await agent(t, 'friend', ['--join', lonely.gossip])
  t.ok(await until(() => lonely.agent.joinPending() === undefined, BOUND), 'in a cluster now')
  t.equal((await readyz(lonely)).status, 200)
})

t.test('an --xds-interfaces interface this host lacks is a start-up error naming it', async (t) => {
  const { logger } = capturedLogger()
  const cfg = parseAgentConfig(['--node', 'noif', ...LOOPBACK_AGENT_FLAGS, '--discovery', 'none', '--xds-interfaces', 'nosuchif0'], {})
  const a = new Agent(cfg, { logger })
  t.teardown(() => a.stop())
  await t.rejects(a.start(), { code: 'SHOAL_ERR_CONFIG', message: /--xds-interfaces: no interface "nosuchif0"/ })
})
