/**
 * Contracts of the gossip layer: the injected clock and transport, the member record,
 * the application delegate and the public events. The gossip layer knows nothing about
 * services; the registry talks to it only through these shapes and `Gossip` (index.ts).
 */

import type { HostPort } from '../address.js'
import type { BucketsSnapshot } from '../histogram.js'

export type { Clock, Timer } from '../clock.js'

/** A member's or socket's address: the project's one HOST:PORT type. */
export type Address = HostPort

/** The handler of a stream request: answer with bytes, or undefined to close without answer. */
export type RequestHandler = (data: Uint8Array, from: Address) => Promise<Uint8Array | undefined>
export type PacketHandler = (data: Uint8Array, from: Address) => void

/**
 * Network, injected: a real UDP+TCP transport on one port number (transport-net.ts) or a
 * simulated one (transport-sim.ts). Packets are unreliable datagrams; a stream exchange is
 * one request and one response (push-pull, the fallback ping, oversized messages).
 * The transport moves opaque bytes: labels, encryption and encoding live above it.
 *
 * @example
 *   const addr = await transport.start()        // port 0 resolved
 *   transport.sendPacket({ host: '127.0.0.1', port: 7946 }, bytes)
 *   const reply = await transport.request(peer, bytes, 2000)
 */
export interface Transport {
  /** Bind; resolves to the bound address (port 0 replaced by the real port). Idempotent. */
  start(): Promise<Address>
  /** Close sockets and abort pending requests. Idempotent. */
  stop(): Promise<void>
  sendPacket(to: Address, data: Uint8Array): void
  onPacket(handler: PacketHandler): void
  /**
   * One request, one response over a stream. Rejects SHOAL_ERR_STREAM on timeout, refusal,
   * reset or a too large frame; its `cause.code` says which when known: a Node errno
   * (ECONNREFUSED, ENOTFOUND, EAI_AGAIN, EHOSTUNREACH, ...), ETIMEDOUT for no answer in
   * time, ECLOSED for a peer that closed without an answer.
   */
  request(to: Address, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>
  onRequest(handler: RequestHandler): void
}

export const MemberState = {
  alive: 'alive',
  suspect: 'suspect',
  dead: 'dead',
  left: 'left',
} as const
export type MemberState = (typeof MemberState)[keyof typeof MemberState]

/** What the gossip layer knows about one node. Only a node itself raises its incarnation. */
export interface Member {
  name: string
  addr: string
  port: number
  /**
   * Small application metadata (<= 512 bytes encoded); always holds `boot` and `proto` (the
   * gossip message protocol version, messages.ts GOSSIP_PROTOCOL; absent on release 1).
   */
  meta: Readonly<Record<string, string>>
  /** The random id of this node's current start, also `meta.boot`. */
  bootId: string
  incarnation: number
  state: MemberState
  /** Clock.now() of the last state change, as seen by this node. */
  stateChangedAt: number
}

/**
 * Application state carried by push-pull. `localState` is sent to the peer, and the peer's
 * blob is handed to `mergeRemoteState`. Both run on every push-pull (join = true when it
 * is the push-pull of a join).
 */
export interface StateDelegate {
  localState(join: boolean): Uint8Array
  mergeRemoteState(data: Uint8Array, join: boolean, from: Member): void
}

/**
 * Receives an application broadcast (`Gossip.onMessage`): the payload, the member that
 * originated it, and the member whose datagram carried it here (`via`; the origin itself when it
 * came straight from it, undefined when the sender's address matches no member). What it returns
 * decides the relay: nothing or `true` relays at once (the default, as SWIM does); `false` does
 * not relay; a promise relays when it resolves `true`, so a handler can first fetch what the
 * message refers to and pass it on only once it holds it (docs/gossip.md, Dissemination).
 */
export type MessageHandler = (payload: Uint8Array, from: string, via?: string) => void | boolean | Promise<boolean>

/** The membership events of `Gossip`, the one list consumers subscribe to (GossipEvents below). */
export const MEMBER_EVENTS = ['join', 'update', 'suspect', 'alive', 'dead', 'left'] as const
export type MemberEvent = (typeof MEMBER_EVENTS)[number]

/** Events of `Gossip` (an EventEmitter). */
export interface GossipEvents {
  /** A member seen for the first time, or alive again after dead/left. */
  join: [member: Member]
  /** A member's metadata, address or incarnation changed while alive. */
  update: [member: Member]
  suspect: [member: Member]
  /** A suspect member refuted and is alive again. */
  alive: [member: Member]
  dead: [member: Member]
  left: [member: Member]
  /** Another node claims our name from another address (or we see two for one name). */
  /** At most once a minute per name; `suppressed`: conflicts about it held back since the last event. */
  conflict: [info: { name: string; localAddr: string; remoteAddr: string; suppressed: number }]
  /** A packet or stream frame from another node could not be opened (see Rejection). */
  rejected: [info: Rejection]
}

/**
 * Why a packet or stream frame from another node was not opened: the `reason` label of
 * `shoal_gossip_rejected_total`, and what a refusal frame tells a joining node (wire.ts).
 */
export const RejectReason = {
  /** Another cluster's label. */
  label: 'label',
  /** Encrypted, but no key of the ring opens it. */
  key: 'key',
  /** Plain (unencrypted) to a node that requires encryption. */
  plain: 'plain',
  /** Encrypted to a node without keys. */
  encrypted: 'encrypted',
  /** Another wire version. */
  version: 'version',
  /** Truncated, a bad CRC, or a message that does not decode. */
  malformed: 'malformed',
} as const
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason]

