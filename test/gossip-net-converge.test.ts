import t from 'tap'
import { addr, netNode, until } from './lib/gossip-net.js'
import type { Gossip } from '../src/gossip/gossip.js'

t.test('10 nodes on real sockets converge through one seed, and a broadcast reaches all', async (t) => {
  const nodes: Gossip[] = []
  for (let i = 0; i < 10; i++) nodes.push(await netNode(t, `n${i}`))
  for (const g of nodes.slice(1)) t.equal(await g.join([addr(nodes[0]!)]), 1)
  const ok = await until(() => nodes.every((g) => g.numAlive() === 10), 10_000)
  t.ok(ok, `alive counts: ${nodes.map((g) => g.numAlive()).join(',')}`)
  for (const g of nodes) {
    t.same(
      g
        .members()
        .map((m) => m.name)
        .sort(),
      nodes.map((_, i) => `n${i}`).sort(),
    )
    t.equal(g.members().find((m) => m.name === 'n3')?.bootId, nodes[3]!.bootId, 'boot id carried in metadata')
  }
  const got = new Map<string, string>()
  nodes.forEach((g, i) =>
    g.onMessage((p, from) => {
      got.set(`n${i}`, `${from}:${Buffer.from(p).toString()}`)
    }),
  )
  nodes[4]!.broadcast('k', Buffer.from('hello'))
  t.ok(await until(() => got.size === 9, 5000), `delivered to ${got.size} of 9`)
  t.notOk(got.has('n4'), 'not delivered to the sender')
  t.equal(got.get('n0'), 'n4:hello')
  nodes[2]!.setMeta({ role: 'db' })
  t.ok(await until(() => nodes.every((g) => g.members().find((m) => m.name === 'n2')?.meta.role === 'db'), 5000), 'metadata update spread')
})
