// The files under compose/ name agent flags, environment variables, labels, ports and
// metric names. Check each against what the agent really accepts and exports.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { parseAgentConfig, AGENT_FLAGS } from '../src/agent/config.js'
import { envName } from '../src/flags.js'
import { mapContainer } from '../src/docker/labels.js'
import { parseStaticServices } from '../src/registry/static.js'
import { metricsAgent } from './lib/metrics-agent.js'

type Service = {
  image?: string
  entrypoint?: string[]
  command?: string[] | string
  environment?: Record<string, string>
  labels?: Record<string, string>
  ports?: Array<string | { target: number; published?: number; mode?: string }>
  volumes?: unknown[]
  networks?: Record<string, unknown> | string[]
  deploy?: { replicas?: number }
}
const compose = parse(readFileSync('compose/docker-compose.yml', 'utf8'), { merge: true }) as { services: Record<string, Service> }
const stack = parse(readFileSync('compose/swarm-stack.yml', 'utf8')) as { services: Record<string, Service> }

/** `${VAR:-default}` as a deploying shell with nothing set would expand it; required ones get a sample. */
function expand(v: string): string {
  // Swarm's template for the node's hostname, as a swarm node would fill it in.
  v = v.replace(/\{\{\.Node\.Hostname\}\}/g, 'swarm-node-1')
  return v.replace(
    /\$\{([A-Z_]+)(?::-([^}]*)|:\?[^}]*)?\}/g,
    (_m, name: string, dflt?: string) => dflt ?? (name === 'SHOAL_SEEDS' ? '10.0.0.1:7947' : ''),
  )
}

// Services that run the agent's image as the agent (not the stack's `web`, which runs node itself).
const agentServices = (doc: { services: Record<string, Service> }) =>
  Object.entries(doc.services).filter(
    ([, s]) => ((s.image ?? '').startsWith('shoal') || (s.image ?? '').includes('SHOAL_IMAGE')) && s.entrypoint === undefined,
  )

t.test('every agent command line and SHOAL_* variable in the compose files is accepted', async (t) => {
  const seen: string[] = []
  for (const [file, doc] of [
    ['docker-compose.yml', compose],
    ['swarm-stack.yml', stack],
  ] as const) {
    for (const [name, svc] of agentServices(doc)) {
      const argv = (Array.isArray(svc.command) ? svc.command : String(svc.command ?? 'agent').split(' ')).map(expand)
      if (argv[0] !== 'agent') continue
      const env = Object.fromEntries(Object.entries(svc.environment ?? {}).map(([k, v]) => [k, expand(String(v))]))
      for (const k of Object.keys(env)) {
        if (k.startsWith('SHOAL_'))
          t.ok(
            Object.keys(AGENT_FLAGS).some((f) => envName(f) === k),
            `${file} ${name}: ${k} is a variable the agent reads`,
          )
      }
      // Static files must exist for the parse to name them; only their syntax matters here.
      const cfg = parseAgentConfig(argv.slice(1), env)
      t.ok(cfg.node.length > 0, `${file} ${name}: ${argv.join(' ')} parses`)
      seen.push(`${file}:${name}`)
    }
  }
  t.ok(seen.length >= 4, `agent services checked: ${seen.join(', ')}`)
})

t.test('published ports of the demo are ports the agent or Envoy listens on', async (t) => {
  const s1 = compose.services['shoal-1']!
  const cfg = parseAgentConfig((s1.command as string[]).slice(1), s1.environment ?? {})
  const published = (s1.ports ?? []).map((p) => Number(String(p).split(':').at(-1)))
  t.ok(published.includes(cfg.http.port), `UI port ${cfg.http.port} is published`)
  const echo = compose.services['echo']!
  const servicePorts = Object.entries(echo.labels ?? {})
    .filter(([k]) => k.startsWith('ServicePort_'))
    .map(([, v]) => Number(v))
  t.ok(
    servicePorts.length > 0 && servicePorts.every((p) => published.includes(p)),
    'the echo ServicePort is published on shoal-1 (Envoy shares its namespace)',
  )
  t.equal(cfg.envoyBind, '0.0.0.0', 'Envoy listeners bind all addresses inside the container')
})

t.test('labels in the demo map to a service without problems', async (t) => {
  let n = 0
  for (const [name, svc] of Object.entries(compose.services)) {
    if (!svc.labels) continue
    n++
    const { spec, problems } = mapContainer(
      {
        id: 'a'.repeat(64),
        name,
        image: svc.image ?? name,
        created: 0,
        labels: svc.labels,
        bindings: [],
        networks: { 'shoal-demo_shoal': { ip: '172.30.0.5', prefixLen: 16 } },
        health: 'none',
        running: true,
      },
      // The demo's shoal-1 is on that network itself: it checks the containers there directly.
      { advertiseIp: '10.0.0.1', networks: ['shoal-demo_shoal'], onAgentLink: (ip) => ip.startsWith('172.30.') },
    )
    t.same(problems, [], `${name}: no label problems`)
    t.ok(spec && spec.ports.length > 0, `${name}: a service with ports`)
  }
  t.ok(n > 0)
})

