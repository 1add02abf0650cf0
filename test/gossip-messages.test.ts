import t from 'tap'
import { Packr } from 'msgpackr'
import {
  COMPOUND_HEADER,
  COMPOUND_PART_OVERHEAD,
  MessageType,
  decodeMessage,
  decodeNotes,
  decodePacket,
  encodeCompound,
  encodeMessage,
  type Message,
} from '../src/gossip/messages.js'

const samples: Message[] = [
  { type: MessageType.ping, seq: 7, target: 'b', from: 'a', addr: '10.0.0.1', port: 7946 },
  {
    type: MessageType.indirectPing,
    seq: 1,
    target: 'c',
    addr: '10.0.0.3',
    port: 1,
    from: 'a',
    fromAddr: '::1',
    fromPort: 65535,
    nack: true,
  },
  { type: MessageType.ack, seq: 2 ** 32 - 1 },
  { type: MessageType.nack, seq: 0 },
  { type: MessageType.suspect, name: 'b', inc: 3, from: 'a' },
  { type: MessageType.suspect, name: 'b', inc: 3, from: 'a', refused: true },
  { type: MessageType.alive, name: 'b', inc: 0, addr: 'h', port: 9, meta: { boot: 'abc', 'weird key': 'ünïcode' } },
  { type: MessageType.dead, name: 'b', inc: Number.MAX_SAFE_INTEGER, from: 'b' },
  { type: MessageType.user, origin: 'a', id: 12345678901, key: '', payload: new Uint8Array([0, 1, 255]) },
  {
    type: MessageType.pushPull,
    join: true,
    from: 'a',
    members: [{ name: 'a', addr: 'h', port: 1, meta: {}, inc: 1, state: 'left' }],
    state: null,
  },
  { type: MessageType.pushPull, join: false, from: 'a', members: [], state: new Uint8Array([9]) },
  { type: MessageType.streamPing, seq: 5, target: 'x' },
  { type: MessageType.appRequest, from: 'a', payload: new Uint8Array(3000) },
  { type: MessageType.appResponse, payload: new Uint8Array(0) },
  { type: MessageType.error, code: 'SHOAL_ERR_X', message: '' },
  { type: MessageType.conflict, name: 'a', otherAddr: '10.0.0.9', otherPort: 7946 },
]

function plain(m: unknown): unknown {
  if (m instanceof Uint8Array) return 'bytes:' + Buffer.from(m).toString('hex')
  if (Array.isArray(m)) return m.map(plain)
  if (m && typeof m === 'object') return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, plain(v)]))
  return m
}

t.test('every message type round-trips', async (t) => {
  for (const m of samples) t.same(plain(decodeMessage(encodeMessage(m))), plain(m), `type ${m.type}`)
})

t.test('suspect: the refusal is a 4th field, written only when true; 3 fields read as before', async (t) => {
  const fields = (m: Parameters<typeof encodeMessage>[0]) => (raw.unpack(encodeMessage(m)) as [number, unknown[]])[1]
  t.same(fields({ type: MessageType.suspect, name: 'b', inc: 3, from: 'a' }), ['b', 3, 'a'], 'what releases before it read')
  t.same(fields({ type: MessageType.suspect, name: 'b', inc: 3, from: 'a', refused: true }), ['b', 3, 'a', true])
  t.same(decodeMessage(raw.pack([5, ['b', 3, 'a', false]])), { type: MessageType.suspect, name: 'b', inc: 3, from: 'a' })
  t.throws(() => decodeMessage(raw.pack([5, ['b', 3, 'a', 'yes']])), { code: 'SHOAL_ERR_DECODE' }, 'not a boolean')
})

t.test('compound packing: parts come back in order, a single part is sent bare', async (t) => {
  const parts = samples.slice(0, 8).map(encodeMessage)
  const packed = encodeCompound(parts)
  const predicted = COMPOUND_HEADER + parts.reduce((s, p) => s + p.length + COMPOUND_PART_OVERHEAD, 0)
  t.ok(packed.length <= predicted, `compound ${packed.length} bytes within the predicted ${predicted}`)
  t.same(plain(decodePacket(packed)), plain(samples.slice(0, 8)))
  t.same(encodeCompound([parts[0]!]), parts[0], 'one part: no compound wrapper')
  t.same(plain(decodePacket(parts[2]!)), plain([samples[2]]))
  const many = Array.from({ length: 300 }, (_, i) => encodeMessage({ type: MessageType.ack, seq: i }))
  const big = encodeCompound(many)
  t.ok(
    big.length <= COMPOUND_HEADER + many.reduce((s, p) => s + p.length + COMPOUND_PART_OVERHEAD, 0),
    'overhead bound holds past 16 and 256 parts',
  )
  t.equal(decodePacket(big).length, 300)
})

const raw = new Packr({ useRecords: false, variableMapSize: true })

