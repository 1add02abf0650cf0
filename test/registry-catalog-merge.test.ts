import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { silentLogger } from '../src/log.js'
import { Catalog, type LocalRecord } from '../src/registry/catalog.js'
import { liveRecords, type ServiceRecord } from '../src/registry/types.js'
import { localRecord } from './lib/record.js'

const logger = silentLogger()

const rec = (id: string, port?: number, status?: LocalRecord['status']) => localRecord(id, { port, status })

function pair() {
  const clock = new VirtualClock()
  const a = new Catalog({ cluster: 'c', self: 'a' }, { clock, logger })
  const b = new Catalog({ cluster: 'c', self: 'b' }, { clock, logger })
  a.setLocalBoot('boot-a1')
  b.setLocalBoot('boot-b1')
  b.setHost('a', { state: 'alive', bootId: 'boot-a1', address: '10.0.0.1:7946' })
  return { clock, a, b }
}

t.test('the owner stamps host, boot, version and time', async (t) => {
  const { a } = pair()
  const r = a.upsertLocal(rec('i1'))
  t.equal(r.host, 'a')
  t.equal(r.bootId, 'boot-a1')
  t.equal(r.version.length, 2)
  t.ok(Object.isFrozen(r), 'records are immutable')
  t.equal(a.upsertLocal(rec('i1')), r, 'an identical rewrite keeps the version')
  const r2 = a.upsertLocal(rec('i1', 9090))
  t.ok(r2.version[0] > r.version[0] || r2.version[1] > r.version[1], 'a change raises the version')
})

t.test('highest version per (owner, id) wins, in any order, duplicates ignored', async (t) => {
  const { a, b } = pair()
  const v1 = a.upsertLocal(rec('i1', 1))
  const v2 = a.upsertLocal(rec('i1', 2))
  const v3 = a.upsertLocal(rec('i1', 3))
  t.ok(b.mergeRemote(v2), 'v2 is news')
  t.notOk(b.mergeRemote(v1), 'v1 is older')
  t.notOk(b.mergeRemote(v2), 'a duplicate is not news')
  t.ok(b.mergeRemote(v3))
  t.notOk(b.mergeRemote(v2))
  t.equal(b.get('a', 'i1')?.ports[0]?.port, 3)
  t.equal(b.stats.stale, 3)
})

t.test('a record about the receiver itself is never taken from a peer', async (t) => {
  const { a, b } = pair()
  const mine = b.upsertLocal(rec('x'))
  const forged: ServiceRecord = {
    ...mine,
    version: [mine.version[0] + 1000, 0],
    ports: [{ type: 'tcp', port: 1, servicePort: 1, ip: '6.6.6.6' }],
  }
  t.notOk(b.mergeRemote(forged))
  t.equal(b.get('b', 'x')?.ports[0]?.port, 8080, 'the owner keeps its own record')
  void a
})

t.test('ids are per owner: the same id on two hosts are two instances', async (t) => {
  const { a, b } = pair()
  b.mergeRemote(a.upsertLocal(rec('same')))
  b.upsertLocal(rec('same', 9999))
  const live = liveRecords(b.snapshot())
  t.same(live.map((r) => `${r.host}:${r.ports[0]?.port}`).sort(), ['a:8080', 'b:9999'])
  t.equal(b.findById('same').length, 2)
})

t.test('a tombstone beats the live record it replaces, and an older live record never revives it', async (t) => {
  const { a, b } = pair()
  const live = a.upsertLocal(rec('i1'))
  a.removeLocal('i1')
  const tomb = a.get('a', 'i1')!
  t.equal(tomb.status, 'tombstone')
  t.ok(b.mergeRemote(tomb), 'the tombstone is stored even without the live record')
  t.notOk(b.mergeRemote(live), 'the delayed live record is older')
  t.same(liveRecords(b.snapshot()), [])
  t.equal(b.snapshot().hosts.find((h) => h.name === 'a')?.services[0]?.status, 'tombstone', 'the snapshot shows the tombstone')
})

t.test('a host whose clock is 10 minutes behind has its updates accepted', async (t) => {
  const clock = new VirtualClock()
  const late = new Catalog({ cluster: 'c', self: 'late' }, { clock: clock.skewed(-600_000), logger })
  const b = new Catalog({ cluster: 'c', self: 'b' }, { clock, logger })
  late.setLocalBoot('L1')
  b.setLocalBoot('B1')
  b.setHost('late', { state: 'alive', bootId: 'L1', address: '' })
  b.upsertLocal(rec('mine')) // b's own versions are 10 minutes "ahead": irrelevant, never compared
  t.ok(b.mergeRemote(late.upsertLocal(rec('i1', 1))))
  await clock.advance(10)
  t.ok(b.mergeRemote(late.upsertLocal(rec('i1', 2))))
  t.equal(liveRecords(b.snapshot()).find((r) => r.host === 'late')?.ports[0]?.port, 2)
})

t.test('records of a host not yet in membership wait, invisible, until membership names their boot', async (t) => {
  const clock = new VirtualClock()
  const a = new Catalog({ cluster: 'c', self: 'a' }, { clock, logger })
  const b = new Catalog({ cluster: 'c', self: 'b' }, { clock, logger })
  a.setLocalBoot('A1')
  b.setLocalBoot('B1')
  t.ok(b.mergeRemote(a.upsertLocal(rec('i1'))), 'news, parked')
  t.same(liveRecords(b.snapshot()), [], 'not visible before membership')
  b.setHost('a', { state: 'alive', bootId: 'A1', address: '' })
  t.equal(liveRecords(b.snapshot()).length, 1, 'visible once membership confirms the boot')
})
