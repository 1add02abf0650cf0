/**
 * Prometheus metrics read from the gossip layer and the catalog at scrape time. The parts
 * keep their own plain counters (GossipStats, the catalog snapshot); these collect()
 * callbacks copy them into prom-client when /metrics is read, so the hot paths never
 * touch prom-client. Every labelled series exists from the start, at zero for the label
 * values known then (Prometheus's instrumentation guide), so a quiet agent answers every
 * dashboard panel.
 */
import type { Metric } from 'prom-client'
import { Counter, Gauge, type Registry } from '../metrics.js'
import type { NetTransportStats } from '../gossip/index.js'
import type { BucketsSnapshot } from '../histogram.js'
import type { GossipStats, Member } from '../gossip/types.js'
import { JoinBackResult, JoinFailureReason, MemberState, RejectReason } from '../gossip/types.js'
import { limitLabel, RecordLimits } from '../registry/index.js'
import type { CatalogView, HostState } from '../registry/types.js'
import { liveRecordsOf, ServiceStatus, StatusReason } from '../registry/types.js'

const memberStates = Object.values(MemberState)
/** Statuses of live instances (a tombstone is never live). */
const liveStatuses = Object.values(ServiceStatus).filter((s) => s !== ServiceStatus.tombstone)
const drainReasons = [StatusReason.stopping, StatusReason.operator, StatusReason.agentLeaving]
/** The `limit` label values of the record limits (limits.ts). */
const limitLabels = (Object.keys(RecordLimits) as Array<keyof typeof RecordLimits>).map(limitLabel)
const hostStates: HostState[] = ['alive', 'suspect', 'dead', 'left']

/**
 * A histogram whose buckets are kept elsewhere (a `Buckets` of src/histogram.ts), exposed as
 * Prometheus histogram samples (`_bucket{le}` cumulative, `_sum`, `_count`) at scrape time.
 */
function mirrorHistogram(registry: Registry, name: string, help: string, read: () => BucketsSnapshot): void {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    labelNames: [],
    get() {
      const h = read()
      const values = h.cumulative.map((v, i) => ({
        metricName: `${name}_bucket`,
        labels: { le: i < h.bounds.length ? h.bounds[i]! : '+Inf' },
        value: v,
      }))
      values.push({ metricName: `${name}_sum`, labels: {} as never, value: h.sum })
      values.push({ metricName: `${name}_count`, labels: {} as never, value: h.count })
      return { name, help, type: 'histogram', aggregator: 'sum', values }
    },
    reset() {
      // the buckets belong to the part that observes them
    },
  }
  registry.registerMetric(metric as unknown as Metric)
}

/** A counter whose value is a running total kept elsewhere. */
function mirrorCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset()
      this.inc(Math.max(0, read()))
    },
  })
}

/**
 * A counter per value of one label whose totals are kept elsewhere; the `known` values are
 * reported from the start, at zero.
 */
function mirrorCounterByLabel(
  registry: Registry,
  name: string,
  help: string,
  label: string,
  read: () => Record<string, number>,
  known: readonly string[] = [],
): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset()
      for (const value of known) this.inc({ [label]: value }, 0)
      for (const [value, v] of Object.entries(read())) this.inc({ [label]: value }, Math.max(0, v))
    },
  })
}

/** A counter per `type` label whose totals are kept elsewhere. */
function mirrorCounterByType(registry: Registry, name: string, help: string, read: () => Record<string, number>): void {
  mirrorCounterByLabel(registry, name, help, 'type', read)
}

/**
 * Gossip metrics: members by state, packets and bytes by message type, probes, suspicions,
 * refutations, name conflicts, decode errors, queue depth and Lifeguard awareness; with
 * `transport` (the NetTransport's stats), its stream counters too.
 *
 * @example
 *   registerGossipMetrics(registry, () => gossip.stats(), () => gossip.members(), () => transport.stats())
 */
