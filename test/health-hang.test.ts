// Issue 12, part 3: a check that hangs fails, and leaves nothing behind. An HttpGet whose
// endpoint sends `200` headers and never finishes the body used to pass and leave one socket
// open per run (56 after 55 s at a 1 s interval). Now: the agent itself (the built CLI, a
// static file with a 20 ms interval) runs 60 checks against such an endpoint, the instance
// never turns alive, and the agent holds at most the one socket of the run in flight. The same
// for Tcp (a connect that never completes) and External (the command and its children are
// killed); a body over the bound fails; a slow body that completes in time passes.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { MAX_BODY_BYTES } from '../src/health/check-http.js'
import { HealthScheduler } from '../src/health/scheduler.js'
import { silentLogger } from '../src/log.js'
import { cliAgent } from './lib/agent-process.js'
import { serve } from './lib/listen.js'
import { processesWith, socketsTo } from './lib/proc.js'
import { waitFor } from './lib/wait.js'

const ctx = { host: '127.0.0.1', ports: [] }
const RUNS = 60

/** An HTTP endpoint that sends 200 and its headers, then stalls forever; counts requests and open connections. */
async function stallingEndpoint(t: Parameters<typeof serve>[0]) {
  const open = new Set<net.Socket>()
  let requests = 0
  const server = http.createServer((_req, res) => {
    requests++
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' })
    res.write('partial')
  })
  server.on('connection', (s) => {
    open.add(s)
    s.on('close', () => open.delete(s))
  })
  t.teardown(() => {
    for (const s of open) s.destroy()
  })
  const port = await serve(t, server)
  return { port, open, requests: () => requests }
}

