// Issue 13 on a two-node swarm: two private dockerds, each in a network namespace of its own
// (NetnsLab hosts on one bridge: two "machines"), one swarm, an overlay across them (VXLAN
// between the namespaces), and a real agent per node (dist/, Docker discovery of its own
// engine, --docker-network for the overlay). A labelled service with one task per node,
// published in host mode without a fixed port: node 0's agent sends an Envoy-kind client both
// tasks' host bindings (its own node's and the other node's IP), each answering HTTP from node
// 0's network namespace, and a client declaring the overlay both overlay IPs, each answering
// from a container on the overlay on node 0 (the other task's through the VXLAN tunnel).
// Every address is connected to only after `ip route get` from where the connection starts
// shows no gateway (test/lib/route.ts): overlay IPs never from outside a container on it.
import t from 'tap'
import { AdsWatch } from '../lib/ads-watch.js'
import { runCommand } from '../lib/cli.js'
import { assertLocalRoute, fetchLocal } from '../lib/route.js'
import { clusterName } from '../../src/xds/resources.js'
import { IMAGE, startDockerd, unavailable, waitFor, type Dockerd } from './dockerd.js'
import { HTTP_PORT, NetnsLab, XDS_PORT, systemUnavailable } from './netns.js'

const NETWORK = 'shoal-apps'
const WEB = clusterName('web', 10080)

const run = (cmd: string, args: string[]) => runCommand(cmd, args, { timeoutMs: 15_000 })

/** The running web task of engine `d`: container id, hostname, overlay IP, host-mode published port. */
async function webTask(d: Dockerd): Promise<{ id: string; hostname: string; ip: string; hostPort: number } | undefined> {
  const id = (await d.cli(['ps', '-q', '--no-trunc', '--filter', 'label=com.docker.swarm.service.name=web'])).split('\n')[0]
  if (!id) return undefined
  const info = await d.docker.getContainer(id).inspect()
  const b = (info.NetworkSettings.Ports?.['8080/tcp'] ?? [])[0]
  const ip = info.NetworkSettings.Networks[NETWORK]?.IPAddress
  if (!b || !ip) return undefined
  return { id, hostname: info.Config.Hostname, ip, hostPort: Number(b.HostPort) }
}

