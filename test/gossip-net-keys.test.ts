import t from 'tap'
import { randomBytes } from 'node:crypto'
import { NetTransport } from '../src/gossip/transport-net.js'
import { Keyring } from '../src/gossip/keyring.js'
import { Wire } from '../src/gossip/wire.js'
import { MessageType, encodeMessage } from '../src/gossip/messages.js'
import { silentLogger } from '../src/log.js'
import { addr, netNode, stateOf, until } from './lib/gossip-net.js'

t.test('a node with a wrong key can neither join nor inject a message', async (t) => {
  const key = randomBytes(32)
  const a = await netNode(t, 'a', { keyring: new Keyring([key]) })
  const b = await netNode(t, 'b', { keyring: new Keyring([key]) })
  t.equal(await b.join([addr(a)]), 1, 'the right key joins')
  t.ok(await until(() => a.numAlive() === 2 && b.numAlive() === 2, 5000))
  const got: string[] = []
  a.onMessage((p) => {
    got.push(Buffer.from(p).toString())
  })

  const evil = await netNode(t, 'evil', { keyring: new Keyring([randomBytes(32)]) })
  await t.rejects(evil.join([addr(a)]), { code: 'SHOAL_ERR_JOIN' }, 'wrong key: the join fails')
  const plain = await netNode(t, 'plain')
  await t.rejects(plain.join([addr(a)]), { code: 'SHOAL_ERR_JOIN' }, 'no key: the join fails')

  // Hand-made packets: a valid alive and a user message, sealed with the wrong key and unsealed.
  const raw = new NetTransport({ bind: { host: '127.0.0.1', port: 0 } }, { logger: silentLogger() })
  t.teardown(() => raw.stop())
  const from = await raw.start()
  const wrong = new Wire({ label: 'test', keyring: new Keyring([randomBytes(32)]) })
  const none = new Wire({ label: 'test' })
  const to = { host: a.localMember().addr, port: a.localMember().port }
  const alive = encodeMessage({ type: MessageType.alive, name: 'intruder', inc: 9, addr: from.host, port: from.port, meta: {} })
  const user = encodeMessage({ type: MessageType.user, origin: 'intruder', id: 1, key: 'k', payload: Buffer.from('evil') })
  const before = a.stats().decodeErrors
  for (const w of [wrong, none]) for (const m of [alive, user]) raw.sendPacket(to, w.seal(m))
  t.ok(await until(() => a.stats().decodeErrors >= before + 4, 3000), 'all four dropped and counted')
  await new Promise((r) => setTimeout(r, 300))
  t.equal(stateOf(a, 'intruder'), undefined, 'no intruder member')
  t.equal(stateOf(a, 'evil'), undefined)
  t.equal(stateOf(a, 'plain'), undefined)
  t.same(got, [], 'no message delivered')
  t.equal(a.numAlive(), 2)

  // Key rotation on the good nodes: add, use, and they keep talking.
  const next = randomBytes(32)
  const ringA = new Keyring([key, next])
  const ringB = new Keyring([key, next])
  a.setKeyring(ringA)
  b.setKeyring(ringB)
  ringA.use(next)
  ringB.use(next)
  b.broadcast('k', Buffer.from('rotated'))
  t.ok(await until(() => got.includes('rotated'), 3000), 'delivered under the new primary key')
})

t.test('keyUse: a node never lists itself as not heard from, with or without a keyring', async (t) => {
  const key = randomBytes(32)
  const sealed = await netNode(t, 'sealed', { keyring: new Keyring([key]) })
  t.same(sealed.keyUse().unknown, [], 'with a ring: itself under its primary')
  t.same(sealed.keyUse().keys[0]?.members, ['sealed'])
  const plain = await netNode(t, 'plain-alone')
  t.same(plain.keyUse(), { keys: [], unknown: [] }, 'without a ring: no keys, and not itself in unknown')
})
