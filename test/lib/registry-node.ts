/**
 * One registry node as the agent wires it, on the gossip simulator: a real Gossip on a
 * SimNetwork transport, a Catalog, a GossipBridge and LocalServices with a real
 * HealthScheduler (the owner's build). Started in the agent's order: catalog and local
 * services, the sources' first views (`firstViews`), then gossip and the bridge.
 *
 * @example
 *   const clock = new VirtualClock(), net = new SimNetwork(clock)
 *   const a = await simNode(net, 'a', '10.0.0.1'), b = await simNode(net, 'b', '10.0.0.2')
 *   await joinSim(b, a)
 */
import { HealthScheduler } from '../../src/health/scheduler.js'
import { Gossip } from '../../src/gossip/gossip.js'
import type { SimNetwork } from '../../src/gossip/transport-sim.js'
import { silentLogger, type Logger } from '../../src/log.js'
import { GossipBridge, type GossipBridgeOptions } from '../../src/registry/bridge.js'
import { Catalog } from '../../src/registry/catalog.js'
import { LocalServices } from '../../src/registry/local.js'
import { REGISTRY_PROTOCOL } from '../../src/registry/wire.js'

export interface SimNode {
  name: string
  ip: string
  gossip: Gossip
  catalog: Catalog
  bridge: GossipBridge
  health: HealthScheduler
  local: LocalServices
  stop(): Promise<void>
}

export interface SimNodeOptions {
  logger?: Logger
  bridge?: GossipBridgeOptions
  profile?: 'local' | 'lan'
  random?: () => number
  /** Called before gossip starts, as the agent's sources report their first views then. */
  firstViews?: (node: Pick<SimNode, 'catalog' | 'local'>) => void
}

export async function simNode(net: SimNetwork, name: string, ip: string, opts: SimNodeOptions = {}): Promise<SimNode> {
  const logger = opts.logger ?? silentLogger()
  const clock = net.clock
  const gossip = new Gossip(
    { name, cluster: 'sim', profile: opts.profile ?? 'local', meta: { reg: String(REGISTRY_PROTOCOL) } },
    { transport: net.transport(ip), clock, logger, ...(opts.random ? { random: opts.random } : {}) },
  )
  const catalog = new Catalog({ cluster: 'sim', self: name, address: `${ip}:7946` }, { clock, logger })
  catalog.setLocalBoot(gossip.bootId)
  const bridge = new GossipBridge(opts.bridge ?? {}, { catalog, gossip, logger })
  const health = new HealthScheduler({}, { logger })
  const local = new LocalServices({ advertiseIp: ip }, { catalog, health, logger })
  catalog.start()
  health.start()
  local.start()
  opts.firstViews?.({ catalog, local })
  await gossip.start()
  bridge.start()
  return {
    name,
    ip,
    gossip,
    catalog,
    bridge,
    health,
    local,
    async stop() {
      local.stop()
      health.stop()
      bridge.stop()
      catalog.stop()
      await gossip.stop()
    },
  }
}

/** `node` joins through `seed`, moving the simulator's virtual time until the join completes. */
export async function joinSim(net: SimNetwork, node: SimNode, seed: SimNode): Promise<void> {
  let done = false
  const p = node.gossip.join([`${seed.ip}:7946`]).finally(() => (done = true))
  for (let i = 0; i < 2000 && !done; i++) await net.clock.advance(5)
  await p
}
