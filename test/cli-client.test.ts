// `shoal members | services | state | watch | drain | undrain` against a real HttpServer:
// tables for people, --json for scripts, one-line errors with exit code 1.
import t from 'tap'
import { createServer } from 'node:net'
import { PassThrough } from 'node:stream'
import { runClientCommand, type ClientCommand } from '../src/cli/client.js'
import { record, startHarness, type Harness } from './lib/http-fixture.js'

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough()
  let buf = ''
  stream.on('data', (c: Buffer) => (buf += c.toString()))
  return { stream, text: () => buf }
}

async function run(
  h: Harness | string,
  cmd: ClientCommand,
  args: string[] = [],
  extra: { json?: boolean; token?: string; reason?: string } = {},
): Promise<{ code: number; out: string }> {
  const s = sink()
  const agent = typeof h === 'string' ? h : h.url
  const code = await runClientCommand(cmd, args, {
    agent,
    json: extra.json ?? false,
    token: extra.token,
    reason: extra.reason,
    out: s.stream,
  })
  return { code, out: s.text() }
}

async function populated(t: { teardown(fn: () => unknown): void }, opts = {}): Promise<Harness> {
  const h = await startHarness(t, opts)
  h.catalog.addHost('node-a')
  h.catalog.addHost('node-b')
  h.catalog.put(
    record({
      id: 'aaaaaaaaaaaa',
      name: 'web',
      host: 'node-a',
      ports: [{ type: 'tcp', port: 32768, servicePort: 10001, ip: '10.0.0.1' }],
      tags: ['v2'],
    }),
  )
  h.catalog.put(
    record({
      id: 'bbbbbbbbbbbb',
      name: 'web',
      host: 'node-b',
      status: 'unhealthy',
      ports: [{ type: 'tcp', port: 32769, servicePort: 10001, ip: '10.0.0.2' }],
    }),
  )
  h.catalog.put(
    record({
      id: 'cccccccccccc',
      name: 'api',
      host: 'node-b',
      proxyMode: 'grpc',
      ports: [{ type: 'tcp', port: 9000, servicePort: 10002, ip: '10.0.0.2' }],
      tags: ['blue', 'canary'],
    }),
  )
  h.membership.set('node-a', 'alive')
  h.membership.set('node-b', 'suspect')
  return h
}

t.test('members, services, state as tables and as JSON', async (t) => {
  const h = await populated(t)

  const members = await run(h, 'members')
  t.equal(members.code, 0)
  const lines = members.out.trimEnd().split('\n')
  t.match(lines[0], /^NAME\s+ADDRESS\s+STATE\s+INCARNATION\s+LAST CHANGE$/)
  t.match(lines[1], /^node-a\s+127\.0\.0\.1:7946\s+alive\s+1\s+\d+s ago$/)
  t.match(lines[2], /^node-b\s+127\.0\.0\.1:7946\s+suspect\s+1\s+\d+s ago$/)

  const membersJson = await run(h, 'members', [], { json: true })
  t.equal(membersJson.code, 0)
  t.same(
    JSON.parse(membersJson.out).members.map((m: any) => m.state),
    ['alive', 'suspect'],
    '--json prints the API answer',
  )

  const services = await run(h, 'services')
  t.equal(services.code, 0)
  t.match(services.out, /^SERVICE\s+SERVICE PORTS\s+INSTANCES\s+HEALTHY\s+HOSTS\s+TAGS\n/)
  t.match(services.out, /\napi\s+10002\s+1\s+1\s+node-b\s+blue,canary\n/, "a service's tags")
  t.match(services.out, /\nweb\s+10001\s+2\s+1\s+node-a,node-b\s+v2\n/)

  const one = await run(h, 'services', ['web'])
  t.equal(one.code, 0)
  t.match(one.out, /^SERVICE\s+ID\s+HOST\s+STATUS\s+ADDRESS->SERVICEPORT\s+MODE\s+TAGS\n/)
  t.match(one.out, /aaaaaaaaaaaa\s+node-a\s+alive\s+10\.0\.0\.1:32768->10001\s+http\s+v2\n/, "each instance's tags")
  t.match(one.out, /bbbbbbbbbbbb\s+node-b\s+unhealthy\s+10\.0\.0\.2:32769->10001\s+http\s+-\n/, '- for none')
  const oneJson = await run(h, 'services', ['web'], { json: true })
  t.equal(JSON.parse(oneJson.out).instances.length, 2)

  const state = await run(h, 'state')
  t.equal(state.code, 0)
  t.match(state.out, /^cluster test, seen from node-a, seq \d+\n/)
  t.match(state.out, /\nnode-b\s+127\.0\.0\.1:\d+\s+alive\s+boot boot-nod/)
  t.match(state.out, /\n {2}cccccccccccc\s+api\s+alive\s+10\.0\.0\.2:9000->10002\s+\d+\.0\n/)
  const stateJson = await run(h, 'state', [], { json: true })
  t.equal(JSON.parse(stateJson.out).hosts.length, 2)
})

