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
import {
  Counter,
  Gauge,
  Histogram,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
  type Registry,
} from 'prom-client'

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
