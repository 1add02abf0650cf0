// Issue 14: an agent that leaves gracefully first shows its host's services draining (reason
// `agent-leaving`) on every other host for --leave-drain, so that clients there stop picking
// them while the calls in flight finish; then it leaves and they are gone. Before, a leave
// withdrew them at once. With --leave-drain 0s, and on a stop without leaving (a restart:
// the warm start keeps them), nothing drains.
import t, { type Test } from 'tap'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { liveRecords } from '../src/registry/types.js'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { LOOPBACK_AGENT_FLAGS } from './lib/agent-process.js'
import { waitFor } from './lib/wait.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-leave-drain-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

let pairs = 0

async function pair(
  t: Test,
  leaveDrain: string,
): Promise<{ a: Agent; b: Agent; seen: Array<{ at: number; status: string; reason?: string }> }> {
  const n = ++pairs
  const file = join(dir, `a-${n}.json`)
  writeFileSync(file, JSON.stringify({ services: [{ id: 'web-1', name: 'web', ports: [{ port: 8080, servicePort: 10080 }] }] }))
  const common = [...LOOPBACK_AGENT_FLAGS, '--cluster', `leave-${n}`]
  const a = new Agent(
    parseAgentConfig(['--node', 'a', ...common, '--discovery', 'static', '--static', file, '--leave-drain', leaveDrain], {}),
    {
      logger: silentLogger(),
    },
  )
  t.teardown(() => a.stop({ leave: false }))
  await a.start()
  const b = new Agent(parseAgentConfig(['--node', 'b', ...common, '--discovery', 'none', '--join', `127.0.0.1:${a.bound.gossip}`], {}), {
    logger: silentLogger(),
  })
  t.teardown(() => b.stop({ leave: false }))
  await b.start()
  const onB = () => liveRecords(b.view().snapshot()).find((r) => r.host === 'a' && r.id === 'web-1')
  await waitFor('b to hold web-1', () => onB() !== undefined)
  const seen: Array<{ at: number; status: string; reason?: string }> = []
  const note = () => {
    const r = onB()
    const s = { at: Date.now(), status: r?.status ?? 'gone', ...(r?.reason !== undefined ? { reason: r.reason } : {}) }
    const last = seen.at(-1)
    if (!last || last.status !== s.status || last.reason !== s.reason) seen.push(s)
  }
  note()
  t.teardown(b.view().subscribe(note))
  return { a, b, seen }
}

t.test('a leaving agent drains its services everywhere for --leave-drain, then leaves', async (t) => {
  const { a, seen } = await pair(t, '600ms')
  const t0 = Date.now()
  await a.stop({ leave: true })
  const took = Date.now() - t0
  await waitFor('b to see web-1 gone', () => seen.at(-1)?.status === 'gone')
  t.same(
    seen.map((s) => [s.status, s.reason]),
    [
      ['unknown', undefined],
      ['draining', 'agent-leaving'],
      ['gone', undefined],
    ],
    'served, draining because its agent leaves, gone',
  )
  const draining = seen[1]!
  const gone = seen[2]!
  // The grace runs on the leaving agent: b sees the leave no sooner than 600 ms after the stop
  // began. (How long b shows it draining also depends on how fast the drain reached b, which a
  // loaded machine slows: 410 ms once under the full suite.)
  t.ok(gone.at - t0 >= 590, `gone on b ${gone.at - t0} ms after the stop began (grace 600 ms)`)
  t.comment(`b showed it draining for ${gone.at - draining.at} ms, from ${draining.at - t0} ms after the stop began`)
  t.ok(took >= 600, `the stop waited the grace (${took} ms)`)
})

t.test('--leave-drain 0s leaves at once; a stop without leaving drains nothing', async (t) => {
  const now = await pair(t, '0s')
  await now.a.stop({ leave: true })
  await waitFor('b to see web-1 gone', () => now.seen.at(-1)?.status === 'gone')
  t.same(
    now.seen.map((s) => s.status),
    ['unknown', 'gone'],
    'no drain with --leave-drain 0s',
  )
  const restart = await pair(t, '600ms')
  await restart.a.stop({ leave: false })
  t.same(
    restart.seen.map((s) => s.status),
    ['unknown'],
    'a stop without leaving (a restart) drains nothing: the warm start keeps its services',
  )
})
