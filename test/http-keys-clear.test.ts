// New user, item 4: `/api/keys.json` of a cluster without keys listed every other member under
// `unknown` ("not heard from yet"), as if a key were awaited from them. Without keys it says
// `encrypted: false`, no unknown member, and still counts the live members.
import t from 'tap'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import type { KeysView } from '../src/http/views.js'
import { silentLogger } from '../src/log.js'
import { loopbackAgentFlags } from './lib/agent-process.js'
import { waitFor } from './lib/wait.js'

t.test('a cluster in clear: encrypted false, no unknown members', async (t) => {
  const agents: Agent[] = []
  t.teardown(() => Promise.all(agents.map((a) => a.stop({ leave: false }))))
  for (const name of ['a', 'b']) {
    const join = agents.length > 0 ? ['--join', `127.0.0.1:${agents[0]!.bound.gossip}`] : []
    const a = new Agent(parseAgentConfig([...loopbackAgentFlags(name), '--discovery', 'none', ...join], {}), { logger: silentLogger() })
    agents.push(a)
    await a.start()
  }
  await waitFor('two alive members on a', () => agents[0]!.members().filter((m) => m.state === 'alive').length === 2)
  const view = (await (await fetch(`http://127.0.0.1:${agents[0]!.bound.http}/api/keys.json`)).json()) as KeysView
  t.equal(view.encrypted, false)
  t.same(view.keys, [])
  t.same(view.unknown, [], 'no member is waited for: there is no key to hear from it with')
  t.equal(view.members, 2, 'the live members are still counted')
})
