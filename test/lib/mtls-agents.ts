/**
 * Two agents on one offline root for the proxyless mTLS tests (issue 18): agent A's host runs
 * services `a` (ServicePort 10010) and `c` (10012), agent B's host runs `b` (10011) on a port
 * kept free for an XdsServer, and `z` (10013) on that same port (see bServices); both have
 * --tls-dir with an intermediate of one root. Everything is stopped and removed at teardown.
 *
 * @example
 *   const env = await twoAgents(t, 'js')
 *   const server = await serverB(t, env)           // b's XdsServer, serving once agent B sent its Listener
 *   await startXdsClient(t, 'grpc-js', { ...env.clientOf('a'), creds: 'xds' })
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { Agent } from '../../src/agent/agent.js'
import { parseAgentConfig } from '../../src/agent/config.js'
import { silentLogger } from '../../src/log.js'
import type { XdsDebugInfo } from '../../src/xds/index.js'
import { freePort } from './agent-child.js'
import { makePki, type Pki } from './identity.js'
import { startXdsServer, type XdsTestServer } from './xds-clients.js'

export interface StaticEntry {
  name: string
  port: number
  servicePort: number
  allow?: string[]
}

/** Write a Shoal static file atomically, every entry a gRPC service on 127.0.0.1. */
export function writeStatic(path: string, entries: StaticEntry[]): void {
  const services = entries.map((e) => ({
    id: `${e.name}-1`,
    name: e.name,
    ports: [{ port: e.port, servicePort: e.servicePort, ip: '127.0.0.1' }],
    proxyMode: 'grpc',
    ...(e.allow ? { allow: e.allow } : {}),
  }))
  writeFileSync(path + '.tmp', JSON.stringify({ services }))
  renameSync(path + '.tmp', path)
}

/**
 * Agent B's services: `b` (ServicePort 10011) on the XdsServer's port, and `z` (10013), which
 * names the same port: a client of z reaches b's server, which shows b's certificate.
 */
export function bServices(serverPort: number, allow?: string[]): StaticEntry[] {
  return [
    { name: 'b', port: serverPort, servicePort: 10011, allow },
    { name: 'z', port: serverPort, servicePort: 10013 },
  ]
}

/** Wait for `pred` (checked every 50 ms), else throw naming `what`. */
export async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export interface TwoAgents {
  pki: Pki
  a: Agent
  b: Agent
  tlsA: string
  tlsB: string
  staticB: string
  /** The port b's XdsServer binds (b's instance in B's static file). */
  serverPort: number
  /** The cluster name, which is also the trust domain. */
  trustDomain: string
  /** Bootstrap options of a process of `service` on agent A's host. */
  clientOf(service: 'a' | 'c'): { nodeId: string; xdsAddress: string; service: string; tlsDir: string }
}

/** Two agents on one root (`--tls-mode` permissive unless `mode` says otherwise). */
export async function twoAgents(t: Test, tag: string, o: { mode?: string; leafTtl?: string } = {}): Promise<TwoAgents> {
  const trustDomain = `mtls-${tag}`
  const pki = await makePki(t, { cluster: trustDomain, nodes: [`${tag}-a`, `${tag}-b`] })
  const dir = mkdtempSync(join(tmpdir(), 'shoal-mtls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const serverPort = await freePort()
  const staticA = join(dir, 'a.json')
  const staticB = join(dir, 'b.json')
  writeStatic(staticA, [
    { name: 'a', port: await freePort(), servicePort: 10010 },
    { name: 'c', port: await freePort(), servicePort: 10012 },
  ])
  writeStatic(staticB, bServices(serverPort))
  const agents: Agent[] = []
  t.teardown(() => Promise.all(agents.map((x) => x.stop({ leave: false }))))
  const flags = (node: string, file: string, join?: string) => [
    ...['--node', node, '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', 'off'],
    ...['--profile', 'local', '--cluster', trustDomain, '--discovery', 'static', '--static', file],
    ...['--tls-dir', pki.tlsDir(node), '--tls-mode', o.mode ?? 'permissive', ...(o.leafTtl ? ['--tls-leaf-ttl', o.leafTtl] : [])],
    ...(join ? ['--join', join] : []),
  ]
  const a = new Agent(parseAgentConfig(flags(`${tag}-a`, staticA), {}), { logger: silentLogger() })
  agents.push(a)
  await a.start()
  const b = new Agent(parseAgentConfig(flags(`${tag}-b`, staticB, `127.0.0.1:${a.bound.gossip}`), {}), { logger: silentLogger() })
  agents.push(b)
  await b.start()
  await until(
    'a and c hold leaves on A, b and z on B',
    () => a.identityStatus()?.services.length === 2 && b.identityStatus()?.services.length === 2,
  )
  const tlsA = pki.tlsDir(`${tag}-a`)
  return {
    pki,
    a,
    b,
    tlsA,
    tlsB: pki.tlsDir(`${tag}-b`),
    staticB,
    serverPort,
    trustDomain,
    clientOf: (service) => ({ nodeId: `${service}-${tag}`, xdsAddress: `127.0.0.1:${a.bound.xds}`, service, tlsDir: tlsA }),
  }
}

/** Start b's XdsServer (grpc-js-xds, XdsServerCredentials) on agent B and wait until it serves. */
export async function serverB(t: Test, env: TwoAgents, refreshSeconds = 1): Promise<XdsTestServer> {
  const server = startXdsServer(t, 'B', `127.0.0.1:${env.serverPort}`, {
    nodeId: 'server-b',
    xdsAddress: `127.0.0.1:${env.b.bound.xds}`,
    service: 'b',
    tlsDir: env.tlsB,
    refreshSeconds,
  })
  await until('the XdsServer of b serves', () => server.serving, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}; server events ${JSON.stringify(server.events)}; log tail:\n${server.log.slice(-15).join('\n')}`)
  })
  return server
}

/** The agent's /debug/xds (`{ node, clients }`, clients being the xDS server's debug info). */
export async function debugXds(agent: Agent): Promise<XdsDebugInfo> {
  return ((await (await fetch(`http://127.0.0.1:${agent.bound.http}/debug/xds`)).json()) as { clients: XdsDebugInfo }).clients
}

/** The NACKs the agent's xDS clients hold (`node type: error`); empty when none. */
export async function nacksOf(agent: Agent): Promise<string[]> {
  return (await debugXds(agent)).clients.flatMap((c) =>
    c.types.filter((x) => x.nackError).map((x) => `${c.nodeId} ${x.type}: ${x.nackError}`),
  )
}
