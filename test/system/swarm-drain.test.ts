// Issue 14: Swarm tasks take the path of `docker stop`. When a service is scaled down or
// rolled by `docker service update --force` (stop-first and start-first), Swarm stops the old
// task's container with its stop signal and waits up to the stop grace period: the task is
// draining (reason `stopping`) on the other host before Docker reports it dead. (Calls through
// the roll need issue 13's host-mode published ports: the host cannot reach overlay
// addresses, so this checks what host-b routes, not calls.)
import t from 'tap'
import { dockerAgents, dockerEvents, StatusLog } from './docker-agents.js'
import { IMAGE, initSwarm, startDockerd, waitFor, type Dockerd } from './dockerd.js'

/** Running task containers of `service`: full ids. */
async function tasks(d: Dockerd, service: string): Promise<string[]> {
  const out = await d.cli(['ps', '-q', '--no-trunc', '--filter', `label=com.docker.swarm.service.name=${service}`])
  return out.split('\n').filter(Boolean)
}

t.test('a Swarm task scaled away or rolled drains on the other host before it dies', async (t) => {
  const d = await startDockerd(t, { swarm: true })
  if (!d) return
  await initSwarm(t, d)
  await d.cli(['network', 'create', '--driver', 'overlay', '--attachable', 'apps'])
  const events = await dockerEvents(t, d.docker)
  const { b } = await dockerAgents(t, d, { extraA: ['--docker-network', 'apps'] })
  const log = new StatusLog(t, b)

  // httpd keeps serving 2 s after SIGTERM, then exits.
  await d.cli([
    'service',
    'create',
    '--detach',
    '--name',
    'web',
    '--network',
    'apps',
    '--replicas',
    '2',
    '--stop-grace-period',
    '10s',
    '--container-label',
    'ServiceName=web',
    '--container-label',
    'ServicePort_80=10080',
    IMAGE,
    'sh',
    '-c',
    "httpd -f -p 80 -h /www & trap 'sleep 2; kill $!; exit 0' TERM; wait",
  ])
  const servedTasks = async (n: number) => {
    await waitFor(async () => (await tasks(d, 'web')).length === n, 60_000, `${n} web tasks running`)
    const ids = await tasks(d, 'web')
    await waitFor(() => ids.every((id) => log.serving(id.slice(0, 12))), 30_000, 'host-b to serve every task')
    return ids
  }

  /** Every task in `before` but not running now drained on host-b before Docker reported it dead. */
  const drainedBeforeDeath = async (what: string, before: string[], n: number) => {
    const after = await servedTasks(n)
    const gone = before.filter((id) => !after.includes(id))
    t.ok(gone.length > 0, `${what}: ${gone.length} task(s) replaced or removed`)
    for (const full of gone) {
      const id = full.slice(0, 12)
      await waitFor(() => events.at(full, 'die') !== undefined, 30_000, `Docker to report task ${id} dead`)
      const draining = log.first(id, (s) => s.status === 'draining')
      const died = events.at(full, 'die')!
      t.ok(draining && draining.at < died, `${what}: task ${id} drained on host-b ${died - (draining?.at ?? Infinity)} ms before it died`)
      t.equal(draining?.reason, 'stopping', `${what}: the reason says stopping`)
    }
  }

  let running = await servedTasks(2)
  await d.cli(['service', 'scale', '--detach=false', 'web=1'])
  await drainedBeforeDeath('service scale web=1', running, 1)

  for (const order of ['stop-first', 'start-first']) {
    running = await tasks(d, 'web')
    await d.cli(['service', 'update', '--detach=false', '--force', '--update-order', order, 'web'])
    await drainedBeforeDeath(`service update --force --update-order ${order}`, running, 1)
  }
})
