// The member table (src/gossip/members.ts): swap-remove, state counts, random picks and the
// shuffled round-robin probe order, unit by unit, then a property test over random operations.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { MemberTable, type MemberEntry } from '../src/gossip/members.js'
import { MemberState } from '../src/gossip/types.js'
import { seeded } from './lib/random.js'

function entry(name: string, state: MemberState = MemberState.alive): MemberEntry {
  return { name, addr: '10.0.0.1', port: 7946, meta: { boot: 'b-' + name }, incarnation: 1, state, stateChangedAt: 0, idx: -1 }
}

function table(seed = 1): { tb: MemberTable; clock: VirtualClock } {
  const clock = new VirtualClock()
  const tb = new MemberTable({ clock, random: seeded(seed) })
  tb.addSelf(entry('me'))
  return { tb, clock }
}

/** Every invariant of the table's header comment. */
function invariants(tb: MemberTable): string[] {
  const bad: string[] = []
  const counts: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0 }
  tb.entries().forEach((n, i) => {
    if (n.idx !== i) bad.push(`${n.name}: idx ${n.idx} at ${i}`)
    if (tb.get(n.name) !== n) bad.push(`${n.name}: not found by name`)
    counts[n.state]!++
  })
  for (const s of Object.values(MemberState)) if (tb.count(s) !== counts[s]) bad.push(`count ${s}: ${tb.count(s)} vs ${counts[s]}`)
  return bad
}

t.test('self is required before use, and counted', async (t) => {
  const tb = new MemberTable({ clock: new VirtualClock(), random: seeded(1) })
  t.equal(tb.hasSelf(), false)
  t.throws(() => tb.self, { code: 'SHOAL_ERR_NOT_STARTED' })
  tb.addSelf(entry('me'))
  t.equal(tb.self.name, 'me')
  t.equal(tb.size, 1)
  t.equal(tb.count(MemberState.alive), 1)
})

t.test('remove swaps the last entry into the hole; counts follow', async (t) => {
  const { tb } = table()
  const [a, b, c] = [entry('a'), entry('b', MemberState.dead), entry('c')]
  for (const n of [a, b, c]) tb.add(n)
  tb.remove(a)
  t.same(
    tb.entries().map((n) => n.name),
    ['me', 'c', 'b'],
    'c took a slot',
  )
  t.equal(c.idx, 1)
  t.equal(a.idx, -1)
  t.equal(tb.get('a'), undefined)
  t.equal(tb.count(MemberState.alive), 2)
  t.equal(tb.count(MemberState.dead), 1)
  tb.remove(a)
  t.equal(tb.size, 3, 'removing twice is a no-op')
  tb.remove(b)
  t.same(invariants(tb), [])
})

t.test('setState moves counts and stamps the clock', async (t) => {
  const { tb, clock } = table()
  const a = entry('a')
  tb.add(a)
  await clock.advance(1234)
  tb.setState(a, MemberState.suspect)
  t.equal(a.stateChangedAt, 1234)
  t.equal(tb.count(MemberState.suspect), 1)
  t.equal(tb.count(MemberState.alive), 1)
  await clock.advance(10)
  tb.setState(a, MemberState.suspect)
  t.equal(a.stateChangedAt, 1234, 'no change, no new stamp')
})

t.test('randomNodes: distinct, never self, only those passing the filter, at most k', async (t) => {
  for (const size of [5, 200]) {
    const { tb } = table(size)
    for (let i = 0; i < size; i++) tb.add(entry('n' + i, i % 3 === 0 ? MemberState.dead : MemberState.alive))
    for (let round = 0; round < 50; round++) {
      const picked = tb.randomNodes(3, (n) => n.state === MemberState.alive)
      t.equal(new Set(picked).size, picked.length, `distinct (N=${size})`)
      t.notOk(
        picked.some((n) => n === tb.self || n.state !== MemberState.alive),
        `no self, no dead (N=${size})`,
      )
      t.ok(picked.length <= 3)
    }
    t.same(
      tb.randomNodes(0, () => true),
      [],
    )
  }
  const { tb } = table()
  tb.add(entry('only'))
  t.same(
    tb.randomNodes(5, () => true).map((n) => n.name),
    ['only'],
    'fewer candidates than k: all of them',
  )
})

