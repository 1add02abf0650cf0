// The standard process_* and nodejs_* metrics (README "Metrics") come from prom-client's own
// metric modules, all but processCpuTotal, whose three counters src/metrics.ts makes itself:
// prom-client's version requires @opentelemetry/api (about 2 MiB in every agent) for exemplars
// Shoal never uses. The set, types and help must stay prom-client's, also after an upgrade of it.
import t from 'tap'
import { collectDefaultMetrics, Registry } from 'prom-client'
import { collectProcessMetrics, PROCESS_METRICS } from '../src/metrics.js'

t.test("prom-client's default metrics are the ones collectProcessMetrics registers, plus processCpuTotal", async (t) => {
  const list = (collectDefaultMetrics as unknown as { metricsList: string[] }).metricsList
  t.same([...list].sort(), [...PROCESS_METRICS, 'processCpuTotal'].sort())
})

t.test('the same metric names, types and help as collectDefaultMetrics; the CPU counters count', async (t) => {
  const ours = new Registry()
  const theirs = new Registry()
  collectProcessMetrics(ours, { eventLoopMonitoringPrecision: 100 })
  collectDefaultMetrics({ register: theirs, eventLoopMonitoringPrecision: 100 })
  const shape = async (r: Registry) =>
    (await r.getMetricsAsJSON()).map((m) => ({ name: m.name, type: m.type, help: m.help })).sort((a, b) => a.name.localeCompare(b.name))
  t.same(await shape(ours), await shape(theirs))
  // A scrape: the user counter's collect sets all three, as in prom-client.
  const cpu = async () => (await ours.getMetricsAsJSON()).find((m) => m.name === 'process_cpu_seconds_total')?.values[0]?.value ?? 0
  const before = await cpu()
  const end = process.cpuUsage().user + 50_000
  while (process.cpuUsage().user < end) Math.sqrt(Math.random())
  t.ok((await cpu()) - before >= 0.04, 'process_cpu_seconds_total grew by the 50 ms of CPU spent')
  ours.clear()
  theirs.clear()
})
