/**
 * What a local change costs its own agent with version notices (GossipBridge.notice): one
 * Catalog holding RECORDS local records, with the bridge started on a Gossip node (SimNetwork,
 * VirtualClock, so only CPU is measured), against the same catalog with the bridge stopped
 * (the write alone, the peer measured in the same run). Real time per change (µs), median of
 * ROUNDS rounds, for:
 *
 * - a burst: RECORDS updates of random records at one instant (one notice episode);
 * - spaced: SPACED updates, the virtual clock moved past a gossip interval between them
 *   (each change its own episode, the notice's look for changed records from its start).
 *
 * Run: node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/registry-local-burst.ts [--src DIR] [--records N]
 *   --src DIR   drive DIR/src instead of this tree's src (a `git archive` of another commit), for before/after
 * Results: bench/RESULTS-registry.md, "Local changes with notices".
 */
import { fileURLToPath } from 'node:url'
import { option, registryModules } from './stats.js'
import { seeded } from '../test/lib/random.js'
import type { LocalRecord } from '../src/registry/catalog.js'

const repo = fileURLToPath(new URL('..', import.meta.url))
const RECORDS = Number(option('--records') ?? 3000)
const SPACED = 1000
const ROUNDS = 7

function service(ip: string, i: number, port = 8000 + i): LocalRecord {
  return {
    id: `s${i}`,
    name: `svc-${i}`,
    image: `reg/svc-${i}:1`,
    created: 1_700_000_000_000,
    ports: [{ type: 'tcp', port, servicePort: 10000 + (i % 50000), ip }],
    proxyMode: 'http',
    status: 'alive',
    labels: { team: `t${i % 4}` },
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

async function main(): Promise<void> {
  const srcRoot = option('--src') ?? repo
  const { VirtualClock, Gossip, SimNetwork, silentLogger, GossipBridge, Catalog, REGISTRY_PROTOCOL } = await registryModules(srcRoot)

  const clock = new VirtualClock()
  const random = seeded(7)
  const net = new SimNetwork(clock, { latencyMs: 1, jitterMs: 0, loss: 0, random })
  const logger = silentLogger()
  const ip = '10.0.0.1'
  const gossip = new Gossip(
    { name: 'me', cluster: 'bench', profile: 'lan', meta: { reg: String(REGISTRY_PROTOCOL) } },
    { transport: net.transport(ip), clock, logger, random },
  )
  await gossip.start()
  const catalog = new Catalog({ cluster: 'bench', self: 'me', address: `${ip}:7946` }, { clock, logger })
  catalog.setLocalBoot(gossip.bootId)
  for (let i = 0; i < RECORDS; i++) catalog.upsertLocal(service(ip, i))
  const bridge = new GossipBridge({ announceOnStart: false }, { catalog, gossip, logger, random })
  const rnd = seeded(11)
  let port = 20000

  /** µs per change of `n` updates of random records; `spaced` moves the clock past an episode between them. */
  const measure = async (n: number, spaced: boolean): Promise<number> => {
    await clock.advance(1000)
    let total = 0n
    for (let k = 0; k < n; k++) {
      if (spaced) await clock.advance(250)
      const rec = service(ip, Math.floor(rnd() * RECORDS), port++)
      const t0 = process.hrtime.bigint()
      catalog.upsertLocal(rec)
      total += process.hrtime.bigint() - t0
    }
    return Number(total) / 1000 / n
  }

  const rows: Record<string, number[]> = { burstBridge: [], burstAlone: [], spacedBridge: [], spacedAlone: [] }
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate, so a change in the machine's load falls on both.
    bridge.start()
    rows.burstBridge!.push(await measure(RECORDS, false))
    rows.spacedBridge!.push(await measure(SPACED, true))
    bridge.stop()
    rows.burstAlone!.push(await measure(RECORDS, false))
    rows.spacedAlone!.push(await measure(SPACED, true))
  }
  await gossip.stop()
  const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)])) as Record<string, number>
  const f = (x: number) => x.toFixed(1)
  process.stdout.write(
    `${srcRoot === repo ? 'this tree' : srcRoot}: ${RECORDS} local records, median of ${ROUNDS} rounds, µs per change\n` +
      `| changes | with the bridge (notices) | catalog alone | bridge's share |\n|---|---|---|---|\n` +
      `| burst of ${RECORDS} at one instant | ${f(m.burstBridge!)} | ${f(m.burstAlone!)} | ${f(m.burstBridge! - m.burstAlone!)} |\n` +
      `| ${SPACED} spaced (one episode each) | ${f(m.spacedBridge!)} | ${f(m.spacedAlone!)} | ${f(m.spacedBridge! - m.spacedAlone!)} |\n`,
  )
}

await main()
