// End to end with real agents: two Agents on loopback (gossip, static files, health checks,
// HTTP, xDS), a real gRPC echo backend registered on each, and each real proxyless client
// (grpc-js-xds and gRPC C-core, in their own processes) on agent A's xDS server calling
// xds:///echo:10001. Both static files also list one external endpoint under one ServicePort
// (fault 1 of issue 11): it is served once. Ceilings are generous (a loaded machine); bench/
// has the figures.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import type { Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { tcpService } from './lib/listen.js'
import type { XdsDebugInfo } from '../src/xds/index.js'
import { echoBackend as backend } from './lib/echo.js'
import { startXdsClient, within, XDS_CLIENT_KINDS, xdsClientMissing, type XdsClientKind } from './lib/xds-clients.js'
import { loopbackAgentFlags } from './lib/agent-process.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-xds-agents-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/** A TCP port a Tcp health check connects to; closing it makes the check fail. */
async function healthPort(port = 0): Promise<{ port: number; server: Server }> {
  const server = tcpService()
  await new Promise<void>((res, rej) => {
    server.once('error', rej)
    server.listen(port, '127.0.0.1', () => res())
  })
  return { port: (server.address() as { port: number }).port, server }
}

function closeServer(s: Server): Promise<void> {
  return new Promise((res) => s.close(() => res()))
}

interface StaticEntry {
  id: string
  port: number
  healthPort?: number
  name?: string
  servicePort?: number
}

/** Write a Shoal static file atomically (as editors and config tools replace files). */
function writeStatic(path: string, entries: StaticEntry[]): void {
  const services = entries.map((e) => ({
    id: e.id,
    name: e.name ?? 'echo',
    ports: [{ port: e.port, servicePort: e.servicePort ?? 10001, ip: '127.0.0.1' }],
    proxyMode: 'grpc',
    ...(e.healthPort
      ? { check: { type: 'Tcp', args: `127.0.0.1:${e.healthPort}`, intervalMs: 200, timeoutMs: 500, rise: 1, fall: 1 } }
      : {}),
  }))
  writeFileSync(path + '.tmp', JSON.stringify({ services }))
  renameSync(path + '.tmp', path)
}

const ECHO = 'xds:///echo:10001'
const EXT = 'xds:///ext:10002'

