/**
 * Timing profiles of the gossip layer (docs/architecture.md, "Timing defaults"). `lan` is the
 * default, `local` is fast for tests on one machine, `wan` is slow and tolerant.
 *
 * @example
 *   const timing = resolveTiming('local', { probeIntervalMs: 100 })
 */
import { ShoalError } from '../errors.js'

export interface Timing {
  probeIntervalMs: number
  probeTimeoutMs: number
  /** k: members asked to ping a target that missed its direct ack. */
  indirectChecks: number
  suspicionMult: number
  suspicionMaxMult: number
  gossipIntervalMs: number
  gossipFanout: number
  retransmitMult: number
  /** Base interval; scaled up above 32 members. */
  pushPullIntervalMs: number
  /** Dead members still receive gossip for this long. */
  gossipToTheDeadMs: number
  /** A push-pull with one random dead member this often (heals partitions). */
  reconnectIntervalMs: number
  /** Awareness score is kept in [0, awarenessMax - 1]. */
  awarenessMax: number
  /** Timeout of one stream exchange (push-pull, stream ping, oversized broadcast). */
  streamTimeoutMs: number
  /** Early gossip rounds (after a new application broadcast) are at least this far apart. */
  earlyGossipGapMs: number
  /** Token bucket of early rounds: capacity and refill per second. */
  earlyGossipBurst: number
  earlyGossipPerSec: number
  /** Dead and left members are forgotten after this long. */
  reapAfterMs: number
}

const common = {
  awarenessMax: 8,
  earlyGossipGapMs: 20,
  earlyGossipBurst: 4,
  earlyGossipPerSec: 10,
  reapAfterMs: 24 * 3600_000,
} as const

export const Profiles = {
  // Faster than memberlist's LAN defaults (1 s, mult 4): the shortest suspicion at 50
  // members is 3 x log10(50) x 0.7 s = 3.6 s instead of 6.8 s, and one independent
  // confirmation (k = mult - 2 = 1) brings a suspicion to it; probes at 0.7 s keep the UDP
  // traffic at rest at about 1.4 x that of 1 s probes.
  lan: {
    ...common,
    probeIntervalMs: 700,
    probeTimeoutMs: 350,
    indirectChecks: 3,
    suspicionMult: 3,
    suspicionMaxMult: 6,
    gossipIntervalMs: 200,
    gossipFanout: 3,
    retransmitMult: 4,
    pushPullIntervalMs: 30_000,
    gossipToTheDeadMs: 30_000,
    reconnectIntervalMs: 10_000,
    streamTimeoutMs: 10_000,
  },
  local: {
    ...common,
    probeIntervalMs: 200,
    probeTimeoutMs: 100,
    indirectChecks: 2,
    suspicionMult: 3,
    suspicionMaxMult: 6,
    gossipIntervalMs: 50,
    gossipFanout: 3,
    retransmitMult: 3,
    pushPullIntervalMs: 5_000,
    gossipToTheDeadMs: 5_000,
    reconnectIntervalMs: 2_000,
    streamTimeoutMs: 2_000,
  },
  wan: {
    ...common,
    probeIntervalMs: 5000,
    probeTimeoutMs: 3000,
    indirectChecks: 3,
    suspicionMult: 6,
    suspicionMaxMult: 6,
    gossipIntervalMs: 500,
    gossipFanout: 4,
    retransmitMult: 4,
    pushPullIntervalMs: 60_000,
    gossipToTheDeadMs: 60_000,
    reconnectIntervalMs: 30_000,
    streamTimeoutMs: 20_000,
  },
} as const satisfies Record<string, Timing>

export type ProfileName = keyof typeof Profiles

/** Datagram size limit, every header and the encryption overhead included. */
export const DEFAULT_MTU = 1400
/** Node metadata limit (msgpack-encoded). */
export const MAX_META_BYTES = 512

/** The timing of a profile with overrides; throws SHOAL_ERR_CONFIG on an unknown profile or bad value. */
export function resolveTiming(profile: string = 'lan', overrides: Partial<Timing> = {}): Timing {
  if (!Object.hasOwn(Profiles, profile)) {
    throw new ShoalError('SHOAL_ERR_CONFIG', `gossip profile "${profile}" is not one of ${Object.keys(Profiles).join(', ')}`)
  }
  const t: Timing = { ...Profiles[profile as ProfileName], ...overrides }
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new ShoalError('SHOAL_ERR_CONFIG', `gossip timing ${k}=${String(v)} is not a non-negative number`)
    }
  }
  if (t.probeTimeoutMs > t.probeIntervalMs) {
    throw new ShoalError(
      'SHOAL_ERR_CONFIG',
      `gossip timing probeTimeoutMs=${t.probeTimeoutMs} exceeds probeIntervalMs=${t.probeIntervalMs}`,
    )
  }
  if (t.awarenessMax < 1) throw new ShoalError('SHOAL_ERR_CONFIG', `gossip timing awarenessMax=${t.awarenessMax} must be >= 1`)
  return t
}

/** Push-pull interval scaled with cluster size: x (ceil(log2(n) - 5) + 1) above 32 members. */
export function pushPullInterval(baseMs: number, n: number): number {
  if (n <= 32) return baseMs
  return baseMs * (Math.ceil(Math.log2(n) - 5) + 1)
}

/** Retransmit limit of one broadcast: mult x ceil(log10(n + 1)). */
export function retransmitLimit(mult: number, n: number): number {
  return mult * Math.ceil(Math.log10(n + 1))
}
