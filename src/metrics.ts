/**
 * Prometheus metrics, get-or-create: a part asks for its metric by name on the registry it
 * is given, and gets the one already registered when another part (or a restarted one)
 * made it first. So two servers may share a registry, and a restarted part keeps counting
 * on the same series. Names follow Prometheus conventions (counters end in `_total`, units
 * in the name: `_seconds`, `_bytes`).
 *
 * @example
 *   const nacks = counter(registry, { name: 'shoal_xds_nacks_total', help: 'NACKs received', labelNames: ['type'] })
 *   nacks.inc({ type: 'cds' })
 */
import { createRequire } from 'node:module'
import type * as PromClient from 'prom-client'
import type { CounterConfiguration, GaugeConfiguration, HistogramConfiguration } from 'prom-client'

const require = createRequire(import.meta.url)

// prom-client's classes from its own files, not its index: the index also loads its cluster
// aggregator, Pushgateway (http, https, url) and its default metrics, whose CPU counter requires
// @opentelemetry/api; about 12 MiB of RSS and 80 modules that an agent never uses (README
// "Memory"). The types are the index's. Every part of Shoal takes these from here
// (test/agent-lazy-load.test.ts fails when prom-client's index is loaded).
export const Registry = require('prom-client/lib/registry') as typeof PromClient.Registry
export type Registry = PromClient.Registry
export const Counter = require('prom-client/lib/counter') as typeof PromClient.Counter
export type Counter<L extends string = string> = PromClient.Counter<L>
export const Gauge = require('prom-client/lib/gauge') as typeof PromClient.Gauge
export type Gauge<L extends string = string> = PromClient.Gauge<L>
export const Histogram = require('prom-client/lib/histogram') as typeof PromClient.Histogram
export type Histogram<L extends string = string> = PromClient.Histogram<L>

type Without<T> = Omit<T, 'registers'>

function getOrCreate<M>(registry: Registry | undefined, name: string, make: (registers: Registry[]) => M): M {
  const existing = registry?.getSingleMetric(name) as M | undefined
  return existing ?? make(registry ? [registry] : [])
}

/** The counter `config.name` on `registry` (created there when absent; unregistered without a registry). */
export function counter<L extends string = string>(registry: Registry | undefined, config: Without<CounterConfiguration<L>>): Counter<L> {
  return getOrCreate(registry, config.name, (registers) => new Counter<L>({ ...config, registers }))
}

/** The gauge `config.name` on `registry` (created there when absent). */
export function gauge<L extends string = string>(registry: Registry | undefined, config: Without<GaugeConfiguration<L>>): Gauge<L> {
  return getOrCreate(registry, config.name, (registers) => new Gauge<L>({ ...config, registers }))
}

/** The histogram `config.name` on `registry` (created there when absent). */
export function histogram<L extends string = string>(
  registry: Registry | undefined,
  config: Without<HistogramConfiguration<L>>,
): Histogram<L> {
  return getOrCreate(registry, config.name, (registers) => new Histogram<L>({ ...config, registers }))
}

/**
 * prom-client's default metrics (its `lib/defaultMetrics.js`, 15.x) but `processCpuTotal`, by
 * their module names in `prom-client/lib/metrics/`. That one requires @opentelemetry/api (51
 * modules, about 2 MiB of RSS in every agent) for exemplars, which Shoal never turns on; its three
 * counters are made by `processCpuCounters` under the same names, help and values.
 * `test/metrics-process.test.ts` fails when prom-client's list changes.
 */
export const PROCESS_METRICS = [
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'eventLoopLag',
  'processResources',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
  'gc',
] as const

/** What `collectDefaultMetrics` would do, without @opentelemetry/api (see PROCESS_METRICS). */
export function collectProcessMetrics(registry: Registry, config: { eventLoopMonitoringPrecision: number }): void {
  for (const m of PROCESS_METRICS) {
    const register = require(`prom-client/lib/metrics/${m}`) as (registry: Registry, config: object) => void
    register(registry, config)
  }
  processCpuCounters(registry)
}

/** process_cpu_user_seconds_total, process_cpu_system_seconds_total and process_cpu_seconds_total, as prom-client defines them. */
function processCpuCounters(registry: Registry): void {
  let last = process.cpuUsage()
  const system = counter(registry, { name: 'process_cpu_system_seconds_total', help: 'Total system CPU time spent in seconds.' })
  const total = counter(registry, { name: 'process_cpu_seconds_total', help: 'Total user and system CPU time spent in seconds.' })
  counter(registry, {
    name: 'process_cpu_user_seconds_total',
    help: 'Total user CPU time spent in seconds.',
    // One collect sets all three, on each scrape (prom-client's own way).
    collect() {
      const now = process.cpuUsage()
      const user = now.user - last.user
      const sys = now.system - last.system
      last = now
      this.inc(user / 1e6)
      system.inc(sys / 1e6)
      total.inc((user + sys) / 1e6)
    },
  })
}
