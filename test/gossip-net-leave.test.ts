import t from 'tap'
import { addr, netNode, stateOf, until } from './lib/gossip-net.js'
import type { Gossip } from '../src/gossip/gossip.js'

t.test('a graceful leave shows left everywhere', async (t) => {
  const nodes: Gossip[] = []
  for (let i = 0; i < 4; i++) nodes.push(await netNode(t, `m${i}`))
  for (const g of nodes.slice(1)) await g.join([addr(nodes[0]!)])
  t.ok(await until(() => nodes.every((g) => g.numAlive() === 4), 10_000), 'converged')
  const left: string[] = []
  nodes[1]!.on('left', (m) => left.push(m.name))
  await nodes[2]!.leave(1000)
  await nodes[2]!.stop()
  const others = nodes.filter((_, i) => i !== 2)
  t.ok(
    await until(() => others.every((g) => stateOf(g, 'm2') === 'left'), 5000),
    `states: ${others.map((g) => stateOf(g, 'm2')).join(',')}`,
  )
  t.same(left, ['m2'])
  await new Promise((r) => setTimeout(r, 1500))
  t.ok(
    others.every((g) => stateOf(g, 'm2') === 'left'),
    'still left, never dead, after the suspicion time',
  )
})
