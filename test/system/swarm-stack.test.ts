// Shoal on a real (one-node) Docker Swarm: the agent image built by scripts/build-image.sh,
// compose/swarm-stack.yml deployed unchanged with `docker stack deploy` (settings from the
// deploying shell's environment, as the README says), and the agent task restarted by
// `docker service update --force`. Issue 13: the stack's `web` (3 replicas published in host
// mode without a fixed port) is served to an Envoy-kind client on the host network by its host
// bindings, each answering HTTP from the host's network namespace, and to a client declaring
// the overlay (connected through docker_gwbridge, SHOAL_XDS_INTERFACES) by its overlay IPs,
// each answering from a container on the overlay; through scaling and `update --force`, every
// push checked. A service without published ports is served to the overlay client only, and
// /debug/xds says why the Envoy gets none. Overlay addresses are only ever connected to from
// inside a container on the overlay (test/lib/route.ts checks the route first).
//
// The cluster's second host is a real Agent in this process ("outside-b", static file, on
// loopback): the swarm agent joins it through a TCP relay of its gossip port, which lets the
// restart test hold the seed's answer for a moment and watch the warm start happen.
// Envoy cannot be pulled here: its service is deployed with the stack and its tasks are
// rejected ("No such image"); the test checks that, and the bootstrap config it would read.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { BlockList, connect, createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { interfaceIpv4 } from '../../src/address.js'
import { Agent } from '../../src/agent/agent.js'
import { parseAgentConfig } from '../../src/agent/config.js'
import { silentLogger } from '../../src/log.js'
import { liveRecords, type CatalogEvent, type ServiceRecord } from '../../src/registry/types.js'
import { clusterName } from '../../src/xds/resources.js'
import { AdsClient, ENVOY_NODE, TypeUrl, type DecodedResponse } from '../lib/xds-fixture.js'
import { AdsWatch } from '../lib/ads-watch.js'
import { runCommand } from '../lib/cli.js'
import { assertLocalRoute, fetchLocal, routeTo } from '../lib/route.js'
import { IMAGE, freePort, httpd, initSwarm, startDockerd, waitFor, type Dockerd } from './dockerd.js'
import { loopbackAgentFlags } from '../lib/agent-process.js'

const top = fileURLToPath(new URL('../../', import.meta.url))
const STACK = 'shoal'
const NETWORK = 'shoal-apps'

/** Run a command with extra environment; resolves stdout, rejects with stderr. */
const run = (cmd: string, args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<string> =>
  runCommand(cmd, args, { cwd: top, env: { ...process.env, ...env }, timeoutMs })

/** A TCP relay to 127.0.0.1:target that can hold new connections (their bytes wait) until released. */
function tcpRelay(target: number) {
  let held = false
  const waiting: Array<() => void> = []
  const sockets = new Set<Socket>()
  let connections = 0
  const server = createServer((c) => {
    connections++
    sockets.add(c)
    c.on('close', () => sockets.delete(c))
    c.on('error', () => c.destroy())
    const go = () => {
      const u = connect(target, '127.0.0.1')
      sockets.add(u)
      u.on('close', () => sockets.delete(u))
      u.on('error', () => c.destroy())
      c.on('close', () => u.destroy())
      u.on('close', () => c.destroy())
      c.pipe(u)
      u.pipe(c)
    }
    if (held) waiting.push(go)
    else go()
  })
  return {
    listen: () =>
      new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))),
    hold: () => {
      held = true
    },
    release: () => {
      held = false
      for (const go of waiting.splice(0)) go()
    },
    waiting: () => waiting.length,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

interface ServicesJson {
  node: string
  services: Array<{ name: string; servicePorts: number[]; instances: ServiceRecord[] }>
  members: Array<{ name: string; state: string }>
}

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) })
  return { status: res.status, body: (await res.json()) as T }
}

interface Task {
  id: string
  /** Its IP on the overlay NETWORK. */
  ip: string
  /** Its container port 8080's host binding (host-mode published port), if any. */
  hostIp?: string
  hostPort?: number
  /** The container's hostname (what the stack's web answers). */
  hostname: string
}

