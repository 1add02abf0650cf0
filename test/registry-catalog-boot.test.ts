// A host restarts with a new boot id and its clock 10 minutes behind: records of the old
// boot stay on view until the new boot's first full state has arrived (or 2 s), then are
// replaced in one step; its new records (same static ids, lower wall times) are accepted, an
// old record the new state lacks vanishes and never revives, and when the owner sees an old
// record of its own it tombstones it above.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { silentLogger } from '../src/log.js'
import { Catalog } from '../src/registry/catalog.js'
import { compareVersions } from '../src/registry/hlc.js'
import { liveRecords } from '../src/registry/types.js'
import { localRecord } from './lib/record.js'

const logger = silentLogger()
const TEN_MIN = 600_000

const rec = (id: string, port?: number) => localRecord(id, { port })

t.test('restart with a new boot and a clock 10 minutes behind', async (t) => {
  const clock = new VirtualClock()
  const replica = new Catalog({ cluster: 'c', self: 'r' }, { clock, logger })
  replica.setLocalBoot('R1')
  const events: string[] = []
  replica.subscribe((ev) =>
    events.push(ev.type === 'service-removed' || ev.type === 'service-added' ? `${ev.type}:${ev.record.id}:${ev.record.bootId}` : ev.type),
  )

  // First boot of h: two instances.
  const h1 = new Catalog({ cluster: 'c', self: 'h' }, { clock, logger })
  h1.setLocalBoot('H1')
  replica.setHost('h', { state: 'alive', bootId: 'H1', address: '' })
  const old1 = h1.upsertLocal(rec('keep'))
  const oldGone = h1.upsertLocal(rec('gone'))
  replica.mergeRemote(old1)
  replica.mergeRemote(oldGone)
  t.equal(liveRecords(replica.snapshot()).length, 2)

  // h restarts: new process, new boot, wall clock 10 minutes behind. Only `keep` runs again.
  const h2 = new Catalog({ cluster: 'c', self: 'h' }, { clock: clock.skewed(-TEN_MIN), logger })
  h2.setLocalBoot('H2')
  const new1 = h2.upsertLocal(rec('keep', 9090))
  t.ok(compareVersions(new1.version, old1.version) < 0, 'the new version is lower than the old one (clock behind)')

  events.length = 0
  const onView = () => liveRecords(replica.snapshot()).map((r) => `${r.id}:${r.ports[0]?.port}:${r.bootId}`)
  replica.setHost('h', { state: 'alive', bootId: 'H2', address: '' })
  t.same(onView(), ['gone:8080:H1', 'keep:8080:H1'], 'records of the old boot stay on view')
  t.equal(replica.pendingBoot('h'), 'H2', 'while the new boot is handed over')
  t.same(events, [], 'nothing removed')

  t.ok(replica.mergeRemote(new1), 'the new boot record is accepted despite its lower version')
  t.same(onView(), ['gone:8080:H1', 'keep:8080:H1'], 'and held aside until the full state is in')
  t.ok(replica.completeHandover('h', 'H2'), 'the full state has arrived')
  t.same(onView(), ['keep:9090:H2'], 'replaced in one step')
  t.same(events.sort(), ['service-removed:gone:H1', 'service-updated'])
  t.equal(replica.stats.handoversCompleted, 1)

  t.notOk(replica.mergeRemote(oldGone), 'a delayed record of the old boot is refused')
  t.notOk(replica.mergeRemote(old1))
  t.same(
    liveRecords(replica.snapshot()).map((r) => r.id),
    ['keep'],
    'and never revives',
  )

  // The owner sees its old `gone` record (a peer with stale membership sends it): tombstone above it.
  const written: string[] = []
  h2.onLocalChange((r) => written.push(`${r.id}:${r.status}:${r.bootId}`))
  t.notOk(h2.mergeRemote(oldGone))
  t.same(written, ['gone:tombstone:H2'])
  const tomb = h2.get('h', 'gone')!
  t.ok(compareVersions(tomb.version, oldGone.version) > 0, 'tombstone version is above the old record')
  t.equal(h2.stats.ownerTombstones, 1)
  h2.mergeRemote(oldGone)
  t.equal(written.length, 1, 'seen again: nothing more to do')
  t.ok(replica.mergeRemote(tomb))
  t.same(
    liveRecords(replica.snapshot()).map((r) => r.id),
    ['keep'],
  )
  const later = h2.upsertLocal(rec('keep', 9191))
  t.ok(compareVersions(later.version, oldGone.version) > 0, 'later writes stay above what the owner observed')
})

