import t from 'tap'
import { randomBytes } from 'node:crypto'
import { Keyring } from '../src/gossip/keyring.js'
import { Wire } from '../src/gossip/wire.js'
import { ShoalError } from '../src/errors.js'

const aad = Buffer.from('aad')

function codeOf(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return err instanceof ShoalError ? `${err.code}: ${err.message}` : `not a ShoalError: ${String(err)}`
  }
  return 'no error'
}

t.test('encrypt/decrypt layout: nonce | ciphertext | tag, aad bound', async (t) => {
  const ring = new Keyring([randomBytes(32)])
  const sealed = ring.encrypt(Buffer.from('hello'), aad)
  t.equal(sealed.length, 5 + Keyring.overhead)
  t.equal(Keyring.overhead, 28)
  t.same(ring.decrypt(sealed, aad), Buffer.from('hello'))
  t.match(
    codeOf(() => ring.decrypt(sealed, Buffer.from('other aad'))),
    /^SHOAL_ERR_AUTH/,
  )
  t.not(ring.encrypt(Buffer.from('hello'), aad).subarray(0, 12).toString('hex'), sealed.subarray(0, 12).toString('hex'), 'fresh nonce')
})

t.test('rotation: add, use, remove; old messages open during rotation', async (t) => {
  const oldKey = randomBytes(32)
  const newKey = randomBytes(32)
  const a = new Keyring([oldKey])
  const b = new Keyring([oldKey])
  const wa = new Wire({ label: 'c', keyring: a })
  const wb = new Wire({ label: 'c', keyring: b })
  const sealedOld = wa.seal(Buffer.from('old'))

  a.add(newKey)
  b.add(newKey)
  t.same(a.primary(), oldKey, 'add keeps the primary')
  a.use(newKey)
  t.same(a.primary(), newKey)
  t.same(a.keys(), [newKey, oldKey])
  const sealedNew = wa.seal(Buffer.from('new'))
  t.same(wb.open(sealedNew), Buffer.from('new'), 'b (old primary) opens a message sealed with the new key')
  t.same(wa.open(sealedOld), Buffer.from('old'), 'a message sealed with the old primary still opens')
  b.use(newKey)
  a.remove(oldKey)
  b.remove(oldKey)
  t.same(a.keys(), [newKey])
  t.match(
    codeOf(() => wa.open(sealedOld)),
    /^SHOAL_ERR_AUTH/,
    'after removal the old key no longer opens',
  )
  t.same(wb.open(wa.seal(Buffer.from('x'))), Buffer.from('x'))
})

t.test('a wrong key fails with SHOAL_ERR_AUTH', async (t) => {
  const a = new Keyring([randomBytes(32)])
  const b = new Keyring([randomBytes(32), randomBytes(32)])
  t.match(
    codeOf(() => b.decrypt(a.encrypt(Buffer.from('x'), aad), aad)),
    /^SHOAL_ERR_AUTH: .*2 key/,
  )
  t.match(
    codeOf(() => b.decrypt(Buffer.alloc(10), aad)),
    /^SHOAL_ERR_DECODE/,
  )
})

t.test('bad keys are refused with errors naming the key', async (t) => {
  t.match(
    codeOf(() => new Keyring([randomBytes(32), randomBytes(16)])),
    /^SHOAL_ERR_KEY: .*key #2 is 16 bytes/,
  )
  t.match(
    codeOf(() => new Keyring([])),
    /^SHOAL_ERR_KEY/,
  )
  const good = randomBytes(32).toString('base64')
  t.match(
    codeOf(() => Keyring.fromBase64([good, 'not base64!'])),
    /^SHOAL_ERR_KEY: key #2 of 2: not valid base64/,
  )
  t.match(
    codeOf(() => Keyring.fromBase64([randomBytes(31).toString('base64')])),
    /^SHOAL_ERR_KEY: key #1 of 1: decodes to 31 bytes/,
  )
  const ring = Keyring.fromBase64([` ${good}\n`])
  t.same(ring.primary(), Buffer.from(good, 'base64'))
  t.match(
    codeOf(() => ring.use(randomBytes(32))),
    /^SHOAL_ERR_KEY: .*not in the ring/,
  )
  t.match(
    codeOf(() => ring.remove(ring.primary())),
    /^SHOAL_ERR_KEY: .*primary/,
  )
  t.match(
    codeOf(() => ring.add(randomBytes(33))),
    /^SHOAL_ERR_KEY/,
  )
  ring.add(ring.primary())
  t.equal(ring.keys().length, 1, 'adding a key twice keeps one')
  ring.primary()[0]! ^= 1
  t.same(ring.primary(), Buffer.from(good, 'base64'), 'primary() returns a copy')
})
