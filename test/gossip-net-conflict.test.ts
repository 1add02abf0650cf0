import t from 'tap'
import { addr, netNode, stateOf, until } from './lib/gossip-net.js'

t.test('joining with the name of a live node at another address is refused, on both sides', async (t) => {
  const seed = await netNode(t, 'seed')
  const holder = await netNode(t, 'web')
  await holder.join([addr(seed)])
  t.ok(await until(() => seed.numAlive() === 2, 5000))
  const seen: Array<{ who: string; remote: string; local: string }> = []
  holder.on('conflict', (c) => seen.push({ who: 'holder', remote: c.remoteAddr, local: c.localAddr }))
  seed.on('conflict', (c) => seen.push({ who: 'seed', remote: c.remoteAddr, local: c.localAddr }))
  const dup = await netNode(t, 'web')
  dup.on('conflict', (c) => seen.push({ who: 'dup', remote: c.remoteAddr, local: c.localAddr }))
  const err = await dup.join([addr(seed)], { retry: true }).then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  )
  t.equal(err?.code, 'SHOAL_ERR_NAME_CONFLICT')
  t.match(err?.message, addr(holder), 'names the holder address')
  t.match(err?.message, addr(dup), 'names the joining address')
  t.ok(await until(() => seen.some((s) => s.who === 'holder'), 3000), 'the holder emits conflict too')
  t.same(
    seen.find((s) => s.who === 'holder'),
    { who: 'holder', local: addr(holder), remote: addr(dup) },
  )
  t.same(
    seen.find((s) => s.who === 'dup'),
    { who: 'dup', local: addr(dup), remote: addr(holder) },
  )
  t.equal(stateOf(seed, 'web'), 'alive')
  t.equal(seed.members().find((m) => m.name === 'web')?.port, holder.localMember().port, 'the seed keeps the original')

  const dup2 = await netNode(t, 'web')
  await t.rejects(dup2.join([addr(holder)]), { code: 'SHOAL_ERR_NAME_CONFLICT' }, 'also when the seed is the holder itself')
})
