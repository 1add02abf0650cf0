// A cluster of full registry nodes (real Gossip + Catalog + GossipBridge) on the gossip
// simulator: virtual time, in-memory network. Used by test/registry-sim.test.ts and
// bench/registry-sim.ts.
import { VirtualClock } from '../../src/clock.js'
import { Gossip } from '../../src/gossip/gossip.js'
import { SimNetwork } from '../../src/gossip/transport-sim.js'
import { silentLogger } from '../../src/log.js'
import { GossipBridge } from '../../src/registry/bridge.js'
import { Catalog, type LocalRecord } from '../../src/registry/catalog.js'
import { REGISTRY_PROTOCOL } from '../../src/registry/wire.js'
import { seeded } from './random.js'
export { seeded }

export interface RegistryNode {
  name: string
  ip: string
  gossip: Gossip
  catalog: Catalog
  bridge: GossipBridge
}

export interface RegistrySim {
  clock: VirtualClock
  net: SimNetwork
  nodes: RegistryNode[]
  /** True when every running node holds exactly the live records the running owners hold. */
  converged(): boolean
  stop(): Promise<void>
}

export function service(host: string, i: number, port = 8000 + i, status: LocalRecord['status'] = 'alive'): LocalRecord {
  return {
    id: `s${i}`,
    name: `svc-${i}`,
    image: `reg/svc-${i}:1`,
    created: 1,
    ports: [{ type: 'tcp', port, servicePort: 10000 + i, ip: host }],
    proxyMode: 'http',
    status,
    labels: { team: `t${i % 4}` },
  }
}

/**
 * Builds `hosts` nodes with `perHost` services each; joins them (each to node 0) and starts
 * the bridges. `profile` defaults to `local`.
 */
export async function registrySim(
  hosts: number,
  perHost: number,
  opts: {
    seed?: number
    profile?: 'lan' | 'local'
    loss?: number
    /** The registry protocol node i advertises (gossip metadata `reg`), as an agent does; undefined: none, as release 1. Default: this release's. */
    protocol?: (i: number) => number | undefined
  } = {},
): Promise<RegistrySim> {
  const clock = new VirtualClock()
  const random = seeded(opts.seed ?? 1)
  const net = new SimNetwork(clock, { latencyMs: 1, jitterMs: 1, loss: opts.loss ?? 0, random })
  const logger = silentLogger()
  const nodes: RegistryNode[] = []
  for (let i = 0; i < hosts; i++) {
    const name = `host-${String(i).padStart(3, '0')}`
    const ip = `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`
    const reg = opts.protocol ? opts.protocol(i) : REGISTRY_PROTOCOL
    const gossip = new Gossip(
      { name, cluster: 'sim', profile: opts.profile ?? 'local', meta: reg === undefined ? {} : { reg: String(reg) } },
      { transport: net.transport(ip), clock, logger, random },
    )
    await gossip.start()
    const catalog = new Catalog({ cluster: 'sim', self: name, address: `${ip}:7946` }, { clock, logger })
    const bridge = new GossipBridge({}, { catalog, gossip, logger, random })
    nodes.push({ name, ip, gossip, catalog, bridge })
  }
  const seed = `${nodes[0]!.ip}:7946`
  for (const n of nodes.slice(1)) {
    const p = n.gossip.join([seed])
    await clock.advance(5)
    await p
  }
  // Like an agent: gossip up and joined, then the bridge, then the local services.
  for (const n of nodes) {
    n.bridge.start()
    n.catalog.start()
    for (let s = 0; s < perHost; s++) n.catalog.upsertLocal(service(n.ip, s))
  }
  const running = (): RegistryNode[] => nodes.filter((n) => !net.isCrashed(n.ip))
  return {
    clock,
    net,
    nodes,
    converged() {
      const up = running()
      const truth = JSON.stringify(
        up.map((n) => n.catalog.digest().find((d) => d.host === n.name)).sort((a, b) => (a!.host < b!.host ? -1 : 1)),
      )
      for (const n of up) {
        const upNames = new Set(up.map((u) => u.name))
        const view = JSON.stringify(
          n.catalog
            .digest()
            .filter((d) => upNames.has(d.host))
            .sort((a, b) => (a.host < b.host ? -1 : 1)),
        )
        if (view !== truth) return false
      }
      return true
    },
    async stop() {
      for (const n of nodes) {
        n.bridge.stop()
        n.catalog.stop()
        await n.gossip.stop()
      }
    },
  }
}
