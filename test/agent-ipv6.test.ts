// Two agents on IPv6 loopback: every address the API shows is written one way, with the
// IPv6 host in brackets (a fault once: /api/state.json printed `::1:18204` while
// /api/members.json printed `[::1]:18204`), and a check template on an IPv6 instance passes.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { tcpService } from './lib/listen.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-ipv6-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

async function until(what: string, pred: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const start = Date.now()
  while (!(await pred())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('addresses in brackets everywhere, and {{ host }} checks pass on IPv6', async (t) => {
  const target = tcpService()
  await new Promise<void>((r) => target.listen(0, '::1', () => r()))
  t.teardown(() => new Promise<void>((r) => target.close(() => r())))
  const port = (target.address() as { port: number }).port
  const file = join(dir, 'a.json')
  const tcp = { type: 'Tcp', args: `{{ host }}:{{ tcp ${port} }}`, intervalMs: 200, timeoutMs: 1000 }
  writeFileSync(
    file,
    JSON.stringify({
      services: [{ id: 'v6-tcp', name: 'v6', ports: [{ port, servicePort: 10601, ip: '::1' }], check: tcp }],
    }),
  )
  const flags = (node: string, extra: string[]) => [
    '--node',
    node,
    '--bind',
    '[::1]:0',
    '--advertise',
    '[::1]:0',
    '--http',
    '[::1]:0',
    '--xds',
    '[::1]:0',
    '--dns',
    '[::1]:0',
    '--profile',
    'local',
    ...extra,
  ]
  const a = new Agent(parseAgentConfig(flags('v6-a', ['--discovery', 'static', '--static', file]), {}), { logger: silentLogger() })
  t.teardown(() => a.stop({ leave: false }))
  await a.start()
  const b = new Agent(parseAgentConfig(flags('v6-b', ['--discovery', 'none', '--join', `[::1]:${a.bound.gossip}`]), {}), {
    logger: silentLogger(),
  })
  t.teardown(() => b.stop({ leave: false }))
  await b.start()

  const api = (path: string) => fetch(`http://[::1]:${b.bound.http}${path}`).then((r) => r.json() as Promise<any>)
  await until('b sees a', async () => (await api('/api/state.json')).hosts.some((h: any) => h.name === 'v6-a' && h.services.length === 1))
  const state = await api('/api/state.json')
  const members = await api('/api/members.json')
  for (const h of state.hosts) t.match(h.address, /^\[::1\]:\d+$/, `state.json host ${h.name}: ${h.address}`)
  for (const m of members.members) t.match(m.address, /^\[::1\]:\d+$/, `members.json ${m.name}: ${m.address}`)
  const byName = Object.fromEntries(state.hosts.map((h: any) => [h.name, h.address]))
  for (const m of members.members) t.equal(byName[m.name], m.address, `${m.name}: one address in both views`)

  await until(
    'the Tcp check on [::1] passes',
    async () => (await api('/api/services/v6.json').catch(() => ({ instances: [] }))).instances?.[0]?.status === 'alive',
  )
  t.pass('Tcp {{ host }}:{{ tcp N }} on ::1 passes')
})