/**
 * How a "join back" ended (gossip.ts joinBack: a node alone since its start push-pulls with a
 * member that probes it): the `result` label of `shoal_gossip_join_backs_total`.
 */
export const JoinBackResult = {
  /** The push-pull completed: the node learnt the prober's view of the cluster. */
  joined: 'joined',
  /** The prober holds this node's name at another address: refused (a name conflict). */
  conflict: 'conflict',
  /** Any other failure; the next probe from a member it does not know tries again. */
  failed: 'failed',
} as const
export type JoinBackResult = (typeof JoinBackResult)[keyof typeof JoinBackResult]

/**
 * Why a seed did not take a join: a RejectReason (the seed refused our frame, or we could not
 * open its answer), or a network or peer failure. The `reason` label of
 * `shoal_gossip_join_failures_total`.
 */
export const JoinFailureReason = {
  ...RejectReason,
  /** Connection refused: nothing listens at that address. */
  refused: 'refused',
  /** The seed's host name does not resolve. */
  unresolvable: 'unresolvable',
  /** No answer within the stream timeout. */
  timeout: 'timeout',
  /** No route, host down, reset, or another socket error. */
  unreachable: 'unreachable',
  /** The seed closed the stream without an answer. */
  closed: 'closed',
  /** The seed has too many push-pulls in flight. */
  busy: 'busy',
  /** The seed answered with another error. */
  error: 'error',
} as const
export type JoinFailureReason = (typeof JoinFailureReason)[keyof typeof JoinFailureReason]

/** One seed of a join attempt that did not answer, and why. */
export interface SeedFailure {
  /** The seed as given (HOST:PORT). */
  seed: string
  reason: JoinFailureReason
  /** The seed answered with a refusal frame: it could not open our frame (else, for a RejectReason, we could not open its answer). */
  refusedBySeed: boolean
  /** The failure in words, naming the seed. */
  message: string
}

/**
 * The outcome of one join attempt, handed to `join({ onAttempt })` after every round, so a
 * caller can say why a join does not succeed while it retries.
 */
export interface JoinAttempt {
  /** 0 for the first round. */
  attempt: number
  /** Seeds that answered in this round (0 when it failed). */
  answered: number
  /** Seeds that did not, with the reason (also when another seed answered). */
  failures: SeedFailure[]
  /** When no seed answered and join retries: the wait before the next round, in ms. */
  retryInMs?: number
}

/**
 * Traffic from another node that this node could not open: raised as the `rejected` event
 * of Gossip for every packet and stream frame refused (count, log and rate-limit in the caller).
 */
export interface Rejection {
  /** The sender's address (HOST:PORT); a stream's port is its ephemeral one. */
  from: string
  via: 'packet' | 'stream'
  reason: RejectReason
  /** The wire's error message (names the label, the number of keys tried, ...). */
  message: string
}

/**
 * What `Gossip.keyUse()` reports: this node's keys, by fingerprint (never the key), and which
 * live members seal their traffic with each (their primary), as learnt from what they sent us.
 *
 * @example
 *   { keys: [{ fingerprint: '3f2a9c0d1e2b4a5f', primary: true, members: ['a', 'b'] }], unknown: ['c'] }
 */
export interface KeyUse {
  /** keyFingerprint of each key of the ring, primary first; empty without keys. */
  keys: Array<{ fingerprint: string; primary: boolean; members: string[] }>
  /** Live members not heard from directly yet (no ping, push-pull or request from them since start). */
  unknown: string[]
}

/** Counters exposed by the gossip layer; the agent maps them to Prometheus. */
export interface GossipStats {
  packetsIn: Record<string, number>
  packetsOut: Record<string, number>
  bytesIn: Record<string, number>
  bytesOut: Record<string, number>
  probes: number
  probesFailed: number
  suspicions: number
  /** Suspicions this node ended at once because REFUSALS_FOR_DEATH members saw their stream ping refused (docs/gossip.md, "Refusal evidence"). */
  refusedDeaths: number
  refutations: number
  /** Times two addresses were seen claiming one node name (a conflict notice, alive or join); each logged at most once a minute per name. */
  nameConflicts: number
  /** Packets, stream frames and compound parts dropped as undecodable, unauthenticated or malformed. */
  decodeErrors: number
  /** Messages of a type this version does not know (a newer peer's), skipped. */
  unknownMessages: number
  /** Messages carrying fields after the ones this version knows (a newer peer's), read without them. */
  unknownFields: number
  /** Packets and stream frames not opened, by RejectReason. */
  rejected: Record<string, number>
  /** Seeds that did not take a join attempt, by JoinFailureReason. */
  joinFailures: Record<string, number>
  /** Join backs (a push-pull with an unknown prober while alone), by JoinBackResult. */
  joinBacks: Record<JoinBackResult, number>
  queueDepth: number
  awareness: number
  pushPulls: number
  pushPullsFailed: number
  /** Direct or indirect probes, from the ping to its ack (failed probes are not in it). */
  probeRttSeconds: BucketsSnapshot
  /** Push-pulls this node started that completed, from the request to the merged answer. */
  pushPullSeconds: BucketsSnapshot
}
