import t from 'tap'
import { randomBytes } from 'node:crypto'
import { Wire, WireError, decodeRefusal, encodeRefusal } from '../src/gossip/wire.js'
import { RejectReason } from '../src/gossip/types.js'
import { Keyring } from '../src/gossip/keyring.js'
import { crc32 } from '../src/gossip/crc32.js'
import { ShoalError, isShoalError } from '../src/errors.js'

const key = () => randomBytes(32)

function codeOf(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof ShoalError) return err.code
    return `not a ShoalError: ${String(err)}`
  }
  return 'no error'
}

t.test('crc32 matches the IEEE check value', async (t) => {
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926)
  t.equal(crc32(Buffer.alloc(0)), 0)
})

t.test('plain and encrypted round trips; overhead is exact', async (t) => {
  for (const keyring of [undefined, new Keyring([key()])]) {
    const wire = new Wire(keyring ? { label: 'prod-ü', keyring } : { label: 'prod-ü' })
    for (const size of [0, 1, 100, 1400, 70_000]) {
      const payload = randomBytes(size)
      const packet = wire.seal(payload)
      t.equal(packet.length, size + wire.overhead, `${keyring ? 'encrypted' : 'plain'} ${size}`)
      t.same(wire.open(packet), payload)
    }
    t.equal(wire.overhead, 2 + Buffer.byteLength('prod-ü') + (keyring ? 28 : 4))
  }
  const empty = new Wire({ label: '' })
  t.same(empty.open(empty.seal(Buffer.from('x'))), Buffer.from('x'))
})

t.test('label mismatch names both labels', async (t) => {
  const a = new Wire({ label: 'alpha' })
  const b = new Wire({ label: 'beta' })
  const err = t.throws(() => b.open(a.seal(Buffer.from('hi')))) as ShoalError
  t.equal(err.code, 'SHOAL_ERR_LABEL')
  t.match(err.message, /alpha/)
  t.match(err.message, /beta/)
  t.equal(b.stats().errors.SHOAL_ERR_LABEL, 1)
  t.equal(
    codeOf(() => new Wire({ label: 'x'.repeat(256) })),
    'SHOAL_ERR_LABEL',
  )
})

t.test('keys on one side only: dropped and counted both ways', async (t) => {
  const plain = new Wire({ label: 'c' })
  const secure = new Wire({ label: 'c', keyring: new Keyring([key()]) })
  t.equal(
    codeOf(() => secure.open(plain.seal(Buffer.from('x')))),
    'SHOAL_ERR_AUTH',
  )
  t.equal(
    codeOf(() => plain.open(secure.seal(Buffer.from('x')))),
    'SHOAL_ERR_AUTH',
  )
  t.equal(secure.stats().plainRejected, 1)
  t.equal(plain.stats().encryptedRejected, 1)
  const other = new Wire({ label: 'c', keyring: new Keyring([key()]) })
  t.equal(
    codeOf(() => other.open(secure.seal(Buffer.from('x')))),
    'SHOAL_ERR_AUTH',
    'wrong key',
  )
  // setKeyring switches modes
  plain.setKeyring(new Keyring(secure['keyring']!.keys()))
  t.same(plain.open(secure.seal(Buffer.from('now'))), Buffer.from('now'))
})

t.test('a version other than 1 is refused', async (t) => {
  const wire = new Wire({ label: 'c' })
  const p = wire.seal(Buffer.from('x'))
  p[0] = 2
  t.equal(
    codeOf(() => wire.open(p)),
    'SHOAL_ERR_VERSION',
  )
})

t.test('tampering with any byte is detected', async (t) => {
  for (const keyring of [undefined, new Keyring([key()])]) {
    const wire = new Wire(keyring ? { label: 'lab', keyring } : { label: 'lab' })
    const packet = wire.seal(randomBytes(64))
    const codes = new Set<string>()
    for (let i = 0; i < packet.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = Buffer.from(packet)
        bad[i]! ^= bit
        const code = codeOf(() => wire.open(bad))
        t.ok(code.startsWith('SHOAL_ERR_'), `byte ${i} bit ${bit}: ${code}`)
        codes.add(code)
      }
    }
    t.ok(codes.has(keyring ? 'SHOAL_ERR_AUTH' : 'SHOAL_ERR_CRC'))
    t.ok(codes.has('SHOAL_ERR_LABEL'))
    t.ok(codes.has('SHOAL_ERR_VERSION'))
  }
})

