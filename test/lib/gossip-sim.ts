// Shared by the gossip simulator tests: a seeded random source and a cluster of real
// Gossip nodes on a SimNetwork driven by a VirtualClock.
import { VirtualClock } from '../../src/clock.js'
import { Gossip, type GossipOptions } from '../../src/gossip/gossip.js'
import { SimNetwork } from '../../src/gossip/transport-sim.js'
import { silentLogger, type Logger } from '../../src/log.js'
import { seeded } from './random.js'
export { seeded }

export interface SimCluster {
  clock: VirtualClock
  net: SimNetwork
  nodes: Gossip[]
  add(name: string, opts?: Partial<GossipOptions>): Promise<Gossip>
  stop(): Promise<void>
}

export async function simCluster(
  n: number,
  opts: {
    seed?: number
    profile?: 'lan' | 'local' | 'wan'
    latencyMs?: number
    loss?: number
    gossip?: Partial<GossipOptions>
    /** Every node's logger (each line carries its `node`); default silent. */
    logger?: Logger
  } = {},
): Promise<SimCluster> {
  const clock = new VirtualClock()
  const random = seeded(opts.seed ?? 1)
  const net = new SimNetwork(clock, { latencyMs: opts.latencyMs ?? 1, jitterMs: 1, loss: opts.loss ?? 0, random })
  const logger = opts.logger ?? silentLogger()
  const nodes: Gossip[] = []
  let i = 0
  const add = async (name: string, extra: Partial<GossipOptions> = {}): Promise<Gossip> => {
    const host = `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`
    i++
    const g = new Gossip(
      { name, cluster: 'sim', profile: opts.profile ?? 'local', ...opts.gossip, ...extra },
      { transport: net.transport(host), clock, logger, random },
    )
    await g.start()
    nodes.push(g)
    return g
  }
  for (let k = 0; k < n; k++) await add(`n${k}`)
  for (const g of nodes.slice(1)) {
    const p = g.join([`${nodes[0]!.localMember().addr}:${nodes[0]!.localMember().port}`])
    await clock.advance(20)
    await p
  }
  return {
    clock,
    net,
    nodes,
    add,
    async stop() {
      for (const g of nodes) await g.stop()
    },
  }
}

export function aliveView(g: Gossip): string[] {
  return g
    .members()
    .filter((m) => m.state === 'alive')
    .map((m) => m.name)
    .sort()
}
