// Scenario 5: one agent SIGSTOPped for 5 s, then SIGCONT: it refutes (its incarnation goes
// up, or it comes back alive), and every host converges again with every service.
import t from 'tap'
import { systemUnavailable, sleep, waitFor, waitForInstances, webCluster } from './netns.js'

const why = systemUnavailable()
const N = 5

t.test('SIGSTOP 5 s then SIGCONT: refute and converge', { skip: why ?? false }, async (t) => {
  const { lab, all, keys } = await webCluster(t, N)

  const p = 2
  const name = lab.host(p).ns
  const before = (await lab.agent(0).members()).find((m) => m.name === name)!.incarnation
  lab.agent(p).pause()
  await sleep(5000)
  const during = await Promise.all(
    all.filter((i) => i !== p).map(async (i) => (await lab.agent(i).members()).find((m) => m.name === name)?.status),
  )
  t.ok(
    during.every((s) => s === 'suspect' || s === 'dead'),
    `others suspect or declared the paused agent dead after 5 s: ${during.join(',')}`,
  )
  lab.agent(p).resume()

  const { ms } = await waitFor(
    'every agent lists every member alive again',
    15_000,
    async () => {
      for (const i of all) if (!(await lab.agent(i).members()).every((m) => m.status === 'alive')) return false
      return true
    },
    100,
  )
  t.pass(`everyone alive again ${ms} ms after SIGCONT`)
  const after = await Promise.all(all.map(async (i) => (await lab.agent(i).members()).find((m) => m.name === name)!.incarnation))
  t.ok(
    after.every((inc) => inc > before),
    `the resumed agent refuted with a higher incarnation (${before} -> ${after.join(',')})`,
  )
  await waitForInstances(lab, all, keys, 10_000, 'every service everywhere again')
  t.pass('every agent lists every service again')
  t.ok(lab.agent(p).running, 'the paused agent kept running')
})
