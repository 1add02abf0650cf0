// Issue 20, tags and attributes as record fields: the owner's fit drops a bad or over-long one
// alone (with a problem naming it), the 15th and 16th wire fields carry them to peers (after the
// status reason, the 14th), a peer rejects one over the accept limits, the static file takes
// them, and while an agent of the first release is a member the record goes out in its 13-field
// form.
import t from 'tap'
import { pack, unpack } from 'msgpackr'
import { fitSpec } from '../src/registry/fit.js'
import { RecordLimits } from '../src/registry/limits.js'
import { parseStaticServices } from '../src/registry/static.js'
import type { LocalServiceSpec } from '../src/registry/types.js'
import { cutInLegacyForm, decodeMessage, encodeMessage, MsgType } from '../src/registry/wire.js'
import { record } from './lib/record.js'

const L = RecordLimits

function spec(extra: Partial<LocalServiceSpec>): LocalServiceSpec {
  return {
    id: 'web-1',
    name: 'web',
    image: 'web:1',
    created: 1,
    ports: [{ type: 'tcp', port: 8080, servicePort: 10080, ip: '10.0.0.1' }],
    proxyMode: 'http',
    labels: {},
    source: 'static',
    ...extra,
  }
}

t.test('the fit drops bad and over-long tags and attributes alone, naming each', async (t) => {
  const attributes: Record<string, string> = { region: 'us-east', Bad: 'x', ['k'.repeat(L.attributeKey.build + 1)]: 'v' }
  attributes.big = 'v'.repeat(L.attributeValue.build + 1)
  const { spec: out, problems } = fitSpec(
    spec({ tags: ['blue', '', ' pad', 'ctl\u0001', 'blue', 't'.repeat(L.tag.build + 1), 'canary'], attributes }),
    'node-a',
  )
  t.same(out?.tags, ['blue', 'canary'], 'good tags kept in order, a repeat once')
  t.same(out?.attributes, { region: 'us-east' })
  t.same(problems.map((p) => [p.limit, p.action]).sort(), [
    ['attributeKey', 'trimmed'],
    ['attributeKey', 'trimmed'],
    ['attributeValue', 'trimmed'],
    ['tag', 'trimmed'],
    ['tag', 'trimmed'],
    ['tag', 'trimmed'],
    ['tag', 'trimmed'],
  ])
  t.match(problems.map((p) => p.message).join('\n'), /tag "" is empty: dropped/)
  t.match(problems.map((p) => p.message).join('\n'), /attribute key "Bad" is not lower-case/)
  t.match(problems.map((p) => p.message).join('\n'), /attribute "big": 513 characters, at most 512: dropped/)
})

t.test('a thousand tags: the first 32 stay, one problem says how many went', async (t) => {
  const tags = Array.from({ length: 1000 }, (_, i) => `t${i}`)
  const { spec: out, problems } = fitSpec(spec({ tags }), 'node-a')
  t.same(out?.tags, tags.slice(0, L.tags.build))
  t.same(
    problems.map((p) => p.message),
    ['1000 tags, at most 32: kept the first 32, dropped 968'],
  )
})

t.test('over the byte total the largest attributes go first, then the last tags; attributes come out sorted', async (t) => {
  const attributes: Record<string, string> = {}
  for (let i = 0; i < 10; i++) attributes[`a${9 - i}`] = String(i).repeat(i === 3 ? 500 : 400)
  const { spec: out, problems } = fitSpec(spec({ attributes, tags: ['x'] }), 'node-a')
  const kept = Object.keys(out?.attributes ?? {})
  t.same(kept, [...kept].sort(), 'sorted by key')
  t.notOk('a6' in (out?.attributes ?? {}), 'the 500-character one went first')
  let bytes = 1
  for (const [k, v] of Object.entries(out?.attributes ?? {})) bytes += k.length + v.length
  t.ok(bytes <= L.tagsAndAttributesBytes.build, `${bytes} bytes kept`)
  t.same(out?.tags, ['x'], 'the tag stays when dropping attributes was enough')
  t.equal(problems.length, 1)
  t.equal(problems[0]?.limit, 'tagsAndAttributesBytes')
})

