// Membership drives visibility: a dead or left host's records vanish at once, come back if
// it returns with the same boot before the reap, and are dropped after reapAfterMs.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { silentLogger } from '../src/log.js'
import { Catalog } from '../src/registry/catalog.js'
import { liveRecords, type CatalogEvent } from '../src/registry/types.js'
import { localRecord } from './lib/record.js'

const logger = silentLogger()

const rec = (id: string) => localRecord(id)

function setup() {
  const clock = new VirtualClock()
  const h = new Catalog({ cluster: 'c', self: 'h' }, { clock, logger })
  const r = new Catalog({ cluster: 'c', self: 'r', reapAfterMs: 5000 }, { clock, logger })
  h.setLocalBoot('H1')
  r.setLocalBoot('R1')
  r.setHost('h', { state: 'alive', bootId: 'H1', address: '10.0.0.2:7946' })
  r.mergeRemote(h.upsertLocal(rec('i1')))
  r.mergeRemote(h.upsertLocal(rec('i2')))
  const events: CatalogEvent[] = []
  r.subscribe((e) => events.push(e))
  return { clock, h, r, events }
}

t.test('a dead host hides its records at once; suspect does not', async (t) => {
  const { r, events } = setup()
  r.setHost('h', { state: 'suspect', bootId: 'H1', address: '10.0.0.2:7946' })
  t.equal(liveRecords(r.snapshot()).length, 2, 'suspect hosts stay served')
  r.setHost('h', { state: 'dead', bootId: 'H1', address: '10.0.0.2:7946' })
  t.same(liveRecords(r.snapshot()), [])
  const hv = r.snapshot().hosts.find((x) => x.name === 'h')!
  t.equal(hv.state, 'dead')
  t.same(hv.services, [], 'no records listed for a dead host')
  t.same(
    events.map((e) => e.type),
    ['host-down', 'service-removed', 'service-removed'],
  )
})

t.test('a host back with the same boot before the reap shows its records again', async (t) => {
  const { clock, r } = setup()
  r.setHost('h', { state: 'dead', bootId: 'H1', address: '' })
  await clock.advance(4000)
  r.sweep()
  r.setHost('h', { state: 'alive', bootId: 'H1', address: '' })
  t.equal(liveRecords(r.snapshot()).length, 2)
})

t.test('records of a dead host are dropped after reapAfterMs and refused after that', async (t) => {
  const { clock, h, r } = setup()
  r.setHost('h', { state: 'left', bootId: 'H1', address: '' })
  await clock.advance(5000)
  r.sweep()
  t.equal(r.stats.recordsReaped, 2)
  t.same(r.recordsOf(['h']), [])
  t.notOk(
    r.snapshot().hosts.some((x) => x.name === 'h'),
    'the reaped host leaves the snapshot',
  )
  t.notOk(r.mergeRemote(h.upsertLocal(rec('i3'))), 'a late record of the reaped host is refused')
  r.setHost('h', { state: 'alive', bootId: 'H1', address: '' })
  t.ok(r.mergeRemote(h.get('h', 'i1')!), 'it returns: its records are taken again (re-announced by push-pull)')
  t.equal(liveRecords(r.snapshot()).length, 1)
})

t.test('tombstones are collected after the TTL, on owner and replica', async (t) => {
  const clock = new VirtualClock()
  const h = new Catalog({ cluster: 'c', self: 'h', tombstoneTtlMs: 1000, sweepIntervalMs: 100 }, { clock, logger })
  const r = new Catalog({ cluster: 'c', self: 'r', tombstoneTtlMs: 1000, sweepIntervalMs: 100 }, { clock, logger })
  h.setLocalBoot('H1')
  r.setLocalBoot('R1')
  r.setHost('h', { state: 'alive', bootId: 'H1', address: '' })
  h.start()
  r.start()
  t.teardown(() => {
    h.stop()
    r.stop()
  })
  r.mergeRemote(h.upsertLocal(rec('i1')))
  h.removeLocal('i1')
  r.mergeRemote(h.get('h', 'i1')!)
  await clock.advance(900)
  t.equal(r.get('h', 'i1')?.status, 'tombstone', 'kept during the TTL')
  await clock.advance(200)
  t.equal(h.get('h', 'i1'), undefined, 'collected at the owner')
  t.equal(r.get('h', 'i1'), undefined, 'collected at the replica')
  t.equal(r.stats.tombstonesCollected, 1)
  h.stop()
  r.stop()
  t.equal(clock.pending(), 0, 'stop() leaves no timer behind')
})