async function scenario(t: Test, kind: XdsClientKind): Promise<void> {
  const pa = await backend(t, 'A')
  const pb = await backend(t, 'B')
  const pc = await backend(t, 'C')
  const px = await backend(t, 'X')
  let health = await healthPort()
  t.teardown(() => closeServer(health.server))
  const staticA = join(dir, `${kind}-a.json`)
  const staticB = join(dir, `${kind}-b.json`)
  // Both hosts list the same external endpoint X under ServicePort 10002.
  const extA = { id: 'ext-a', name: 'ext', port: px, servicePort: 10002 }
  const extB = { id: 'ext-b', name: 'ext', port: px, servicePort: 10002 }
  writeStatic(staticA, [{ id: 'echo-a', port: pa, healthPort: health.port }, extA])
  writeStatic(staticB, [{ id: 'echo-b', port: pb }, extB])

  const agents: Agent[] = []
  t.teardown(() => Promise.all(agents.map((a) => a.stop({ leave: false }))))
  const flags = (node: string, file: string, join?: string) => [
    ...loopbackAgentFlags(node, { dns: true }),
    '--cluster',
    `xds-e2e-${kind}`,
    '--discovery',
    'static',
    '--static',
    file,
    ...(join ? ['--join', join] : []),
  ]
  const a = new Agent(parseAgentConfig(flags(`${kind}-a`, staticA), {}), { logger: silentLogger() })
  agents.push(a)
  await a.start()
  const b = new Agent(parseAgentConfig(flags(`${kind}-b`, staticB, `127.0.0.1:${a.bound.gossip}`), {}), { logger: silentLogger() })
  agents.push(b)
  await b.start()

  const client = await startXdsClient(t, kind, { nodeId: `agents-e2e-${kind}`, xdsAddress: `127.0.0.1:${a.bound.xds}` })
  const until = (pred: (w: string) => boolean, window: number, ceilingMs: number) => client.until(ECHO, pred, window, ceilingMs)
  const counts = (n: number) => client.counts(ECHO, n)

  // Both backends: B's record reaches agent A by gossip, A's passes its first Tcp check.
  const seen = new Set<string>()
  const both = (w: string) => {
    if (w) seen.add(w)
    return seen.has('A') && seen.has('B')
  }
  within(t, await until(both, 1, 30_000), 'calls reach both backends through agent A')
  const first = await counts(100)
  // The external endpoint both hosts list: served once, the copy logged and shown.
  within(t, await client.until(EXT, (w) => w === 'X', 20, 30_000), 'the endpoint both hosts list answers')
  const dup = ((await (await fetch(`http://127.0.0.1:${a.bound.http}/debug/xds`)).json()) as { clients: XdsDebugInfo }).clients.dropped
  t.match(dup, [{ servicePort: 10002, service: 'ext', reason: 'duplicate_address', address: `127.0.0.1:${px}` }], 'one copy left out')
  t.equal(dup.length, 1)
  t.ok((first.A ?? 0) >= 30 && (first.B ?? 0) >= 30, `each backend answers >= 30 of 100: ${JSON.stringify(first)}`)

  // Unhealthy: A's check target goes away; the check fails and A's record turns unhealthy.
  await closeServer(health.server)
  within(t, await until((w) => w === 'B', 20, 20_000), 'unhealthy backend (failing Tcp check) stops receiving')
  t.same(await counts(30), { B: 30 }, 'no call reaches the unhealthy backend')
  health = await healthPort(health.port)
  within(t, await until((w) => w === 'A', 1, 20_000), 'healthy again: receives again')

  // Draining, asked of its own agent over HTTP.
  const drain = await fetch(`http://127.0.0.1:${b.bound.http}/api/instances/echo-b/drain`, { method: 'POST' })
  t.equal(drain.status < 300, true, `POST drain answered ${drain.status}`)
  within(t, await until((w) => w === 'A', 20, 20_000), 'draining backend stops receiving')
  t.same(await counts(30), { A: 30 }, 'no call reaches the draining backend')
  const undrain = await fetch(`http://127.0.0.1:${b.bound.http}/api/instances/echo-b/undrain`, { method: 'POST' })
  t.equal(undrain.status < 300, true, `POST undrain answered ${undrain.status}`)
  within(t, await until((w) => w === 'B', 1, 20_000), 'undrained: receives again')

  // Removed from the static file, and a new backend added in its place.
  writeStatic(staticA, [])
  within(t, await until((w) => w === 'B', 20, 20_000), 'removed backend stops receiving')
  writeStatic(staticA, [{ id: 'echo-c', port: pc }])
  within(t, await until((w) => w === 'C', 1, 20_000), 'a new backend starts receiving')
  const mixed = await counts(60)
  t.ok((mixed.B ?? 0) > 0 && (mixed.C ?? 0) > 0 && !mixed.A, `B and C share the calls: ${JSON.stringify(mixed)}`)

  // Agent B dies without leaving; its backend keeps running but is dropped after failure detection.
  await b.stop({ leave: false })
  within(t, await until((w) => w === 'C', 20, 30_000), "the killed agent's backend is dropped after failure detection")
  t.same(await counts(30), { C: 30 }, "no call reaches the killed agent's backend")

  // What an operator sees: every resource served was valid and the client NACKed nothing.
  t.same(client.nacks, [], `${kind} logged no NACK`)
  const dbg = (await (await fetch(`http://127.0.0.1:${a.bound.http}/debug/xds`)).json()) as { clients: XdsDebugInfo }
  t.same(dbg.clients.invalid, [], 'no invalid resource')
  t.ok(
    dbg.clients.clients.some((c) => c.kind === 'grpc'),
    'the client is seen as a gRPC node',
  )
  t.ok(
    dbg.clients.clients.every((c) => c.types.every((x) => x.nackedVersion === null)),
    'the client NACKed nothing',
  )
}

for (const kind of XDS_CLIENT_KINDS) {
  t.test(
    `${kind} through two agents: balance, duplicate endpoint, unhealthy, draining, removed, new, killed agent`,
    { skip: xdsClientMissing(kind) ?? false },
    (t) => scenario(t, kind),
  )
}
