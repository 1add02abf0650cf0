#!/usr/bin/env node
// `npm run demo`: three Shoal agents on loopback, a real gRPC echo backend beside each one
// (registered through the agent's static file as `echo`, ServicePort 10001, proxy mode grpc),
// and a proxyless grpc-js-xds client that asks node-a's xDS server for `xds:///echo:10001`
// and calls it every 200 ms, printing which host answered. Along the way node-b's instance
// is drained, node-c's agent stops (graceful leave) and node-b is undrained, so the output
// shows traffic moving. Ends by itself (SHOAL_DEMO_SECONDS, default 20) or on Ctrl-C, and
// removes everything it made.
//
// Runs the built agent from dist/ (`npm run demo` builds it first when a source is newer). Environment:
//   SHOAL_DEMO_SECONDS=20   how long the client calls
//   SHOAL_DEMO_LOG=warn     agent log level on stderr (default: silent)
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DIST = join(ROOT, 'dist')
if (!existsSync(join(DIST, 'agent', 'agent.js'))) {
  console.error('dist/ is missing: run `npm run demo` (it builds first) or `npm run build`.')
  process.exit(1)
}
const { Agent } = await import(join(DIST, 'agent', 'agent.js'))
const { parseAgentConfig } = await import(join(DIST, 'agent', 'config.js'))
const { createLogger, silentLogger } = await import(join(DIST, 'log.js'))
const { grpcBootstrap } = await import(join(DIST, 'xds', 'bootstrap.js'))

const SECONDS = Number(process.env.SHOAL_DEMO_SECONDS ?? 20)
if (!(SECONDS > 0)) {
  console.error(`SHOAL_DEMO_SECONDS="${process.env.SHOAL_DEMO_SECONDS}" is not a positive number of seconds`)
  process.exit(2)
}
const LOG_LEVEL = process.env.SHOAL_DEMO_LOG
const NODES = ['node-a', 'node-b', 'node-c']
const SERVICE_PORT = 10001
const TARGET = `xds:///echo:${SERVICE_PORT}`
const CALL_EVERY_MS = 200

const ident = (b) => b
const ECHO_PATH = '/shoal.demo.Echo/Echo'
// One unary method, raw bytes both ways: the answer is the name of the host that served it.
const echoService = {
  Echo: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: ident,
    requestDeserialize: ident,
    responseSerialize: ident,
    responseDeserialize: ident,
  },
}

const dir = mkdtempSync(join(tmpdir(), 'shoal-demo-'))
const backends = []
const agents = new Map()
let client
let cleaning
const t0 = Date.now()
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]`
const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })

function cleanup() {
  cleaning ??= (async () => {
    client?.close()
    await Promise.all([...agents.values()].map((a) => a.stop({ leave: true }).catch(() => undefined)))
    for (const s of backends) s.forceShutdown()
    rmSync(dir, { recursive: true, force: true })
  })()
  return cleaning
}

const stopNow = new AbortController()
let signals = 0
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    signals += 1
    if (signals > 1) {
      rmSync(dir, { recursive: true, force: true })
      process.exit(130)
    }
    console.log(`\n${stamp()} ${sig}: stopping (again to force)`)
    stopNow.abort()
  })
}

async function startBackend(node) {
  const server = new grpc.Server()
  server.addService(echoService, { Echo: (_call, cb) => cb(null, Buffer.from(node)) })
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  )
  backends.push(server)
  return port
}

function writeStatic(node, port) {
  const path = join(dir, `${node}.json`)
  const services = [
    {
      id: `echo-${node}`,
      name: 'echo',
      image: 'shoal-demo/echo',
      ports: [{ port, servicePort: SERVICE_PORT, ip: '127.0.0.1' }],
      proxyMode: 'grpc',
      check: { type: 'Tcp', args: `{{ host }}:${port}`, intervalMs: 1000 },
      labels: { demo: 'true' },
    },
  ]
  writeFileSync(path + '.tmp', JSON.stringify({ services }, null, 2))
  renameSync(path + '.tmp', path)
  return path
}

async function startAgent(node, seed) {
  const flags = [
    '--node',
    node,
    '--cluster',
    'demo',
    '--profile',
    'local',
    '--bind',
    '127.0.0.1:0',
    '--http',
    '127.0.0.1:0',
    '--xds',
    '127.0.0.1:0',
    '--dns',
    '127.0.0.1:0',
    '--discovery',
    'static',
    '--static',
    writeStatic(node, await startBackend(node)),
    ...(seed ? ['--join', seed] : []),
  ]
  const logger = LOG_LEVEL ? createLogger({ level: LOG_LEVEL, destination: process.stderr }).child({ node }) : silentLogger()
  const agent = new Agent(parseAgentConfig(flags, {}), { logger })
  agents.set(node, agent)
  await agent.start()
  return agent
}

async function waitUntil(what, pred, ms) {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    if (stopNow.signal.aborted) throw new Error('stopped')
    await sleep(50)
  }
}

async function post(node, path) {
  const res = await fetch(`http://127.0.0.1:${agents.get(node).bound.http}${path}`, { method: 'POST' })
  if (!res.ok) throw new Error(`POST ${path} on ${node}: ${res.status} ${await res.text()}`)
}

