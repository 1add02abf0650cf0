// How `npm test` splits the tap files between the tap processes it runs at once
// (scripts/test-shards.mjs): every file in exactly one shard, longest first onto the least
// loaded shard, a file the durations do not list counted as DEFAULT_SECONDS, and the
// checked-in durations naming only files that exist.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { seeded } from './lib/random.js'
import { REPO_ROOT } from './lib/cli.js'

interface Shard {
  files: string[]
  seconds: number
}
interface Shards {
  DEFAULT_SECONDS: number
  testFiles(): string[]
  shardFiles(files: string[], durations: Record<string, number>, shards: number): Shard[]
}
const { DEFAULT_SECONDS, shardFiles, testFiles } = (await import(
  pathToFileURL(join(REPO_ROOT, 'scripts', 'test-shards.mjs')).href
)) as Shards

t.test('longest first onto the least loaded shard', async (t) => {
  const d = { 'a.test.ts': 300, 'b.test.ts': 150, 'c.test.ts': 150, 'd.test.ts': 100, 'e.test.ts': 50 }
  const s = shardFiles(Object.keys(d), d, 3)
  t.same(
    s.map((g) => [g.files, g.seconds]),
    [
      [['a.test.ts'], 300],
      [['b.test.ts', 'd.test.ts'], 250],
      [['c.test.ts', 'e.test.ts'], 200],
    ],
  )
  t.same(
    shardFiles(['x.test.ts'], {}, 3),
    [{ files: ['x.test.ts'], seconds: DEFAULT_SECONDS }],
    'an unknown file: the default; no empty shards',
  )
})

t.test('random inputs: each file once, and no shard above the ideal by more than its longest file', async (t) => {
  const random = seeded(7)
  for (let run = 0; run < 200; run++) {
    const n = 1 + Math.floor(random() * 60)
    const files = Array.from({ length: n }, (_, i) => `f${i}.test.ts`)
    const d: Record<string, number> = {}
    for (const f of files) if (random() < 0.8) d[f] = Math.round(random() * 300)
    const k = 1 + Math.floor(random() * 4)
    const s = shardFiles(files, d, k)
    const all = s.flatMap((g) => g.files).sort()
    if (JSON.stringify(all) !== JSON.stringify([...files].sort())) t.fail(`run ${run}: files lost or repeated`)
    const est = (f: string) => d[f] ?? DEFAULT_SECONDS
    const total = files.reduce((a, f) => a + est(f), 0)
    const longest = Math.max(...files.map(est))
    for (const g of s) if (g.seconds > total / k + longest + 1e-9) t.fail(`run ${run}: a shard of ${g.seconds} s, ideal ${total / k}`)
  }
  t.pass('200 random splits')
})

t.test('scripts/test-durations.json names only test files that exist', async (t) => {
  const d = JSON.parse(readFileSync(join(REPO_ROOT, 'scripts', 'test-durations.json'), 'utf8')) as Record<string, number>
  const files = new Set(testFiles())
  const stale = Object.keys(d).filter((f) => !files.has(f))
  t.same(stale, [], 'rewrite it with SHOAL_SAVE_DURATIONS=1 npm test when files are renamed or removed')
})
