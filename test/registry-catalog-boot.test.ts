// A host restarts with a new boot id and its clock 10 minutes behind: records of the old
// boot are hidden at once everywhere, its new records (same static ids, lower wall times)
// are accepted, and when the owner sees an old record of its own it tombstones it above.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { silentLogger } from '../src/log.js'
import { Catalog, type LocalRecord } from '../src/registry/catalog.js'
import { compareVersions } from '../src/registry/hlc.js'
import { liveRecords } from '../src/registry/types.js'

const logger = silentLogger()
const TEN_MIN = 600_000

function rec(id: string, port = 8080): LocalRecord {
  return {
    id,
    name: 'web',
    image: 'web:1',
    created: 1,
    ports: [{ type: 'tcp', port, servicePort: 10080, ip: '10.0.0.1' }],
    proxyMode: 'http',
    status: 'alive',
    labels: {},
  }
}

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
  replica.setHost('h', { state: 'alive', bootId: 'H2', address: '' })
  t.same(liveRecords(replica.snapshot()), [], 'records of the old boot are hidden at once')
  t.same(events.sort(), ['service-removed:gone:H1', 'service-removed:keep:H1'])

  t.ok(replica.mergeRemote(new1), 'the new boot record is accepted despite its lower version')
  t.same(
    liveRecords(replica.snapshot()).map((r) => `${r.id}:${r.ports[0]?.port}`),
    ['keep:9090'],
  )

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