t.test('tags and attributes cross the wire as the 15th and 16th fields, after the status reason', async (t) => {
  const rec = record({ tags: ['blue', 'canary'], attributes: { region: 'us-east', __proto__: 'plain' } as Record<string, string> })
  const out = unpack(encodeMessage({ type: MsgType.record, record: rec })) as unknown[]
  t.equal(out.length, 1 + 16, 'type + 16 fields')
  t.equal(out[14], null, 'no reason: null in its place')
  t.same(out[15], ['blue', 'canary'])
  const back = decodeMessage(encodeMessage({ type: MsgType.record, record: rec }))
  if (!('record' in back)) throw new Error('rejected')
  t.same(back.record.tags, ['blue', 'canary'])
  t.same(Object.entries(back.record.attributes ?? {}), Object.entries(rec.attributes!), 'a __proto__ key stays plain data')
  t.equal(Object.getPrototypeOf(back.record.attributes), Object.prototype)

  const tagsOnly = unpack(encodeMessage({ type: MsgType.record, record: record({ tags: ['x'] }) })) as unknown[]
  t.equal(tagsOnly.length, 1 + 15, 'trailing empty attributes left out')
  const none = unpack(encodeMessage({ type: MsgType.record, record: record({ tags: [], attributes: {} }) })) as unknown[]
  t.equal(none.length, 1 + 13, 'a record without tags or attributes keeps the 13 fields')
})

t.test('a peer rejects a record over the accept limits of tags and attributes, alone', async (t) => {
  const base = unpack(encodeMessage({ type: MsgType.record, record: record({}) })) as unknown[]
  const fields = base.slice(1)
  const cases: Array<[string, unknown[], string]> = [
    ['a tag too long', [null, ['t'.repeat(L.tag.accept + 1)]], 'tag'],
    ['a tag not a string', [null, [7]], 'malformed'],
    ['tags not an array', [null, 'blue'], 'malformed'],
    ['an attribute value too long', [null, null, new Map([['k', 'v'.repeat(L.attributeValue.accept + 1)]])], 'attribute-value'],
    ['an attribute key too long', [null, null, new Map([['k'.repeat(L.attributeKey.accept + 1), 'v']])], 'attribute-key'],
    ['attributes not a map', [null, null, ['k', 'v']], 'malformed'],
  ]
  for (const [what, later, reason] of cases) {
    const m = decodeMessage(pack([MsgType.records, [[...fields, ...later], fields]]))
    if (m.type !== MsgType.records) throw new Error('not records')
    t.same([m.records.length, m.rejected.map((r) => r.reason)], [1, [reason]], what)
  }
  const atAccept = [null, ['t'.repeat(L.tag.accept)], new Map([['k'.repeat(L.attributeKey.accept), 'v'.repeat(L.attributeValue.accept)]])]
  t.ok('record' in decodeMessage(pack([MsgType.record, ...fields, ...atAccept])), 'taken at every accept limit')
})

t.test('in the legacy form (a first-release member is up) a record has its 13 fields only', async (t) => {
  const rec = record({ tags: ['blue'], attributes: { region: 'x' } })
  const legacy = unpack(encodeMessage({ type: MsgType.record, record: rec }, { legacy: true })) as unknown[]
  t.equal(legacy.length, 1 + 13)
  const batch = unpack(encodeMessage({ type: MsgType.records, records: [rec] }, { legacy: true })) as unknown[][][]
  t.equal(batch[1]![0]!.length, 13)
  t.ok(cutInLegacyForm(rec), 'its owner sends it again when the last such member goes')
  t.notOk(cutInLegacyForm(record({})), 'a record without later fields is whole in that form')
})

t.test('the static file takes tags and attributes, and refuses bad ones naming the field', async (t) => {
  const ok = parseStaticServices(
    JSON.stringify({
      services: [{ name: 'web', ports: [{ port: 8080, servicePort: 10080 }], tags: ['blue', 'canary'], attributes: { region: 'us-east' } }],
    }),
    'static.json',
    '10.0.0.1',
  )
  t.same([ok[0]?.tags, ok[0]?.attributes], [['blue', 'canary'], { region: 'us-east' }])
  const bad = (e: Record<string, unknown>) => () =>
    parseStaticServices(
      JSON.stringify({ services: [{ name: 'web', ports: [{ port: 8080, servicePort: 10080 }], ...e }] }),
      'static.json',
      '10.0.0.1',
    )
  t.throws(bad({ tags: 'blue' }), /static\.json: services\[0\]\.tags: must be an array/)
  t.throws(bad({ tags: ['blue', ''] }), /services\[0\]\.tags\[1\]: is empty/)
  t.throws(bad({ attributes: { Region: 'x' } }), /services\[0\]\.attributes\.Region: the key is not lower-case/)
  t.throws(bad({ attributes: { region: 1 } }), /services\[0\]\.attributes\.region: must be a string/)
})
