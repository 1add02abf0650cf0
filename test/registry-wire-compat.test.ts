// Issue 12, parts 1 and 4, at the registry codec: each record of a message is decoded on its
// own (a bad one is rejected with its owner, id and reason, its neighbours kept); a newer
// release's trailing fields are kept and passed on unchanged through the catalog; unknown
// message types are counted, never an error; long answers are cut at a byte budget with `more`.
import t from 'tap'
import { pack, unpack } from 'msgpackr'
import { VirtualClock } from '../src/clock.js'
import { silentLogger } from '../src/log.js'
import { Catalog } from '../src/registry/catalog.js'
import { RecordLimits } from '../src/registry/limits.js'
import type { ServiceRecord } from '../src/registry/types.js'
import { cutInLegacyForm, decodeMessage, encodeMessage, encodeRecordsWithin, MsgType, type WireNotes } from '../src/registry/wire.js'
import { record } from './lib/record.js'

function tuple(id: string, labels: Record<string, string> = {}, host = 'a'): unknown[] {
  return [id, 'web', 'web:1', 1, host, 'boot-a', [['tcp', 8080, 10080, '10.0.0.1', 80]], 'http', 'alive', 5, 0, 7, labels]
}

const notes = (): WireNotes => ({ unknownTypes: 0, extraFields: 0 })

t.test('one bad record in a batch is rejected alone, with its owner, id and limit', async (t) => {
  const n = notes()
  const over = 'x'.repeat(RecordLimits.labelValue.accept + 1)
  const m = decodeMessage(
    pack([MsgType.records, [tuple('r1'), tuple('big', { meta: over }), 'garbage', tuple('r2'), tuple('', {}, 'a')]]),
    n,
  )
  if (m.type !== MsgType.records) throw new Error('not records')
  t.same(
    m.records.map((r) => r.id),
    ['r1', 'r2'],
    'the neighbours are kept, in order',
  )
  t.same(
    m.rejected.map((r) => [r.host, r.id, r.reason]),
    [
      ['a', 'big', 'label-value'],
      [undefined, undefined, 'malformed'],
      ['a', '', 'malformed'],
    ],
  )
  t.match(m.rejected[0]!.message, /records\[1\]\.labels\.meta: 4097 characters, at most 4096/, 'the message names the field and the limit')
  const single = decodeMessage(pack([MsgType.record, ...tuple('big', { meta: over })]))
  t.same(
    single.type === MsgType.record && 'rejected' in single ? single.rejected.reason : 'taken',
    'label-value',
    'a single broadcast is rejected the same way',
  )
})

t.test('records accepted at every accept limit', async (t) => {
  const L = RecordLimits
  const rec = [
    'i'.repeat(L.id.accept),
    'n'.repeat(L.name.accept),
    'm'.repeat(L.image.accept),
    1,
    'h'.repeat(L.host.accept),
    'b'.repeat(L.bootId.accept),
    [['udp', 1, 2, 'f'.repeat(L.portIp.accept)]],
    'tcp',
    'tombstone',
    1,
    2,
    3,
    { ['k'.repeat(300)]: 'v'.repeat(L.labelValue.accept) },
  ]
  const m = decodeMessage(pack([MsgType.record, ...rec]))
  t.ok('record' in m, 'taken')
})

t.test("a newer owner's trailing fields survive this release: decoded, held, served on unchanged", async (t) => {
  const n = notes()
  // The 14th to 18th fields (reason, tags, attributes, detail, networks) are known; the 19th and 20th come from a newer owner.
  const newer = [...tuple('r1'), 'stopping', ['blue'], { zone: 'b' }, 'a detail', [['apps', '10.1.0.7']], 'a later field', { future: 1 }]
  newer[6] = [['tcp', 8080, 10080, '10.0.0.1', 80, 'h2', 3]]
  const m = decodeMessage(pack([MsgType.record, ...newer]), n)
  if (!('record' in m)) throw new Error('rejected')
  t.equal(n.extraFields, 2, 'the record and its port counted')
  t.same(JSON.parse(JSON.stringify(m.record)).labels, {}, 'the API shows the known fields')
  t.same([m.record.reason, m.record.detail, m.record.networks], ['stopping', 'a detail', { apps: '10.1.0.7' }])
  t.notOk('wireExtra' in JSON.parse(JSON.stringify(m.record)), 'the unknown ones stay out of the JSON')

  const clock = new VirtualClock()
  const catalog = new Catalog({ cluster: 'c', self: 'relay' }, { clock, logger: silentLogger() })
  catalog.setHost('a', { state: 'alive', bootId: 'boot-a', address: '10.0.0.1:7946' })
  t.ok(catalog.mergeRemote(m.record), 'held by the relay')
  const served = catalog.recordsFor([{ owner: 'a', bootId: '', have: [] }])
  const out = unpack(encodeMessage({ type: MsgType.records, records: served })) as unknown[]
  t.same((out[1] as unknown[][])[0], newer, 'passed on field for field, the port too')
  t.equal(out.length, 2, 'no `more` on a whole answer')
})