function call() {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(ECHO_PATH, ident, ident, Buffer.from('hello'), { deadline: Date.now() + 2000 }, (err, res) =>
      err ? reject(err) : resolve(res.toString()),
    ),
  )
}

async function main() {
  console.log(
    `Shoal demo: ${NODES.length} agents on loopback, service "echo" on ServicePort ${SERVICE_PORT} on each, ${SECONDS} s (Ctrl-C ends it)\n`,
  )
  const a = await startAgent(NODES[0])
  const seed = `127.0.0.1:${a.bound.gossip}`
  for (const node of NODES.slice(1)) await startAgent(node, seed)
  for (const [node, agent] of agents) {
    console.log(
      `  ${node}  UI http://127.0.0.1:${agent.bound.http}/   xDS 127.0.0.1:${agent.bound.xds}   gossip 127.0.0.1:${agent.bound.gossip}`,
    )
  }
  await waitUntil(
    'every agent to list the three echo instances and be ready',
    () =>
      [...agents.values()].every(
        (ag) =>
          ag.isReady() &&
          ag
            .view()
            .snapshot()
            .hosts.filter((h) => h.state === 'alive' && h.services.some((r) => r.name === 'echo' && r.status !== 'tombstone')).length === 3,
      ),
    10_000,
  )

  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(grpcBootstrap({ nodeId: 'demo-client', xdsAddress: `127.0.0.1:${a.bound.xds}` }))
  const xds = await import('@grpc/grpc-js-xds')
  xds.register()
  client = new grpc.Client(TARGET, grpc.credentials.createInsecure())
  const resolving = Date.now()
  // The first resolution (LDS, CDS, EDS from node-a) happens once, before the first call.
  await new Promise((resolve, reject) => client.waitForReady(Date.now() + 15_000, (err) => (err ? reject(err) : resolve())))
  console.log(
    `\nclient: grpc-js-xds, xDS server = node-a (127.0.0.1:${a.bound.xds}), ${TARGET} resolved in ${Date.now() - resolving} ms; calling it every ${CALL_EVERY_MS} ms\n`,
  )

  const ms = SECONDS * 1000
  const steps = [
    {
      at: 0.35 * ms,
      what: "drain node-b's echo instance (POST /api/instances/echo-node-b/drain on node-b)",
      run: () => post('node-b', '/api/instances/echo-node-b/drain'),
    },
    {
      at: 0.6 * ms,
      what: "stop node-c's agent (graceful leave: its services are withdrawn everywhere)",
      run: () => agents.get('node-c').stop({ leave: true }),
    },
    { at: 0.8 * ms, what: "undrain node-b's echo instance", run: () => post('node-b', '/api/instances/echo-node-b/undrain') },
  ]
  const phases = [{ name: 'all three hosts', counts: {} }]
  const start = Date.now()
  while (!stopNow.signal.aborted && Date.now() - start < ms) {
    const elapsed = Date.now() - start
    if (steps.length && elapsed >= steps[0].at) {
      const step = steps.shift()
      console.log(`${stamp()} --- ${step.what}`)
      await step.run()
      phases.push({ name: step.what.replace(/ \(.*$/, ''), counts: {} })
    }
    const tick = Date.now()
    let who
    try {
      who = await call()
      console.log(`${stamp()} ${TARGET} answered by ${who}`)
    } catch (err) {
      who = 'error'
      console.log(`${stamp()} ${TARGET} failed: ${err.details ?? err.message}`)
    }
    const counts = phases.at(-1).counts
    counts[who] = (counts[who] ?? 0) + 1
    await sleep(Math.max(0, CALL_EVERY_MS - (Date.now() - tick)), stopNow.signal)
  }

  console.log('\nanswers per phase:')
  for (const p of phases) {
    const list =
      Object.entries(p.counts)
        .sort()
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none'
    console.log(`  ${p.name.padEnd(36)} ${list}`)
  }
}

let code = 0
try {
  await main()
} catch (err) {
  if (!stopNow.signal.aborted) {
    console.error(`demo failed: ${err.stack ?? err}`)
    code = 1
  }
}
await cleanup()
console.log('\ndemo done: agents stopped, backends closed, temporary files removed')
// The xDS client library keeps reconnect timers to the stopped server; nothing else is left.
process.exit(code)
