import t from 'tap'
import { addr, netNode, stateOf, until } from './lib/gossip-net.js'
import type { Gossip } from '../src/gossip/gossip.js'

t.test('a node whose sockets close without leaving is marked dead by all others', async (t) => {
  const nodes: Gossip[] = []
  for (let i = 0; i < 5; i++) nodes.push(await netNode(t, `n${i}`))
  for (const g of nodes.slice(1)) await g.join([addr(nodes[0]!)])
  t.ok(await until(() => nodes.every((g) => g.numAlive() === 5), 10_000), 'converged')
  const events: string[] = []
  nodes[0]!.on('dead', (m) => events.push(m.name))
  await nodes[3]!.stop()
  const others = nodes.filter((_, i) => i !== 3)
  t.ok(
    await until(() => others.every((g) => stateOf(g, 'n3') === 'dead'), 10_000),
    `states: ${others.map((g) => stateOf(g, 'n3')).join(',')}`,
  )
  t.same(events, ['n3'])
  t.ok(others.every((g) => g.numAlive() === 4))
})
