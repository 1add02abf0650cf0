// Issue 16: a running agent's /metrics follows Prometheus's conventions, checked by the real
// `promtool check metrics` (Debian `prometheus`), and the README lists exactly the metrics the
// agent registers, with their types, labels and meanings. One agent with every part: Docker
// discovery (pointed at an engine that is not there), a static file with a checked service,
// DNS, and service identity (--tls-dir).
//
// `npm run readme:metrics` runs this file with SHOAL_README_WRITE=1: it then rewrites the
// README's block instead of comparing it.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { metricsTable } from '../src/http/metrics.js'
import { makePki } from './lib/identity.js'
import { serve, tcpService } from './lib/listen.js'
import { metricsAgent } from './lib/metrics-agent.js'

const PROMTOOL = '/usr/bin/promtool'
/**
 * prom-client's three standard gauges keep the names existing Node.js dashboards read, although
 * a gauge named *_total breaks the convention; they are the only findings allowed.
 */
const ALLOWED = [
  'nodejs_active_handles_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_requests_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_resources_total non-counter metrics should not have "_total" suffix',
]
const BEGIN = '<!-- metrics:begin (npm run readme:metrics) -->'
const END = '<!-- metrics:end -->'

t.test('an agent with every part: promtool finds nothing but the allowed three, and the README lists every metric', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-metrics-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const backend = await serve(t, tcpService())
  const file = join(dir, 'static.json')
  writeFileSync(
    file,
    JSON.stringify({
      services: [
        { id: 'db-1', name: 'db', ports: [{ port: backend, servicePort: 15432 }], check: { type: 'Tcp', args: `{{ host }}:${backend}` } },
      ],
    }),
  )
  const pki = await makePki(t, { cluster: 'conventions', nodes: ['metrics'] })
  const { agent, text } = await metricsAgent(t, [
    ...['--node', 'metrics', '--cluster', 'conventions', '--profile', 'local', '--advertise', '127.0.0.1'],
    ...['--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0'],
    ...['--discovery', 'docker,static', '--docker-host', `unix://${join(dir, 'no-engine.sock')}`, '--static', file],
    ...['--tls-dir', pki.tlsDir('metrics')],
  ])

  t.test(
    'promtool check metrics',
    { skip: existsSync(PROMTOOL) ? false : `${PROMTOOL} missing (Debian "prometheus"; npm test installs it)` },
    async (t) => {
      const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' })
      const findings = (r.stdout + r.stderr)
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
      t.same(findings.sort(), ALLOWED, "only prom-client's three standard gauges, kept under their standard names")
    },
  )

  t.test('the standard process and Node.js names, no prefix', async (t) => {
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ])
      t.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name)
    t.notMatch(text, /shoal_process_/, 'no shoal_process_ prefix')
    t.match(text, /^shoal_build_info\{version="[^"]+",node="metrics",cluster="conventions"\} 1$/m, 'shoal_build_info')
  })

  t.test('labelled series exist from the start, at zero', async (t) => {
    for (const series of [
      'shoal_gossip_packets_received_total{type="ping"} 0',
      'shoal_xds_nacks_total{type="eds"} 0',
      'shoal_xds_connected_clients{kind="grpc"} 0',
      'shoal_xds_change_to_ack_seconds_count{type="cds"} 0',
      'shoal_docker_events_total{action="kill"} 0',
      'shoal_dns_queries_total{transport="tcp",rcode="NXDOMAIN"} 0',
      'shoal_health_checks_total{service="db",type="Tcp",result="timeout"} 0',
      'shoal_service_instances{service="db",status="draining"} 0',
      'shoal_identity_leaf_failures_total{reason="sign"} 0',
      'shoal_gossip_rejected_total{reason="key"} 0',
      'shoal_gossip_join_failures_total{reason="timeout"} 0',
      'shoal_registry_drains_total{reason="operator"} 0',
      'shoal_registry_records_rejected_total{reason="malformed"} 0',
      'shoal_catalog_draining{reason="stopping"} 0',
      'shoal_xds_dropped_endpoints{reason="not_an_ip",network="host"} 0',
      'shoal_xds_authz_unresolved{problem="missing"} 0',
      'shoal_docker_stop_signals_total{outcome="survived"} 0',
    ])
      t.ok(text.split('\n').includes(series), series)
  })

  t.test('the README lists every metric with its type, labels and meaning', async (t) => {
    const table = metricsTable(agent.registry)
    const readme = readFileSync('README.md', 'utf8')
    const i = readme.indexOf(BEGIN)
    const j = readme.indexOf(END)
    if (process.env.SHOAL_README_WRITE === '1' && i >= 0 && j > i) {
      writeFileSync('README.md', readme.slice(0, i + BEGIN.length) + '\n' + table + '\n' + readme.slice(j))
      t.pass('README.md rewritten')
      return
    }
    t.ok(i >= 0 && j > i, `README.md has the ${BEGIN} block`)
    t.equal(readme.slice(i + BEGIN.length + 1, j - 1), table, 'the block is what `npm run readme:metrics` writes')
  })
})
