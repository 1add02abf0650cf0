// Issue 14, acceptance 1 and 2: a rolling restart under load drops no call. Three replicas of
// a gRPC echo server in containers on a private dockerd, two agents (lan profile), a
// grpc-js-xds client on the other agent calling at about 200 calls/s; every replica replaced
// five times (`docker stop` the old, `docker run` a new one). Replicas that keep serving 5 s
// after SIGTERM, and replicas that stop accepting connections at once and exit when their
// calls in flight are done: no call fails either way, and every new replica answers calls
// soon after its first passing check. (Before drain-on-stop, the lingering replica was
// served until it exited and the calls in flight then failed: bench/docker-roll.ts measures
// both side by side, and the time from a first passing check to the first call against its
// 1 s target.) The linger is 5 s, a common preStop sleep: in one CI run (3 test processes at
// once on 2 cores) the grpc-js-xds client's calls waited 2.3 s for a pick (it makes new
// subchannels for every endpoint on each EDS update, and queues calls until one connects) and
// then went to one replica's address and had no answer for 10 s, once in some 20 rolls; a late
// client's routing that outlives a short linger is the likely cause (a failure's story now gives
// each replica's address, which Docker hands on to the next one, and host-b's statuses).
import t from 'tap'
import { xdsClientMissing } from '../lib/xds-clients.js'
import { startDockerd } from './dockerd.js'
import { assertRoll, rollingRestart, type OnTerm } from './roll.js'

const cases: Array<[OnTerm, string]> = [
  ['linger', 'replicas that keep serving 5 s after SIGTERM (roll.ts lingerMs)'],
  ['refuse', 'replicas that refuse new connections at SIGTERM and exit when their calls are done'],
]

for (const [onTerm, what] of cases) {
  t.test(`a rolling restart of ${what}: no call fails`, { skip: xdsClientMissing('grpc-js') ?? false }, async (t) => {
    const d = await startDockerd(t)
    if (!d) return
    const r = await rollingRestart(t, d, { onTerm, rounds: 5, lingerMs: onTerm === 'linger' ? 5000 : 2000 })
    assertRoll(t, r, { stopped: 15, unit: 'replica' })
  })
}
