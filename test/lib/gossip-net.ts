// Real-socket gossip nodes on 127.0.0.1 port 0 with the `local` profile, and polling helpers.
import { RealClock } from '../../src/clock.js'
import { Gossip, type GossipOptions } from '../../src/gossip/gossip.js'
import { NetTransport } from '../../src/gossip/transport-net.js'
import type { Member } from '../../src/gossip/types.js'
import { silentLogger } from '../../src/log.js'

export async function netNode(
  t: { teardown(fn: () => unknown): void },
  name: string,
  opts: Partial<GossipOptions> & { port?: number } = {},
): Promise<Gossip> {
  const logger = silentLogger()
  const { port, ...rest } = opts
  const g = new Gossip(
    { name, cluster: 'test', profile: 'local', ...rest },
    {
      transport: new NetTransport({ bind: { host: '127.0.0.1', port: port ?? 0 } }, { logger }),
      clock: new RealClock(),
      logger,
    },
  )
  t.teardown(() => g.stop())
  await g.start()
  return g
}

export function addr(g: Gossip): string {
  const m = g.localMember()
  return `${m.addr}:${m.port}`
}

/** Polls `pred` (sync or async) every 20 ms until it holds or `ms` pass; resolves whether it held. */
export async function until(pred: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await pred()) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return pred()
}

export function stateOf(g: Gossip, name: string): Member['state'] | undefined {
  return g.members().find((m) => m.name === name)?.state
}
