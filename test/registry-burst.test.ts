// A burst of changes at one instant on the registry (real Gossip, Catalog, GossipBridge per
// host, simulator, lan timing): with version notices (registry protocol 3) it converges within
// 2 s of virtual time and sends fewer bytes per host than every record as its own broadcast
// (what a cluster with a member of protocol 2 still does, measured in the same test); a mixed
// cluster converges too, and a single change on a quiet cluster still reaches everyone at once.
// Virtual time: the figures do not depend on the machine's load.
import t from 'tap'
import { compareVersions } from '../src/registry/hlc.js'
import type { ServiceRecord } from '../src/registry/types.js'
import { registrySim, seeded, service, type RegistrySim } from './lib/registry-sim.js'

const HOSTS = 50
const PER_HOST = 20
const CHANGES = 250

/** Bytes (datagrams and streams) sent by all hosts so far. */
function bytesSent(sim: RegistrySim): number {
  const s = sim.net.stats()
  return s.bytesSent + s.streamBytesSent
}

/** The burst of bench/registry-sim.ts: updates of port or status, removals, new instances, on random hosts. */
function burst(sim: RegistrySim, seed: number): void {
  const rnd = seeded(seed)
  for (let k = 0; k < CHANGES; k++) {
    const n = sim.nodes[Math.floor(rnd() * sim.nodes.length)]!
    const i = Math.floor(rnd() * (PER_HOST + 5))
    const r = rnd()
    if (r < 0.6) n.catalog.upsertLocal(service(n.ip, i, 9000 + Math.floor(rnd() * 100), rnd() < 0.5 ? 'alive' : 'unhealthy'))
    else if (r < 0.85) n.catalog.removeLocal(`s${i}`)
    else n.catalog.upsertLocal(service(n.ip, PER_HOST + 5 + k))
  }
}

/** Whether every host holds `rec`'s version of it, or a later one. */
function heldEverywhere(sim: RegistrySim, rec: ServiceRecord): boolean {
  return sim.nodes.every((n) => {
    const v = n.catalog.versionOf(rec.host, rec.id)
    return v !== undefined && compareVersions(v, rec.version) >= 0
  })
}

async function measure(protocol: (i: number) => number | undefined): Promise<{ ms: number; bytesPerHost: number; sim: RegistrySim }> {
  const sim = await registrySim(HOSTS, PER_HOST, { seed: 3, profile: 'lan', protocol })
  if (!(await sim.clock.runUntil(() => sim.converged(), 120_000, 100))) throw new Error('the initial state did not converge')
  // Let the start's broadcasts finish, so the burst is measured alone.
  await sim.clock.advance(10_000)
  const b0 = bytesSent(sim)
  const t0 = sim.clock.now()
  burst(sim, 5)
  if (!(await sim.clock.runUntil(() => sim.converged(), 120_000, 50))) throw new Error('the burst did not converge')
  return { ms: sim.clock.now() - t0, bytesPerHost: (bytesSent(sim) - b0) / HOSTS, sim }
}

t.test(`a burst of ${CHANGES} changes on ${HOSTS} hosts x ${PER_HOST} services, lan`, async (t) => {
  const records = await measure(() => 2)
  await records.sim.stop()
  const notices = await measure(() => 3)
  t.teardown(() => notices.sim.stop())
  t.comment(
    `every record broadcast (protocol 2): ${records.ms} ms, ${Math.round(records.bytesPerHost / 1024)} KiB per host; ` +
      `version notices (protocol 3): ${notices.ms} ms, ${Math.round(notices.bytesPerHost / 1024)} KiB per host`,
  )
  t.ok(notices.ms <= 2000, `with notices the burst converges within 2 s of virtual time (${notices.ms} ms)`)
  t.ok(notices.bytesPerHost < records.bytesPerHost, 'and sends fewer bytes per host than a broadcast per record')
  t.equal(
    notices.sim.nodes.reduce((s, n) => s + n.bridge.stats.broadcastsSent, 0),
    0,
    'and no record goes as its own broadcast',
  )

  // A single change on the quiet cluster reaches every host as fast as a record broadcast did (a notice carries it inline).
  const { sim } = notices
  await sim.clock.advance(10_000)
  const owner = sim.nodes[7]!
  owner.catalog.upsertLocal(service(owner.ip, 3, 7777))
  const rec = owner.catalog.get(owner.name, 's3')!
  const at = sim.clock.now()
  t.ok(await sim.clock.runUntil(() => heldEverywhere(sim, rec), 10_000, 10), 'a single change reaches every host')
  t.ok(sim.clock.now() - at <= 350, `within 350 ms of virtual time (${sim.clock.now() - at} ms)`)
})

t.test('a cluster with members of protocol 2: every record goes as its own broadcast, and a burst converges', async (t) => {
  const sim = await registrySim(20, PER_HOST, { seed: 9, profile: 'lan', protocol: (i) => (i % 4 === 0 ? 2 : 3) })
  t.teardown(() => sim.stop())
  t.ok(await sim.clock.runUntil(() => sim.converged(), 120_000, 100), 'the initial state converges')
  burst(sim, 8)
  t.ok(await sim.clock.runUntil(() => sim.converged(), 120_000, 50), 'the burst converges')
  t.equal(
    sim.nodes.reduce((s, n) => s + n.bridge.stats.noticesSent, 0),
    0,
    'no notice while a member that is up speaks protocol 2',
  )
})

t.test('changes one after another, 300 ms apart on one owner: each notice carries its record, (almost) nobody pulls', async (t) => {
  const sim = await registrySim(20, PER_HOST, { seed: 12, profile: 'lan' })
  t.teardown(() => sim.stop())
  t.ok(await sim.clock.runUntil(() => sim.converged(), 120_000, 100), 'the initial state converges')
  await sim.clock.advance(10_000)
  const pulls = () => sim.nodes.reduce((s, n) => s + n.bridge.stats.sincePulls, 0)
  const before = pulls()
  const owner = sim.nodes[4]!
  const worst: number[] = []
  for (let k = 0; k < 10; k++) {
    owner.catalog.upsertLocal(service(owner.ip, k % PER_HOST, 7000 + k))
    const rec = owner.catalog.get(owner.name, `s${k % PER_HOST}`)!
    const at = sim.clock.now()
    t.ok(await sim.clock.runUntil(() => heldEverywhere(sim, rec), 10_000, 10), `change ${k} reaches every host`)
    worst.push(sim.clock.now() - at)
    await sim.clock.advance(Math.max(0, 300 - (sim.clock.now() - at)))
  }
  // A peer the random push missed for one notice pulls once; without records inline every peer pulls for every change (190).
  const pulled = pulls() - before
  t.ok(pulled <= 10, `the notices carried their records: ${pulled} pulls for 10 changes x 19 peers`)
  t.ok(Math.max(...worst) <= 350, `each within 350 ms of virtual time (${worst.join(', ')} ms)`)
})