/** Containers of a swarm service's tasks that should be running (not those being shut down). */
async function tasks(d: Dockerd, service: string): Promise<Task[]> {
  const taskIds = (await d.cli(['service', 'ps', service, '-q', '--no-trunc', '--filter', 'desired-state=running']))
    .split('\n')
    .filter(Boolean)
  const ids: string[] = []
  for (const task of taskIds)
    ids.push(...(await d.cli(['ps', '-q', '--no-trunc', '--filter', `label=com.docker.swarm.task.id=${task}`])).split('\n').filter(Boolean))
  const out: Task[] = []
  for (const id of ids) {
    const info = await d.docker
      .getContainer(id)
      .inspect()
      .catch(() => undefined)
    if (!info) continue // removed while we looked
    const b = (info.NetworkSettings.Ports?.['8080/tcp'] ?? [])[0]
    out.push({
      id,
      ip: info.NetworkSettings.Networks[NETWORK]?.IPAddress ?? '',
      hostname: info.Config.Hostname,
      ...(b ? { hostIp: b.HostIp, hostPort: Number(b.HostPort) } : {}),
    })
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : 1))
}

/** The agent's advertise IP: the stack's SHOAL_BIND is 127.0.0.1:PORT. */
const AGENT_IP = '127.0.0.1'
/** A published port's address as the agent advertises it: a wildcard binding is at the advertise IP. */
const advertised = (hostIp: string | undefined) => (!hostIp || hostIp === '0.0.0.0' || hostIp === '::' ? AGENT_IP : hostIp)

/**
 * A busybox container attached to overlay `network`, to reach overlay addresses from where
 * its clients run (the host has no route to them). `get` fetches a URL with its wget, after
 * assertLocalRoute from its network namespace. Removed at teardown.
 */
async function overlayProbe(d: Dockerd, network: string): Promise<{ pid: number; get(url: string): Promise<string> }> {
  const id = await d.cli(['run', '-d', '--network', network, IMAGE, 'sleep', '3600'])
  const pid = (await d.docker.getContainer(id).inspect()).State.Pid
  return {
    pid,
    get: async (url: string) => {
      assertLocalRoute(new URL(url).hostname, { netnsPid: pid })
      // (This busybox's wget crashes on -T; the run() timeout bounds it instead.)
      return run('docker', ['-H', d.host, 'exec', id, 'wget', '-q', '-O', '-', url], {}, 10_000)
    },
  }
}