t.test('strict validation: every malformed field is rejected with SHOAL_ERR_DECODE', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['not an array', { a: 1 }],
    ['one element', [3]],
    ['ack seq negative', [3, [-1]]],
    ['ack seq too big', [3, [2 ** 32]]],
    ['ack seq float', [3, [1.5]]],
    ['ack missing field', [3, []]],
    ['ping port 0', [1, [1, 'b', 'a', 'h', 0]]],
    ['ping port string', [1, [1, 'b', 'a', 'h', '7946']]],
    ['suspect empty name', [5, ['', 1, 'a']]],
    ['suspect name too long', [5, ['x'.repeat(256), 1, 'a']]],
    ['alive meta not a map', [6, ['b', 1, 'h', 1, ['x']]]],
    ['alive meta number value', [6, ['b', 1, 'h', 1, { k: 1 }]]],
    ['alive meta too big', [6, ['b', 1, 'h', 1, { k: 'v'.repeat(600) }]]],
    ['dead inc negative', [7, ['b', -1, 'a']]],
    ['user payload not binary', [8, ['a', 1, 'k', 'text']]],
    ['compound empty', [9, []]],
    ['compound part not binary', [9, ['x']]],
    ['pushPull bad state', [10, [true, 'a', [['a', 'h', 1, {}, 1, 'zombie']], null]]],
    ['pushPull join not bool', [10, [1, 'a', [], null]]],
  ]
  for (const [what, v] of bad) t.throws(() => decodePacket(raw.pack(v)), { code: 'SHOAL_ERR_DECODE' }, what)
  t.throws(() => decodeMessage(Buffer.from([0xc1])), { code: 'SHOAL_ERR_DECODE' }, 'not msgpack')
  t.throws(
    () => decodeMessage(Buffer.concat([encodeMessage(samples[2]!), Buffer.from([0])])),
    { code: 'SHOAL_ERR_DECODE' },
    'trailing bytes',
  )
  t.throws(() => decodeMessage(encodeMessage(samples[0]!).subarray(0, 5)), { code: 'SHOAL_ERR_DECODE' }, 'truncated')
})

t.test("a newer peer's additions: trailing fields and unknown types are counted and skipped, never fatal", async (t) => {
  const notes = decodeNotes()
  // An ack with a field a later release appended, and an envelope element after the fields.
  t.same(decodeMessage(raw.pack([3, [7, 'reason']]), notes), { type: MessageType.ack, seq: 7 })
  t.same(decodeMessage(raw.pack([3, [8], { hint: 1 }]), notes), { type: MessageType.ack, seq: 8 })
  t.equal(notes.extraFields, 2, 'both counted')
  // A push-pull whose member records carry a field more.
  const pp = decodeMessage(raw.pack([10, [false, 'a', [['a', 'h', 1, new Map([['boot', 'b']]), 1, 'alive', 'zone-1']], null]]), notes)
  t.same((pp as Extract<Message, { type: 10 }>).members[0], { name: 'a', addr: 'h', port: 1, meta: { boot: 'b' }, inc: 1, state: 'alive' })
  t.equal(notes.extraFields, 3)
  // An unknown type alone: no message, no error; in a compound: only that part is skipped.
  t.same(decodePacket(raw.pack([99, ['x']]), notes), [])
  t.throws(() => decodeMessage(raw.pack([99, []])), { code: 'SHOAL_ERR_UNKNOWN_TYPE' }, 'a single stream message names the unknown type')
  const mixed = encodeCompound([encodeMessage(samples[2]!), raw.pack([42, [1, 2, 3]]), encodeMessage(samples[3]!)])
  t.same(plain(decodePacket(mixed, notes)), plain([samples[2], samples[3]]), 'the known parts are kept, in order')
  t.equal(notes.unknownTypes, 2, 'each unknown type counted')
  t.equal(notes.malformedParts, 0)
})

t.test('a malformed or nested part of a compound costs only itself', async (t) => {
  const notes = decodeNotes()
  const nested = encodeMessage({ type: MessageType.compound, parts: [encodeMessage(samples[2]!), encodeMessage(samples[3]!)] })
  const packet = encodeCompound([encodeMessage(samples[0]!), raw.pack([3, [-1]]), nested, encodeMessage(samples[4]!)])
  t.same(plain(decodePacket(packet, notes)), plain([samples[0], samples[4]]))
  t.equal(notes.malformedParts, 2, 'the bad ack and the nested compound counted')
})

t.test('size limits: metadata up to 512 bytes, names up to 255 bytes', async (t) => {
  const meta = { k: 'v'.repeat(500) }
  t.ok(raw.pack(meta).length <= 512)
  t.doesNotThrow(() => decodeMessage(encodeMessage({ type: MessageType.alive, name: 'x'.repeat(255), inc: 1, addr: 'h', port: 1, meta })))
  t.throws(
    () => decodeMessage(encodeMessage({ type: MessageType.alive, name: 'é'.repeat(128), inc: 1, addr: 'h', port: 1, meta: {} })),
    { code: 'SHOAL_ERR_DECODE' },
    '256 bytes of UTF-8',
  )
  const maxAlive = encodeMessage({
    type: MessageType.alive,
    name: 'x'.repeat(255),
    inc: Number.MAX_SAFE_INTEGER,
    addr: 'y'.repeat(255),
    port: 65535,
    meta,
  })
  t.ok(
    maxAlive.length + COMPOUND_HEADER + COMPOUND_PART_OVERHEAD + 37 < 1400,
    `the largest alive (${maxAlive.length} bytes) fits a 1400-byte encrypted datagram`,
  )
})

t.test('metadata keys like __proto__ stay plain data', async (t) => {
  const buf = raw.pack([
    6,
    [
      'b',
      1,
      'h',
      1,
      new Map([
        ['__proto__', 'x'],
        ['constructor', 'y'],
      ]),
    ],
  ])
  const m = decodeMessage(buf) as Extract<Message, { type: 6 }>
  t.equal(Object.getPrototypeOf(m.meta), Object.prototype)
  t.equal(Object.getOwnPropertyDescriptor(m.meta, '__proto__')?.value, 'x')
  t.equal(({} as Record<string, unknown>).x, undefined)
})
