// What a catalog says it covers of its own node (Catalog.coverage(self)) and which of its own
// records changed since a version (Catalog.localChangedSince, what a notice carries inline),
// both asked by the bridge on every local change, are answered from an index kept as records
// are stored (registry/recent.ts) rather than by a pass each time: a property over seeded
// schedules of writes, removals, tombstone collection and a new boot checks that they always
// equal what a pass over the node's records finds.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { silentLogger } from '../src/log.js'
import { Catalog } from '../src/registry/catalog.js'
import { compareVersions } from '../src/registry/hlc.js'
import type { Version } from '../src/registry/types.js'
import { seeded } from './lib/random.js'
import { localRecord } from './lib/record.js'

/** The pass: the node's records above `base` when at most `limit`, else undefined. */
function changedSince(c: Catalog, base: Version, limit: number): string[] | undefined {
  const out = c.localRecords().filter((r) => compareVersions(r.version, base) > 0)
  return out.length <= limit ? out.map((r) => `${r.id}@${r.version.join('.')}`).sort() : undefined
}

function highest(c: Catalog): Version {
  let max: Version = [0, 0]
  for (const r of c.localRecords()) if (compareVersions(r.version, max) > 0) max = r.version
  return max
}

for (let seed = 1; seed <= 20; seed++) {
  t.test(`seed ${seed}: coverage(self) and localChangedSince equal a pass over the node's records`, async (t) => {
    const random = seeded(seed)
    const clock = new VirtualClock()
    const c = new Catalog({ cluster: 'c', self: 'a', tombstoneTtlMs: 1000 }, { clock, logger: silentLogger() })
    c.setLocalBoot('boot-1')
    for (let step = 0; step < 300; step++) {
      const id = `i${Math.floor(random() * 40)}`
      const x = random()
      if (x < 0.5) c.upsertLocal(localRecord(id, { port: 1 + Math.floor(random() * 5) }))
      else if (x < 0.75) c.removeLocal(id)
      else if (x < 0.95) {
        await clock.advance(Math.floor(random() * 600))
        c.sweep()
      } else c.setLocalBoot(`boot-${step}`)
      // Asked now and then only, as the bridge does between changes it does not see.
      if (random() < 0.5) {
        const got = c.coverage('a')?.version
        if (!t.same(got, highest(c), `step ${step}`)) return
      }
      if (random() < 0.5) {
        // A base among the versions seen (or none), as the bridge's last notice; limits below and above the index.
        const versions = c.localRecords().map((r) => r.version)
        const base = random() < 0.2 ? ([0, 0] as Version) : (versions[Math.floor(random() * versions.length)] ?? [0, 0])
        for (const limit of [0, 1, 2, 5, 16, 20]) {
          const got = c
            .localChangedSince(base, limit)
            ?.map((r) => `${r.id}@${r.version.join('.')}`)
            .sort()
          if (!t.same(got, changedSince(c, base, limit), `step ${step}, changed since ${base.join('.')}, limit ${limit}`)) return
        }
      }
    }
    t.same(c.coverage('a')?.version, highest(c), 'at the end')
  })
}
