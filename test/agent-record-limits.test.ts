// Issue 12, part 1, as a user met it: agent `a` serves `small` and `big` from a static file,
// `big` with a 5,000-character label (buildpacks' metadata); `b` joins `a`, then restarts.
// Before, every peer's decoder rejected `big` and threw away the whole batch around it, so
// the restarted `b` listed nothing of `a` and still answered /readyz 200. Now the owner
// truncates the label (with a marker), says so once with the entry and the limit, counts it,
// and `b` holds exactly what `a` serves, before and after its restart.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { RecordLimits } from '../src/registry/limits.js'
import { liveRecords, type ServiceRecord } from '../src/registry/types.js'
import { capturedLogger } from './lib/log.js'
import { waitFor } from './lib/wait.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-limits-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const BIG = 'x'.repeat(5000)

function staticFile(name: string, services: unknown[]): string {
  const path = join(dir, `${name}.json`)
  writeFileSync(path, JSON.stringify({ services }))
  return path
}

const flags = (node: string, file: string, bind = '127.0.0.1:0', join?: string) => [
  ...['--node', node, '--bind', bind, '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', 'off'],
  ...['--profile', 'local', '--cluster', 'limits', '--discovery', 'static', '--static', file],
  ...(join ? ['--join', join] : []),
]

/** What an agent holds of host `h`, comparable across agents (the owner's view is the truth). */
const recordsOf = (a: Agent, h: string): string[] =>
  liveRecords(a.view().snapshot())
    .filter((r: ServiceRecord) => r.host === h)
    .map((r) => JSON.stringify([r.id, r.name, r.labels, r.ports, r.version]))
    .sort()

t.test('a record the owner serves reaches every peer, before and after a restart', async (t) => {
  const { logger, lines } = capturedLogger('warn')
  const fileA = staticFile('a', [
    { id: 'small', name: 'small', ports: [{ port: 8001, servicePort: 10001 }] },
    { id: 'big', name: 'big', ports: [{ port: 8002, servicePort: 10002 }], labels: { 'io.buildpacks.lifecycle.metadata': BIG, team: 'a' } },
  ])
  const fileB = staticFile('b', [{ id: 'mine', name: 'mine', ports: [{ port: 8003, servicePort: 10003 }] }])
  const agents: Agent[] = []
  t.teardown(() => Promise.all(agents.map((x) => x.stop({ leave: false }))))
  const a = new Agent(parseAgentConfig(flags('a', fileA), {}), { logger })
  agents.push(a)
  await a.start()
  const seed = `127.0.0.1:${a.bound.gossip}`

  const own = liveRecords(a.view().snapshot()).find((r) => r.id === 'big')!
  const label = own.labels['io.buildpacks.lifecycle.metadata']!
  t.ok(label.length <= RecordLimits.labelValue.build, `the owner truncated the label to ${label.length} characters`)
  t.match(label, /truncated by Shoal from 5000 characters/, 'with a marker saying so')
  t.equal(own.labels.team, 'a', 'the other labels are kept')
  const warning = lines.find((l) => l.msg.includes('io.buildpacks.lifecycle.metadata'))
  t.ok(warning, 'the owner warned')
  t.match(String(warning?.msg), new RegExp(`${fileA.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} services\\[1\\]`), 'naming the file entry')
  t.match(String(warning?.msg), /5000 characters, truncated to 1024/, 'and the limit')
  const metrics = await (await fetch(`http://127.0.0.1:${a.bound.http}/metrics`)).text()
  t.match(metrics, /shoal_registry_records_trimmed_total\{limit="label-value"\} 1/, 'and counted it')

  const b1 = new Agent(parseAgentConfig(flags('b', fileB, '127.0.0.1:0', seed), {}), { logger: silentLogger() })
  agents.push(b1)
  await b1.start()
  await waitFor('b to hold what a serves', () => recordsOf(b1, 'a').length === 2)
  t.same(recordsOf(b1, 'a'), recordsOf(a, 'a'), 'b holds exactly what a serves')
  const bind = `127.0.0.1:${b1.bound.gossip}`

  // b restarts on the same address without leaving: it learns a's records by the join's pull.
  await b1.stop({ leave: false })
  agents.pop()
  const b2 = new Agent(parseAgentConfig(flags('b', fileB, bind, seed), {}), { logger: silentLogger() })
  agents.push(b2)
  await b2.start()
  await waitFor('the restarted b to be ready', () => b2.isReady())
  await waitFor('the restarted b to hold what a serves', () => recordsOf(b2, 'a').length === 2, 5000).catch(() => undefined)
  t.same(recordsOf(b2, 'a'), recordsOf(a, 'a'), 'after its restart b holds exactly what a serves')
  const bMetrics = await (await fetch(`http://127.0.0.1:${b2.bound.http}/metrics`)).text()
  t.notMatch(bMetrics, /shoal_registry_records_rejected_total\{[^}]*\} [1-9]/, 'b rejected nothing')
})

t.test('/api/sources.json names the entries the record limits refused or trimmed, and why', async (t) => {
  const ports = Array.from({ length: RecordLimits.ports.build + 1 }, (_, i) => ({ port: 9000 + i, servicePort: 11000 + i }))
  const file = staticFile('sources', [
    { id: 'fits', name: 'fits', ports: [{ port: 8001, servicePort: 10001 }] },
    { id: 'many', name: 'many', ports },
    { id: 'big', name: 'big', ports: [{ port: 8002, servicePort: 10002 }], labels: { 'io.buildpacks.lifecycle.metadata': BIG } },
  ])
  const a = new Agent(parseAgentConfig(flags('s', file), {}), { logger: silentLogger() })
  t.teardown(() => a.stop({ leave: false }))
  await a.start()
  t.same(
    liveRecords(a.view().snapshot())
      .map((r) => r.id)
      .sort(),
    ['big', 'fits'],
    "'many' is not served",
  )
  const body = (await (await fetch(`http://127.0.0.1:${a.bound.http}/api/sources.json`)).json()) as {
    sources: Array<Record<string, unknown>>
  }
  const [st] = body.sources
  t.match(st, { source: 'static', where: file, ok: false, services: 2 }, 'not ok while an entry is refused; two services served')
  t.same(
    st!.entries,
    [
      {
        id: 'many',
        origin: `${file} services[1]`,
        action: 'refused',
        limit: 'ports',
        message: `${RecordLimits.ports.build + 1} ports, at most ${RecordLimits.ports.build}; the record is not served`,
      },
      {
        id: 'big',
        origin: `${file} services[2]`,
        action: 'trimmed',
        limit: 'label-value',
        message: 'label "io.buildpacks.lifecycle.metadata": 5000 characters, truncated to 1024',
      },
    ],
    'which entries, what was done and why',
  )

  // The file fixed: the entries go from the answer and the source is ok again.
  writeFileSync(file, JSON.stringify({ services: [{ id: 'fits', name: 'fits', ports: [{ port: 8001, servicePort: 10001 }] }] }))
  const sources = async () =>
    ((await (await fetch(`http://127.0.0.1:${a.bound.http}/api/sources.json`)).json()) as { sources: Array<Record<string, unknown>> })
      .sources[0]!
  const end = Date.now() + 10_000
  let now = await sources()
  while (now.ok !== true && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50))
    now = await sources()
  }
  t.match(now, { ok: true, services: 1 }, 'ok again once every entry fits')
  t.equal(now.entries, undefined, 'and no entries listed')
})
