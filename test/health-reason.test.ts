// Issue 15, item 2: an instance says why it has its status. Two real agents (the built CLI):
// `db` on agent a has a Tcp check against a closed port. The owner's log line and its
// /api/services/db.json name the check, its target and its error; the other agent learns the
// short detail with the record; and a check whose output changes on every run does not rewrite
// the record (its version stays), so check output causes no gossip.
import t from 'tap'
import http from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cliAgent } from './lib/agent-process.js'
import { serve, unusedPort } from './lib/listen.js'
import { until } from './lib/wait.js'

interface Instance {
  id: string
  host: string
  status: string
  reason?: string
  detail?: string
  version: [number, number]
  check?: Record<string, unknown>
  local?: Record<string, unknown>
}

async function service(base: string, name: string): Promise<Instance[] | undefined> {
  const r = await fetch(`${base}/api/services/${name}.json`)
  if (r.status !== 200) return undefined
  return ((await r.json()) as { instances: Instance[] }).instances
}

t.test('why an instance is unhealthy: the log line, the owner API, the short reason on a peer', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-reason-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const closed = await unusedPort()
  // A backend whose answer changes on every request: its output must not reach the record.
  let hits = 0
  const chatty = await serve(
    t,
    http.createServer((_q, res) => res.end(`request ${++hits} at ${Date.now()}`)),
  )
  const file = join(dir, 'a.json')
  writeFileSync(
    file,
    JSON.stringify({
      services: [
        { id: 'db-a2', name: 'db', ports: [{ port: closed, servicePort: 15432 }], check: { type: 'Tcp', args: `{{ host }}:${closed}` } },
        {
          id: 'chatty-1',
          name: 'chatty',
          ports: [{ port: chatty, servicePort: 15433 }],
          check: { type: 'HttpGet', args: `http://{{ host }}:${chatty}/`, intervalMs: 100 },
        },
      ],
    }),
  )
  const common = ['--profile', 'local', '--cluster', 'reason', '--advertise', '127.0.0.1']
  const a = await cliAgent(t, ['--node', 'a', ...common, '--discovery', 'static', '--static', file])
  const b = await cliAgent(t, ['--node', 'b', ...common, '--discovery', 'none', '--join', a.gossip])

  const target = `127.0.0.1:${closed}`
  const detail = `Tcp ${target}: connection refused`
  const line = await until('the status-change line of db-a2', async () => a.lines.find((l) => l.id === 'db-a2' && l.status === 'unhealthy'))
  t.equal(
    line.msg,
    `db-a2 (service db, ${file} services[0]) is unhealthy, was starting: ${detail}; it takes no new traffic until its check passes again; look at what the check reaches`,
    'the log line says which check failed, why, and what to do',
  )
  t.match(line, { level: 40, service: 'db', check: { type: 'Tcp', target, outcome: 'fail', error: 'connection refused' } })

  const [own] = await until('db on its owner', () => service(a.http, 'db'))
  t.equal(own!.status, 'unhealthy')
  t.equal(own!.detail, detail, "the owner's record carries the detail")
  t.equal(own!.reason, undefined, 'no reason tag: a failed check speaks for itself (starting is over)')
  t.match(own!.check, { type: 'Tcp', target, outcome: 'fail', passed: false, error: 'connection refused', passes: 0 })
  t.ok((own!.check!.fails as number) >= 1, `failures in a row: ${String(own!.check!.fails)}`)
  t.type(own!.check!.at, 'number', 'the time of the run')
  t.type(own!.check!.durationMs, 'number')
  t.match(own!.local, { source: 'static', origin: `${file} services[0]`, checkSpec: { type: 'Tcp' } }, 'where it came from')

  const [peer] = await until('db on the other agent', async () => (await service(b.http, 'db'))?.filter((i) => i.detail === detail))
  t.equal(peer!.detail, detail, 'the other agent learns the short detail')
  t.notOk('check' in peer! || 'local' in peer!, 'the full check result stays on the owner')

  // The HttpGet answer changes on every run; only the first result rewrote the record.
  const first = await until('chatty alive with a result', async () => {
    const [i] = (await service(a.http, 'chatty')) ?? []
    return i?.status === 'alive' && i.check ? i : undefined
  })
  t.equal(first.detail, `HttpGet http://127.0.0.1:${chatty}/: HTTP 200`)
  t.match(first.check, { httpStatus: 200, output: /^request \d+ at \d+$/ }, 'the owner shows the start of the body')
  const seen = hits
  await until('five more runs', async () => (hits >= seen + 5 ? true : undefined))
  const [later] = (await service(a.http, 'chatty'))!
  t.not(later!.check!.output, first.check!.output, 'the output changed')
  t.same(later!.version, first.version, 'the record was not rewritten: no gossip for check output')
})
