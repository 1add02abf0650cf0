// The README's HTTP API table gives each JSON answer's shape (`{node, clients: {ready, ...}}`);
// this test holds those shapes to the answers of a running agent, key for key at every level
// the README spells out: a real `shoal agent` process with a static file that makes every list
// of /debug/xds non-empty that a static file can (a ServicePort two names claim, an address two
// instances share), and an Envoy-like ADS client connected while it asks.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { AdsWatch } from './lib/ads-watch.js'
import { cliAgent } from './lib/agent-process.js'
import { ensureBuilt, REPO_ROOT } from './lib/cli.js'
import { until } from './lib/gossip-net.js'
import { serve, tcpService } from './lib/listen.js'
import { parseShape, shapeProblems } from './lib/readme.js'

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')

/** The shape the README's API table gives for GET `path`: the first `{...}` in code on its row. */
function readmeShape(path: string): string | undefined {
  const row = readme.split('\n').find((l) => l.startsWith(`| GET \`${path}\``))
  return row ? /`(\{[^`]*\})`/.exec(row)?.[1] : undefined
}

const PATHS = ['/api/state.json', '/api/services.json', '/api/members.json', '/api/keys.json', '/api/sources.json', '/debug/xds']

t.test('every shape in the API table parses', async (t) => {
  for (const p of PATHS) {
    const s = readmeShape(p)
    t.ok(s, `${p} has a shape in the README`)
    if (s) t.doesNotThrow(() => parseShape(s), p)
  }
})

t.test('the shape check itself: missing, extra and nested keys are found', async (t) => {
  const s = parseShape('{a, b?, c: {d}, e: [{f}]}')
  t.same(shapeProblems(s, { a: 1, c: { d: 1 }, e: [{ f: 1 }] }), [])
  t.same(shapeProblems(s, { c: { d: 1, x: 2 }, e: [{}], y: 0 }), [
    '$.a: in the README, not in the answer',
    '$.c.x: in the answer, not in the README',
    '$.e[0].f: in the README, not in the answer',
    '$.y: in the answer, not in the README',
  ])
})

const why = ensureBuilt()
t.test('a running agent with an xDS client answers the shapes the README gives', { skip: why ?? false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-api-shapes-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const port = await serve(t, tcpService())
  const entry = (id: string, name: string, servicePort: number) => ({
    id,
    name,
    ports: [{ port, servicePort, ip: '127.0.0.1' }],
    proxyMode: 'grpc',
    check: { type: 'Tcp', args: `{{ host }}:${port}`, intervalMs: 500 },
  })
  const file = join(dir, 'static.json')
  // echo-1 and echo-2 share an address (one is left out: dropped); a and b claim one ServicePort (a conflict).
  writeFileSync(
    file,
    JSON.stringify({
      services: [entry('echo-1', 'echo', 10001), entry('echo-2', 'echo', 10001), entry('a', 'a', 10002), entry('b', 'b', 10002)],
    }),
  )
  const agent = await cliAgent(t, ['--node', 'shapes', '--discovery', 'static', '--static', file, '--profile', 'local'])
  const watch = new AdsWatch(agent.xds, { listeners: true })
  t.teardown(() => watch.close())
  const get = async (p: string): Promise<unknown> => (await fetch(`${agent.http}${p}`)).json()
  type Debug = {
    clients: {
      clients: Array<{ types: Array<{ ackedVersion: string | null }>; dropped: unknown[] }>
      conflicts: unknown[]
      dropped: unknown[]
    }
  }
  const full = await until(async () => {
    const d = (await get('/debug/xds')) as Debug
    const c = d.clients.clients[0]
    return (
      !!c &&
      c.types.length >= 2 &&
      c.types.every((x) => x.ackedVersion !== null) &&
      d.clients.conflicts.length > 0 &&
      d.clients.dropped.length > 0
    )
  }, 60_000)
  t.ok(full, 'the ADS client ACKed, and /debug/xds lists a conflict and a dropped instance')
  for (const p of PATHS) {
    const text = readmeShape(p)
    if (text === undefined) continue // the first subtest says so
    const shape = parseShape(text)
    t.same(shapeProblems(shape, await get(p)), [], `GET ${p} has the README's shape`)
  }
})
