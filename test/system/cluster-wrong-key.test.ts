// Scenario 7: a host with the wrong gossip key (or none) cannot join the cluster or change
// anything in it.
import t from 'tap'
import { instanceKeys, keyOf, newKey, sleep, startCluster, svc, systemUnavailable, waitForInstances, LOCAL_PROFILE } from './netns.js'

const why = systemUnavailable()

t.test('wrong key or no key: cannot join, cannot change anything', { skip: why ?? false }, async (t) => {
  const key = newKey()
  const services = (i: number) => [svc('web', i, 10001, 8080)]
  // Five hosts on one bridge; agents 0..3 share the key, host 4 comes later with a bad one.
  const lab = await startCluster(t, 5, (i) => ({ key, services: services(i) }), 4)
  const good = [0, 1, 2, 3]
  const keys = good.flatMap((i) => services(i).map((s) => keyOf(lab, i, s)))
  await waitForInstances(lab, good, keys, 15_000, 'the keyed cluster converges')
  // Members and states, without incarnations: on a loaded machine a good host can miss probes
  // and refute the suspicion with a higher incarnation of its own (SWIM at work, not the intruder).
  // `incarnationsForged` checks what the intruder could change instead: an incarnation a good
  // host holds above the one its owner announced.
  const view = async (): Promise<string[][]> =>
    Promise.all(good.map(async (i) => (await lab.agent(i).members()).map((m) => `${m.name}:${m.status}`).sort()))
  const incarnationsForged = async (): Promise<string[]> => {
    const views = await Promise.all(good.map(async (i) => ({ i, members: await lab.agent(i).members() })))
    const own = new Map(views.map(({ i, members }) => [lab.host(i).ns, members.find((m) => m.name === lab.host(i).ns)?.incarnation ?? 0]))
    return views.flatMap(({ i, members }) =>
      members
        .filter((m) => own.has(m.name) && m.incarnation > own.get(m.name)!)
        .map((m) => `${lab.host(i).ns} holds ${m.name} at ${m.incarnation}, its owner at ${own.get(m.name)}`),
    )
  }
  const before = await view()

  const intruder = 4
  const name = lab.host(intruder).ns
  // Same node name as a member would be the worst case, but a fresh name shows "cannot join";
  // its service reuses web's ServicePort and an id of its own.
  const bad = [{ id: 'web-evil', name: 'web', ports: [{ port: 6666, servicePort: 10001 }] }]
  for (const [label, opts] of [
    ['wrong key', { key: newKey() }],
    ['no key', {}],
  ] as const) {
    const a = lab.startAgent(intruder, { join: [0, 1, 2, 3], services: bad, ...opts })
    // Several push-pull periods and join retries.
    await sleep(2 * LOCAL_PROFILE.pushPullMs + 2000)
    for (const i of good) {
      const ms = await lab.agent(i).members()
      t.notOk(
        ms.some((m) => m.name === name),
        `${label}: ${lab.host(i).ns} does not list the intruder`,
      )
      t.same(instanceKeys(await lab.agent(i).services()), [...keys].sort(), `${label}: ${lab.host(i).ns} services unchanged`)
    }
    t.same(await view(), before, `${label}: members and states unchanged on every good host`)
    t.same(await incarnationsForged(), [], `${label}: no good host holds an incarnation above its owner's`)
    if (a.running) {
      try {
        const own = await a.members()
        t.notOk(
          own.some((m) => good.some((i) => m.name === lab.host(i).ns && m.status === 'alive')),
          `${label}: the intruder sees no good host alive`,
        )
      } catch (err) {
        t.comment(`${label}: intruder API not answering: ${(err as Error).message}`)
      }
      await a.kill9()
    } else {
      t.pass(`${label}: the intruder exited by itself (exit ${a.exitCode})`)
    }
  }
})
