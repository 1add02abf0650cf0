// /metrics: gossip and catalog figures under Prometheus names, read at scrape time, in a
// text format that a Prometheus parser accepts.
import t from 'tap'
import type { GossipStats } from '../src/gossip/types.js'
import { Buckets } from '../src/histogram.js'
import { registerCatalogMetrics, registerGossipMetrics } from '../src/http/metrics.js'
import { record, startHarness } from './lib/http-fixture.js'

interface Family {
  name: string
  type: string
  help: string
  samples: { name: string; labels: Record<string, string>; value: number }[]
}

/**
 * A strict reader of the Prometheus text exposition format (0.0.4): HELP and TYPE once per
 * family and before its samples, valid metric and label names, escaped label values,
 * numeric values, counters named *_total, no family split across the text.
 */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const closed = new Set<string>()
  let current: Family | undefined
  const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
  const lines = text.split('\n')
  if (lines.at(-1) !== '') throw new Error('exposition must end with a newline')
  for (const line of lines.slice(0, -1)) {
    let m: RegExpExecArray | null
    if ((m = /^# HELP (\S+) (.*)$/.exec(line))) {
      const [, name, help] = m as unknown as [string, string, string]
      if (!metricName.test(name)) throw new Error(`bad metric name ${name}`)
      if (families.has(name)) throw new Error(`HELP twice for ${name}`)
      if (current) closed.add(current.name)
      current = { name, help, type: 'untyped', samples: [] }
      families.set(name, current)
    } else if ((m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      if (!current || current.name !== m[1]) throw new Error(`TYPE for ${m[1]} not after its HELP`)
      if (current.samples.length) throw new Error(`TYPE after samples for ${m[1]}`)
      current.type = m[2]!
    } else if (line.startsWith('#') || line === '') {
      continue
    } else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line))) {
      const [, name, , rawLabels, rawValue] = m as unknown as [string, string, string, string | undefined, string]
      const base = current && (name === current.name || /^(.*)_(bucket|sum|count)$/.exec(name)?.[1] === current.name) ? current : undefined
      if (!base) throw new Error(`sample ${name} outside its family`)
      if (closed.has(name)) throw new Error(`family ${name} split`)
      const labels: Record<string, string> = {}
      if (rawLabels) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y
        let pos = 0
        while (pos < rawLabels.length) {
          re.lastIndex = pos
          const lm = re.exec(rawLabels)
          if (!lm) throw new Error(`bad labels in ${line}`)
          labels[lm[1]!] = lm[2]!
          pos = re.lastIndex
        }
      }
      const value = Number(rawValue === '+Inf' ? Infinity : rawValue === '-Inf' ? -Infinity : rawValue)
      if (Number.isNaN(value) && rawValue !== 'NaN') throw new Error(`bad value in ${line}`)
      base.samples.push({ name, labels, value })
    } else {
      throw new Error(`unparsable line: ${JSON.stringify(line)}`)
    }
  }
  for (const f of families.values()) {
    if (f.type === 'counter' && !f.name.endsWith('_total')) throw new Error(`counter ${f.name} does not end in _total`)
    if (f.type !== 'counter' && f.name.endsWith('_total')) throw new Error(`${f.type} ${f.name} ends in _total`)
  }
  return families
}