t.test('the agent: 60 HttpGet runs against an endpoint that never finishes its body', async (t) => {
  const stall = await stallingEndpoint(t)
  const dir = mkdtempSync(join(tmpdir(), 'shoal-hang-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'static.json')
  const check = { type: 'HttpGet', args: `http://127.0.0.1:${stall.port}/health`, intervalMs: 20, timeoutMs: 100 }
  writeFileSync(
    file,
    JSON.stringify({ services: [{ id: 'stall', name: 'stall', ports: [{ port: stall.port, servicePort: 10001 }], check }] }),
  )
  const agent = await cliAgent(t, ['--node', 'hang', '--profile', 'local', '--discovery', 'static', '--static', file])
  const statuses = new Set<string>()
  const poll = setInterval(() => {
    void fetch(`${agent.http}/api/services/stall.json`)
      .then((r) => r.json() as Promise<{ instances: Array<{ status: string }> }>)
      .then((b) => b.instances.forEach((i) => statuses.add(i.status)))
      .catch(() => undefined)
  }, 50)
  t.teardown(() => clearInterval(poll))
  let most = 0
  await waitFor(
    `${RUNS} check runs`,
    () => {
      most = Math.max(most, socketsTo(agent.pid, stall.port))
      return stall.requests() >= RUNS
    },
    60_000,
  )
  const held = socketsTo(agent.pid, stall.port)
  t.ok(held <= 1, `the agent holds ${held} socket(s) to the endpoint after ${stall.requests()} runs (at most the run in flight)`)
  t.ok(most <= 2, `never more than ${most} at once`)
  t.ok(stall.open.size <= 2, `the endpoint sees ${stall.open.size} connection(s) still open`)
  await waitFor('a status from the API', () => statuses.size > 0, 10_000)
  t.notOk(statuses.has('alive'), `the instance never turned alive (seen: ${[...statuses].join(', ')})`)
  t.ok(statuses.has('unhealthy'), 'it is unhealthy')
  const metrics = await (await fetch(`${agent.http}/metrics`)).text()
  t.match(metrics, /shoal_health_checks_total\{service="stall",type="HttpGet",result="timeout"\} \d{2}/, 'the runs counted as timeouts')
  t.equal(await agent.stop('SIGTERM'), 0)
})

t.test('HttpGet: a body over the bound fails; a slow body that completes in time passes', async (t) => {
  const big = Buffer.alloc(MAX_BODY_BYTES + 1, 'x')
  const server = http.createServer((req, res) => {
    if (req.url === '/big') return res.end(big)
    res.writeHead(200)
    res.write('a')
    setTimeout(() => res.end('b'), 80)
  })
  const port = await serve(t, server)
  const hs = new HealthScheduler({ intervalMs: 60_000, timeoutMs: 1000 }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const first = (id: string) => new Promise<string>((r) => hs.on('change', (i: string, st: string) => i === id && r(st)))
  const bigSt = first('big')
  const slowSt = first('slow')
  hs.set('big', { type: 'HttpGet', args: `http://127.0.0.1:${port}/big` }, ctx)
  hs.set('slow', { type: 'HttpGet', args: `http://127.0.0.1:${port}/slow` }, ctx)
  t.equal(await bigSt, 'unhealthy', `a body of ${big.length} bytes fails`)
  t.equal(await slowSt, 'alive', 'a body finished after 80 ms passes')
})

t.test('Tcp: 60 runs against a connect that never completes leave no socket', async (t) => {
  // A listener that stops accepting (SIGSTOP) with its backlog full: further SYNs go unanswered.
  const child = spawn(
    process.execPath,
    ['-e', "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>console.log(s.address().port))"],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  const port = await new Promise<number>((r) => child.stdout!.once('data', (d) => r(Number(String(d).trim()))))
  process.kill(child.pid!, 'SIGSTOP')
  const fillers: net.Socket[] = []
  t.teardown(() => fillers.forEach((s) => s.destroy()))
  for (let i = 0; i < 3; i++) fillers.push(net.connect({ port, host: '127.0.0.1' }).on('error', () => undefined))
  await new Promise((r) => setTimeout(r, 100))
  const before = socketsTo('self', port)
  const registry = new Registry()
  const hs = new HealthScheduler({ intervalMs: 10, timeoutMs: 60 }, { logger: silentLogger(), registry })
  t.teardown(() => hs.stop())
  hs.start()
  const seen: string[] = []
  hs.on('change', (_i: string, st: string) => seen.push(st))
  hs.set('syn', { type: 'Tcp', args: `127.0.0.1:${port}` }, ctx)
  const runs = async () => Number(/result="timeout"\} (\d+)/.exec(await registry.metrics())?.[1] ?? 0)
  await waitFor(`${RUNS} Tcp runs`, async () => (await runs()) >= RUNS, 60_000)
  const held = socketsTo('self', port) - before
  t.ok(held <= 1, `${held} connecting socket(s) left after ${await runs()} runs`)
  t.same(seen, ['unhealthy'], 'it failed at its first timeout and never passed')
})

t.test('External: the command and its children are killed at the timeout; one that passes leaves none behind', async (t) => {
  const hs = new HealthScheduler({ intervalMs: 10, timeoutMs: 100, allowExternal: true }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const seen = new Map<string, string[]>()
  hs.on('change', (i: string, st: string) => seen.set(i, [...(seen.get(i) ?? []), st]))
  // The shell forks a background child, then waits in a second one: both outlive a kill of the shell alone.
  hs.set('hang', { type: 'External', args: `/bin/sh -c 'sleep 61.25 & sleep 61.25; true'` }, ctx)
  // Its own timeout is long: on a loaded machine a shell that exits 0 can take more than 100 ms.
  hs.set('leaves', { type: 'External', args: `/bin/sh -c 'sleep 62.25 & exit 0'`, timeoutMs: 60_000 }, ctx)
  await waitFor('the checks to run many times', () => (seen.get('hang')?.length ?? 0) > 0 && (seen.get('leaves')?.length ?? 0) > 0, 60_000)
  await new Promise((r) => setTimeout(r, 3000))
  t.ok(
    processesWith('sleep 61.25').length <= 3,
    `${processesWith('sleep 61.25').length} of the hanging command's processes alive (at most one run in flight)`,
  )
  t.ok(processesWith('sleep 62.25').length <= 2, `${processesWith('sleep 62.25').length} left by the passing command`)
  hs.stop()
  await waitFor(
    'every process gone after stop',
    () => processesWith('sleep 61.25').length + processesWith('sleep 62.25').length === 0,
    60_000,
  )
  t.same(seen.get('hang'), ['unhealthy'], 'the hanging command failed')
  t.same(seen.get('leaves'), ['alive'], 'the command that exits 0 passed')
})
