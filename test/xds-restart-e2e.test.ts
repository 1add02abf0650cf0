// An agent restarted under live proxyless clients, then a service removed (fault 2 of issue
// 11), with both real clients: the agent is the built CLI in a child process, killed and
// started again on the same ports with the same static file. The clients keep calling through
// the outage, reconnect holding the versions they had, and when a service is then removed its
// Listener goes before its Cluster: no client is told a Cluster it still uses does not exist.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { AgentChild } from './lib/agent-child.js'
import { echoBackend as backend } from './lib/echo.js'
import { startXdsClient, within, XDS_CLIENT_KINDS, xdsClientMissing, type XdsTestClient } from './lib/xds-clients.js'
import type { XdsDebugInfo } from '../src/xds/index.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-xds-restart-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const ECHO = 'xds:///echo:10001'
const WEB = 'xds:///web:10002'

function writeStatic(path: string, services: Array<{ id: string; name: string; port: number; servicePort: number }>): void {
  const body = services.map((s) => ({
    id: s.id,
    name: s.name,
    ports: [{ port: s.port, servicePort: s.servicePort, ip: '127.0.0.1' }],
    proxyMode: 'grpc',
  }))
  writeFileSync(path + '.tmp', JSON.stringify({ services: body }))
  renameSync(path + '.tmp', path)
}

type Debug = { clients: XdsDebugInfo }

/** Wait until the agent shows `nodeId` connected with every type ACKed and up to date. */
async function upToDate(agent: AgentChild, nodeId: string, ceilingMs = 30_000): Promise<number | null> {
  const start = Date.now()
  while (Date.now() - start < ceilingMs) {
    const dbg = await agent.json<Debug>('/debug/xds').catch(() => null)
    const c = dbg?.clients.clients.find((x) => x.nodeId === nodeId)
    if (c && c.types.length >= 3 && c.types.every((x) => x.upToDate)) return Date.now() - start
    await new Promise((r) => setTimeout(r, 100))
  }
  return null
}

async function noNacks(t: Test, client: XdsTestClient, agent: AgentChild): Promise<void> {
  t.same(client.nacks, [], `${client.kind} logged no NACK`)
  const dbg = await agent.json<Debug>('/debug/xds')
  t.same(
    dbg.clients.clients.flatMap((c) => c.types.filter((x) => x.nackedVersion !== null).map((x) => `${x.type}: ${x.nackError}`)),
    [],
    'the agent saw no NACK',
  )
  t.same(dbg.clients.invalid, [], 'every resource served was valid')
}

for (const kind of XDS_CLIENT_KINDS) {
  t.test(`${kind}: agent restart under a live client, then a service removed`, { skip: xdsClientMissing(kind) ?? false }, async (t) => {
    const pa = await backend(t, 'A')
    const pw = await backend(t, 'W')
    const staticFile = join(dir, `${kind}.json`)
    const both = [
      { id: 'echo-1', name: 'echo', port: pa, servicePort: 10001 },
      { id: 'web-1', name: 'web', port: pw, servicePort: 10002 },
    ]
    writeStatic(staticFile, both)
    const agent = await AgentChild.start(t, { node: `restart-${kind}`, staticFile, logFile: join(dir, `${kind}.log`) })
    const nodeId = `restart-client-${kind}`
    const client = await startXdsClient(t, kind, { nodeId, xdsAddress: agent.xdsAddress })

    within(t, await client.until(ECHO, (w) => w === 'A', 1, 30_000), 'echo answers')
    within(t, await client.until(WEB, (w) => w === 'W', 1, 30_000), 'web answers')
    within(t, await upToDate(agent, nodeId), 'the client ACKed every type')

    await agent.kill()
    t.same(await client.counts(ECHO, 10), { A: 10 }, 'calls go on while the agent is down (the client keeps its config)')
    await agent.spawn()
    within(t, await upToDate(agent, nodeId), 'the client is back on the restarted agent, up to date')
    t.same(await client.counts(ECHO, 10), { A: 10 }, 'echo answers after the restart')
    t.same(await client.counts(WEB, 10), { W: 10 }, 'web answers after the restart')

    // The removal after the restart: Listener first, then Cluster.
    writeStatic(staticFile, [both[0]!])
    within(t, await client.until(WEB, (w) => w === '', 5, 30_000), 'the removed service stops answering')
    t.same(await client.counts(ECHO, 20), { A: 20 }, 'the other service is untouched')
    within(t, await upToDate(agent, nodeId), 'the client settles on the new state')
    t.ok(client.listenersLost.has('web:10002'), "the client was told web's Listener does not exist")
    t.same(client.clustersLostFirst, [], 'no Cluster was removed before the Listener that named it')
    await noNacks(t, client, agent)
  })
}
