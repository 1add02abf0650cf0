// How `npm test` (scripts/test.mjs) splits the tap files between the tap processes it runs at
// once: the plain functions, apart from the script, so that test/scripts-test-shards.test.ts
// can check them.
import { readdirSync } from 'node:fs'
import { join, sep } from 'node:path'

/** What a file missing from the durations counts as (seconds). */
export const DEFAULT_SECONDS = 5

/** Every tap file (`.taprc` include: test/**\/*.test.ts), sorted. */
export function testFiles() {
  return readdirSync('test', { recursive: true })
    .map((f) => join('test', String(f)).split(sep).join('/'))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
}

/**
 * The files in `shards` groups of about equal time, longest first (LPT scheduling), from
 * scripts/test-durations.json (seconds per file, as tap measured them in a full run; a file
 * not listed counts as DEFAULT_SECONDS). tap runs its files in name order, which put the
 * long system suites together and the 5-minute rotation test last: 28.7 min on 2 cores.
 */
export function shardFiles(files, durations, shards) {
  const est = (f) => durations[f] ?? DEFAULT_SECONDS
  const groups = Array.from({ length: shards }, () => ({ files: [], seconds: 0 }))
  for (const f of [...files].sort((a, b) => est(b) - est(a) || a.localeCompare(b))) {
    const g = groups.reduce((a, b) => (b.seconds < a.seconds ? b : a))
    g.files.push(f)
    g.seconds += est(f)
  }
  return groups.filter((g) => g.files.length > 0)
}
