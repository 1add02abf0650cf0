/**
 * Inbound mTLS ports of the local Envoy (`--inbound-ports FROM-TO`, README, mTLS between Envoy
 * sidecars): each local instance and ServicePort gets a port of the range, kept while the
 * instance is there, and its record says so in the label `shoal.inbound`
 * (`SERVICEPORT=IP:PORT,...`, IP the advertise address), which other hosts' Envoys read to reach
 * it over mTLS. The label is the agent's: a source that sets it has it removed, with a warning.
 */
import type { Registry } from 'prom-client'
import { logProblem, type Logger, type Problem } from '../log.js'
import { counter } from '../metrics.js'
import { INBOUND_LABEL, type LocalServiceSpec } from '../registry/index.js'
import { formatInboundLabel } from '../xds/index.js'

export class InboundPorts {
  private readonly byKey = new Map<string, number>()
  private readonly used = new Set<number>()
  /** The keys (`id|servicePort`) each source holds now. */
  private readonly perSource = new Map<string, Set<string>>()
  private readonly warned = new Set<string>()
  private readonly problems

  constructor(
    private readonly range: { from: number; to: number } | undefined,
    private readonly ip: string,
    private readonly log: Logger,
    registry?: Registry,
  ) {
    this.problems = counter(registry, {
      name: 'shoal_inbound_port_problems_total',
      help: 'Inbound mTLS ports not given as asked: source_label (a source set shoal.inbound, removed), range_full (--inbound-ports exhausted)',
      labelNames: ['reason'],
    })
  }

  /** One source's specs with their inbound label set (or removed, without `--inbound-ports`). */
  decorate(source: string, specs: LocalServiceSpec[]): LocalServiceSpec[] {
    const keyOf = (id: string, servicePort: number) => `${id}|${servicePort}`
    // This source's current instances first: a full range reclaims only ports of instances no
    // source lists now, this report included.
    this.perSource.set(
      source,
      new Set(specs.flatMap((s) => s.ports.filter((p) => p.type === 'tcp').map((p) => keyOf(s.id, p.servicePort)))),
    )
    return specs.map((spec) => {
      const labels = { ...spec.labels }
      if (labels[INBOUND_LABEL] !== undefined) {
        this.once(
          `set:${spec.id}`,
          'source_label',
          { id: spec.id, service: spec.name, source, origin: spec.origin, value: labels[INBOUND_LABEL] },
          {
            what: `label ${INBOUND_LABEL} is set by the agent (from --inbound-ports), not by a source: removed`,
            input: spec.origin ?? `${source} instance ${spec.id}`,
            fix: 'drop it from the container or the static file',
          },
        )
        delete labels[INBOUND_LABEL]
      }
      if (this.range) {
        const entries: Array<[number, { ip: string; port: number }]> = []
        for (const p of spec.ports) {
          if (p.type !== 'tcp') continue
          const key = keyOf(spec.id, p.servicePort)
          const port = this.portOf(key)
          if (port !== undefined) entries.push([p.servicePort, { ip: this.ip, port }])
        }
        if (entries.length) labels[INBOUND_LABEL] = formatInboundLabel(entries)
      }
      return { ...spec, labels }
    })
  }

  private portOf(key: string): number | undefined {
    const had = this.byKey.get(key)
    if (had !== undefined) return had
    let port = this.free()
    if (port === undefined) {
      // Full: ports of instances no source lists any more go back to the range.
      const current = new Set([...this.perSource.values()].flatMap((s) => [...s]))
      for (const [k, p] of this.byKey) {
        if (current.has(k)) continue
        this.byKey.delete(k)
        this.used.delete(p)
      }
      port = this.free()
    }
    if (port === undefined) {
      this.once(
        `full:${key}`,
        'range_full',
        { key, range: `${this.range!.from}-${this.range!.to}` },
        {
          what: `no inbound port left in --inbound-ports ${this.range!.from}-${this.range!.to}: this instance is not reachable over mTLS`,
          input: '--inbound-ports',
          fix: 'widen the range',
        },
      )
      return undefined
    }
    this.byKey.set(key, port)
    this.used.add(port)
    return port
  }

  private free(): number | undefined {
    for (let p = this.range!.from; p <= this.range!.to; p++) if (!this.used.has(p)) return p
    return undefined
  }

  /** Warn and count once per key (a source re-reports its whole set on every change). */
  private once(key: string, reason: 'source_label' | 'range_full', fields: Record<string, unknown>, problem: Problem): void {
    if (this.warned.has(key)) return
    this.warned.add(key)
    this.problems.inc({ reason })
    logProblem(this.log, 'warn', problem, fields)
  }
}
