// Issue 14, acceptance 3: a Swarm roll under load drops no call. On a one-node swarm (private
// dockerd), a service of 3 tasks of the gRPC echo server on an attachable overlay, published in
// host mode without a fixed port; two agents (lan profile), host-a discovering the tasks, and a
// grpc-js-xds client on the *other* agent, running in a container on the overlay (it reaches
// host-b on docker_gwbridge and declares the overlay: it calls the tasks by their overlay IPs),
// at about 200 calls/s through `docker service update --force` stop-first and start-first
// (twice each) and `docker service scale` to 1 and back to 3. Tasks keep serving 2 s after
// SIGTERM (roll.ts lingerMs); no call fails (Swarm stops a task like `docker stop`: it drains at the signal).
import t from 'tap'
import { xdsClientMissing } from '../lib/xds-clients.js'
import { startDockerd } from './dockerd.js'
import { assertRoll, swarmRoll } from './roll.js'

t.test(
  'a Swarm roll (update --force stop-first and start-first, scale 1 and 3) under load: no call fails',
  { skip: xdsClientMissing('grpc-js') ?? false },
  async (t) => {
    const d = await startDockerd(t, { swarm: true })
    if (!d) return
    const r = await swarmRoll(t, d, { onTerm: 'linger', lingerMs: 2000 })
    t.comment(`from a container on ${r.subnet} (xDS at ${r.xdsAddress}); steps: ${r.steps.map((s) => `${s.step} ${s.ms} ms`).join('; ')}`)
    if (r.taskErrors.length) t.comment(`tasks Swarm reported failed or rejected (never served):\n${r.taskErrors.join('\n')}`)
    // 4 updates of 3 tasks, and 2 tasks scaled away.
    assertRoll(t, r, { stopped: 14, unit: 'task' })
  },
)
