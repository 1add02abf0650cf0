/**
 * Public API of the gossip layer. Everything not listed here is internal.
 *
 * @example
 *   import { Gossip, NetTransport } from './gossip/index.js'
 */
export { Gossip, parseAddress } from './gossip.js'
export type { GossipOptions, GossipComponents, JoinOptions } from './gossip.js'
export { Profiles, DEFAULT_MTU, MAX_META_BYTES, resolveTiming, pushPullInterval, retransmitLimit } from './config.js'
export type { Timing, ProfileName } from './config.js'
export { shortestSuspicionMs } from './suspicion.js'
export { GOSSIP_PROTOCOL, gossipProtocolOf } from './messages.js'
export { NetTransport, StreamRefusal } from './transport-net.js'
export type { NetTransportOptions, NetTransportStats } from './transport-net.js'
export { SimNetwork } from './transport-sim.js'
export type { SimNetworkOptions, SimHostStats, SimTap, SimFilter, SimTrafficKind } from './transport-sim.js'
export { Keyring, keyFingerprint } from './keyring.js'
export { Wire, WIRE_VERSION } from './wire.js'
export type { WireStats } from './wire.js'
export { MemberState, MEMBER_EVENTS, RejectReason, JoinFailureReason, JoinBackResult } from './types.js'
export type {
  Address,
  Clock,
  Timer,
  Transport,
  PacketHandler,
  RequestHandler,
  Member,
  MemberEvent,
  StateDelegate,
  MessageHandler,
  GossipEvents,
  GossipStats,
  JoinAttempt,
  KeyUse,
  SeedFailure,
  Rejection,
} from './types.js'
