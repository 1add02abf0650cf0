// Scenario 3: partition 2 | 3 (iptables DROP between the groups): each side drops the
// other side's services; heal: full convergence within 10 s.
import t from 'tap'
import { keyOf, startCluster, svc, systemUnavailable, waitForInstances } from './netns.js'

const why = systemUnavailable()
const N = 5
const PARTITION_MS = Number(process.env.SHOAL_PARTITION_SECONDS ?? 30) * 1000

t.test('partition 2|3 for 30 s, then heal', { skip: why ?? false }, async (t) => {
  const services = (i: number) => [svc('web', i, 10001, 8080)]
  const lab = await startCluster(t, N, (i) => ({ services: services(i) }))
  const all = lab.hosts.map((h) => h.index)
  const keys = (hosts: number[]) => hosts.flatMap((i) => services(i).map((s) => keyOf(lab, i, s)))
  await waitForInstances(lab, all, keys(all), 15_000, 'initial convergence')

  const A = [0, 1]
  const B = [2, 3, 4]
  const started = Date.now()
  lab.partition(A, B)
  const msA = await waitForInstances(lab, A, keys(A), PARTITION_MS, 'side A drops side B')
  const msB = await waitForInstances(lab, B, keys(B), PARTITION_MS, 'side B drops side A')
  t.pass(`each side dropped the other's services (A in ${msA} ms, B in ${msB} ms)`)
  const left = PARTITION_MS - (Date.now() - started)
  if (left > 0) await new Promise((r) => setTimeout(r, left))
  // Still split at the end of the partition: nothing crept back through.
  await waitForInstances(lab, A, keys(A), 1000, 'side A still without B at the end')
  await waitForInstances(lab, B, keys(B), 1000, 'side B still without A at the end')
  t.ok(lab.partitionDrops(0) > 0 && lab.partitionDrops(2) > 0, 'the partition dropped real gossip packets')

  lab.heal()
  const healed = await waitForInstances(lab, all, keys(all), 10_000, 'full convergence within 10 s of heal')
  t.ok(healed <= 10_000, `full convergence ${healed} ms after heal`)
  // Members, waited for and not read once: the services converge while a member the other side
  // had suspected may still be `suspect` (its records stay live) until its refutation spreads.
  const everyoneAlive = async (i: number) => {
    const ms = await lab.agent(i).members()
    return ms.length === N && ms.every((m) => m.status === 'alive')
  }
  const converged = Date.now()
  for (const i of all) {
    while (!(await everyoneAlive(i)) && Date.now() - converged < 60_000) await new Promise((r) => setTimeout(r, 200))
    t.ok(await everyoneAlive(i), `${lab.host(i).ns} lists every member alive (${Date.now() - converged} ms after the services converged)`)
  }
})