t.test('truncated at every length: only ShoalError', async (t) => {
  for (const keyring of [undefined, new Keyring([key()])]) {
    const wire = new Wire(keyring ? { label: 'lab', keyring } : { label: 'lab' })
    const packet = wire.seal(randomBytes(40))
    let ok = 0
    for (let len = 0; len < packet.length; len++) {
      const code = codeOf(() => wire.open(packet.subarray(0, len)))
      if (code.startsWith('SHOAL_ERR_')) ok++
      else t.fail(`length ${len}: ${code}`)
    }
    t.equal(ok, packet.length)
    t.equal(
      codeOf(() => wire.open(packet.subarray(0, 4))),
      'SHOAL_ERR_DECODE',
    )
  }
})

t.test('100k random packets throw only ShoalError', async (t) => {
  const plain = new Wire({ label: '' })
  const secure = new Wire({ label: '', keyring: new Keyring([key()]) })
  let others = 0
  let shoal = 0
  const pool = randomBytes(1 << 20)
  for (let i = 0; i < 100_000; i++) {
    const len = Math.floor(Math.random() * 80)
    const off = Math.floor(Math.random() * (pool.length - len))
    const data = Buffer.from(pool.subarray(off, off + len))
    // Bias towards plausible headers so the deeper checks run too.
    if (len > 0 && i % 2 === 0) data[0] = i % 4 === 0 ? 0x01 : 0x81
    if (len > 1 && i % 3 === 0) data[1] = 0
    for (const w of [plain, secure]) {
      try {
        w.open(data)
      } catch (err) {
        if (isShoalError(err)) shoal++
        else others++
      }
    }
  }
  t.equal(others, 0)
  t.ok(shoal > 199_000, `${shoal} ShoalErrors`)
})

t.test('refusal frames: every reason round-trips; no sealed packet reads as a refusal', async (t) => {
  for (const reason of Object.values(RejectReason)) t.equal(decodeRefusal(encodeRefusal(reason)), reason)
  t.equal(decodeRefusal(Buffer.from([0, 99])), 'malformed', 'an unknown reason byte still refuses')
  for (const w of [new Wire({ label: '' }), new Wire({ label: 'x', keyring: new Keyring([Buffer.alloc(32, 7)]) })]) {
    for (const size of [0, 1, 2, 100]) t.equal(decodeRefusal(w.seal(Buffer.alloc(size))), undefined)
  }
})

t.test('every failure of open() carries its reason', async (t) => {
  const ring = (b: number) => new Keyring([Buffer.alloc(32, b)])
  const reasonOf = (w: Wire, packet: Uint8Array): string | undefined => {
    try {
      w.open(packet)
      return undefined
    } catch (err) {
      return err instanceof WireError ? err.reason : 'not a WireError'
    }
  }
  const plain = new Wire({ label: 'a' })
  const keyed = new Wire({ label: 'a', keyring: ring(1) })
  t.equal(reasonOf(plain, new Wire({ label: 'b' }).seal(Buffer.from('x'))), 'label')
  t.equal(reasonOf(keyed, new Wire({ label: 'a', keyring: ring(2) }).seal(Buffer.from('x'))), 'key')
  t.equal(reasonOf(keyed, plain.seal(Buffer.from('x'))), 'plain')
  t.equal(reasonOf(plain, keyed.seal(Buffer.from('x'))), 'encrypted')
  t.equal(reasonOf(plain, Buffer.from([9, 0, 0, 0, 0, 0])), 'version')
  const bad = plain.seal(Buffer.from('x'))
  bad[bad.length - 1]! ^= 1
  t.equal(reasonOf(plain, bad), 'malformed')
  t.equal(reasonOf(plain, Buffer.from([1])), 'malformed')
})