t.test('Shoal on a one-node Docker Swarm', async (t) => {
  const d = await startDockerd(t, { swarm: true })
  if (!d) return
  const swarm = await initSwarm(t, d)
  const dir = mkdtempSync('/tmp/shoal-swarm-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const dockerEnv = { DOCKER_HOST: d.host }

  // The other host: a real agent outside the swarm, with one static service.
  const staticFile = join(dir, 'static.json')
  writeFileSync(
    staticFile,
    JSON.stringify({ services: [{ id: 'outside-1', name: 'outside', ports: [{ port: 9999, servicePort: 10999, ip: '127.0.0.1' }] }] }),
  )
  const b = new Agent(
    parseAgentConfig(
      [
        // The swarm agent on the host network holds the default DNS port.
        ...loopbackAgentFlags('outside-b', { dns: true, profile: 'lan' }),
        '--cluster',
        'swarm',
        '--static',
        staticFile,
        '--discovery',
        'static',
      ],
      {},
    ),
    { logger: silentLogger() },
  )
  t.teardown(() => b.stop({ leave: false }))
  await b.start()
  const relay = tcpRelay(b.bound.gossip)
  t.teardown(() => relay.close())
  const seedPort = await relay.listen()

  // The swarm agent's ports on this machine's loopback (host network).
  const [gossipPort, httpPort, xdsPort] = [await freePort(), await freePort(), await freePort()]
  const agentUrl = `http://127.0.0.1:${httpPort}`
  const stackEnv = {
    ...dockerEnv,
    SHOAL_SEEDS: `127.0.0.1:${seedPort}`,
    SHOAL_BIND: `127.0.0.1:${gossipPort}`,
    SHOAL_HTTP: `127.0.0.1:${httpPort}`,
    SHOAL_XDS: `127.0.0.1:${xdsPort}`,
    SHOAL_XDS_INTERFACES: swarm.gwBridge,
    // Agents sharing a machine take no fixed DNS port.
    SHOAL_DNS: 'off',
    DOCKER_SOCKET: join(d.dir, 'docker.sock'),
  }
  const logs = async () => {
    // Both streams: an agent that fails before its logger starts writes to stderr.
    const l = await run('sh', ['-c', `docker service logs --raw ${STACK}_agent 2>&1`], dockerEnv, 10_000).catch((e: Error) => e.message)
    t.comment('agent logs (tail):\n' + l.split('\n').slice(-30).join('\n'))
    // An agent that never started logs nothing: the task's state and error say why.
    const ps = await run(
      'docker',
      ['service', 'ps', '--no-trunc', '--format', '{{.CurrentState}} {{.Error}}', `${STACK}_agent`],
      dockerEnv,
      10_000,
    ).catch((e: Error) => e.message)
    t.comment('agent tasks (state, error):\n' + ps)
  }
  t.teardown(async () => {
    if (!t.passing()) await logs()
  })

  let t0 = Date.now()
  t.equal(
    await run('bash', ['scripts/build-image.sh', 'shoal:latest'], dockerEnv, 180_000),
    'shoal:latest',
    'scripts/build-image.sh builds shoal:latest',
  )
  t.comment(`image built and imported in ${Date.now() - t0} ms`)
  const cfg = JSON.parse(await d.cli(['image', 'inspect', 'shoal:latest', '--format', '{{json .Config}}'])) as {
    Entrypoint: string[]
    Cmd: string[]
    WorkingDir: string
  }
  t.same(
    [cfg.Entrypoint, cfg.Cmd, cfg.WorkingDir],
    [['/usr/local/bin/node', '/app/dist/cli.js'], ['agent'], '/app'],
    'entry point as in the Dockerfile',
  )

  await d.cli(['network', 'create', '--driver', 'overlay', '--attachable', NETWORK])

  await t.test('1. the stack deploys: one agent task per node, its HTTP endpoint answers', async (t) => {
    t0 = Date.now()
    await run('docker', ['stack', 'deploy', '--resolve-image', 'never', '-c', 'compose/swarm-stack.yml', STACK], stackEnv)
    const took = await waitFor(
      () =>
        getJson(`${agentUrl}/healthz`).then(
          (r) => r.status === 200,
          () => false,
        ),
      60_000,
      'the agent HTTP endpoint',
    )
    t.comment(`docker stack deploy returned -> agent /healthz answers: ${took} ms (${Date.now() - t0} ms from the deploy command)`)
    const health = await getJson<{ node: string; cluster: string }>(`${agentUrl}/healthz`)
    t.same(
      health.body,
      { status: 'ok', node: swarm.hostname, cluster: 'swarm' },
      'node name is the swarm node hostname ({{.Node.Hostname}})',
    )

    const mode = await d.cli(['service', 'inspect', `${STACK}_agent`, '--format', '{{if .Spec.Mode.Global}}global{{end}}'])
    t.equal(mode, 'global', 'agent service is global')
    const nodes = (await d.cli(['node', 'ls', '--format', '{{.ID}}'])).split('\n').filter(Boolean)
    const running = (
      await d.cli(['service', 'ps', `${STACK}_agent`, '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}'])
    )
      .split('\n')
      .filter(Boolean)
    t.equal(nodes.length, 1, 'one swarm node')
    t.equal(running.length, nodes.length, `one agent task per node: ${running.join('; ')}`)
    t.match(running[0], /Running/)
    const [task] = await tasks(d, `${STACK}_agent`)
    const info = await d.docker.getContainer(task!.id).inspect()
    t.equal(info.HostConfig.NetworkMode, 'host', 'agent task on the host network')
    t.ok(
      info.Mounts.some((m) => m.Destination === '/var/run/docker.sock' && m.RW === false),
      'docker socket mounted read-only',
    )

    await waitFor(
      () =>
        getJson(`${agentUrl}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        ),
      15_000,
      'the agent ready',
    )
    await waitFor(
      () => b.members().some((m) => m.name === swarm.hostname && m.state === 'alive'),
      10_000,
      "the swarm agent in the outside agent's members",
    )
    const members = await getJson<{ members: Array<{ name: string; state: string }> }>(`${agentUrl}/api/members.json`)
    t.same(
      members.body.members.map((m) => [m.name, m.state]).sort(),
      [
        ['outside-b', 'alive'],
        [swarm.hostname, 'alive'],
      ].sort(),
      'agents joined through SHOAL_SEEDS',
    )

    // Envoy: its service exists, its tasks cannot start here (no image), its config is the committed bootstrap.
    await waitFor(
      async () => /No such image/.test(await d.cli(['service', 'ps', `${STACK}_envoy`, '--no-trunc', '--format', '{{.Error}}'])),
      30_000,
      'envoy task rejected',
    )
    t.pass('envoy tasks rejected: "No such image" (Envoy cannot be pulled on this machine)')
    const data = await d.cli(['config', 'inspect', `${STACK}_envoy-bootstrap`, '--format', '{{json .Spec.Data}}'])
    t.equal(
      Buffer.from(JSON.parse(data) as string, 'base64').toString(),
      readFileSync(join(top, 'compose/envoy-bootstrap.json'), 'utf8'),
      'envoy config = compose/envoy-bootstrap.json',
    )
  })

  await t.test(
    "2. the stack's web (3 replicas, host mode, no fixed port): each client the addresses it can reach, at every push",
    async (t) => {
      const WEB = clusterName('web', 10080)
      const fromAgent = async () =>
        (await getJson<ServicesJson>(`${agentUrl}/api/services.json`)).body.services.find((s) => s.name === 'web')?.instances ?? []
      const gw = interfaceIpv4(swarm.gwBridge)
      t.ok(gw, `the engine's docker_gwbridge (${swarm.gwBridge}) has an IPv4 address (${gw})`)
      // An Envoy on the host network (no network declared), and a client declaring the overlay,
      // which reaches the agent on docker_gwbridge's address (SHOAL_XDS_INTERFACES) as a client
      // in a container on the overlay does.
      assertLocalRoute(gw!)
      const envoy = new AdsWatch(`127.0.0.1:${xdsPort}`, 50)
      const overlay = new AdsWatch(`${gw}:${xdsPort}`, { retryMs: 50, network: NETWORK })
      t.teardown(() => {
        envoy.close()
        overlay.close()
      })
      const subnet = JSON.parse(await d.cli(['network', 'inspect', NETWORK, '--format', '{{json .IPAM.Config}}'])) as Array<{
        Subnet: string
      }>
      const [net, bits] = subnet[0]!.Subnet.split('/') as [string, string]
      const overlaySubnet = new BlockList()
      overlaySubnet.addSubnet(net, Number(bits))
      const inOverlay = (ip: string) => overlaySubnet.check(ip)
      const prober = await overlayProbe(d, NETWORK)

      // Every IP a web task's port 8080 was published on, as the agent advertises it.
      const hostBindingIps = new Set<string>()
      /** What each client should hold now: the running tasks' host bindings, and their overlay IPs at 8080. */
      const expected = async () => {
        const ts = await tasks(d, `${STACK}_web`)
        for (const c of ts) if (c.hostIp !== undefined) hostBindingIps.add(advertised(c.hostIp))
        return {
          ts,
          host: ts.map((c) => `${advertised(c.hostIp)}:${c.hostPort}`).sort(),
          overlay: ts.map((c) => `${c.ip}:8080`).sort(),
        }
      }
      /** Both clients hold exactly the running tasks' addresses, `n` of them, and the agent's checks passed. */
      const follow = async (n: number, what: string) => {
        let want = await expected()
        await waitFor(
          async () => {
            want = await expected()
            const alive = (await fromAgent()).filter((r) => r.status === 'alive').length
            return (
              want.ts.length === n &&
              alive === n &&
              (envoy.view.get(WEB) ?? []).join() === want.host.join() &&
              (overlay.view.get(WEB) ?? []).join() === want.overlay.join()
            )
          },
          90_000,
          `${what}: ${n} web tasks alive, both clients holding their addresses`,
        ).catch((err: Error) => {
          t.comment(
            `envoy holds ${envoy.view.get(WEB)?.join(', ')}; overlay holds ${overlay.view.get(WEB)?.join(', ')}; tasks ${JSON.stringify(want.ts)}`,
          )
          throw err
        })
        t.pass(`${what}: the Envoy holds ${want.host.join(', ')}; the overlay client ${want.overlay.join(', ')}`)
        // Reachable from where each client runs, and answering HTTP from the task it names.
        const names = new Set(want.ts.map((c) => c.hostname))
        const fromHost = new Set<string>()
        for (const ep of want.host) fromHost.add((await (await fetchLocal(`http://${ep}/`)).text()).trim())
        t.same(
          [...fromHost].sort(),
          [...names].sort(),
          "every host binding answers HTTP from the host's network namespace, each a different task",
        )
        const fromOverlay = new Set<string>()
        for (const ep of want.overlay) fromOverlay.add((await prober.get(`http://${ep}/`)).trim())
        t.same(
          [...fromOverlay].sort(),
          [...names].sort(),
          'every overlay address answers HTTP from a container on the overlay, each a different task',
        )
        return want
      }

      t0 = Date.now()
      const first = await follow(3, 'deployed')
      t.comment(`stack deploy -> 3 web tasks served to both clients: ${Date.now() - t0} ms after this test began`)
      const records = await fromAgent()
      t.same(
        records.map((r) => r.ports).sort(),
        first.ts.map((c) => [{ type: 'tcp', port: c.hostPort, servicePort: 10080, ip: advertised(c.hostIp), containerPort: 8080 }]).sort(),
        "each record: the host binding Swarm picked, at the agent's advertise IP (ServicePort 10080, container port 8080)",
      )
      t.same(records.map((r) => r.networks?.[NETWORK]).sort(), first.ts.map((c) => c.ip).sort(), 'and its IP on the overlay')
      t.ok(
        records.every((r) => r.status === 'alive'),
        "the agent's HttpGet checks (on the host bindings) pass",
      )
      const metrics = await (await fetch(`${agentUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
      t.notMatch(
        metrics,
        /shoal_docker_skipped_labels_total\{reason="unreachable-check"\} [1-9]/,
        'no check the agent cannot reach (unreachable-check)',
      )

      t0 = Date.now()
      await d.cli(['service', 'scale', '--detach', `${STACK}_web=1`])
      await follow(1, 'scaled to 1')
      await d.cli(['service', 'scale', '--detach', `${STACK}_web=3`])
      await follow(3, 'scaled back to 3')
      const before = (await tasks(d, `${STACK}_web`)).map((c) => c.id)
      await d.cli(['service', 'update', '--force', '--detach', `${STACK}_web`])
      await waitFor(async () => (await tasks(d, `${STACK}_web`)).every((c) => !before.includes(c.id)), 120_000, 'every web task replaced')
      await follow(3, 'after `service update --force`')
      t.comment(`scale 3 -> 1 -> 3 and update --force followed by both clients in ${Date.now() - t0} ms`)

      // Every push either client received: only addresses reachable from where it runs.
      const pushes = (w: AdsWatch) => w.answers.filter((a) => a.type === 'eds' && a.endpoints?.[WEB] !== undefined)
      const sent = (w: AdsWatch) => [...new Set(pushes(w).flatMap((a) => a.endpoints![WEB]!))]
      const [hostIps, overlayEps] = [sent(envoy), sent(overlay)]
      t.ok(
        pushes(envoy).length >= 4 && pushes(overlay).length >= 4,
        `${pushes(envoy).length} and ${pushes(overlay).length} EDS pushes for web`,
      )
      t.same(
        hostIps.filter((ep) => !(hostBindingIps.has(ep.split(':')[0]!) && routeTo(ep.split(':')[0]!).local)),
        [],
        `every endpoint the Envoy was ever sent is a host binding (on ${[...hostBindingIps].join(', ')}), reached from the host without a gateway (${hostIps.length} addresses)`,
      )
      t.same(
        overlayEps.filter((ep) => {
          const [ip, port] = ep.split(':') as [string, string]
          return !(inOverlay(ip) && port === '8080' && routeTo(ip, { netnsPid: prober.pid }).local)
        }),
        [],
        `every endpoint the overlay client was ever sent is on ${subnet[0]!.Subnet} at the container port, on-link from a container on the overlay (${overlayEps.length} addresses)`,
      )
    },
  )

  await t.test(
    '2b. a service without published ports: none for the Envoy (and /debug/xds says why), overlay IPs for the overlay client',
    async (t) => {
      const PLAIN = clusterName('plain', 10082)
      const envoy = new AdsWatch(`127.0.0.1:${xdsPort}`, 50)
      const overlay = new AdsWatch(`127.0.0.1:${xdsPort}`, { retryMs: 50, network: NETWORK })
      t.teardown(() => {
        envoy.close()
        overlay.close()
      })
      const prober = await overlayProbe(d, NETWORK)
      // busybox httpd as PID 1 ignores SIGTERM: a short grace keeps removal fast. The agent
      // cannot reach overlay IPs: the engine's HEALTHCHECK (HealthCheck=Docker) checks it.
      await d.cli([
        'service',
        'create',
        '--detach',
        '--name',
        'plain',
        '--network',
        NETWORK,
        '--replicas',
        '2',
        '--stop-grace-period',
        '1s',
        '--health-cmd',
        'wget -q -O /dev/null http://127.0.0.1:8080/',
        '--health-interval',
        '1s',
        '--health-retries',
        '1',
        '--container-label',
        'ServiceName=plain',
        '--container-label',
        'ServicePort_8080=10082',
        '--container-label',
        'HealthCheck=Docker',
        IMAGE,
        ...httpd(8080),
      ])
      let want: string[] = []
      await waitFor(
        async () => {
          want = (await tasks(d, 'plain')).map((c) => `${c.ip}:8080`).sort()
          return want.length === 2 && (overlay.view.get(PLAIN) ?? []).join() === want.join()
        },
        90_000,
        'the overlay client holding both plain tasks',
      )
      t.pass(`the overlay client holds ${want.join(', ')}`)
      for (const ep of want) t.equal((await prober.get(`http://${ep}/`)).trim(), 'ok', `${ep} answers from a container on the overlay`)
      await waitFor(
        () => overlay.view.has(clusterName('web', 10080)) && envoy.view.has(clusterName('web', 10080)),
        60_000,
        'both clients served',
      )
      t.same(envoy.view.get(PLAIN) ?? [], [], 'the Envoy holds no endpoint of plain')
      t.same(
        envoy.answers.flatMap((a) => a.endpoints?.[PLAIN] ?? []),
        [],
        'and was never sent one',
      )
      const dbg = await getJson<{
        clients: {
          clients: Array<{
            nodeId: string
            dropped: Array<{ service: string; reason: string; network: string | null; networks?: string[] }>
          }>
        }
      }>(`${agentUrl}/debug/xds`)
      const mine = dbg.body.clients.clients.find((c) => c.nodeId === envoy.nodeId)
      t.same(
        (mine?.dropped ?? []).filter((x) => x.service === 'plain').map((x) => [x.reason, x.network, x.networks]),
        [
          ['no_reachable_address', null, [NETWORK]],
          ['no_reachable_address', null, [NETWORK]],
        ],
        `/debug/xds names both plain instances for the Envoy: no address reachable from a host's network, on ${NETWORK} only`,
      )
      t.same(dbg.body.clients.clients.find((c) => c.nodeId === overlay.nodeId)?.dropped, [], 'and nothing for the overlay client')
      await d.cli(['service', 'rm', 'plain'])
      await waitFor(() => (overlay.view.get(PLAIN) ?? []).length === 0, 30_000, 'plain withdrawn from the overlay client')
    },
  )

  await t.test('3. the agent task restarted by `docker service update --force`: warm start', async (t) => {
    await d.cli([
      'service',
      'create',
      '--detach',
      '--name',
      'keep',
      '--network',
      NETWORK,
      '--replicas',
      '2',
      '--container-label',
      'ServiceName=keep',
      '--container-label',
      'ServicePort_8080=10081',
      IMAGE,
      ...httpd(8080),
    ])
    const keepOnB = () => liveRecords(b.view().snapshot()).filter((r) => r.name === 'keep')
    await waitFor(() => keepOnB().length === 2, 60_000, 'keep on the outside agent')
    const keepIps = (await tasks(d, 'keep')).map((c) => c.ip).sort()
    const [oldTask] = await tasks(d, `${STACK}_agent`)

    // What the other host sees of the swarm node's services while its agent restarts.
    const removedOnB: Array<{ id: string; at: number }> = []
    const addedOnB: Array<{ id: string; at: number }> = []
    const unsubscribe = b.view().subscribe((ev: CatalogEvent) => {
      if (ev.type === 'service-removed' && ev.record.name === 'keep') removedOnB.push({ id: ev.record.id, at: Date.now() })
      if (ev.type === 'service-added' && ev.record.name === 'keep') addedOnB.push({ id: ev.record.id, at: Date.now() })
    })
    t.teardown(unsubscribe)
    // The swarm node's membership state on the other host, sampled every 50 ms: tells a record
    // hidden by the handover from one hidden because the node was declared dead (the agent was
    // down longer than the suspicion timeout, which a loaded machine's slow task restart can make).
    const memberTrail: Array<{ at: number; state: string }> = []
    const sampleMember = () => {
      const state = b.members().find((m) => m.name === swarm.hostname)?.state ?? 'absent'
      if (memberTrail.at(-1)?.state !== state) memberTrail.push({ at: Date.now(), state })
    }
    sampleMember()
    const sampler = setInterval(sampleMember, 50)
    t.teardown(() => clearInterval(sampler))

    // Hold the seed's answer: the new agent process cannot push-pull until released. (The
    // other agent declares the old process dead about 5 s after it stops answering probes,
    // so the hold stays short.)
    relay.hold()
    const trail: Array<{ at: number; state: string }> = []
    const note = (state: string) => {
      if (trail.at(-1)?.state !== state) trail.push({ at: Date.now(), state })
    }
    const probe = async () => {
      try {
        const r = await fetch(`${agentUrl}/readyz`, { signal: AbortSignal.timeout(500) })
        await r.arrayBuffer()
        note(String(r.status))
        return r.status
      } catch {
        note('down')
        return 0
      }
    }
    t.equal(await probe(), 200, 'ready before the restart')
    const restartAt = Date.now()
    await d.cli(['service', 'update', '--force', '--detach', `${STACK}_agent`])
    // The old process goes away, the new one answers 503 while it waits for its first push-pull.
    await waitFor(
      async () => (await probe()) === 503 && trail.some((s) => s.state === 'down'),
      60_000,
      'the new agent process to answer /readyz 503',
    )
    const upAt = Date.now()
    // The new process joins only after its sources' first views (the Docker engine's first
    // list), which on a busy machine comes after its HTTP endpoint answers: wait for it.
    await waitFor(() => relay.waiting() >= 1, 60_000, 'the new agent to join through the held seed')
    t.pass('its join is waiting at the held seed')

    // A client (as Envoy on the overlay: keep publishes no port) connects now: nothing may be
    // served before ready, not even an empty view.
    const ads = new AdsClient(xdsPort)
    t.teardown(() => ads.close())
    ads.send({ type_url: TypeUrl.cluster, node: { ...ENVOY_NODE, metadata: { fields: { 'shoal.network': { stringValue: NETWORK } } } } })
    // It becomes ready through the held seed (released below) or, when the outside agent's probe
    // reaches it first, by joining back through that peer (README "Join back"): either way it
    // answers only once ready, and its first answer already holds the whole cluster.
    let cds: DecodedResponse | undefined
    try {
      cds = await ads.next(1000, TypeUrl.cluster)
    } catch {
      // quiet for 1 s: not ready yet
    }
    // Ready may come first (joined back through the outside agent) with the answer still on its
    // way: the first client loads grpc-js and the xDS types, which beside stress-ng took over 1 s.
    const readyNow = await probe()
    if (cds === undefined)
      t.ok(
        readyNow === 503 || readyNow === 200,
        `no CDS response within 1 s; /readyz ${readyNow} (503: not ready; 200: ready through the outside agent, its answer on the way)`,
      )
    else t.equal(readyNow, 200, 'a CDS response came only once ready (joined back through the outside agent)')

    const releasedAt = Date.now()
    relay.release()
    cds ??= await ads.next(60_000, TypeUrl.cluster)
    const firstAt = Date.now()
    await waitFor(async () => (await probe()) === 200, 60_000, '/readyz 200')
    t.ok(
      cds.names.includes(clusterName('outside', 10999)),
      `the first CDS response already holds the other host's service (${cds.names.join(', ')})`,
    )
    t.ok(cds.names.includes(clusterName('keep', 10081)), 'and the local swarm service')
    ads.ack(cds)
    ads.send({ type_url: TypeUrl.endpoint, resource_names: [clusterName('keep', 10081)] })
    const eds = await ads.next(5000, TypeUrl.endpoint)
    const edsIps = (eds.resources[0]!.endpoints as any[])
      .flatMap((l) =>
        l.lb_endpoints.map((e: any) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value}`),
      )
      .sort()
    t.same(
      edsIps,
      keepIps.map((ip) => `${ip}:8080`),
      'EDS for keep, to a client declaring the overlay: the overlay IPs of its tasks',
    )
    const states = trail.map((s) => s.state)
    t.same(
      states.filter((s, i) => i === 0 || s !== states[i - 1]),
      ['200', 'down', '503', '200'],
      `/readyz went 200 -> down -> 503 -> 200`,
    )

    const [newTask] = await tasks(d, `${STACK}_agent`)
    t.not(newTask!.id, oldTask!.id, 'a new agent task container')
    t.equal((await tasks(d, `${STACK}_agent`)).length, 1, 'still one agent task')
    const after = (await getJson<ServicesJson>(`${agentUrl}/api/services.json`)).body
    t.same(
      after.services.map((s) => [s.name, s.instances.length]).sort(),
      [
        ['keep', 2],
        ['outside', 1],
        ['web', 3],
      ],
      'the restarted agent lists keep x2, outside and web x3',
    )
    await waitFor(() => keepOnB().length === 2, 10_000, 'keep back on the outside agent')

    clearInterval(sampler)
    const down = trail.find((s) => s.state === 'down')!.at
    // How long each keep instance was missing on the other host, counted from its removal or,
    // when the other host had declared the node dead by then, from the node's return to alive:
    // a host silent past the suspicion timeout is rightly out of the pick set, and what is
    // checked is that its services come back soon after the new boot is seen, by the pull the
    // new boot starts, not at a periodic push-pull (lan: 30 s): within 1 s on an idle machine,
    // 2.1 s beside stress-ng, so the bound is 10 s.
    const stateAt = (at: number) => memberTrail.filter((m) => m.at <= at + 100).at(-1)?.state ?? 'absent'
    const deadSpans = memberTrail.filter((m) => m.state === 'dead' || m.state === 'left')
    const gaps = removedOnB.map((r) => {
      const back = addedOnB.find((x) => x.id === r.id && x.at >= r.at)?.at ?? Date.now()
      if (stateAt(r.at) !== 'dead' && stateAt(r.at) !== 'left') return back - r.at
      const aliveAgain = memberTrail.find((m) => m.at > r.at && m.state === 'alive')?.at ?? back
      return Math.max(0, back - aliveAgain)
    })
    // How the old agent process ended, and when: a clean exit right after its HTTP went away,
    // or a SIGKILL (137) at the end of the stop grace period, which delays the new task.
    const oldEnd = await d.docker
      .getContainer(oldTask!.id)
      .inspect()
      .then((i) => `exit ${i.State.ExitCode} ${Date.parse(i.State.FinishedAt) - restartAt} ms after the update`)
      .catch(() => 'removed')
    t.comment(
      `restart: update -> old HTTP gone ${down - restartAt} ms, old process ${oldEnd}, new process up (503) ${upAt - restartAt} ms; ` +
        `seed released -> first CDS ${firstAt - releasedAt} ms; on the other agent keep removed ${removedOnB.length}x ` +
        `(missing ${gaps.join(', ') || '0'} ms), re-added ${addedOnB.length}x; the node on the other agent: ` +
        memberTrail.map((m) => `${m.state}@${m.at - restartAt}`).join(' ') +
        (deadSpans.length > 0 ? ' (declared dead: down past the suspicion timeout)' : ''),
    )
    // The stack sets SHOAL_LEAVE_ON_TERMINATE=false: a restarted agent does not leave, so the
    // other hosts keep its node's services through the restart (with a graceful leave they
    // were missing everywhere for 3-4.5 s here). What remains: when the new boot's membership
    // reaches a peer before its records, the catalog hides the old boot's records until the
    // pull brings the new ones (a few ms; see the report).
    t.ok(
      gaps.every((g) => g < 10_000),
      `no keep instance missing on the other agent for 10 s or more, well under a push-pull interval (gaps: ${gaps.join(', ') || 'none'} ms)`,
    )
    t.equal(b.members().find((m) => m.name === swarm.hostname)?.state, 'alive', "the swarm agent is alive in the other agent's members")
  })
})
