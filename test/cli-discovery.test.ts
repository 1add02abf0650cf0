// Issue "Say why", item 6: discovery says what it does. Without a Docker engine the default
// discovery says where it looked and what to do instead (not "lost": there never was one);
// `--discovery none` means no source at all; contradictory flags stop start-up with one line
// and exit 2, through the built CLI as a user runs it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { until } from './lib/gossip-net.js'
import { shoal } from './lib/cli.js'
import { capturedLogger } from './lib/log.js'
import { LOOPBACK_AGENT_FLAGS } from './lib/agent-process.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-discovery-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const staticFile = join(dir, 'services.json')
writeFileSync(staticFile, JSON.stringify({ services: [{ id: 'web-1', name: 'web', ports: [{ port: 8080, servicePort: 10001 }] }] }))
const local = ['--node', 'n', ...LOOPBACK_AGENT_FLAGS]

async function agent(t: Test, flags: string[]) {
  const { logger, lines } = capturedLogger('debug')
  const a = new Agent(parseAgentConfig([...local, ...flags], {}), { logger })
  t.teardown(() => a.stop({ leave: false }))
  await a.start()
  return { a, lines }
}

t.test('no Docker engine: one warning naming the endpoint, the reason and the way out', async (t) => {
  const socket = join(dir, 'docker.sock')
  const { a, lines } = await agent(t, ['--docker-host', `unix://${socket}`])
  t.ok(await until(() => lines.some((l) => l.component === 'docker' && l.level === 40), 10_000))
  const warns = lines.filter((l) => l.component === 'docker' && l.level === 40).map((l) => l.msg)
  t.same(warns, [
    `no Docker engine at unix://${socket} (connect ENOENT ${socket}); use --discovery static, or set DOCKER_HOST / --docker-host`,
  ])
  t.notOk(
    lines.some((l) => /lost/.test(l.msg)),
    'never "lost": there never was an engine',
  )
  const { sources } = (await (await fetch(`http://127.0.0.1:${a.bound.http}/api/sources.json`)).json()) as {
    sources: Array<{ source: string; where: string; ok: boolean; error?: { message: string } }>
  }
  t.match(
    sources,
    [{ source: 'docker', where: `unix://${socket}`, ok: false, error: { message: warns[0] } }],
    '/api/sources.json says the engine is missing, with the same words',
  )
  t.same(
    a
      .view()
      .snapshot()
      .hosts.find((h) => h.name === 'n')?.services ?? [],
    [],
  )
})

t.test('--discovery none: no source at all, not even a Docker attempt', async (t) => {
  const { a, lines } = await agent(t, ['--discovery', 'none'])
  await new Promise((r) => setTimeout(r, 300))
  t.notOk(
    lines.some((l) => l.component === 'docker' || l.component === 'static-source'),
    'no Docker or static-file line',
  )
  t.same(
    a
      .view()
      .snapshot()
      .hosts.find((h) => h.name === 'n')?.services ?? [],
    [],
  )
})

t.test('--discovery static: the file only, no Docker line', async (t) => {
  const { a, lines } = await agent(t, ['--discovery', 'static', '--static', staticFile])
  t.ok(
    await until(
      () =>
        (a
          .view()
          .snapshot()
          .hosts.find((h) => h.name === 'n')?.services.length ?? 0) === 1,
      10_000,
    ),
  )
  t.notOk(lines.some((l) => l.component === 'docker'))
})

const refusals: Array<[string, string[], string]> = [
  [
    '--discovery none with --static',
    ['--discovery', 'none', '--static', staticFile],
    'shoal: --static with --discovery none: the discovery list leaves out static; add it (--discovery static) or drop --static\n',
  ],
  [
    '--docker-network without Docker discovery',
    ['--discovery', 'static', '--static', staticFile, '--docker-network', 'ov'],
    'shoal: --docker-network: only applies to Docker discovery, which is off (--discovery without docker)\n',
  ],
  [
    '--docker-host without Docker discovery',
    ['--discovery', 'none', '--docker-host', 'unix:///var/run/docker.sock'],
    'shoal: --docker-host: only applies to Docker discovery, which is off (--discovery without docker)\n',
  ],
  [
    '--key with --key-file',
    ['--key', Buffer.alloc(32, 1).toString('base64'), '--key-file', staticFile],
    'shoal: --key and --key-file: give the keys one way: --key (fixed) or --key-file (re-read on change), not both\n',
  ],
]
for (const [what, flags, line] of refusals) {
  t.test(`${what}: one line, exit 2`, async (t) => {
    const r = await shoal(['agent', ...local, ...flags]).done
    t.equal(r.code, 2)
    t.equal(r.stderr, line)
    t.equal(r.stdout, '', 'nothing started, nothing logged')
  })
}
