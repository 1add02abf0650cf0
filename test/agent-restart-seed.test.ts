// "Nothing lost", the seed case: the first agent of a cluster (started without --join, with
// no services of its own) is killed and started again with the same name and addresses,
// under an Envoy-like ADS client that subscribes to every Cluster and Listener and, when its
// stream breaks, reconnects presenting the versions it holds. Before, the restarted seed knew
// no peer until one happened to push-pull with it, served its own (empty) view at the ready
// timeout, and the client lost every Cluster and Listener of the other hosts. Now the first
// peer that probes it brings it the cluster (the gossip join back), and a client that holds a
// configuration is never answered from a view built without a peer exchange. Real agents
// (in-process, real sockets), a real gRPC ADS stream.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { AdsWatch } from './lib/ads-watch.js'
import { liveRecords } from '../src/registry/types.js'
import { freeLoopbackPort } from './lib/agent-process.js'
import { capturedLogger } from './lib/log.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-restart-seed-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

function writeStatic(path: string, prefix: string, n: number, basePort: number): string[] {
  const services = Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    name: `${prefix}-svc-${i}`,
    ports: [{ port: 20_000 + i, servicePort: basePort + i, ip: '127.0.0.1' }],
  }))
  writeFileSync(path + '.tmp', JSON.stringify({ services }))
  renameSync(path + '.tmp', path)
  return services.map((s) => s.name)
}

/** Polls `cond` every 20 ms; no deadline of its own (tap's file timeout bounds the test). */
async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 20))
}

const flags = (node: string, extra: string[]) => [
  ...['--node', node, '--http', '127.0.0.1:0', '--dns', 'off', '--profile', 'local', '--cluster', 'seed', '--discovery', 'static'],
  ...extra,
]

t.test('a restarted seed never answers a reconnecting client with a list lacking the other hosts', async (t) => {
  const gossipPort = await freeLoopbackPort()
  const xdsPort = await freeLoopbackPort()
  const seedFile = join(dir, 'seed.json')
  writeStatic(seedFile, 'none', 0, 0)
  // The ready timeout well below a push-pull interval (5 s with local): before, the seed was
  // ready long before any peer push-pulled with it.
  const seedFlags = flags('a1', [
    ...['--bind', `127.0.0.1:${gossipPort}`, '--xds', `127.0.0.1:${xdsPort}`, '--static', seedFile, '--ready-timeout', '300ms'],
  ])
  const agents: Agent[] = []
  t.teardown(async () => {
    for (const a of agents.reverse()) await a.stop({ leave: false })
  })
  const start = async (argv: string[], logger = silentLogger()): Promise<Agent> => {
    const a = new Agent(parseAgentConfig(argv, {}), { logger })
    agents.push(a)
    await a.start()
    return a
  }
  let a1 = await start(seedFlags)
  const files = { a2: join(dir, 'a2.json'), a3: join(dir, 'a3.json') }
  const names = [...writeStatic(files.a2, 'a2', 40, 30_000), ...writeStatic(files.a3, 'a3', 10, 31_000)].sort()
  for (const node of ['a2', 'a3'] as const) {
    const f = flags(node, ['--bind', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--static', files[node], '--join', `127.0.0.1:${gossipPort}`])
    await start(f)
  }

  const watch = new AdsWatch(`127.0.0.1:${xdsPort}`, { resume: true, listeners: true })
  t.teardown(() => watch.close())
  const full = (type: 'cds' | 'lds') => {
    const last = watch.answers.filter((a) => a.type === type).at(-1)
    return last !== undefined && names.every((n) => last.names.some((x) => x.includes(n)))
  }
  await until(() => full('cds') && full('lds') && watch.served() === names.length)
  t.pass(`the client holds ${names.length} Clusters with endpoints and their Listeners`)
  const listeners = watch.answers.filter((a) => a.type === 'lds').at(-1)!.names.length

  // What each peer holds by owner when the seed dies: the restarted seed is ready after one
  // clean exchange with one peer, and holds then what that peer holds (printed on a failure).
  const holdings = agents
    .slice(1)
    .map((a, i) => {
      const byOwner = new Map<string, number>()
      for (const r of liveRecords(a.view().snapshot())) byOwner.set(r.host, (byOwner.get(r.host) ?? 0) + 1)
      return `a${i + 2}: ${[...byOwner].map(([o, n]) => `${o}=${n}`).join(' ')}`
    })
    .join('; ')
  // kill -9: no leave, no drain; the same name, addresses and flags again.
  const streams = watch.streams
  const answered = watch.answers.length
  await a1.stop({ leave: false })
  agents.splice(agents.indexOf(a1), 1)
  const { logger, lines } = capturedLogger('info')
  a1 = await start(seedFlags, logger)
  await until(() => watch.streams > streams && a1.isReady())
  // Served again once a peer exchange brought the cluster: the client is up to date with it.
  const http = `http://127.0.0.1:${a1.bound.http}`
  await until(async () => {
    const dbg = (await (await fetch(`${http}/debug/xds`)).json()) as {
      clients: { clients: Array<{ types: Array<{ type: string; upToDate: boolean }> }> }
    }
    const c = dbg.clients.clients[0]
    return c !== undefined && c.types.length >= 3 && c.types.every((x) => x.upToDate)
  })
  t.pass('the client is up to date with the restarted seed')
  const after = watch.answers.slice(answered)
  const short = after.filter((a) => a.type !== 'eds' && a.names.length < (a.type === 'cds' ? names.length : listeners))
  t.same(
    short.map((a) => `${a.type} n=${a.names.length} at ${Math.round(a.at)} ms`),
    [],
    'no Cluster or Listener list after the restart lacks the other hosts',
  )
  if (short.length > 0) t.comment(`the peers held, when the seed was killed: ${holdings}`)
  t.equal(watch.served(), names.length, 'the client still holds every Cluster with its endpoints')
  // Waited for, not read once: on a loaded machine a peer may be suspect for a moment.
  await until(() => a1.members().filter((m) => m.state === 'alive').length === 3)
  t.pass('the restarted seed knows both peers')
  const why = lines.find((l) => l.msg === 'ready: serving xDS')?.why
  t.comment(`restarted seed ready: ${String(why)}`)
  // What the restarted seed saw of its peers (member transitions, exchanges), for a failure's report.
  if (short.length > 0) t.comment(lines.map((l) => JSON.stringify(l)).join('\n'))

  // The stream is live and served: a service added on a peer reaches the client.
  writeStatic(files.a3, 'a3', 11, 31_000)
  await until(() =>
    watch.view.has(
      watch.answers
        .filter((a) => a.type === 'cds')
        .at(-1)
        ?.names.find((n) => n.includes('a3-svc-10')) ?? '-',
    ),
  )
  t.pass('a service added on a peer after the restart reaches the client')
})
