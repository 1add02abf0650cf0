// The pull queue behind version notices (src/registry/pulls.ts): its bounds (pulls in flight,
// owners per pull, one waiting notice per owner), batching per teller, falling back to the
// next teller, and what resolves true (held) or false (not passed on). The fetch here is the
// test's own ledger of owners' versions, so every answer is checked against what it holds.
import t from 'tap'
import { compareVersions } from '../src/registry/hlc.js'
import { PullQueue } from '../src/registry/pulls.js'
import type { Version } from '../src/registry/types.js'

interface Call {
  peer: string
  owners: readonly string[]
  answer: (versions: Record<string, Version> | 'fail') => void
}

function harness(opts = { concurrency: 2, maxOwners: 3 }) {
  const held = new Map<string, Version>()
  const calls: Call[] = []
  const q = new PullQueue(opts, {
    fetch: (peer, owners) =>
      new Promise<void>((resolve, reject) => {
        calls.push({
          peer,
          owners,
          answer: (versions) => {
            if (versions === 'fail') return reject(new Error('refused'))
            for (const [o, v] of Object.entries(versions)) held.set(o, v)
            resolve()
          },
        })
      }),
    holds: (owner, bootId, to) => bootId === 'b' && compareVersions(held.get(owner) ?? [0, 0], to) >= 0,
  })
  return { q, calls, held }
}

const tick = () => new Promise((r) => setImmediate(r))

t.test('at most `concurrency` pulls in flight, each batching every owner waiting for its teller', async (t) => {
  const { q, calls } = harness()
  const results: Array<Promise<boolean>> = []
  for (const o of ['o1', 'o2', 'o3', 'o4']) results.push(q.want(o, 'b', [10, 0], ['r1', o]))
  results.push(q.want('o5', 'b', [10, 0], ['r2', 'o5']))
  results.push(q.want('o6', 'b', [10, 0], ['r3', 'o6']))
  await tick()
  t.equal(calls.length, 2, 'two pulls in flight')
  t.same(calls[0]!.owners, ['o1', 'o2', 'o3'], 'the first teller gets every owner waiting for it, up to maxOwners')
  t.same(calls[1]!.owners, ['o4'], 'the rest of its owners go in the next pull')
  t.equal(q.waiting, 2)
  calls[0]!.answer({ o1: [10, 0], o2: [10, 0], o3: [12, 0] })
  await tick()
  t.equal(calls.length, 3, 'a freed slot takes the next teller')
  t.same(calls[2]!.owners, ['o5'])
  t.same(await Promise.all(results.slice(0, 3)), [true, true, true])
})

t.test('a teller that fails or holds too little: the next teller (the owner) is asked', async (t) => {
  const { q, calls } = harness()
  const a = q.want('o1', 'b', [10, 0], ['r1', 'o1'])
  const b = q.want('o2', 'b', [10, 0], ['r1', 'o2'])
  await tick()
  calls[0]!.answer({ o1: [5, 0], o2: [10, 0] })
  await tick()
  t.equal(await b, true)
  t.same(calls[1]!.owners, ['o1'])
  t.equal(calls[1]!.peer, 'o1', 'the owner is asked next')
  calls[1]!.answer('fail')
  t.equal(await a, false, 'no teller brought it: not passed on')
})

t.test('one waiting notice per owner: a newer one takes the place of an older one, an older one is dropped', async (t) => {
  const { q, calls } = harness({ concurrency: 1, maxOwners: 8 })
  const busy = q.want('x', 'b', [1, 0], ['r1', 'x'])
  await tick()
  const older = q.want('o1', 'b', [10, 0], ['r2', 'o1'])
  const newer = q.want('o1', 'b', [11, 0], ['r2', 'o1'])
  const stale = q.want('o1', 'b', [9, 0], ['r2', 'o1'])
  t.equal(await older, false, 'replaced by a newer notice')
  t.equal(await stale, false, 'older than the one waiting')
  t.equal(q.waiting, 1)
  calls[0]!.answer({ x: [1, 0] })
  t.equal(await busy, true)
  await tick()
  // While o1 is pulled, a newer notice waits beside it and is settled after it.
  const newest = q.want('o1', 'b', [12, 0], ['r3', 'o1'])
  t.equal(await q.want('o1', 'b', [12, 0], ['r3', 'o1']), false, 'a duplicate of the waiting one')
  calls[1]!.answer({ o1: [11, 0] })
  t.equal(await newer, true)
  await tick()
  t.equal(calls[2]!.peer, 'r3', 'the newer notice is pulled from its own teller')
  calls[2]!.answer({ o1: [12, 0] })
  t.equal(await newest, true)
})

t.test('a notice of another boot replaces the waiting one; stop() settles every waiting notice false', async (t) => {
  const { q, calls } = harness({ concurrency: 1, maxOwners: 8 })
  const busy = q.want('x', 'b', [1, 0], ['r1'])
  await tick()
  const a = q.want('o1', 'b', [10, 0], ['r2'])
  const b = q.want('o1', 'other', [1, 0], ['r2'])
  t.equal(await a, false)
  q.stop()
  t.equal(await b, false)
  t.equal(await q.want('o2', 'b', [1, 0], ['r2']), false, 'nothing is taken after stop()')
  calls[0]!.answer({ x: [1, 0] })
  t.equal(await busy, true, 'a pull in flight still settles by what it brought')
  t.equal(calls.length, 1)
})
