// Member transitions in the log of a running cluster (simulator, virtual time): every node
// writes one info line per transition it sees (joined, suspect, alive again, dead, left), with
// the member's name, address, incarnation and the reason, however many relayed copies of the
// message reach it; a node that refutes says so.
import t from 'tap'
import type { Gossip } from '../src/gossip/gossip.js'
import { MEMBER_EVENTS } from '../src/gossip/types.js'
import { simCluster } from './lib/gossip-sim.js'
import { capturedLogger } from './lib/log.js'

const TRANSITION_OF: Record<string, string> = { join: 'joined', suspect: 'suspect', alive: 'alive', dead: 'dead', left: 'left' }

t.test('a cluster forming, a crash, a leave and a refutation: one line per transition per node', async (t) => {
  const { logger, lines } = capturedLogger('info')
  const c = await simCluster(5, { seed: 7, logger })
  t.teardown(() => c.stop())
  // Every node's transitions, as its events say: "observer member transition".
  const events: string[] = []
  const follow = (g: Gossip) => {
    const me = g.localMember().name
    for (const ev of MEMBER_EVENTS) if (ev !== 'update') g.on(ev, (m) => events.push(`${me} ${m.name} ${TRANSITION_OF[ev]}`))
  }
  // The joins of the forming cluster happened before any listener: counted from the lines alone.
  await c.clock.advance(3000)
  const logged = () =>
    lines
      .filter((l) => l.transition !== undefined && l.transition !== 'refuted')
      .map((l) => `${String(l.node)} ${String(l.member)} ${String(l.transition)}`)
  const names = c.nodes.map((g) => g.localMember().name)
  for (const me of names)
    for (const other of names)
      if (other !== me) t.equal(logged().filter((x) => x === `${me} ${other} joined`).length, 1, `${me} logs ${other} joined once`)
  const line = lines.find((l) => l.node === 'n1' && l.member === 'n2' && l.transition === 'joined')!
  t.match(line, { level: 30, addr: /^10\.0\.0\.\d+:\d+$/, incarnation: Number, reason: /^first heard of, in / })

  lines.length = 0
  for (const g of c.nodes) follow(g)
  const [, , n2, n3, n4] = c.nodes
  // A crash: n4 stops answering; the others suspect it and declare it dead.
  c.net.crash(n4!.localMember().addr)
  t.ok(await c.clock.runUntil(() => names.slice(0, 4).every((me) => events.includes(`${me} n4 dead`)), 60_000), 'n4 declared dead')
  // A leave: n3 says goodbye.
  const leaving = n3!.leave(3000)
  await c.clock.advance(3000)
  await leaving
  t.ok(await c.clock.runUntil(() => names.slice(0, 3).every((me) => events.includes(`${me} n3 left`)), 30_000), 'n3 left')
  // A suspicion refuted: n2 cut off until someone suspects it, then back at once.
  const h2 = n2!.localMember().addr
  c.net.partition([h2], [c.nodes[0]!.localMember().addr, c.nodes[1]!.localMember().addr])
  t.ok(await c.clock.runUntil(() => events.some((e) => /^n[01] n2 suspect$/.test(e)), 30_000), 'n2 suspected')
  c.net.heal()
  t.ok(await c.clock.runUntil(() => events.some((e) => /^n[01] n2 alive$/.test(e)), 30_000), 'n2 alive again')
  await c.clock.advance(3000)

  // Each transition a node saw is one line of that node, in the same order; relayed copies add none.
  const seen = events.filter((e) => !e.startsWith('n4 ') && !e.startsWith('n3 '))
  t.same(
    logged().filter((x) => !x.startsWith('n4 ') && !x.startsWith('n3 ')),
    seen,
    'the lines of the nodes still up are their transitions',
  )
  t.ok(
    lines.some((l) => l.node === 'n2' && l.transition === 'refuted' && /^this node n2 \(.*, incarnation \d+\) refuted: /.test(l.msg)),
    'n2 logs its refutation',
  )
  const dead = lines.find((l) => l.node === 'n0' && l.member === 'n4' && l.transition === 'dead')!
  t.match(dead.reason, /suspicion expired unrefuted|declared dead by n\d/)
  t.match(lines.find((l) => l.node === 'n0' && l.member === 'n3' && l.transition === 'left')!.reason, /graceful leave/)
})
