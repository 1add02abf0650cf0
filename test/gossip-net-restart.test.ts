import t from 'tap'
import { addr, netNode, stateOf, until } from './lib/gossip-net.js'
import type { Gossip } from '../src/gossip/gossip.js'

t.test('a restarted node with the same name rejoins alive with a higher incarnation', async (t) => {
  const nodes: Gossip[] = []
  for (let i = 0; i < 3; i++) nodes.push(await netNode(t, `r${i}`))
  for (const g of nodes.slice(1)) await g.join([addr(nodes[0]!)])
  t.ok(await until(() => nodes.every((g) => g.numAlive() === 3), 10_000), 'converged')
  const old = nodes[2]!
  const port = old.localMember().port
  const oldInc = nodes[0]!.members().find((m) => m.name === 'r2')!.incarnation
  await old.stop()
  t.ok(await until(() => stateOf(nodes[0]!, 'r2') === 'dead' && stateOf(nodes[1]!, 'r2') === 'dead', 10_000), 'declared dead')
  const fresh = await netNode(t, 'r2', { port })
  await fresh.join([addr(nodes[0]!)])
  t.ok(await until(() => [nodes[0]!, nodes[1]!].every((g) => stateOf(g, 'r2') === 'alive'), 5000), 'alive again')
  for (const g of [nodes[0]!, nodes[1]!]) {
    const m = g.members().find((x) => x.name === 'r2')!
    t.ok(m.incarnation > oldInc, `incarnation ${m.incarnation} > ${oldInc}`)
    t.equal(m.bootId, fresh.bootId, 'new boot id')
    t.not(m.bootId, old.bootId)
  }
  t.ok(await until(() => fresh.numAlive() === 3, 5000), 'the restarted node sees everyone')
})