t.test(
  'network addresses: field 18 (after the status reason, tags, attributes and detail), sorted pairs, held back like them; a port without a host binding is port 0 and ip ""',
  async (t) => {
    const networks: Record<string, string> = { zeta: '10.2.0.9', apps: '10.1.0.7' }
    Object.defineProperty(networks, '__proto__', { value: 'fd00::7', enumerable: true, writable: true, configurable: true })
    const rec = record({
      ports: [
        { type: 'tcp', servicePort: 10080, containerPort: 8080 },
        { type: 'tcp', port: 32768, servicePort: 10081, ip: '10.0.0.1', containerPort: 9090 },
      ],
      networks,
    })
    const wire = encodeMessage({ type: MsgType.record, record: rec })
    const out = unpack(wire) as unknown[]
    t.equal(out.length, 19, 'type + 18 fields')
    t.same(out.slice(14, 18), [null, null, null, null], 'no status reason, tags, attributes or detail')
    t.same(out[18], [
      ['__proto__', 'fd00::7'],
      ['apps', '10.1.0.7'],
      ['zeta', '10.2.0.9'],
    ])
    t.same(out[7], [
      ['tcp', 0, 10080, '', 8080],
      ['tcp', 32768, 10081, '10.0.0.1', 9090],
    ])
    const back = decodeMessage(wire, notes())
    if (!('record' in back)) throw new Error('rejected')
    t.same(back.record.ports, rec.ports, 'the unpublished port decodes without ip and port')
    t.notOk('ip' in back.record.ports[0]!)
    t.same(Object.entries(back.record.networks!).sort(), Object.entries(networks).sort(), 'a network called __proto__ stays data')
    t.equal(Object.getPrototypeOf(back.record.networks), Object.prototype)
    t.equal((unpack(encodeMessage({ type: MsgType.record, record: rec }, { legacy: true })) as unknown[]).length, 14, 'legacy: 13 fields')
    t.ok(cutInLegacyForm(rec), 'written again whole once no first-release member is left')
  },
)

t.test('network addresses over their accept limits reject that record alone, naming the limit', async (t) => {
  const L = RecordLimits
  const withNets = (id: string, nets: unknown) => [...tuple(id), null, null, null, null, nets]
  const m = decodeMessage(
    pack([
      MsgType.records,
      [
        withNets(
          'many',
          Array.from({ length: L.networks.accept + 1 }, (_, i) => [`n${i}`, '10.0.0.1']),
        ),
        withNets('long', [['n'.repeat(L.networkName.accept + 1), '10.0.0.1']]),
        withNets('ip', [['apps', '1'.repeat(L.networkIp.accept + 1)]]),
        withNets('twice', [
          ['apps', '10.0.0.1'],
          ['apps', '10.0.0.2'],
        ]),
        withNets('bad', 'apps'),
        withNets('ok', [['n'.repeat(L.networkName.accept), '1'.repeat(L.networkIp.accept)]]),
        withNets('none', null),
      ],
    ]),
    notes(),
  )
  if (m.type !== MsgType.records) throw new Error('not records')
  t.same(
    m.records.map((r) => r.id),
    ['ok', 'none'],
  )
  t.same(
    m.rejected.map((r) => [r.id, r.reason]),
    [
      ['many', 'networks'],
      ['long', 'network-name'],
      ['ip', 'network-ip'],
      ['twice', 'malformed'],
      ['bad', 'malformed'],
    ],
  )
  t.match(m.rejected[3]!.message, /network "apps" given twice/)
})

t.test('a record without a reason is written with exactly the 13 record fields the first release reads', async (t) => {
  const rec = record({
    ports: [
      { type: 'tcp', port: 1, servicePort: 2, ip: '10.0.0.1' },
      { type: 'tcp', port: 3, servicePort: 4, ip: '10.0.0.1', containerPort: 80 },
    ],
  })
  const out = unpack(encodeMessage({ type: MsgType.record, record: rec })) as unknown[]
  t.equal(out.length, 14, 'type + 13 fields: a record without a reason or network addresses has no field 14')
  t.same(out[7], [
    ['tcp', 1, 2, '10.0.0.1'],
    ['tcp', 3, 4, '10.0.0.1', 80],
  ])
})

t.test('unknown message types are counted and skipped', async (t) => {
  const n = notes()
  t.same(decodeMessage(pack([42, 'whatever']), n), { type: 'unknown', code: 42 })
  t.equal(n.unknownTypes, 1)
  const digest = decodeMessage(pack([MsgType.digest, [['a', 'boot', 1, 2, 3, 4, 'extra']]]), n)
  t.equal(digest.type, MsgType.digest, 'trailing elements of a digest entry ignored')
})

