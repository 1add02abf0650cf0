// Scenario 2: kill -9 one agent: its services leave every other catalog (and every xDS view)
// within the failure-detection bound; restarted, it comes back with its services.
import t from 'tap'
import {
  XDS_PORT,
  XdsWatch,
  failureDetectionBoundMs,
  keyOf,
  startCluster,
  svc,
  systemUnavailable,
  waitFor,
  waitForInstances,
} from './netns.js'

const why = systemUnavailable()
const N = 5

t.test('kill -9: services withdrawn within the detection bound; restart: back', { skip: why ?? false }, async (t) => {
  const services = (i: number) => [svc('api', i, 10002, 8080 + i)]
  const lab = await startCluster(t, N, (i) => ({ services: services(i) }))
  const all = lab.hosts.map((h) => h.index)
  const everyone = all.flatMap((i) => services(i).map((s) => keyOf(lab, i, s)))
  await waitForInstances(lab, all, everyone, 15_000, 'initial services everywhere')

  const victim = 3
  const survivors = all.filter((i) => i !== victim)
  const without = everyone.filter((k) => !k.endsWith('@' + lab.host(victim).ns))
  const bound = failureDetectionBoundMs(N)
  // Standing xDS subscriptions on every survivor, opened before the crash: the withdrawal
  // must arrive as a push, not only in a fresh client's first answer.
  const victimEndpoint = `${lab.host(victim).ip}:${8080 + victim}`
  const watches = await Promise.all(survivors.map((i) => XdsWatch.open(`${lab.host(i).ip}:${XDS_PORT}`)))
  t.teardown(() => {
    for (const w of watches) w.close()
  })
  for (const w of watches) t.ok(w.endpoints().includes(victimEndpoint), 'each xDS subscriber starts with the victim endpoint')
  const killedAt = Date.now()
  await lab.agent(victim).kill9()
  const ms = await waitForInstances(lab, survivors, without, bound, `victim's services gone from every survivor within ${bound} ms`)
  t.ok(ms <= bound, `services of the killed host left every catalog in ${ms} ms (bound ${bound} ms)`)
  for (const i of survivors) {
    const dead = (await lab.agent(i).members()).find((m) => m.name === lab.host(victim).ns)
    t.ok(dead && (dead.status === 'dead' || dead.status === 'suspect'), `${lab.host(i).ns} sees the victim ${dead?.status}`)
  }
  await waitFor(
    'victim endpoint pushed out of every xDS subscription',
    bound,
    async () => {
      for (const w of watches) if (w.error || w.endpoints().includes(victimEndpoint)) return false
      return true
    },
    50,
  )
  const xdsMs = Date.now() - killedAt
  t.ok(xdsMs <= bound + 500, `every standing xDS subscriber lost the dead endpoint ${xdsMs} ms after kill -9 (bound ${bound} ms)`)
  t.ok(
    watches.every((w) => w.endpoints().length === N - 1),
    'and kept the other four',
  )

  lab.agent(victim).restart()
  const back = await waitForInstances(lab, all, everyone, 20_000, 'restarted host and its services back everywhere')
  t.pass(`restarted agent and its services back everywhere in ${back} ms`)
  await waitFor('every member alive again', 10_000, async () => {
    for (const i of all) if (!(await lab.agent(i).members()).every((m) => m.status === 'alive')) return false
    return true
  })
  t.pass('every agent lists every member alive')
})
