// Issue 14, acceptance 3: a Swarm roll under load drops no call. On a one-node swarm (private
// dockerd), a service of 3 tasks of the gRPC echo server on an attachable overlay, published in
// host mode without a fixed port; two agents (lan profile), host-a discovering the tasks, and a
// grpc-js-xds client on the *other* agent, running in a container on the overlay (it reaches
// host-b on docker_gwbridge and declares the overlay: it calls the tasks by their overlay IPs),
// at about 200 calls/s through `docker service update --force` stop-first and start-first
// (twice each) and `docker service scale` to 1 and back to 3. Tasks keep serving 1 s after
// SIGTERM; no call fails (Swarm stops a task like `docker stop`: it drains at the signal).
import t from 'tap'
import { pct } from '../../bench/stats.js'
import { xdsClientMissing } from '../lib/xds-clients.js'
import { startDockerd } from './dockerd.js'
import { swarmRoll } from './roll.js'

t.test(
  'a Swarm roll (update --force stop-first and start-first, scale 1 and 3) under load: no call fails',
  { skip: xdsClientMissing('grpc-js') ?? false },
  async (t) => {
    const d = await startDockerd(t, { swarm: true })
    if (!d) return
    const r = await swarmRoll(t, d, { onTerm: 'linger' })
    t.comment(
      `${r.calls} calls in ${r.durationMs} ms from a container on ${r.subnet} (xDS at ${r.xdsAddress}); ` +
        `steps: ${r.steps.map((s) => `${s.step} ${s.ms} ms`).join('; ')}; ` +
        `SIGTERM to out of host-b's routing p50 ${pct(r.sigtermToOut, 50)} ms, p99 ${pct(r.sigtermToOut, 99)} ms; ` +
        `first passing check to first call p50 ${pct(r.checkToFirstCall, 50)} ms`,
    )
    if (r.taskErrors.length) t.comment(`tasks Swarm reported failed or rejected (never served):\n${r.taskErrors.join('\n')}`)
    t.ok(r.calls >= 1000, `calls were made under the roll (${r.calls})`)
    t.equal(r.failed, 0, `no call failed (${JSON.stringify(r.failures)})`)
    if (r.failed) {
      // The story of a failure: each failed call and each task's start and kill, in ms from the first start.
      const t0 = Math.min(...r.replicas.map((x) => x.ran))
      t.comment(r.replicas.map((x) => `task ${x.id} ran +${x.ran - t0} kill ${x.kill ? `+${x.kill - t0}` : '-'}`).join('\n'))
      t.comment(r.failedCalls.map((c) => `call +${c.at - t0}..+${c.end - t0}: ${c.ok ? '' : `${c.code} ${c.error}`}`).join('\n'))
    }
    // 4 updates of 3 tasks, and 2 tasks scaled away.
    t.equal(r.sigtermToOut.length, 14, 'every task Swarm stopped left host-b routing, from its kill event')
    t.same(r.neverCalled, [], 'every new task answered calls')
    t.ok(
      Math.max(...r.checkToFirstCall) <= 5000,
      `each soon after its first passing check (p50 ${pct(r.checkToFirstCall, 50)} ms, all: ${r.checkToFirstCall.join(', ')} ms)`,
    )
  },
)
