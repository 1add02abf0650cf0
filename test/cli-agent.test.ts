// The `shoal` command as a user runs it: bad flags and a name conflict exit 2 with one clear
// line; SIGTERM leaves gracefully (others record `left`) and exits 0; bootstraps print JSON.
// It runs the built dist/cli.js, as a user does.
import t from 'tap'
import dgram from 'node:dgram'
import net from 'node:net'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { shoal } from './lib/cli.js'
import { cliAgent, LOOPBACK_AGENT_FLAGS } from './lib/agent-process.js'

const agentFlags = (node: string) => ['--node', node, ...LOOPBACK_AGENT_FLAGS, '--discovery', 'none']

t.test('a bad flag: one line naming it, exit 2', async (t) => {
  const r = await shoal(['agent', '--bind', '127.0.0.1:abc']).done
  t.equal(r.code, 2)
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line')
  t.match(r.stderr, /--bind: "127\.0\.0\.1:abc" has no numeric port/)
})

t.test('a name held by a live node at another address: refuses to run, exit 2', async (t) => {
  const holder = new Agent(parseAgentConfig(agentFlags('dup'), {}), { logger: silentLogger() })
  t.teardown(() => holder.stop({ leave: false }))
  await holder.start()
  const seed = `127.0.0.1:${holder.bound.gossip}`
  const r = await shoal(['agent', ...agentFlags('dup'), '--join', seed, '--log-level', 'silent']).done
  t.equal(r.code, 2)
  t.match(r.stderr, /dup/, 'names the node')
  t.match(r.stderr, new RegExp(seed.replace(/\./g, '\\.')), 'names the address of the live holder')
  t.ok(holder.members().filter((m) => m.name === 'dup').length === 1, 'the holder keeps its name')
})

t.test('SIGTERM: graceful leave, exit 0', async (t) => {
  const peer = new Agent(parseAgentConfig(agentFlags('peer'), {}), { logger: silentLogger() })
  t.teardown(() => peer.stop({ leave: false }))
  await peer.start()
  const run = shoal(['agent', ...agentFlags('leaver'), '--join', `127.0.0.1:${peer.bound.gossip}`])
  t.teardown(() => {
    run.child.kill('SIGKILL')
  })
  // A spawned node process under load (load average 25-35 beside the suite) took more than 15 s to join.
  const deadline = Date.now() + 90_000
  while (peer.members().find((m) => m.name === 'leaver')?.state !== 'alive') {
    if (Date.now() > deadline) throw new Error('the CLI agent never joined')
    await new Promise((r) => setTimeout(r, 50))
  }
  run.child.kill('SIGTERM')
  const r = await run.done
  t.equal(r.code, 0)
  t.match(r.stdout, /shoal agent stopped/)
  t.equal(peer.members().find((m) => m.name === 'leaver')?.state, 'left', 'the peer records `left`, not dead')
})

t.test('`shoal agent` runs V8 sized for memory (--heap lean, the default) or for speed (--heap fast)', async (t) => {
  // Lean (--optimize-for-size) keeps the young generation at 8 MiB or less; under work (here
  // 100 /metrics scrapes) V8's defaults grow it to 16-32 MiB (README "Memory"). The agent's own
  // /metrics shows the size. (This test once passed only because tap's processinfo hook, loaded
  // into every child then, grew the young generation as the modules loaded.)
  const young = async (args: string[]): Promise<number> => {
    const a = await cliAgent(t, ['--node', 'heap', '--discovery', 'none', '--dns', 'off', ...args])
    for (let i = 0; i < 100; i++) await (await fetch(`${a.http}/metrics`)).text()
    const metrics = await (await fetch(`${a.http}/metrics`)).text()
    await a.stop()
    const m = /^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)$/m.exec(metrics)
    t.ok(m, 'the young generation is reported')
    return Number(m?.[1]) / 1048576
  }
  const lean = await young([])
  t.ok(lean <= 8, `lean: young generation ${lean.toFixed(1)} MiB, at most 8`)
  const fast = await young(['--heap', 'fast'])
  t.ok(fast >= 16, `fast: young generation ${fast.toFixed(1)} MiB, at least 16`)
  const bad = await shoal(['agent', '--heap', 'small']).done
  t.equal(bad.code, 2, 'another mode: exit 2')
  t.match(bad.stderr, /--heap: "small" is not lean or fast/)
})

t.test('bootstraps print JSON for Envoy and for grpc-js-xds', async (t) => {
  const env = JSON.parse((await shoal(['envoy-bootstrap', '--node', 'n1', '--cluster', 'c1', '--xds', '127.0.0.1:7000']).done).stdout)
  t.same(env.node, { id: 'n1', cluster: 'c1' })
  t.ok(JSON.stringify(env).includes('7000'), 'points at the agent')
  const grpc = JSON.parse((await shoal(['grpc-bootstrap', '--node', 'n1', '--xds', '127.0.0.1:7000']).done).stdout)
  t.equal(grpc.xds_servers[0].server_uri, '127.0.0.1:7000')
  t.equal(grpc.node.id, 'n1')
})

t.test('a DNS port in use, on TCP or on UDP: one line naming --dns, exit 2', async (t) => {
  const tcp = net.createServer()
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => new Promise<void>((r) => tcp.close(() => r())))
  const udp = dgram.createSocket('udp4')
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => new Promise<void>((r) => udp.close(() => r())))
  const flags = agentFlags('dns-busy').slice(0, -2)
  for (const [proto, port] of [
    ['TCP', (tcp.address() as net.AddressInfo).port],
    ['UDP', udp.address().port],
  ] as const) {
    const r = await shoal(['agent', ...flags, '--dns', `127.0.0.1:${port}`, '--log-level', 'silent']).done
    t.equal(r.code, 2, `${proto} busy: exit 2`)
    t.equal(r.stderr.trim().split('\n').length, 1, `${proto} busy: one line`)
    t.match(
      r.stderr,
      new RegExp(`--dns: cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`),
      `${proto} busy: names --dns`,
    )
  }
})