function value(fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  return fams.get(name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

t.test('gossip and catalog metrics parse as Prometheus text and follow the stats', async (t) => {
  const h = await startHarness(t)
  const rtt = new Buckets([0.001, 0.01, 0.1])
  for (const v of [0.0004, 0.002, 0.003, 0.05, 2]) rtt.observe(v)
  const stats: GossipStats = {
    packetsIn: { ping: 10, ack: 9 },
    packetsOut: { ping: 11, 'indirect-ping': 2 },
    bytesIn: { ping: 400, ack: 360 },
    bytesOut: { ping: 440 },
    probes: 11,
    probesFailed: 1,
    suspicions: 2,
    refusedDeaths: 1,
    refutations: 1,
    nameConflicts: 7,
    decodeErrors: 3,
    unknownMessages: 2,
    unknownFields: 6,
    rejected: { label: 2, key: 1 },
    joinFailures: { refused: 4 },
    joinBacks: { joined: 1, conflict: 0, failed: 2 },
    queueDepth: 4,
    awareness: 1,
    pushPulls: 5,
    pushPullsFailed: 0,
    probeRttSeconds: rtt.snapshot(),
    pushPullSeconds: new Buckets([0.01, 0.1]).snapshot(),
  }
  registerGossipMetrics(
    h.registry,
    () => stats,
    () => h.membership.members(),
  )
  registerCatalogMetrics(h.registry, h.catalog)
  h.membership.set('node-a', 'alive')
  h.membership.set('node-b', 'alive')
  h.membership.set('node-c', 'suspect')
  h.catalog.addHost('node-a')
  h.catalog.addHost('node-b')
  h.catalog.addHost('node-c')
  h.catalog.put(record({ name: 'web', host: 'node-a' }))
  h.catalog.put(record({ name: 'web', host: 'node-b', status: 'unhealthy' }))
  h.catalog.put(record({ name: 'api', host: 'node-b', status: 'draining' }))
  h.catalog.put(record({ name: 'db', host: 'node-c' }))
  h.catalog.setHostState('node-c', 'dead')

  const scrape = async (): Promise<Map<string, Family>> => {
    const res = await fetch(`${h.url}/metrics`)
    t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
    return parseExposition(await res.text())
  }
  const fams = await scrape()

  for (const name of [
    'shoal_gossip_members',
    'shoal_gossip_packets_received_total',
    'shoal_gossip_packets_sent_total',
    'shoal_gossip_bytes_received_total',
    'shoal_gossip_bytes_sent_total',
    'shoal_gossip_probes_total',
    'shoal_gossip_probes_failed_total',
    'shoal_gossip_suspicions_total',
    'shoal_gossip_refusal_deaths_total',
    'shoal_gossip_refutations_total',
    'shoal_gossip_decode_errors_total',
    'shoal_gossip_rejected_total',
    'shoal_gossip_join_failures_total',
    'shoal_gossip_join_backs_total',
    'shoal_gossip_queue_depth',
    'shoal_gossip_awareness',
    'shoal_gossip_probe_rtt_seconds',
    'shoal_gossip_push_pull_duration_seconds',
    'shoal_catalog_instances',
    'shoal_service_instances',
    'shoal_catalog_hosts',
    'shoal_http_requests_total',
    'shoal_http_watch_clients',
  ]) {
    t.ok(fams.has(name), `${name} is exposed`)
  }
  for (const name of fams.keys()) t.match(name, /^shoal_/, `${name} has the shoal_ prefix`)

  t.equal(fams.get('shoal_gossip_packets_received_total')!.type, 'counter')
  t.equal(value(fams, 'shoal_gossip_packets_received_total', { type: 'ping' }), 10)
  t.equal(value(fams, 'shoal_gossip_packets_sent_total', { type: 'indirect-ping' }), 2)
  t.equal(value(fams, 'shoal_gossip_bytes_received_total', { type: 'ack' }), 360)
  t.equal(value(fams, 'shoal_gossip_probes_failed_total'), 1)
  t.equal(value(fams, 'shoal_gossip_decode_errors_total'), 3)
  t.equal(value(fams, 'shoal_gossip_unknown_total', { kind: 'message' }), 2)
  t.equal(value(fams, 'shoal_gossip_unknown_total', { kind: 'field' }), 6)
  t.equal(value(fams, 'shoal_gossip_rejected_total', { reason: 'label' }), 2)
  t.equal(value(fams, 'shoal_gossip_join_failures_total', { reason: 'refused' }), 4)
  t.equal(value(fams, 'shoal_gossip_join_backs_total', { result: 'joined' }), 1)
  t.equal(value(fams, 'shoal_gossip_join_backs_total', { result: 'failed' }), 2)
  t.equal(value(fams, 'shoal_gossip_join_backs_total', { result: 'conflict' }), 0, 'every result from the start, zero included')
  t.equal(value(fams, 'shoal_gossip_queue_depth'), 4)
  t.equal(value(fams, 'shoal_gossip_members', { state: 'alive' }), 2)
  t.equal(value(fams, 'shoal_gossip_members', { state: 'suspect' }), 1)
  t.equal(value(fams, 'shoal_gossip_members', { state: 'dead' }), 0, 'every state is reported, zero included')
  t.equal(value(fams, 'shoal_catalog_instances', { status: 'alive' }), 1, "a dead host's instances are not counted")
  t.equal(value(fams, 'shoal_catalog_instances', { status: 'unhealthy' }), 1)
  t.equal(value(fams, 'shoal_catalog_instances', { status: 'draining' }), 1)
  t.equal(value(fams, 'shoal_catalog_instances', { status: 'unknown' }), 0, 'every live status, zero included')
  t.equal(value(fams, 'shoal_service_instances', { service: 'web', status: 'alive' }), 1)
  t.equal(value(fams, 'shoal_service_instances', { service: 'web', status: 'unhealthy' }), 1)
  t.equal(value(fams, 'shoal_service_instances', { service: 'web', status: 'draining' }), 0, 'a service has every status, zero included')
  t.equal(value(fams, 'shoal_service_instances', { service: 'api', status: 'draining' }), 1)
  t.equal(
    value(fams, 'shoal_service_instances', { service: 'db', status: 'alive' }),
    0,
    "db's only instance is on a dead host: 0, so an alert on 0 alive fires",
  )
  const hist = fams.get('shoal_gossip_probe_rtt_seconds')!
  t.equal(hist.type, 'histogram')
  t.same(
    hist.samples.filter((x) => x.name.endsWith('_bucket')).map((x) => [x.labels.le, x.value]),
    [
      ['0.001', 1],
      ['0.01', 3],
      ['0.1', 4],
      ['+Inf', 5],
    ],
    'cumulative buckets, +Inf last',
  )
  t.equal(value(fams, 'shoal_gossip_probe_rtt_seconds_count' as string), undefined, 'no family of its own for _count')
  t.equal(hist.samples.find((x) => x.name === 'shoal_gossip_probe_rtt_seconds_count')?.value, 5)
  t.equal(Math.round(hist.samples.find((x) => x.name === 'shoal_gossip_probe_rtt_seconds_sum')!.value * 1e4), 20554)
  t.equal(value(fams, 'shoal_catalog_hosts', { state: 'alive' }), 2)
  t.equal(value(fams, 'shoal_catalog_hosts', { state: 'dead' }), 1)

  stats.packetsIn.ping = 25
  stats.decodeErrors = 7
  h.membership.set('node-c', 'dead', 'dead')
  const again = await scrape()
  t.equal(value(again, 'shoal_gossip_packets_received_total', { type: 'ping' }), 25, 'counters follow the stats on every scrape')
  t.equal(value(again, 'shoal_gossip_decode_errors_total'), 7)
  t.equal(value(again, 'shoal_gossip_members', { state: 'suspect' }), 0)
  t.equal(value(again, 'shoal_gossip_members', { state: 'dead' }), 1)
})

t.test('the exposition checker rejects what Prometheus would', async (t) => {
  t.throws(() => parseExposition('# HELP x_total a\n# TYPE x_total counter\nx_total{a="1} 1\n'))
  t.throws(() => parseExposition('# HELP x a\n# TYPE x counter\nx 1\n'), /does not end in _total/)
  t.throws(() => parseExposition('# HELP x a\n# TYPE x gauge\nx one\n'), /bad value/)
  t.throws(() => parseExposition('# HELP x a\n# TYPE x gauge\ny 1\n'), /outside its family/)
  t.same([...parseExposition('# HELP x a\n# TYPE x gauge\nx{a="q\\"z"} 1\n').keys()], ['x'])
})
