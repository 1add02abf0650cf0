/**
 * Contracts of the gossip layer: the injected clock and transport, the member record,
 * the application delegate and the public events. The gossip layer knows nothing about
 * services; the registry talks to it only through these shapes and `Gossip` (index.ts).
 */

import type { HostPort } from '../address.js'

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
  /** One request, one response over a stream; rejects on timeout, refusal or a too large frame. */
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
  conflict: [info: { name: string; localAddr: string; remoteAddr: string }]
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
  refutations: number
  /** Packets, stream frames and compound parts dropped as undecodable, unauthenticated or malformed. */
  decodeErrors: number
  /** Messages of a type this version does not know (a newer peer's), skipped. */
  unknownMessages: number
  /** Messages carrying fields after the ones this version knows (a newer peer's), read without them. */
  unknownFields: number
  queueDepth: number
  awareness: number
  pushPulls: number
  pushPullsFailed: number
}
