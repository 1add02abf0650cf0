// Issue 14, acceptance 1 and 2: a rolling restart under load drops no call. Three replicas of
// a gRPC echo server in containers on a private dockerd, two agents (lan profile), a
// grpc-js-xds client on the other agent calling at about 200 calls/s; every replica replaced
// five times (`docker stop` the old, `docker run` a new one). Replicas that keep serving 2 s
// after SIGTERM, and replicas that stop accepting connections at once and exit when their
// calls in flight are done: no call fails either way, and every new replica answers calls
// soon after its first passing check. (Before drain-on-stop, the lingering replica was
// served until it exited and the calls in flight then failed: bench/docker-roll.ts measures
// both side by side, and the time from a first passing check to the first call against its
// 1 s target.)
import t from 'tap'
import { xdsClientMissing } from '../lib/xds-clients.js'
import { startDockerd } from './dockerd.js'
import { assertRoll, rollingRestart, type OnTerm } from './roll.js'

const cases: Array<[OnTerm, string]> = [
  ['linger', 'replicas that keep serving 2 s after SIGTERM (roll.ts lingerMs)'],
  ['refuse', 'replicas that refuse new connections at SIGTERM and exit when their calls are done'],
]

for (const [onTerm, what] of cases) {
  t.test(`a rolling restart of ${what}: no call fails`, { skip: xdsClientMissing('grpc-js') ?? false }, async (t) => {
    const d = await startDockerd(t)
    if (!d) return
    const r = await rollingRestart(t, d, { onTerm, rounds: 5, lingerMs: 2000 })
    assertRoll(t, r, { stopped: 15, unit: 'replica' })
  })
}
