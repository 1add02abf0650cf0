// Full registry nodes (real Gossip, Catalog, GossipBridge) on the simulator: 50 hosts x 20
// services converge; a burst of changes converges; a crashed host's services vanish
// everywhere after failure detection; it comes back with a new boot and re-announces.
import t from 'tap'
import { liveRecords } from '../src/registry/types.js'
import { registrySim, seeded, service } from './lib/registry-sim.js'

const HOSTS = 50
const PER_HOST = 20

t.test(`${HOSTS} hosts x ${PER_HOST} services on the simulator`, async (t) => {
  const sim = await registrySim(HOSTS, PER_HOST, { seed: 7 })
  t.teardown(() => sim.stop())
  const { clock, nodes } = sim
  const rnd = seeded(11)

  t.ok(await clock.runUntil(() => sim.converged(), 60_000, 100), 'initial state converges')
  t.equal(liveRecords(nodes[17]!.catalog.snapshot()).length, HOSTS * PER_HOST)

  // A burst: 300 changes at once across random hosts (updates, removals, new instances).
  const start = clock.now()
  for (let k = 0; k < 300; k++) {
    const n = nodes[Math.floor(rnd() * nodes.length)]!
    const i = Math.floor(rnd() * (PER_HOST + 5))
    const r = rnd()
    if (r < 0.6) n.catalog.upsertLocal(service(n.ip, i, 9000 + Math.floor(rnd() * 100), rnd() < 0.5 ? 'alive' : 'unhealthy'))
    else n.catalog.removeLocal(`s${i}`)
  }
  t.ok(await clock.runUntil(() => sim.converged(), 60_000, 50), 'the burst converges everywhere')
  t.comment(`burst of 300 changes converged in ${clock.now() - start} ms of virtual time`)
  const fp = (i: number) =>
    JSON.stringify(liveRecords(nodes[i]!.catalog.snapshot()).map((r) => [r.host, r.id, r.version, r.status, r.ports]))
  t.equal(fp(3), fp(42), 'two replicas hold identical live catalogs')

  // Crash one host: its services disappear everywhere once it is declared dead.
  const victim = nodes[9]!
  sim.net.crash(victim.ip)
  const gone = () => nodes.every((n) => n === victim || liveRecords(n.catalog.snapshot()).every((r) => r.host !== victim.name))
  t.ok(await clock.runUntil(gone, 60_000, 100), "a crashed host's services vanish from every live view")
  t.comment(`crashed host hidden everywhere after ${clock.now()} ms total virtual time`)
})
