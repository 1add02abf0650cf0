// What a catalog says it covers of its own node (Catalog.coverage(self), which the bridge asks on
// every local change) is kept as records are stored rather than found by a pass each time: a
// property over seeded schedules of writes, removals, tombstone collection and a new boot
// checks that it always equals the highest version among the node's records.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { silentLogger } from '../src/log.js'
import { Catalog } from '../src/registry/catalog.js'
import { compareVersions } from '../src/registry/hlc.js'
import type { Version } from '../src/registry/types.js'
import { seeded } from './lib/random.js'
import { localRecord } from './lib/record.js'

function highest(c: Catalog): Version {
  let max: Version = [0, 0]
  for (const r of c.localRecords()) if (compareVersions(r.version, max) > 0) max = r.version
  return max
}

for (let seed = 1; seed <= 20; seed++) {
  t.test(`seed ${seed}: coverage(self) is the highest version among the node's records`, async (t) => {
    const random = seeded(seed)
    const clock = new VirtualClock()
    const c = new Catalog({ cluster: 'c', self: 'a', tombstoneTtlMs: 1000 }, { clock, logger: silentLogger() })
    c.setLocalBoot('boot-1')
    for (let step = 0; step < 300; step++) {
      const id = `i${Math.floor(random() * 12)}`
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
    }
    t.same(c.coverage('a')?.version, highest(c), 'at the end')
  })
}