export function registerGossipMetrics(
  registry: Registry,
  stats: () => GossipStats,
  members: () => Member[],
  transport?: () => NetTransportStats,
): void {
  new Gauge({
    name: 'shoal_gossip_members',
    help: 'Gossip members known to this node, by state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(memberStates.map((s) => [s, 0]))
      for (const m of members()) counts.set(m.state, (counts.get(m.state) ?? 0) + 1)
      for (const [state, n] of counts) this.set({ state }, n)
    },
  })
  // One stats() call per scrape would be tidier, but each collect runs on its own; stats() is cheap.
  mirrorCounterByType(registry, 'shoal_gossip_packets_received_total', 'Gossip packets received, by message type.', () => stats().packetsIn)
  mirrorCounterByType(registry, 'shoal_gossip_packets_sent_total', 'Gossip packets sent, by message type.', () => stats().packetsOut)
  mirrorCounterByType(registry, 'shoal_gossip_bytes_received_total', 'Gossip bytes received, by message type.', () => stats().bytesIn)
  mirrorCounterByType(registry, 'shoal_gossip_bytes_sent_total', 'Gossip bytes sent, by message type.', () => stats().bytesOut)
  mirrorCounter(registry, 'shoal_gossip_probes_total', 'Failure-detector probes started.', () => stats().probes)
  mirrorCounter(registry, 'shoal_gossip_probes_failed_total', 'Probes that got no ack, direct or indirect.', () => stats().probesFailed)
  mirrorCounter(registry, 'shoal_gossip_suspicions_total', 'Members this node started suspecting.', () => stats().suspicions)
  mirrorCounter(
    registry,
    'shoal_gossip_refusal_deaths_total',
    'Members this node declared dead on refusal evidence: two members saw their stream ping refused (nothing listens on the gossip port of a host that answers), which ends the suspicion at half the shortest suspicion.',
    () => stats().refusedDeaths,
  )
  mirrorCounter(registry, 'shoal_gossip_refutations_total', 'Times this node refuted a suspicion about itself.', () => stats().refutations)
  mirrorCounter(
    registry,
    'shoal_gossip_name_conflicts_total',
    'Times two addresses were seen claiming one node name (join, alive or a conflict notice, which anyone can forge without keys).',
    () => stats().nameConflicts,
  )
  mirrorCounter(
    registry,
    'shoal_gossip_decode_errors_total',
    'Gossip messages dropped because they could not be decoded or authenticated.',
    () => stats().decodeErrors,
  )
  mirrorCounterByLabel(
    registry,
    'shoal_gossip_unknown_total',
    'Gossip messages of a type this version does not know (kind="message", skipped) or with fields after the known ones (kind="field", read without them): a newer peer in the cluster.',
    'kind',
    () => ({ message: stats().unknownMessages, field: stats().unknownFields }),
  )
  mirrorCounterByLabel(
    registry,
    'shoal_gossip_rejected_total',
    'Gossip packets and stream frames from other nodes that this node could not open, by reason (label, key, plain, encrypted, version, malformed).',
    'reason',
    () => stats().rejected,
    Object.values(RejectReason),
  )
  mirrorCounterByLabel(
    registry,
    'shoal_gossip_join_failures_total',
    'Seeds that did not take a join attempt of this node, by reason (refused, unresolvable, timeout, label, key, ...).',
    'reason',
    () => stats().joinFailures,
    Object.values(JoinFailureReason),
  )
  mirrorCounterByLabel(
    registry,
    'shoal_gossip_join_backs_total',
    'Join backs: this node, alone since its start, push-pulled with a member that probed it (a restarted seed), by result (joined, conflict: that member holds our name elsewhere, failed: the next probe retries).',
    'result',
    () => stats().joinBacks,
    Object.values(JoinBackResult),
  )
  mirrorCounter(registry, 'shoal_gossip_push_pulls_total', 'Full state exchanges (push-pull) started.', () => stats().pushPulls)
  mirrorCounter(registry, 'shoal_gossip_push_pulls_failed_total', 'Push-pull exchanges that failed.', () => stats().pushPullsFailed)
  new Gauge({
    name: 'shoal_gossip_queue_depth',
    help: 'Broadcasts waiting in the transmit queue.',
    registers: [registry],
    collect() {
      this.set(stats().queueDepth)
    },
  })
  new Gauge({
    name: 'shoal_gossip_awareness',
    help: 'Lifeguard local health multiplier (0 is healthy; higher means this node is slow).',
    registers: [registry],
    collect() {
      this.set(stats().awareness)
    },
  })
  mirrorHistogram(
    registry,
    'shoal_gossip_probe_rtt_seconds',
    'Failure-detector probes that were answered, from the ping to its ack (direct or through indirect probes).',
    () => stats().probeRttSeconds,
  )
  mirrorHistogram(
    registry,
    'shoal_gossip_push_pull_duration_seconds',
    'Push-pull exchanges this node started that completed, from the request to the merged answer.',
    () => stats().pushPullSeconds,
  )
  if (transport) registerTransportMetrics(registry, transport)
}

