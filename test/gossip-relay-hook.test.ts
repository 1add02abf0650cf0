// The relay hook of Gossip.onMessage (gossip/types.ts MessageHandler): what a handler returns
// decides whether this node passes a broadcast on. Nothing (or true): at once, as SWIM does;
// false: never; a promise: once it resolves true. The registry's notices rely on it (a replica
// passes a notice on only once it holds the records), so it is checked here at the gossip layer,
// by the datagrams the middle node sends.
import t from 'tap'
import { simCluster } from './lib/gossip-sim.js'
import type { MessageHandler } from '../src/gossip/types.js'

async function relayedBy(handler: (marker: string) => MessageHandler, during: (step: () => Promise<number>) => Promise<unknown>) {
  const c = await simCluster(4, { seed: 41 })
  const [origin, middle] = [c.nodes[0]!, c.nodes[1]!]
  const marker = 'relay-hook-marker-7f3a'
  const needle = Buffer.from(marker)
  const me = middle.localMember()
  let sent = 0
  c.net.tap((from, _to, data, kind) => {
    if (kind === 'packet' && from.host === me.addr && from.port === me.port && Buffer.from(data).includes(needle)) sent++
  })
  let got = false
  middle.onMessage((p, from, via) => {
    if (!Buffer.from(p).includes(needle)) return undefined
    got = true
    return handler(marker)(p, from, via)
  })
  await c.clock.advance(2000)
  origin.broadcast('hook', needle)
  await during(async () => {
    await c.clock.advance(2000)
    return sent
  })
  await c.stop()
  return got
}

t.test('a handler that returns nothing: the node relays at once', async (t) => {
  const got = await relayedBy(
    () => () => undefined,
    async (step) => t.ok((await step()) > 0, 'the middle node sent the broadcast on'),
  )
  t.ok(got, 'the middle node received it')
})

t.test('a handler that returns false: the node does not relay', async (t) => {
  const got = await relayedBy(
    () => () => false,
    async (step) => t.equal(await step(), 0, 'no datagram of the middle node carries it'),
  )
  t.ok(got, 'the middle node received it')
})

t.test('a handler that returns a promise: the node relays once it resolves true, not before', async (t) => {
  for (const answer of [true, false]) {
    let resolve!: (ok: boolean) => void
    const got = await relayedBy(
      () => () => new Promise<boolean>((r) => (resolve = r)),
      async (step) => {
        t.equal(await step(), 0, 'nothing relayed while the promise is pending')
        resolve(answer)
        const n = await step()
        if (answer) t.ok(n > 0, 'relayed once it resolved true')
        else t.equal(n, 0, 'never relayed when it resolved false')
      },
    )
    t.ok(got, 'the middle node received it')
  }
})
