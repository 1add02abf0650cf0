// Issue "Say why", item 1: a seed name that does not resolve. With only such names `shoal agent`
// stops at start with one line and exit 2; beside a seed that works it joins and names the bad
// one. The built CLI runs in a private mount namespace whose nsswitch.conf resolves host names
// from /etc/hosts only, so the lookup of "foo" fails on this machine and no DNS query leaves it.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { until } from './lib/gossip-net.js'
import { CLI, REPO_ROOT, ensureBuilt } from './lib/cli.js'
import { LOOPBACK_AGENT_FLAGS } from './lib/agent-process.js'

const why =
  process.platform !== 'linux' || process.getuid?.() !== 0
    ? 'needs root on Linux (a private mount namespace with its own nsswitch.conf, so no DNS query leaves the machine)'
    : ensureBuilt()
const dir = why ? '' : mkdtempSync(join(tmpdir(), 'shoal-nss-'))
const nsswitch = join(dir, 'nsswitch.conf')
if (!why) {
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(nsswitch, 'passwd: files\ngroup: files\nhosts: files\n')
}
const local = [...LOOPBACK_AGENT_FLAGS, '--discovery', 'none']

/** `shoal ARGS` with host names looked up in /etc/hosts only; killed at teardown if still running. */
function run(t: Test, args: string[]) {
  const script = 'mount --bind "$0" /etc/nsswitch.conf && exec "$@"'
  const child = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, nsswitch, process.execPath, CLI, ...args],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const done = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await done
  })
  return { child, done, out: () => stdout, err: () => stderr }
}

t.test('only unresolvable names: one line naming --join and the name, exit 2', { skip: why ?? false }, async (t) => {
  const r = run(t, ['agent', '--node', 'lost', ...local, '--join', 'foo:7946'])
  // An agent that starts instead of refusing would run forever: bound the wait (teardown kills it).
  const code = await Promise.race([r.done, new Promise<string>((res) => setTimeout(() => res('still running after 60 s'), 60_000).unref())])
  t.equal(code, 2)
  t.equal(r.err(), 'shoal: --join: cannot resolve "foo" (ENOTFOUND), and no other seed is given; check the name, or give IP:PORT\n')
})

t.test('an unresolvable name beside a working seed: joined, the name reported once', { skip: why ?? false }, async (t) => {
  const seed = new Agent(parseAgentConfig(['--node', 'seed', ...local], {}), { logger: silentLogger() })
  t.teardown(() => seed.stop({ leave: false }))
  await seed.start()
  const r = run(t, ['agent', '--node', 'mixed', ...local, '--log-format', 'json', '--join', `foo:7946,127.0.0.1:${seed.bound.gossip}`])
  t.ok(await until(() => r.out().includes('"msg":"joined the cluster"'), 60_000), 'joined through the working seed')
  const warns = r
    .out()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { level: number; msg: string; reason?: string })
    .filter((l) => l.level === 40)
  t.same(
    warns.map((l) => [l.reason, l.msg]),
    [
      [
        'unresolvable',
        '--join foo:7946: cannot join through this seed: the name "foo" does not resolve; check the name (or give IP:PORT) and this host\'s DNS; another seed answered',
      ],
    ],
  )
  t.ok(await until(() => seed.members().some((m) => m.name === 'mixed' && m.state === 'alive'), 30_000), 'the seed sees it')
  r.child.kill('SIGTERM')
  t.equal(
    await Promise.race([r.done, new Promise<string>((res) => setTimeout(() => res('no exit 60 s after SIGTERM'), 60_000).unref())]),
    0,
  )
})
