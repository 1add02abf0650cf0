// Issue 16: the Grafana dashboard is proven against a real Prometheus (Debian `prometheus`).
// Three real agents (the built CLI) of one cluster, each with one checked `web` instance (one
// with Docker discovery too, as in the compose demo); a
// Prometheus on a free loopback port with a generated config scrapes them every second, and
// scrapes the test's own stand-in for Envoy's admin (Envoy cannot run here: a fixture written
// from Envoy's documented stat names, served at /stats/prometheus). After two scrapes of every
// target, every PromQL expression of every panel of compose/grafana/shoal-dashboard.json, its
// Grafana variables filled in, is evaluated through Prometheus's HTTP API: each returns data,
// and the cluster-view panels give the true counts (3 members, not 3 agents x 3 = 9).
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cliAgent, type CliAgent } from './lib/agent-process.js'
import { serve, unusedPort } from './lib/listen.js'
import { until } from './lib/wait.js'

const PROMETHEUS = '/usr/bin/prometheus'
const CLUSTER = 'dash'

/**
 * Envoy's admin /stats/prometheus as Envoy writes it for one cluster: the stats the dashboard
 * reads, named as Envoy's docs name them (cluster manager statistics: upstream_rq_total,
 * membership_healthy; Envoy prefixes envoy_ and moves the cluster name into envoy_cluster_name).
 */
function envoyStats(requests: number): string {
  return [
    '# TYPE envoy_cluster_upstream_rq_total counter',
    `envoy_cluster_upstream_rq_total{envoy_cluster_name="web:10080"} ${requests}`,
    '# TYPE envoy_cluster_membership_healthy gauge',
    'envoy_cluster_membership_healthy{envoy_cluster_name="web:10080"} 3',
    '',
  ].join('\n')
}

interface Sample {
  metric: Record<string, string>
  value: [number, string]
}

/** Grafana's variables as a dashboard viewer with the defaults would have them. */
function substitute(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$cluster', CLUSTER).replaceAll('$instance', '.*')
}

t.test(
  'every panel of the Grafana dashboard answers on a real Prometheus scraping three agents',
  { skip: existsSync(PROMETHEUS) ? false : `${PROMETHEUS} missing (Debian "prometheus"; npm test installs it)` },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-prom-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))

    const agents: CliAgent[] = []
    for (const node of ['a', 'b', 'c']) {
      const file = join(dir, `${node}.json`)
      const port = await unusedPort()
      writeFileSync(
        file,
        JSON.stringify({
          services: [{ id: `web-${node}`, name: 'web', ports: [{ port, servicePort: 10080 }], check: { type: 'AlwaysSuccessful' } }],
        }),
      )
      const seed = agents[0] ? ['--join', agents[0].gossip] : []
      agents.push(
        await cliAgent(t, [
          ...['--node', node, '--cluster', CLUSTER, '--profile', 'local', '--advertise', '127.0.0.1', '--dns', 'off'],
          // As in the compose demo, one agent discovers Docker containers (here: an engine that is not there).
          ...(node === 'a'
            ? ['--discovery', 'docker,static', '--docker-host', `unix://${join(dir, 'no-engine.sock')}`]
            : ['--discovery', 'static']),
          ...['--static', file, ...seed],
        ]),
      )
    }
    // Each agent sees the whole cluster before Prometheus starts: 3 members and 3 instances each.
    for (const a of agents)
      await until(`${a.http} to see three web instances`, async () => {
        const v = (await (await fetch(`${a.http}/api/services/web.json`)).json()) as { instances: Array<{ status: string }> }
        return v.instances.filter((i) => i.status === 'alive').length === 3 ? true : undefined
      })

    let envoyRequests = 0
    const envoy = await serve(
      t,
      http.createServer((req, res) => {
        if (req.url !== '/stats/prometheus') return void res.writeHead(404).end()
        envoyRequests += 7
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(envoyStats(envoyRequests))
      }),
    )

    const port = await unusedPort()
    const config = join(dir, 'prometheus.yml')
    writeFileSync(
      config,
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'scrape_configs:',
        '  - job_name: shoal',
        '    static_configs:',
        `      - targets: [${agents.map((a) => JSON.stringify(new URL(a.http).host)).join(', ')}]`,
        '  - job_name: envoy',
        '    metrics_path: /stats/prometheus',
        '    static_configs:',
        `      - targets: ["127.0.0.1:${envoy}"]`,
        '',
      ].join('\n'),
    )
    const prom = spawn(
      PROMETHEUS,
      [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    prom.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
    const exited = new Promise((r) => prom.once('exit', r))
    t.teardown(async () => {
      if (prom.exitCode === null && prom.signalCode === null) prom.kill('SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))])
      if (prom.exitCode === null && prom.signalCode === null) prom.kill('SIGKILL')
    })

    const query = async (q: string): Promise<Sample[]> => {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`)
      const body = (await r.json()) as { status: string; error?: string; data?: { resultType: string; result: Sample[] } }
      if (body.status !== 'success') throw new Error(`${q}: ${body.error ?? r.status}`)
      return body.data!.result
    }
    // Two scrapes of each of the four targets.
    await until(
      `two scrapes of every target (prometheus: ${stderr.slice(-300)})`,
      async () => {
        const r = await query('count_over_time(up[1m])')
        return r.length === 4 && r.every((s) => Number(s.value[1]) >= 2) ? true : undefined
      },
      120_000,
    )
    // A rate needs two samples after the change it measures: one more scrape.
    await new Promise((r) => setTimeout(r, 1500))

    const dash = JSON.parse(readFileSync('compose/grafana/shoal-dashboard.json', 'utf8')) as {
      panels: Array<{ title: string; targets: Array<{ refId: string; expr: string }> }>
    }
    let n = 0
    for (const p of dash.panels)
      for (const target of p.targets) {
        n++
        const q = substitute(target.expr)
        t.notMatch(q, /\$/, `${p.title} ${target.refId}: every variable filled in`)
        const result = await query(q)
        t.ok(result.length > 0, `${p.title} ${target.refId} returns data: ${q}`)
      }
    t.ok(n >= 20, `${n} expressions evaluated`)

    // The cluster-view panels give the true counts.
    const panelExpr = (title: string): string => substitute(dash.panels.find((p) => p.title === title)!.targets[0]!.expr)
    const byLabel = async (title: string, label: string): Promise<Record<string, number>> =>
      Object.fromEntries((await query(panelExpr(title))).map((s) => [s.metric[label]!, Number(s.value[1])]))
    t.match(await byLabel('Members by state', 'state'), { alive: 3, suspect: 0, dead: 0 }, '3 members, not 9')
    t.match(await byLabel('Service instances by status', 'status'), { alive: 3, unhealthy: 0, draining: 0 }, '3 instances, not 9')
    t.same(await byLabel('Instances taking traffic, by service', 'service'), { web: 3 })
    t.same(await byLabel('Agents by version', 'version'), { [JSON.parse(readFileSync('package.json', 'utf8')).version]: 3 })
    t.same(await byLabel('Envoy healthy hosts', 'envoy_cluster_name'), { 'web:10080': 3 }, 'the Envoy fixture is read')
  },
)