t.test('a collected tombstone seen again from a peer is tombstoned again by the owner', async (t) => {
  const clock = new VirtualClock()
  const owner = new Catalog({ cluster: 'c', self: 'o', tombstoneTtlMs: 1000 }, { clock, logger })
  owner.setLocalBoot('O1')
  const live = owner.upsertLocal(rec('x'))
  owner.removeLocal('x')
  await clock.advance(1000)
  owner.sweep()
  t.equal(owner.get('o', 'x'), undefined, 'tombstone collected')
  const out: string[] = []
  owner.onLocalChange((r) => out.push(`${r.id}:${r.status}`))
  owner.mergeRemote(live) // a peer that missed the tombstone pushes it back
  t.same(out, ['x:tombstone'])
  t.ok(compareVersions(owner.get('o', 'x')!.version, live.version) > 0)
})

t.test('a late membership event naming the old boot is followed, and undone without a pull', async (t) => {
  const clock = new VirtualClock()
  const r = new Catalog({ cluster: 'c', self: 'r' }, { clock, logger })
  const h = new Catalog({ cluster: 'c', self: 'h' }, { clock, logger })
  r.setLocalBoot('R1')
  h.setLocalBoot('H2')
  r.setHost('h', { state: 'alive', bootId: 'H1', address: '' })
  r.setHost('h', { state: 'alive', bootId: 'H2', address: '' })
  r.mergeRemote(h.upsertLocal(rec('a')))
  r.setHost('h', { state: 'alive', bootId: 'H1', address: '' })
  t.same(liveRecords(r.snapshot()), [], 'membership is the authority: H2 records hidden while it names H1')
  r.setHost('h', { state: 'alive', bootId: 'H2', address: '' })
  t.same(
    liveRecords(r.snapshot()).map((x) => x.id),
    ['a'],
    'back to H2: its records return from the side store',
  )
})

t.test('a handover is bounded: the new boot is shown after handoverMs even without its full state', async (t) => {
  const clock = new VirtualClock()
  const r = new Catalog({ cluster: 'c', self: 'r', handoverMs: 2000 }, { clock, logger })
  r.setLocalBoot('R1')
  const h1 = new Catalog({ cluster: 'c', self: 'h' }, { clock, logger })
  h1.setLocalBoot('H1')
  r.setHost('h', { state: 'alive', bootId: 'H1', address: '' })
  r.mergeRemote(h1.upsertLocal(rec('a')))
  r.mergeRemote(h1.upsertLocal(rec('b')))
  const h2 = new Catalog({ cluster: 'c', self: 'h' }, { clock, logger })
  h2.setLocalBoot('H2')
  r.setHost('h', { state: 'alive', bootId: 'H2', address: '' })
  r.mergeRemote(h2.upsertLocal(rec('a', 9090)))
  await clock.advance(1999)
  t.same(
    liveRecords(r.snapshot()).map((x) => `${x.id}:${x.bootId}`),
    ['a:H1', 'b:H1'],
    'the earlier boot on view for up to 2 s',
  )
  await clock.advance(1)
  t.same(
    liveRecords(r.snapshot()).map((x) => `${x.id}:${x.bootId}`),
    ['a:H2'],
    'then the new boot, with what arrived of it',
  )
  t.equal(r.stats.handoversTimedOut, 1)
  t.notOk(r.completeHandover('h', 'H2'), 'nothing left to complete')
  t.notOk(r.mergeRemote(h1.get('h', 'b')!), 'the earlier boot never revives')
})

t.test('no handover when nothing of the host is on view, or when it went down', async (t) => {
  const clock = new VirtualClock()
  const r = new Catalog({ cluster: 'c', self: 'r' }, { clock, logger })
  r.setLocalBoot('R1')
  const h1 = new Catalog({ cluster: 'c', self: 'h' }, { clock, logger })
  h1.setLocalBoot('H1')
  r.setHost('h', { state: 'alive', bootId: 'H1', address: '' })
  r.setHost('h', { state: 'alive', bootId: 'H2', address: '' })
  t.equal(r.pendingBoot('h'), undefined, 'no records on view: the new boot at once')
  r.mergeRemote({ ...h1.upsertLocal(rec('x')), bootId: 'H2' })
  r.setHost('h', { state: 'dead', bootId: 'H3', address: '' })
  t.equal(r.pendingBoot('h'), undefined, 'a host going down is followed at once')
  t.same(liveRecords(r.snapshot()), [])
})