t.test('drain and undrain', async (t) => {
  const h = await populated(t, { apiToken: 'tok' })
  const noToken = await run(h, 'drain', ['aaaaaaaaaaaa'])
  t.equal(noToken.code, 1)
  t.match(
    noToken.out,
    /^shoal: POST \/api\/instances\/aaaaaaaaaaaa\/drain: 401 missing "Authorization: Bearer TOKEN".*\(SHOAL_ERR_UNAUTHORIZED\); the agent has --api-token: pass it with --token TOKEN or SHOAL_API_TOKEN=TOKEN\n$/,
  )
  const wrong = await run(h, 'drain', ['aaaaaaaaaaaa'], { token: 'nope' })
  t.match(wrong.out, /401 .*; check --token \(or SHOAL_API_TOKEN\) against the agent's --api-token\n$/)
  t.equal(noToken.out.split('\n').length, 2, 'one line')

  const ok = await run(h, 'drain', ['aaaaaaaaaaaa'], { token: 'tok' })
  t.equal(ok.code, 0)
  t.equal(ok.out, 'draining aaaaaaaaaaaa on node-a\n')
  const svc = await run(h, 'services', ['web'])
  t.match(svc.out, /aaaaaaaaaaaa\s+node-a\s+draining/)
  const un = await run(h, 'undrain', ['aaaaaaaaaaaa'], { token: 'tok', json: true })
  t.equal(un.code, 0)
  t.same(JSON.parse(un.out), { id: 'aaaaaaaaaaaa', node: 'node-a', draining: false })

  const other = await run(h, 'drain', ['cccccccccccc'], { token: 'tok' })
  t.equal(other.code, 1)
  t.match(
    other.out,
    /403 .*node-b.*\(SHOAL_ERR_NOT_LOCAL\); run `shoal drain cccccccccccc --agent HOST:PORT` with the --http address of the agent on the instance's host/,
  )
  const why = await run(h, 'drain', ['aaaaaaaaaaaa'], { token: 'tok', reason: 'disk swap' })
  t.equal(why.code, 0)
  t.same(h.control.calls.at(-1), 'drain aaaaaaaaaaaa disk swap', 'the reason reaches the agent')
  const missing = await run(h, 'drain', [], { token: 'tok' })
  t.equal(missing.code, 1)
  t.match(missing.out, /^shoal: usage: shoal drain ID/)
})

t.test('errors are one clear line and exit 1', async (t) => {
  const h = await populated(t)
  const unknown = await run(h, 'services', ['nope'])
  t.equal(unknown.code, 1)
  t.equal(unknown.out, 'shoal: GET /api/services/nope.json: 404 no live instance of service "nope" (SHOAL_ERR_SERVICE_NOT_FOUND)\n')

  // A port that was free a moment ago: nothing listens there.
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((r) => srv.close(() => r()))
  const down = await run(`http://127.0.0.1:${port}`, 'members')
  t.equal(down.code, 1)
  t.equal(
    down.out,
    `shoal: cannot reach the agent at http://127.0.0.1:${port} (ECONNREFUSED); is "shoal agent" running there? (--agent URL)\n`,
  )

  const badUrl = await run('not a url', 'members')
  t.equal(badUrl.code, 1)
  t.match(badUrl.out, /^shoal: --agent: "not a url" is not a URL/)
})

t.test('watch prints events until aborted', async (t) => {
  const h = await populated(t)
  for (const json of [false, true]) {
    const s = sink()
    const ac = new AbortController()
    const done = runClientCommand('watch', [], { agent: h.url, json, out: s.stream, signal: ac.signal })
    const waitFor = async (re: RegExp): Promise<void> => {
      const deadline = Date.now() + 3000
      while (!re.test(s.text()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    }
    await waitFor(/snapshot/)
    h.catalog.put(record({ id: `dddddddddd0${json ? 1 : 0}`, name: 'cache', host: 'node-a' }))
    const joiner = json ? 'node-d' : 'node-c'
    h.membership.set(joiner, 'alive', 'join')
    await waitFor(new RegExp(`member.*${joiner}`))
    ac.abort()
    t.equal(await done, 0, 'exit 0 when aborted')
    const lines = s.text().trimEnd().split('\n')
    if (json) {
      const evs = lines.map((l) => JSON.parse(l))
      t.same(
        evs.map((e) => e.event),
        ['snapshot', 'catalog', 'member'],
        '--json: one JSON object per line',
      )
      t.equal(evs[1].data.record.name, 'cache')
    } else {
      t.match(lines[0], /^\d\d:\d\d:\d\d snapshot {2}cluster test: 2 hosts, 3 records, 2 members$/)
      t.match(lines[1], /^\d\d:\d\d:\d\d service-added +cache dddddddddd00 on node-a alive$/)
      t.match(lines[2], /^\d\d:\d\d:\d\d member +node-c join \(alive, incarnation 1\)$/)
    }
  }

  const s = sink()
  const stopped = runClientCommand('watch', [], { agent: h.url, json: false, out: s.stream })
  await new Promise((r) => setTimeout(r, 100))
  await h.server.stop()
  t.equal(await stopped, 1, 'the agent going away ends watch with exit 1')
  t.match(s.text(), /shoal: the agent at http:\/\/127\.0\.0\.1:\d+ closed the watch stream( \(terminated\))?\n$/)
})