/** The gossip port's stream counters (NetTransport.stats()). */
function registerTransportMetrics(registry: Registry, stats: () => NetTransportStats): void {
  mirrorCounterByLabel(
    registry,
    'shoal_gossip_streams_refused_total',
    'Incoming gossip TCP streams closed before their request arrived, by reason (streams: too many open; bytes: too many request bytes in flight; oversize: frame over the request limit; deadline: request not complete within its deadline).',
    'reason',
    () => stats().streamsRefused,
  )
  mirrorCounter(
    registry,
    'shoal_gossip_stream_errors_total',
    'Failed gossip stream exchanges, either direction (refusals, timeouts, resets, bad frames).',
    () => stats().streamErrors,
  )
  mirrorCounter(
    registry,
    'shoal_gossip_oversize_frames_total',
    'Gossip stream frames over the size limit, either direction.',
    () => stats().oversizeFrames,
  )
  mirrorCounter(registry, 'shoal_gossip_handler_errors_total', 'Gossip packet or request handlers that threw.', () => stats().handlerErrors)
  new Gauge({
    name: 'shoal_gossip_incoming_streams',
    help: 'Incoming gossip TCP streams open now.',
    registers: [registry],
    collect() {
      this.set(stats().incomingStreams)
    },
  })
  new Gauge({
    name: 'shoal_gossip_incoming_bytes',
    help: 'Announced bytes of incoming gossip requests still arriving now.',
    registers: [registry],
    collect() {
      this.set(stats().incomingBytes)
    },
  })
}

/**
 * Catalog metrics, this agent's view of the whole cluster: live instances by status, overall
 * and per service; hosts by membership state; ServicePort conflicts.
 *
 * @example
 *   registerCatalogMetrics(registry, catalog, () => conflicts.list().length)
 */
export function registerCatalogMetrics(registry: Registry, catalog: CatalogView, conflicts: () => number = () => 0): void {
  new Gauge({
    name: 'shoal_catalog_instances',
    help: 'Live service instances in the cluster as this agent sees it (hosts alive or suspect, current boot), by status.',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(liveStatuses.map((s) => [s, 0]))
      for (const h of catalog.snapshot().hosts) for (const r of liveRecordsOf(h)) counts.set(r.status, (counts.get(r.status) ?? 0) + 1)
      for (const [status, n] of counts) this.set({ status }, n)
    },
  })
  new Gauge({
    name: 'shoal_catalog_draining',
    help: 'Draining service instances of alive or suspect hosts, by the reason their owner gives (none: an owner of an earlier release).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>([...drainReasons, 'none'].map((r) => [r, 0]))
      for (const h of catalog.snapshot().hosts)
        for (const r of liveRecordsOf(h))
          if (r.status === 'draining') counts.set(r.reason ?? 'none', (counts.get(r.reason ?? 'none') ?? 0) + 1)
      for (const [reason, n] of counts) this.set({ reason }, n)
    },
  })
  new Gauge({
    name: 'shoal_service_instances',
    help: 'Live instances of each service in the cluster as this agent sees it, by status; a service whose instances all went (a dead host) stays at 0 while the catalog holds its records.',
    labelNames: ['service', 'status'],
    registers: [registry],
    collect() {
      const snap = catalog.snapshot()
      const counts = new Map<string, Map<string, number>>()
      const of = (name: string): Map<string, number> => {
        let m = counts.get(name)
        if (!m) counts.set(name, (m = new Map(liveStatuses.map((s) => [s, 0]))))
        return m
      }
      for (const h of snap.hosts) {
        for (const r of h.services) of(r.name)
        for (const r of liveRecordsOf(h)) {
          const m = of(r.name)
          m.set(r.status, (m.get(r.status) ?? 0) + 1)
        }
      }
      // Services gone from the catalog lose their series.
      this.reset()
      for (const [service, m] of counts) for (const [status, n] of m) this.set({ service, status }, n)
    },
  })
  new Gauge({
    name: 'shoal_catalog_hosts',
    help: 'Hosts in the catalog, by membership state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(hostStates.map((s) => [s, 0]))
      for (const h of catalog.snapshot().hosts) counts.set(h.state, (counts.get(h.state) ?? 0) + 1)
      for (const [state, n] of counts) this.set({ state }, n)
    },
  })
  new Gauge({
    name: 'shoal_catalog_seq',
    help: 'Local change sequence number of the catalog (rises on every change).',
    registers: [registry],
    collect() {
      this.set(catalog.snapshot().seq)
    },
  })
  new Gauge({
    name: 'shoal_catalog_serviceport_conflicts',
    help: 'ServicePorts claimed by more than one service name (only the first name is served).',
    registers: [registry],
    collect() {
      this.set(conflicts())
    },
  })
}

/**
 * `shoal_build_info{version, node, cluster} 1`: which release runs where (join it on
 * `instance` to label other series).
 */