t.test("the stack's web: Shoal's labels, a host-mode port without a fixed number, the overlay the agent advertises", async (t) => {
  const web = stack.services['web']!
  const agent = stack.services['agent']!
  t.same(web.ports, [{ target: 8080, mode: 'host' }], 'published in host mode, Swarm picks the port: several replicas fit on a node')
  t.ok((web.deploy?.replicas ?? 1) > 1, 'more than one replica')
  const net = (stack as unknown as { networks: Record<string, { name?: string }> }).networks
  const joined = Object.keys(web.networks ?? {}).map((k) => expand(net[k]?.name ?? k))
  t.same(joined, [expand(String(agent.environment!.SHOAL_DOCKER_NETWORK))], 'on the overlay the agent advertises')
  const cfg = parseAgentConfig([], Object.fromEntries(Object.entries(agent.environment ?? {}).map(([k, v]) => [k, expand(String(v))])))
  // As a task of it looks to the agent: a host binding from Swarm, an IP on the overlay.
  const { spec, problems } = mapContainer(
    {
      id: 'b'.repeat(64),
      name: 'shoal_web.1.x',
      image: 'shoal:latest',
      created: 0,
      labels: { ...web.labels, 'com.docker.swarm.service.name': 'shoal_web' },
      bindings: [{ containerPort: 8080, type: 'tcp', hostIp: '0.0.0.0', hostPort: 30001 }],
      networks: { [joined[0]!]: { ip: '10.0.1.5', prefixLen: 24 } },
      health: 'none',
      running: true,
    },
    { advertiseIp: '10.0.0.1', networks: cfg.dockerNetworks },
  )
  t.same(problems, [])
  t.same(spec?.ports, [{ type: 'tcp', port: 30001, servicePort: 10080, ip: '10.0.0.1', containerPort: 8080 }])
  t.same(spec?.networks, { 'shoal-apps': '10.0.1.5' })
  t.same(
    spec?.checkTarget,
    { host: '10.0.0.1', ports: [{ port: 30001, containerPort: 8080 }] },
    "the agent's check goes to the host binding",
  )
  t.same(cfg.xdsInterfaces, [], 'xDS on docker_gwbridge is opt-in (SHOAL_XDS_INTERFACES)')
})

t.test('static files of the demo are valid', async (t) => {
  for (const f of ['compose/static/shoal-2.json', 'compose/static/shoal-3.json', 'examples/static.json']) {
    t.ok(parseStaticServices(readFileSync(f, 'utf8'), f, '10.0.0.2').length > 0, `${f} parses`)
  }
})

t.test('Prometheus targets and Grafana metrics are what the agent exports', async (t) => {
  const prom = parse(readFileSync('compose/prometheus.yml', 'utf8')) as {
    scrape_configs: Array<{ job_name: string; metrics_path: string; static_configs: Array<{ targets: string[] }> }>
  }
  const job = prom.scrape_configs.find((j) => j.job_name === 'shoal')!
  t.equal(job.metrics_path, '/metrics')
  const httpPorts = agentServices(compose)
    .filter(([, s]) => Array.isArray(s.command) && s.command[0] === 'agent')
    .map(([, s]) => parseAgentConfig((s.command as string[]).slice(1), {}).http.port)
  for (const target of job.static_configs.flatMap((c) => c.targets)) {
    t.ok(httpPorts.includes(Number(target.split(':')[1])), `${target} is an agent's HTTP port`)
  }
  // Envoy's admin (its /stats/prometheus) must listen where Prometheus reaches it: not loopback.
  const envoyJob = prom.scrape_configs.find((j) => j.job_name === 'envoy')!
  const boot = (compose.services['envoy-bootstrap']?.command as string[]).find((a) => a.startsWith('--admin='))
  t.ok(boot, 'envoy-bootstrap sets --admin')
  const [adminHost, adminPort] = (boot ?? '--admin=127.0.0.1:9901').slice('--admin='.length).split(':')
  t.not(adminHost, '127.0.0.1', "Envoy's admin listens beyond loopback")
  t.same(
    envoyJob.static_configs.flatMap((c) => c.targets.map((x) => x.split(':')[1])),
    [adminPort],
    "the envoy job scrapes Envoy's admin port",
  )

  // A real agent (Docker discovery pointed at nothing, so its metrics exist too).
  const { text } = await metricsAgent(t, [
    ...['--node', 'metrics', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', 'off'],
    ...['--profile', 'local', '--discovery', 'docker,static', '--docker-host', 'unix:///nonexistent/docker.sock'],
    ...['--static', 'examples/static.json'],
  ])
  const exported = new Set(
    [...text.matchAll(/^# TYPE (\S+) (\S+)/gm)].flatMap(([, n, type]) =>
      type === 'histogram' ? [n!, `${n}_bucket`, `${n}_sum`, `${n}_count`] : [n!],
    ),
  )
  const dash = JSON.parse(readFileSync('compose/grafana/shoal-dashboard.json', 'utf8')) as {
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>
  }
  for (const p of dash.panels) {
    for (const name of p.targets.flatMap((x) => [...x.expr.matchAll(/\b(shoal_[a-z_]+)/g)].map((m) => m[1]!))) {
      t.ok(exported.has(name), `panel "${p.title}": ${name} is exported by the agent`)
    }
  }
})
