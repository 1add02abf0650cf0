// A Gossip node under test on the simulator, and a raw "peer" transport that speaks the
// wire format by hand: it injects messages, answers pings for any name, and records what
// the node sends. Used by the rule-table and probe tests.
import { VirtualClock } from '../../src/clock.js'
import { Gossip, type GossipOptions } from '../../src/gossip/gossip.js'
import { MessageType, decodePacket, encodeCompound, encodeMessage, type Message } from '../../src/gossip/messages.js'
import { SimNetwork } from '../../src/gossip/transport-sim.js'
import type { Address, Member } from '../../src/gossip/types.js'
import { Wire } from '../../src/gossip/wire.js'
import { silentLogger } from '../../src/log.js'
import { seeded } from './gossip-sim.js'

export interface Rig {
  clock: VirtualClock
  net: SimNetwork
  g: Gossip
  gAddr: Address
  peerAddr: Address
  wire: Wire
  /** Messages the node sent to the peer, decoded. */
  received: Message[]
  /** The same, one array per datagram. */
  packets: Message[][]
  /** Answer pings addressed to these names (default: every name). */
  answer: (target: string) => boolean
  send(...msgs: Message[]): Promise<void>
  member(name: string): Member | undefined
  stop(): Promise<void>
}

export async function rig(opts: Partial<GossipOptions> = {}): Promise<Rig> {
  const clock = new VirtualClock()
  const random = seeded(7)
  const net = new SimNetwork(clock, { latencyMs: 1, random })
  const g = new Gossip(
    { name: 'me', cluster: 'sim', profile: 'local', ...opts },
    { transport: net.transport('10.0.0.1'), clock, logger: silentLogger(), random },
  )
  const gAddr = await (async () => {
    await g.start()
    const m = g.localMember()
    return { host: m.addr, port: m.port }
  })()
  const peer = net.transport('10.0.0.2')
  const peerAddr = await peer.start()
  const wire = new Wire({ label: 'sim' })
  const r: Rig = {
    clock,
    net,
    g,
    gAddr,
    peerAddr,
    wire,
    received: [],
    packets: [],
    answer: () => true,
    async send(...msgs) {
      peer.sendPacket(gAddr, wire.seal(encodeCompound(msgs.map(encodeMessage))))
      await clock.advance(5)
    },
    member: (name) => g.members().find((m) => m.name === name),
    async stop() {
      await g.stop()
      await peer.stop()
    },
  }
  peer.onPacket((data) => {
    let msgs: Message[]
    try {
      msgs = decodePacket(wire.open(data))
    } catch {
      return
    }
    r.received.push(...msgs)
    r.packets.push(msgs)
    for (const m of msgs) {
      if (m.type === MessageType.ping && r.answer(m.target)) {
        peer.sendPacket({ host: m.addr, port: m.port }, wire.seal(encodeMessage({ type: MessageType.ack, seq: m.seq })))
      }
    }
  })
  return r
}

/** An alive message for a fake member living at the peer's address. */
export function alive(r: Rig, name: string, inc: number, meta: Record<string, string> = {}): Message {
  return { type: MessageType.alive, name, inc, addr: r.peerAddr.host, port: r.peerAddr.port, meta }
}