export function registerBuildInfo(registry: Registry, info: { version: string; node: string; cluster: string }): void {
  new Gauge({
    name: 'shoal_build_info',
    help: 'Always 1; its labels say which Shoal release this agent runs, its node name and its cluster.',
    labelNames: ['version', 'node', 'cluster'],
    registers: [registry],
  }).set(info, 1)
}

/** What the registry counts for /metrics (the agent reads it from LocalServices and GossipBridge). */
export interface RegistryMetricsSource {
  /** Records this owner served trimmed to fit the record limits, by limit (`label-value`, ...). */
  trimmed: Record<string, number>
  /** Records this owner refused because they could not fit, by limit. */
  refused: Record<string, number>
  /** Local instances that started draining, by reason (`stopping`, `operator`, `agent-leaving`). */
  drains: Record<string, number>
  /** Records from peers this decoder rejected, by reason (a limit or `malformed`). */
  rejected: Record<string, number>
  /** Registry messages of a type this release does not know (a newer peer's). */
  unknownMessages: number
  /** Records or ports with fields after the ones this release knows (kept and passed on). */
  unknownFields: number
  /** Version notices: this owner's handed to gossip (`sent`), others' first copies (`received`), those whose inline records filled the gap (`applied`). */
  notices: { sent: number; received: number; applied: number }
  /** Pulls after notices (`since` requests) and digest comparisons after a burst, by result (`ok`, `failed`). */
  noticePulls: { ok: number; failed: number }
}

/**
 * Registry metrics: the record limits at the owner (trimmed, refused) and at a peer
 * (rejected), and what a newer peer sent that this release does not know.
 *
 * @example
 *   registerRegistryMetrics(registry, () => ({ ...local.stats, rejected: bridge.stats.recordsRejected, ... }))
 */
export function registerRegistryMetrics(registry: Registry, stats: () => RegistryMetricsSource): void {
  mirrorCounterByLabel(
    registry,
    'shoal_registry_records_trimmed_total',
    'Local records served with something cut to fit the record limits (a truncated value, dropped labels), by limit.',
    'limit',
    () => stats().trimmed,
    limitLabels,
  )
  mirrorCounterByLabel(
    registry,
    'shoal_registry_records_refused_total',
    'Local records not served because they could not fit the record limits, by limit.',
    'limit',
    () => stats().refused,
    limitLabels,
  )
  mirrorCounterByLabel(
    registry,
    'shoal_registry_drains_total',
    'Local instances that started draining, by reason: stopping (their container got its stop signal), operator (shoal drain), agent-leaving.',
    'reason',
    () => stats().drains,
    drainReasons,
  )
  mirrorCounterByLabel(
    registry,
    'shoal_registry_records_rejected_total',
    "Records from peers this agent's decoder rejected (their neighbours kept), by reason: a limit or malformed.",
    'reason',
    () => stats().rejected,
    [...limitLabels, 'malformed'],
  )
  mirrorCounterByLabel(
    registry,
    'shoal_registry_unknown_total',
    'Registry messages of a type this release does not know (kind="message", skipped) or records with fields after the known ones (kind="field", kept and passed on).',
    'kind',
    () => ({ message: stats().unknownMessages, field: stats().unknownFields }),
  )
  mirrorCounterByLabel(
    registry,
    'shoal_registry_notices_total',
    'Version notices (docs/gossip.md): this owner\'s handed to gossip (kind="sent"), other owners\' first copies (kind="received"), and those whose inline records filled the gap at once (kind="applied"); received minus applied needed a pull or were already held.',
    'kind',
    () => stats().notices,
  )
  mirrorCounterByLabel(
    registry,
    'shoal_registry_notice_pulls_total',
    'Pulls of records after version notices (since requests to the member that told, then the owner), by result: ok, or failed (the next teller is asked; push-pull repairs the rest).',
    'result',
    () => stats().noticePulls,
  )
}

/**
 * Every metric of `registry` as a Markdown table (metric, type, labels, meaning), sorted by
 * name: the README's list (`npm run readme:metrics`; test/metrics-conventions.test.ts fails
 * while the README differs from what a running agent registers).
 */
export function metricsTable(registry: Registry): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim()
  const rows = registry
    .getMetricsAsArray()
    .map((m) => m as unknown as { name: string; help: string; type: string; labelNames?: readonly string[] })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((m) => {
      const labels = (m.labelNames ?? []).map((l) => `\`${l}\``).join(', ')
      return `| \`${m.name}\` | ${m.type} | ${labels} | ${esc(m.help)} |`
    })
  return ['| metric | type | labels | meaning |', '|---|---|---|---|', ...rows].join('\n')
}
