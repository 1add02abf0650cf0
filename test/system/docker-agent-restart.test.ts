// Issue 12, part 2: a restart hides nothing, anywhere. A Docker-discovery agent (the built
// CLI, --leave-on-terminate false) with 20 labelled containers on a private dockerd restarts
// while an Envoy-like ADS client is connected to it and a peer agent holds its records. Every
// 10 ms the test samples what the client holds and what the peer lists; every answer the
// client gets is recorded. Before, the reconnecting client got a cluster list with 0 clusters
// (the agent was ready before its first Docker resync) and the peer hid the host's records
// until the new boot's records arrived. Now no answer is ever short and neither view ever
// loses anything: on a quick restart, and with a slower engine (the first container list
// after the restart held back 2 s by a proxy in front of the engine's socket).
//
// The agents run the `wan` timing profile: a restart under a loaded CI machine can take longer
// than `lan`'s shortest suspicion (2.1 s), and then the peer would rightly declare the host
// dead; that is not what this test is about.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent.js'
import { parseAgentConfig } from '../../src/agent/config.js'
import { silentLogger } from '../../src/log.js'
import { liveRecords } from '../../src/registry/types.js'
import { AdsWatch } from '../lib/ads-watch.js'
import { cliAgent, freeLoopbackPort, loopbackAgentFlags, type CliAgent } from '../lib/agent-process.js'
import { IMAGE, slowEngine, startDockerd, waitFor } from './dockerd.js'

const CONTAINERS = 20

t.test('a Docker agent restarts: its Envoy and its peer never see less than before', async (t) => {
  const d = await startDockerd(t)
  if (!d) return
  const names = Array.from({ length: CONTAINERS }, (_, i) => `svc-${String(i).padStart(2, '0')}`)
  await Promise.all(
    names.map((n, i) =>
      d.cli(['create', '--name', n, '-l', `ServiceName=${n}`, '-l', `ServicePort_80=${10_100 + i}`, '-p', '80', IMAGE, 'sleep', '3600']),
    ),
  )
  await d.cli(['start', ...names])
  const slow = await slowEngine(t, d)

  const dir = mkdtempSync(join(tmpdir(), 'shoal-restart-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'peer.json')
  writeFileSync(file, JSON.stringify({ services: [{ id: 'peer-web', name: 'peer-web', ports: [{ port: 8080, servicePort: 10_000 }] }] }))
  const peer = new Agent(
    parseAgentConfig([...loopbackAgentFlags('peer', { profile: 'wan' }), '--discovery', 'static', '--static', file], {}),
    { logger: silentLogger() },
  )
  t.teardown(() => peer.stop({ leave: false }))
  await peer.start()

  const [gossipPort, xdsPort] = [await freeLoopbackPort(), await freeLoopbackPort()]
  const args = ['--node', 'docker-host', '--bind', `127.0.0.1:${gossipPort}`, '--xds', `127.0.0.1:${xdsPort}`, '--profile', 'wan']
    .concat(['--discovery', 'docker', '--docker-host', slow.host, '--leave-on-terminate', 'false'])
    .concat(['--join', `127.0.0.1:${peer.bound.gossip}`])
  let agent: CliAgent = await cliAgent(t, args)
  const heldByPeer = () => liveRecords(peer.view().snapshot()).filter((r) => r.host === 'docker-host')
  const all = CONTAINERS + 1 // and the peer's own service
  await waitFor(() => heldByPeer().length === CONTAINERS, 30_000, 'the peer to hold the 20 containers')
  const watch = new AdsWatch(`127.0.0.1:${xdsPort}`)
  t.teardown(() => watch.close())
  await waitFor(() => watch.served() === all, 30_000, 'the Envoy-like client to hold every cluster with its endpoints')

  for (const [what, delayMs] of [
    ['a quick restart', 0],
    ['a slower engine: the first container list after the restart 2 s late', 2000],
  ] as const) {
    const fromAnswer = watch.answers.length
    const streams = watch.streams
    const samples: Array<{ at: number; local: number; remote: number }> = []
    const t0 = Date.now()
    const sampler = setInterval(() => samples.push({ at: Date.now() - t0, local: watch.served(), remote: heldByPeer().length }), 10)
    if (delayMs > 0) slow.delayNextList(delayMs)
    const delayedBefore = slow.delayed()
    t.equal(await agent.stop('SIGTERM'), 0, `${what}: the agent stops`)
    const stoppedAt = Date.now() - t0
    agent = await cliAgent(t, args)
    const startedAt = Date.now() - t0
    const newBoot = () => peer.members().find((m) => m.name === 'docker-host')?.bootId
    await waitFor(
      () =>
        watch.streams > streams &&
        watch.answers.some((a, i) => i >= fromAnswer && a.type === 'eds' && a.stream === watch.streams) &&
        watch.served() === all &&
        heldByPeer().length === CONTAINERS &&
        heldByPeer().every((r) => r.bootId === newBoot()),
      30_000,
      `${what}: the client on a new stream with every cluster, the peer on the new boot`,
    )
    await new Promise((r) => setTimeout(r, 500))
    clearInterval(sampler)
    const answers = watch.answers.slice(fromAnswer)
    const cds = answers.filter((a) => a.type === 'cds')
    const eds = answers.filter((a) => a.type === 'eds')
    t.ok(cds.length > 0, `${what}: ${cds.length} cluster list(s) and ${eds.length} assignment answer(s) after the restart`)
    t.same(
      cds.filter((a) => a.names.length < all).map((a) => a.names.length),
      [],
      `${what}: no cluster list short of the ${all} clusters`,
    )
    t.same(
      eds.flatMap((a) => Object.entries(a.endpoints ?? {}).filter(([, eps]) => eps.length === 0)).map(([name]) => name),
      [],
      `${what}: no assignment without its endpoint`,
    )
    const worstLocal = Math.min(...samples.map((s) => s.local))
    const worstRemote = Math.min(...samples.map((s) => s.remote))
    t.equal(worstLocal, all, `${what}: the client held all ${all} clusters with endpoints in every one of ${samples.length} samples`)
    t.equal(worstRemote, CONTAINERS, `${what}: the peer listed all ${CONTAINERS} containers in every sample`)
    if (delayMs > 0) t.equal(slow.delayed(), delayedBefore + 1, `${what}: the engine's first list was held back`)
    const ready = agent.lines.find((l) => l.msg === 'ready: serving xDS')
    t.comment(
      `${what}: stopped at ${stoppedAt} ms, started at ${startedAt} ms; ready because ${String(ready?.why)}; first answer on the new stream at ${Math.round(
        answers.find((a) => a.stream === watch.streams)?.at ?? 0,
      )} ms of the watch`,
    )
  }
  await agent.stop('SIGTERM')
})
