import t from 'tap'
import { BroadcastQueue } from '../src/gossip/queue.js'

const b = (s: string): Uint8Array => Buffer.from(s)
const str = (a: Uint8Array[]): string[] => a.map((x) => Buffer.from(x).toString())

t.test('limit = mult x ceil(log10(N + 1))', async (t) => {
  let n = 1
  const q = new BroadcastQueue(4, () => n)
  t.equal(q.limit(), 4)
  n = 9
  t.equal(q.limit(), 4)
  n = 10
  t.equal(q.limit(), 8)
  n = 1000
  t.equal(q.limit(), 16)
})

t.test('fewest transmits first, newest first among equals', async (t) => {
  const q = new BroadcastQueue(10, () => 100)
  q.queue('a', b('aa'))
  q.queue('b', b('bb'))
  t.same(str(q.take(1000, 0)), ['bb', 'aa'], 'newest first')
  q.queue('c', b('cc'))
  t.same(str(q.take(1000, 0)), ['cc', 'bb', 'aa'], 'the never-sent one first')
  t.same(str(q.take(2 + 0, 0)), ['cc'], 'cc has 1 transmit vs 2: only room for one')
  t.same(str(q.take(1000, 0)), ['cc', 'bb', 'aa'], 'all at 2 transmits: newest first')
})

t.test('a broadcast with the same key replaces the queued one', async (t) => {
  const q = new BroadcastQueue(10, () => 100)
  const done: string[] = []
  q.queue('m:x', b('old'), (sent) => done.push(`old ${sent}`))
  q.take(1000, 0)
  q.queue('m:x', b('new'))
  t.equal(q.size(), 1)
  t.same(done, ['old false'], 'the replaced one is finished unsent')
  t.equal(q.transmitsOf('m:x'), 0, 'transmit count restarts')
  t.same(str(q.take(1000, 0)), ['new'])
})

t.test('skips what does not fit and charges per-message overhead', async (t) => {
  const q = new BroadcastQueue(10, () => 100)
  q.queue('big', b('x'.repeat(50)))
  q.queue('small', b('yy'))
  t.same(str(q.take(10, 3)), ['yy'], 'big skipped, small taken (2 + 3 <= 10)')
  t.same(str(q.take(4, 3)), [], '2 + 3 > 4')
  t.same(str(q.take(53, 3)).length, 1)
})

t.test('a broadcast is dropped once it reached the limit', async (t) => {
  let n = 5
  const q = new BroadcastQueue(2, () => n)
  const done: boolean[] = []
  q.queue('a', b('a'), (s) => done.push(s))
  t.equal(str(q.take(100, 0)).length, 1)
  t.equal(q.size(), 1)
  t.equal(str(q.take(100, 0)).length, 1)
  t.equal(q.size(), 0, 'sent limit (2) times, gone')
  t.same(done, [true])
  t.same(q.take(100, 0), [])
  n = 50
  q.queue('b', b('b'))
  for (let i = 0; i < 4; i++) q.take(100, 0)
  t.equal(q.size(), 0, 'limit grows with N: 2 x ceil(log10 51) = 4')
})

t.test('prune keeps the most important', async (t) => {
  const q = new BroadcastQueue(10, () => 100)
  for (let i = 0; i < 5; i++) q.queue(String(i), b(String(i)))
  q.prune(2)
  t.same(str(q.take(100, 0)), ['4', '3'])
  q.clear()
  t.equal(q.size(), 0)
})