t.test('an answer over its byte budget is cut and says more; the first record always goes', async (t) => {
  const recs = Array.from({ length: 20 }, (_, i): ServiceRecord => {
    const [id, name, image, created, host, bootId, , proxyMode, status, w, c, updated, labels] = tuple(`r${i}`, { pad: 'p'.repeat(100) })
    return {
      id,
      name,
      image,
      created,
      host,
      bootId,
      ports: [],
      proxyMode,
      status,
      version: [w, c],
      updated,
      labels,
    } as ServiceRecord
  })
  const cut = encodeRecordsWithin(recs, 1000)
  t.ok(cut.bytes.length <= 1000, `${cut.bytes.length} bytes`)
  const m = decodeMessage(cut.bytes)
  if (m.type !== MsgType.records) throw new Error('not records')
  t.equal(m.records.length, cut.sent)
  t.ok(cut.sent > 0 && cut.sent < 20, `${cut.sent} of 20 in the answer`)
  t.equal(m.more, true)
  const tiny = encodeRecordsWithin(recs, 10)
  t.equal(tiny.sent, 1, 'one record even when it alone is over the budget')
  const whole = decodeMessage(encodeRecordsWithin(recs, 1 << 20).bytes)
  t.same(whole.type === MsgType.records && [whole.records.length, whole.more], [20, false])
})

t.test('issue 14: the status reason is the 14th field; held back while a first-release agent is a member', async (t) => {
  const rec = record({ status: 'draining', reason: 'stopping' })
  const out = unpack(encodeMessage({ type: MsgType.record, record: rec })) as unknown[]
  t.equal(out.length, 15, 'type + 13 fields + reason')
  t.equal(out[14], 'stopping')
  const back = decodeMessage(encodeMessage({ type: MsgType.record, record: rec }))
  t.equal('record' in back ? back.record.reason : undefined, 'stopping', 'read back')

  const legacy = unpack(encodeMessage({ type: MsgType.record, record: rec }, { legacy: true })) as unknown[]
  t.equal(legacy.length, 14, 'legacy: exactly the 13 fields the first release reads')
  const answer = unpack(encodeRecordsWithin([rec], 1 << 20, { legacy: true }).bytes) as unknown[]
  t.equal(((answer[1] as unknown[][])[0] as unknown[]).length, 13, 'in answers too')

  const n = notes()
  // Null reason, tags, attributes, detail and network addresses (the 14th to 18th fields), then a field of a newer release.
  const nullReason = decodeMessage(pack([MsgType.record, ...tuple('r1'), null, null, null, null, null, 'later']), n)
  t.same(
    'record' in nullReason
      ? [nullReason.record.reason, nullReason.record.detail, nullReason.record.networks, nullReason.record.wireExtra]
      : 'rejected',
    [undefined, undefined, undefined, ['later']],
    'a null reason, detail and networks before later fields: none, the later fields kept',
  )
  const reEncoded = unpack(encodeMessage({ type: MsgType.record, record: (nullReason as { record: ServiceRecord }).record })) as unknown[]
  t.same(reEncoded.slice(14), [null, null, null, null, null, 'later'], 'passed on as it came')

  const long = decodeMessage(pack([MsgType.record, ...tuple('r2'), 'x'.repeat(RecordLimits.reason.accept + 1)]))
  t.same(
    long.type === MsgType.record && 'rejected' in long ? long.rejected.reason : 'taken',
    'reason',
    'a reason over its accept limit rejects the record alone',
  )
  const atLimit = decodeMessage(pack([MsgType.record, ...tuple('r3'), 'x'.repeat(RecordLimits.reason.accept)]))
  t.ok('record' in atLimit, 'at the limit: taken (a newer release may say more)')
  t.equal(unpack(encodeMessage({ type: MsgType.record, record: { ...rec, reason: undefined } })).length, 14, 'no reason: 13 fields')
})

t.test('issue 15: the status detail is the 17th field, after reason, tags and attributes; held back like them', async (t) => {
  const detail = 'Tcp 10.0.0.5:5432: connection refused'
  const rec = record({ status: 'unhealthy', detail })
  const out = unpack(encodeMessage({ type: MsgType.record, record: rec })) as unknown[]
  t.same(out.slice(14), [null, null, null, detail], 'type + 13 fields + no reason, tags or attributes + detail')
  const back = decodeMessage(encodeMessage({ type: MsgType.record, record: rec }))
  t.same('record' in back ? [back.record.reason, back.record.detail, back.record.wireExtra] : 'rejected', [undefined, detail, undefined])
  t.equal((unpack(encodeMessage({ type: MsgType.record, record: rec }, { legacy: true })) as unknown[]).length, 14, 'legacy: 13 fields')

  const long = decodeMessage(pack([MsgType.record, ...tuple('r2'), null, null, null, 'x'.repeat(RecordLimits.detail.accept + 1)]))
  t.same(
    long.type === MsgType.record && 'rejected' in long ? long.rejected.reason : 'taken',
    'detail',
    'a detail over its accept limit rejects the record alone',
  )
  const atLimit = decodeMessage(pack([MsgType.record, ...tuple('r3'), 'operator', null, null, 'x'.repeat(RecordLimits.detail.accept)]))
  t.ok('record' in atLimit, 'at the limit: taken (a newer release may say more)')
})
