// Issue 12, part 2, the bounds: an agent announces its boot only once every discovery source
// has reported its first view, waiting at most half the profile's shortest suspicion (so that
// no peer declares it dead meanwhile), and then names the source it goes without; xDS and
// /readyz wait for that source up to --ready-timeout, even when a peer exchange is done.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { Profiles } from '../src/gossip/config.js'
import { shortestSuspicionMs } from '../src/gossip/suspicion.js'
import { silentLogger } from '../src/log.js'
import { capturedLogger } from './lib/log.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-views-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const flags = (node: string, extra: string[]) => [
  ...['--node', node, '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', 'off', '--profile', 'local'],
  ...['--cluster', 'views', '--ready-timeout', '2s'],
  ...extra,
]

t.test('an engine that never answers: announced after half the shortest suspicion, ready only after the ready timeout', async (t) => {
  const peer = new Agent(parseAgentConfig(flags('peer', ['--discovery', 'none']), {}), { logger: silentLogger() })
  t.teardown(() => peer.stop({ leave: false }))
  await peer.start()
  const { logger, lines } = capturedLogger('info')
  const absent = `unix://${join(dir, 'no-engine.sock')}`
  const agent = new Agent(
    parseAgentConfig(
      flags('docker-less', ['--discovery', 'docker', '--docker-host', absent, '--join', `127.0.0.1:${peer.bound.gossip}`]),
      {},
    ),
    { logger },
  )
  t.teardown(() => agent.stop({ leave: false }))
  const bound = shortestSuspicionMs(Profiles.local) / 2
  const t0 = Date.now()
  await agent.start()
  const took = Date.now() - t0
  t.ok(took >= bound - 5, `start() waited ${took} ms for the engine (bound ${bound} ms)`)
  const gaveUp = lines.find((l) => l.msg.startsWith('announcing this boot without the first view of docker'))
  t.ok(gaveUp, 'it says which source it announces without')
  t.same(gaveUp?.missing, ['docker'])
  t.match(gaveUp?.msg, /\(none within \d+ ms, half the shortest suspicion time\)/)
  t.notMatch(gaveUp?.msg, /--discovery static/, 'Docker alone was asked for: no hint to turn it off')
  const announcedAt = lines.findIndex((l) => l === gaveUp)
  t.ok(lines.findIndex((l) => l.msg === 'shoal agent started') > announcedAt, 'gossip started (the boot announced) only after the wait')
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (peer.members().some((m) => m.name === 'docker-less' && m.state === 'alive')) {
        clearInterval(poll)
        resolve()
      }
    }, 20)
  })
  t.notOk(agent.isReady(), 'the peer exchange alone does not make it ready: a source has no view yet')
  const ready = await new Promise<string>((resolve) =>
    agent.once('ready', () => resolve(String(lines.find((l) => l.msg === 'ready: serving xDS')?.why))),
  )
  t.match(ready, /ready timeout: serving without the first view of every source/, 'ready at the timeout, saying what is missing')
})

// New user, item 5: with --static, Docker discovery is still on by default; on a host with no
// engine the warning says how to turn it off.
t.test('--static with no engine: the warning names --discovery static', async (t) => {
  const file = join(dir, 'static.json')
  writeFileSync(file, '{"services": []}')
  const { logger, lines } = capturedLogger('info')
  const absent = `unix://${join(dir, 'no-engine-2.sock')}`
  const agent = new Agent(parseAgentConfig(flags('static-only', ['--static', file, '--docker-host', absent]), {}), { logger })
  t.teardown(() => agent.stop({ leave: false }))
  await agent.start()
  const gaveUp = lines.find((l) => l.msg.startsWith('announcing this boot without the first view of docker'))
  t.match(gaveUp?.msg, /; if no Docker engine is meant to run on this host, give --discovery static$/)
})
