// Five real agents on loopback (UDP+TCP gossip, static files): a service added on one
// appears on all, removed it is gone everywhere, and a crashed host's services are gone
// everywhere after failure detection. Ceilings are generous; bench/ has the real figures.
import t from 'tap'
import { mkdtempSync, writeFileSync, rmSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { liveRecords } from '../src/registry/types.js'
import { loopbackAgentFlags } from './lib/agent-process.js'
import { waitFor } from './lib/wait.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-cluster-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

function writeStatic(i: number, extra: boolean): string {
  const path = join(dir, `static-${i}.json`)
  const services = [{ id: `svc-${i}`, name: `svc-${i}`, ports: [{ port: 8000 + i, servicePort: 10000 + i }] }]
  if (extra) services.push({ id: 'extra-1', name: 'extra', ports: [{ port: 9000, servicePort: 10100 }] })
  // Replace atomically, as editors and config tools do.
  writeFileSync(path + '.tmp', JSON.stringify({ services }))
  renameSync(path + '.tmp', path)
  return path
}

const liveNames = (a: Agent) =>
  liveRecords(a.view().snapshot())
    .map((r) => r.name)
    .sort()

t.test('five agents on loopback', async (t) => {
  const agents: Agent[] = []
  t.teardown(() => Promise.all(agents.map((a) => a.stop({ leave: false }))))
  const flags = (i: number, join?: string) => [
    ...loopbackAgentFlags(`node-${i}`, { dns: true }),
    '--cluster',
    'c1',
    '--discovery',
    'static',
    '--static',
    writeStatic(i, false),
    ...(join ? ['--join', join] : []),
  ]
  const first = new Agent(parseAgentConfig(flags(0), {}), { logger: silentLogger() })
  agents.push(first)
  await first.start()
  const seed = `127.0.0.1:${first.bound.gossip}`
  for (let i = 1; i < 5; i++) {
    const a = new Agent(parseAgentConfig(flags(i, seed), {}), { logger: silentLogger() })
    agents.push(a)
    await a.start()
  }
  const all = ['svc-0', 'svc-1', 'svc-2', 'svc-3', 'svc-4']
  await waitFor('every agent to list all five services', () => agents.every((a) => liveNames(a).join() === all.join()))
  t.ok(
    agents.every((a) => a.members().filter((m) => m.state === 'alive').length === 5),
    'five alive members everywhere',
  )
  await waitFor('every agent to be ready', () => agents.every((a) => a.isReady()))

  // Over HTTP, as an operator sees it.
  const res = await fetch(`http://127.0.0.1:${agents[3]!.bound.http}/api/services.json`)
  const body = (await res.json()) as { services: Array<{ name: string }> }
  t.same(body.services.map((s) => s.name).sort(), all, '/api/services.json on another host lists them')

  writeStatic(2, true)
  await waitFor('the added service on every agent', () => agents.every((a) => liveNames(a).includes('extra')))
  t.pass('a service added on one host appears on all')
  writeStatic(2, false)
  await waitFor('the removed service gone from every agent', () => agents.every((a) => !liveNames(a).includes('extra')))
  t.pass('removed, it is gone everywhere')

  // A crash: sockets close without a leave.
  await agents[4]!.stop({ leave: false })
  const rest = agents.slice(0, 4)
  const took = await waitFor(
    "the crashed host's service gone from every other agent",
    () => rest.every((a) => !liveNames(a).includes('svc-4')),
    10_000,
  )
  t.ok(
    rest.every((a) => a.members().find((m) => m.name === 'node-4')?.state === 'dead'),
    `node-4 marked dead everywhere (${took} ms)`,
  )
})
