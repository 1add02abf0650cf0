// Scenario 1: five hosts converge: every agent lists the same members (all alive), the same
// services, and serves the same xDS endpoints.
import t from 'tap'
import { XDS_PORT, instanceKeys, keyOf, startCluster, svc, systemUnavailable, waitFor, waitForInstances, xdsView } from './netns.js'

const why = systemUnavailable()
const N = 5

t.test('5 hosts converge on members, services and the xDS view', { skip: why ?? false }, async (t) => {
  // `web` runs on every host (one ServicePort, five instances); each host also has its own service.
  const services = (i: number) => [svc('web', i, 10001, 8080), svc(`solo${i}`, i, 10010 + i, 9000 + i)]
  const lab = await startCluster(t, N, (i) => ({ services: services(i) }))
  const expected = lab.hosts.flatMap((h) => services(h.index).map((s) => keyOf(lab, h.index, s)))
  const all = lab.hosts.map((h) => h.index)
  const ms = await waitForInstances(lab, all, expected, 15_000, 'every agent lists all 10 instances')
  t.pass(`services converged ${ms} ms after membership did`)

  const members = await Promise.all(all.map(async (i) => (await lab.agent(i).members()).map((m) => `${m.name}:${m.status}`).sort()))
  for (const i of all) t.same(members[i], members[0], `${lab.host(i).ns} agrees on members`)
  t.equal(members[0]!.length, N)

  const lists = await Promise.all(all.map(async (i) => instanceKeys(await lab.agent(i).services())))
  for (const i of all) t.same(lists[i], expected.sort(), `${lab.host(i).ns} lists every instance`)

  // xDS: each host's ADS server gives a fresh client the same clusters and endpoints,
  // with web's five instances at each host's address.
  const { value: views } = await waitFor(
    'xDS views agree',
    15_000,
    async () => {
      const v = await Promise.all(all.map((i) => xdsView(`${lab.host(i).ip}:${XDS_PORT}`)))
      const first = JSON.stringify(v[0])
      if (!v.every((x) => JSON.stringify(x) === first)) throw new Error('views differ: ' + v.map((x) => JSON.stringify(x)).join(' | '))
      const eps = Object.values(v[0]!).flat()
      if (!lab.hosts.every((h) => eps.some((e) => e.startsWith(h.ip + ':')))) throw new Error('some host missing from endpoints: ' + first)
      return v
    },
    300,
  )
  const webCluster = Object.entries(views[0]!).find(([, eps]) => eps.filter((e) => e.endsWith(':8080')).length === N)
  t.ok(webCluster, `a cluster holds web's ${N} endpoints (${JSON.stringify(views[0])})`)
})