const why = unavailable() ?? systemUnavailable()
t.test(
  'two swarm nodes in two network namespaces: each client the addresses it can reach, across nodes',
  { skip: why ?? false },
  async (t) => {
    const lab = NetnsLab.create({ hosts: 2 })
    t.teardown(async () => {
      if (!t.passing())
        for (const a of lab.agents.values())
          t.comment(`--- log tail of ${a.name} (${a.host.ip}, exit ${a.exitCode ?? a.exitSignal ?? 'running'}):\n${a.logTail(40)}`)
      await lab.destroy()
    })
    const engines: Dockerd[] = []
    for (const i of [0, 1]) {
      const d = await startDockerd(t, { swarm: true, netns: lab.host(i).ns })
      if (!d) return
      t.teardown(() => d.cli(['swarm', 'leave', '--force']).catch(() => undefined))
      engines.push(d)
    }
    const [d0, d1] = engines as [Dockerd, Dockerd]
    const [h0, h1] = [lab.host(0), lab.host(1)]

    await d0.cli(['swarm', 'init', '--advertise-addr', h0.ip])
    const token = await d0.cli(['swarm', 'join-token', '-q', 'worker'])
    await d1.cli(['swarm', 'join', '--token', token, `${h0.ip}:2377`])
    const nodes = (await d0.cli(['node', 'ls', '--format', '{{.Status}}'])).split('\n')
    t.same(nodes, ['Ready', 'Ready'], 'two swarm nodes, each in its own network namespace')
    await d0.cli(['network', 'create', '--driver', 'overlay', '--attachable', NETWORK])

    // One task per node (global), published in host mode without a fixed port.
    await d0.cli([
      'service',
      'create',
      '--detach',
      '--name',
      'web',
      '--mode',
      'global',
      '--network',
      NETWORK,
      '--publish',
      'mode=host,target=8080',
      '--stop-grace-period',
      '1s',
      '--container-label',
      'ServiceName=web',
      '--container-label',
      'ServicePort_8080=10080',
      '--container-label',
      'HealthCheck=HttpGet',
      '--container-label',
      'HealthCheckArgs=http://{{ host }}:{{ tcp 8080 }}/',
      IMAGE,
      'sh',
      '-c',
      // busybox httpd answers with a file: the task's hostname (the image has no `hostname`
      // applet), so each answer names its task.
      'cat /etc/hostname > /www/index.html && exec httpd -f -p 8080 -h /www',
    ])
    let tasks: Array<NonNullable<Awaited<ReturnType<typeof webTask>>>> = []
    await waitFor(
      async () => {
        const found = await Promise.all([webTask(d0), webTask(d1)])
        tasks = found.filter((x) => x !== undefined)
        return tasks.length === 2
      },
      120_000,
      'a web task running on each node',
    )
    t.pass(`web tasks: ${tasks.map((x) => `${x.hostname} (overlay ${x.ip}, host port ${x.hostPort})`).join(', ')}`)

    // An agent per node, on that node's network (the namespace), reading its own engine.
    for (const [i, d] of engines.entries()) {
      // Gossip on 7947: dockerd holds 7946 on a swarm node (as compose/swarm-stack.yml says).
      const gossip = `${lab.host(i).ip}:7947`
      lab.startAgent(i, {
        extraArgs: [
          ...['--bind', gossip, '--advertise', gossip, ...(i === 0 ? [] : ['--join', `${h0.ip}:7947`])],
          ...['--discovery', 'docker,static', '--docker-host', d.host, '--docker-network', NETWORK, '--dns', 'off'],
        ],
      })
    }
    const agent0 = lab.agents.get(0)!
    // A ceiling, not an expectation: node processes starting on a loaded 2-core machine took 30 s and more.
    await waitFor(() => agent0.ready(2000), 120_000, "node 0's agent ready")
    // Node 0's network namespace, where its Envoy would run: connections start there.
    const node0 = { netnsPid: agent0.pid! }

    // The test process reaches node 0's agent over the lab bridge (on-link, no gateway).
    assertLocalRoute(h0.ip)
    const envoy = new AdsWatch(`${h0.ip}:${XDS_PORT}`, 50)
    const overlay = new AdsWatch(`${h0.ip}:${XDS_PORT}`, { retryMs: 50, network: NETWORK })
    t.teardown(() => {
      envoy.close()
      overlay.close()
    })
    // Each task's host binding is its own node's IP (the agent's --advertise there) and the port Swarm picked.
    const [t0, t1] = [(await webTask(d0))!, (await webTask(d1))!]
    const want = {
      host: [`${h0.ip}:${t0.hostPort}`, `${h1.ip}:${t1.hostPort}`].sort(),
      overlay: [t0, t1].map((x) => `${x.ip}:8080`).sort(),
    }
    await waitFor(
      () => (envoy.view.get(WEB) ?? []).join() === want.host.join() && (overlay.view.get(WEB) ?? []).join() === want.overlay.join(),
      90_000,
      `node 0's clients holding both nodes' tasks (want ${want.host.join(', ')} and ${want.overlay.join(', ')})`,
    ).catch((err: Error) => {
      t.comment(`envoy holds ${envoy.view.get(WEB)?.join(', ')}; overlay holds ${overlay.view.get(WEB)?.join(', ')}`)
      throw err
    })
    t.pass(`the Envoy on node 0 holds ${want.host.join(', ')}: each task's host binding at its own node's IP`)
    t.pass(`the overlay client on node 0 holds ${want.overlay.join(', ')}`)

    const names = tasks.map((x) => x.hostname).sort()
    const fromHost: string[] = []
    for (const ep of want.host) {
      assertLocalRoute(ep.split(':')[0]!, node0)
      fromHost.push(await run('ip', ['netns', 'exec', h0.ns, 'busybox', 'wget', '-q', '-O', '-', `http://${ep}/`]))
    }
    t.same(fromHost.sort(), names, "every host binding answers HTTP from node 0's network namespace, the other node's too")

    const prober = await d0.cli(['run', '-d', '--network', NETWORK, IMAGE, 'sleep', '3600'])
    const proberPid = (await d0.docker.getContainer(prober).inspect()).State.Pid
    const fromOverlay: string[] = []
    for (const ep of want.overlay) {
      assertLocalRoute(ep.split(':')[0]!, { netnsPid: proberPid })
      let body = ''
      // The overlay's VXLAN tunnel may take a moment to learn the other node's task.
      await waitFor(
        async () =>
          (body = await run('docker', ['-H', d0.host, 'exec', prober, 'wget', '-q', '-O', '-', `http://${ep}/`]).catch(() => '')) !== '',
        30_000,
        `http://${ep}/ from a container on the overlay on node 0`,
      )
      fromOverlay.push(body)
    }
    t.same(
      fromOverlay.sort(),
      names,
      "every overlay address answers from a container on the overlay on node 0, the other node's through VXLAN",
    )

    // Every push either client received held only addresses reachable from where it runs.
    const sent = (w: AdsWatch) => [...new Set(w.answers.flatMap((a) => a.endpoints?.[WEB] ?? []))]
    t.same(
      sent(envoy).filter((ep) => ![h0.ip, h1.ip].includes(ep.split(':')[0]!)),
      [],
      'the Envoy was only ever sent host bindings on the nodes',
    )
    t.same(
      sent(overlay).filter((ep) => !want.overlay.includes(ep)),
      [],
      "the overlay client was only ever sent the tasks' overlay addresses",
    )
    // The agents' HttpGet checks reach each task's host binding: both alive everywhere.
    const status = async (i: number) =>
      (
        (await (await fetchLocal(`http://${lab.host(i).ip}:${HTTP_PORT}/api/services.json`)).json()) as {
          services: Array<{ name: string; instances: Array<{ status: string }> }>
        }
      ).services
        .find((s) => s.name === 'web')
        ?.instances.map((x) => x.status) ?? []
    await waitFor(
      async () => (await status(0)).join() === 'alive,alive' && (await status(1)).join() === 'alive,alive',
      60_000,
      'web alive on both agents',
    )
    t.pass("both agents hold both tasks alive (their HttpGet checks on their own node's host binding)")
  },
)
