/**
 * Prometheus metrics read from the gossip layer and the catalog at scrape time. The parts
 * keep their own plain counters (GossipStats, the catalog snapshot); these collect()
 * callbacks copy them into prom-client when /metrics is read, so the hot paths never
 * touch prom-client.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import type { GossipStats, Member } from '../gossip/types.js'
import { MemberState } from '../gossip/types.js'
import type { CatalogView, HostState } from '../registry/types.js'
import { liveRecordsOf, ServiceStatus, StatusReason } from '../registry/types.js'

const memberStates = Object.values(MemberState)
const serviceStatuses = Object.values(ServiceStatus)
const drainReasons = [StatusReason.stopping, StatusReason.operator, StatusReason.agentLeaving]
const hostStates: HostState[] = ['alive', 'suspect', 'dead', 'left']

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

/** A counter per value of one label whose totals are kept elsewhere. */
function mirrorCounterByLabel(registry: Registry, name: string, help: string, label: string, read: () => Record<string, number>): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset()
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
 * refutations, decode errors, queue depth and Lifeguard awareness.
 *
 * @example
 *   registerGossipMetrics(registry, () => gossip.stats(), () => gossip.members())
 */
export function registerGossipMetrics(registry: Registry, stats: () => GossipStats, members: () => Member[]): void {
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
  mirrorCounter(registry, 'shoal_gossip_refutations_total', 'Times this node refuted a suspicion about itself.', () => stats().refutations)
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
  )
  mirrorCounterByLabel(
    registry,
    'shoal_gossip_join_failures_total',
    'Seeds that did not take a join attempt of this node, by reason (refused, unresolvable, timeout, label, key, ...).',
    'reason',
    () => stats().joinFailures,
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
}

/**
 * Catalog metrics: instances of live hosts by status, and hosts by membership state.
 *
 * @example
 *   registerCatalogMetrics(registry, catalog)
 */
export function registerCatalogMetrics(registry: Registry, catalog: CatalogView, conflicts: () => number = () => 0): void {
  new Gauge({
    name: 'shoal_catalog_serviceport_conflicts',
    help: 'ServicePorts claimed by more than one service name (only the first name is served).',
    registers: [registry],
    collect() {
      this.set(conflicts())
    },
  })
  new Gauge({
    name: 'shoal_catalog_services',
    help: 'Service instances of alive or suspect hosts (current boot), by status.',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(serviceStatuses.map((s) => [s, 0]))
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
    name: 'shoal_catalog_hosts',
    help: 'Hosts in the catalog, by state.',
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
  )
  mirrorCounterByLabel(
    registry,
    'shoal_registry_records_refused_total',
    'Local records not served because they could not fit the record limits, by limit.',
    'limit',
    () => stats().refused,
  )
  mirrorCounterByLabel(
    registry,
    'shoal_registry_drains_total',
    'Local instances that started draining, by reason: stopping (their container got its stop signal), operator (shoal drain), agent-leaving.',
    'reason',
    () => stats().drains,
  )
  mirrorCounterByLabel(
    registry,
    'shoal_registry_records_rejected_total',
    "Records from peers this agent's decoder rejected (their neighbours kept), by reason: a limit or malformed.",
    'reason',
    () => stats().rejected,
  )
  mirrorCounterByLabel(
    registry,
    'shoal_registry_unknown_total',
    'Registry messages of a type this release does not know (kind="message", skipped) or records with fields after the known ones (kind="field", kept and passed on).',
    'kind',
    () => ({ message: stats().unknownMessages, field: stats().unknownFields }),
  )
}
