// Scenario 6: one agent paused in pulses (SIGSTOP 300 ms, SIGCONT 700 ms), the way an
// overloaded host stalls: no member is declared dead by anyone (what Lifeguard is for).
// Duration: SHOAL_SOAK_SECONDS, default 120 s (the 2 minutes).
// Profile: SHOAL_SOAK_PROFILE, default `lan` (the production timing whose detection speed
// the Serf bench measures: zero false positives must hold for the profile that is used).
import t from 'tap'
import { MemberWatch, soakProfile, soakMs, systemUnavailable, sleep, waitForInstances, webCluster } from './netns.js'

const why = systemUnavailable()
const N = 5

t.test(
  `SIGSTOP 300 ms / SIGCONT 700 ms pulses for ${soakMs() / 1000} s: nobody declared dead`,
  { skip: why ?? false, timeout: soakMs() * 3 + 120_000 },
  async (t) => {
    const { lab, all, keys } = await webCluster(t, N, soakProfile())

    const p = 4
    let paused = false
    const watch = new MemberWatch(lab, () => (paused ? [p] : []))
    watch.start()
    t.teardown(() => watch.stop())
    const a = lab.agent(p)
    // A fixed number of pulses, not a fixed time: on a busy machine the loop runs longer,
    // never fewer pulses.
    const planned = Math.round(soakMs() / 1000)
    let pulses = 0
    try {
      while (pulses < planned) {
        paused = true
        a.pause()
        await sleep(300)
        a.resume()
        paused = false
        pulses++
        await sleep(700)
      }
    } finally {
      if (a.running) a.resume()
    }
    await sleep(2000)
    await watch.stop()
    t.equal(pulses, planned, `${pulses} pulses`)
    t.same(watch.sightings, [], 'no member was declared dead or left by anyone')
    await waitForInstances(lab, all, keys, 10_000, 'every service everywhere at the end')
    t.pass('every agent lists every service at the end')
  },
)