t.test('probe order: every live member once per pass, never self, dead skipped', async (t) => {
  const { tb } = table(3)
  const names = ['a', 'b', 'c', 'd', 'e']
  for (const n of names) tb.add(entry(n))
  tb.add(entry('gone', MemberState.dead))
  for (let pass = 0; pass < 3; pass++) {
    const seen = names.map(() => tb.nextProbeTarget()!.name)
    t.same([...seen].sort(), names, `pass ${pass}: each live member once`)
  }
  const { tb: empty } = table()
  t.equal(empty.nextProbeTarget(), undefined, 'no one else: no target')
})

t.test('probe order: a member added, or back from dead, joins the current pass at a random position', async (t) => {
  // Inserted at a random position of the whole pass (memberlist does the same): with 3 of 4
  // slots still ahead, about 3 in 4 runs probe it before the pass ends; without insertion, none.
  let inPass = 0
  const runs = 200
  for (let seed = 1; seed <= runs; seed++) {
    const { tb } = table(seed)
    for (const n of ['a', 'b', 'c']) tb.add(entry(n))
    const d = entry('d', MemberState.dead)
    tb.add(d)
    const first = tb.nextProbeTarget()!.name
    if (seed % 2 === 0) tb.add(entry('new'))
    else tb.setState(d, MemberState.alive)
    const rest = [1, 2, 3].map(() => tb.nextProbeTarget()!.name)
    if (rest.includes(seed % 2 === 0 ? 'new' : 'd') && !rest.includes(first)) inPass++
  }
  t.ok(inPass > runs * 0.5 && inPass < runs, `${inPass} of ${runs} runs probed it in the pass it joined`)
})

t.test('probe order: a member that died mid-pass is skipped', async (t) => {
  const { tb } = table(9)
  const all = ['a', 'b', 'c', 'd'].map((n) => entry(n))
  for (const n of all) tb.add(n)
  const first = tb.nextProbeTarget()!
  const victim = all.find((n) => n !== first)!
  tb.setState(victim, MemberState.dead)
  const rest = [tb.nextProbeTarget(), tb.nextProbeTarget()].map((n) => n!.name)
  t.notOk(rest.includes(victim.name))
})

t.test('snapshot and records copy what the entry holds', async (t) => {
  const { tb } = table()
  const a = entry('a')
  tb.add(a)
  const snap = tb.snapshot(a)
  a.meta.boot = 'changed'
  t.equal(snap.bootId, 'b-a', 'the snapshot does not follow later changes')
  t.same(
    tb.records().find((r) => r.name === 'a'),
    { name: 'a', addr: '10.0.0.1', port: 7946, meta: { boot: 'changed' }, inc: 1, state: 'alive' },
  )
})

t.test('property: invariants hold over 20,000 random adds, removes and state changes', async (t) => {
  const seed = 20261130
  const random = seeded(seed)
  const { tb } = table(seed)
  const states = Object.values(MemberState)
  let next = 0
  for (let step = 0; step < 20_000; step++) {
    const op = random()
    const others = tb.entries().filter((n) => n !== tb.self)
    const pick = others[Math.floor(random() * others.length)]
    if (op < 0.35 || !pick) tb.add(entry('n' + next++, states[Math.floor(random() * 4)]!))
    else if (op < 0.55) tb.remove(pick)
    else if (op < 0.85) tb.setState(pick, states[Math.floor(random() * 4)]!)
    else {
      const target = tb.nextProbeTarget()
      if (target && (target === tb.self || (target.state !== 'alive' && target.state !== 'suspect') || tb.get(target.name) !== target)) {
        t.fail(`seed ${seed} step ${step}: probe target ${target.name} is ${target.state}`)
        return
      }
    }
    const bad = invariants(tb)
    if (bad.length > 0) {
      t.fail(`seed ${seed} step ${step}: ${bad.join('; ')}`)
      return
    }
  }
  t.pass(`20,000 operations, ${tb.size} members at the end`)
})
