import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { silentLogger } from '../src/log.js'
import { Catalog } from '../src/registry/catalog.js'
import { liveRecords } from '../src/registry/types.js'
import { localRecord } from './lib/record.js'

const logger = silentLogger()

const rec = (id: string, port?: number) => localRecord(id, { port })

t.test('snapshots are cached until the next change and immutable', async (t) => {
  const clock = new VirtualClock()
  const c = new Catalog({ cluster: 'prod', self: 'a', address: '10.0.0.1:7946' }, { clock, logger })
  c.setLocalBoot('A1')
  c.upsertLocal(rec('i1'))
  const s1 = c.snapshot()
  t.equal(c.snapshot(), s1, 'same object while nothing changed')
  t.equal(s1.cluster, 'prod')
  t.same(
    s1.hosts.map((h) => [h.name, h.state, h.bootId, h.address]),
    [['a', 'alive', 'A1', '10.0.0.1:7946']],
  )
  t.ok(Object.isFrozen(s1) && Object.isFrozen(s1.hosts) && Object.isFrozen(s1.hosts[0]!.services))
  t.throws(() => (s1.hosts[0]!.services as unknown[]).push(1))
  c.upsertLocal(rec('i2'))
  const s2 = c.snapshot()
  t.not(s2, s1)
  t.ok(s2.seq > s1.seq)
  t.equal(liveRecords(s1).length, 1, 'an old snapshot does not change')
  t.same(
    liveRecords(s2).map((r) => r.id),
    ['i1', 'i2'],
  )
})

t.test('events: added, updated, removed', async (t) => {
  const clock = new VirtualClock()
  const c = new Catalog({ cluster: 'c', self: 'a' }, { clock, logger })
  c.setLocalBoot('A1')
  const seen: string[] = []
  const unsub = c.subscribe((e) => {
    seen.push(e.type)
    if (e.type === 'service-updated') t.equal(e.previous.ports[0]?.port, 1)
    // a listener sees the change already applied
    t.equal(c.snapshot().seq > 0, true)
  })
  c.upsertLocal(rec('i1', 1))
  c.upsertLocal(rec('i1', 2))
  c.removeLocal('i1')
  unsub()
  c.upsertLocal(rec('i2'))
  t.same(seen, ['service-added', 'service-updated', 'service-removed'])
})
