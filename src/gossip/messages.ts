/**
 * Gossip messages and their codec: every message is msgpack `[type, [fields...]]`; a
 * compound message carries several encoded messages in one payload. Decoding validates
 * every field this version knows and throws ShoalError SHOAL_ERR_DECODE naming what is wrong.
 *
 * Compatibility (README "Upgrades"): a newer release may append fields to a message and add
 * message types, never change or remove a field. So a decoder ignores fields after the ones
 * it knows and skips message types it does not know, counting both in `DecodeNotes`; a
 * compound's parts are decoded one by one, so one bad or unknown part never costs the others.
 * `GOSSIP_PROTOCOL` (in every member's metadata as `proto`) says which messages a member knows.
 */
import { Packr, Unpackr } from 'msgpackr'
import { ShoalError } from '../errors.js'
import { MAX_META_BYTES } from './config.js'
import { MemberState } from './types.js'

export const MessageType = {
  ping: 1,
  indirectPing: 2,
  ack: 3,
  nack: 4,
  suspect: 5,
  alive: 6,
  dead: 7,
  user: 8,
  compound: 9,
  pushPull: 10,
  streamPing: 11,
  appRequest: 12,
  appResponse: 13,
  error: 14,
  conflict: 15,
} as const
export type MessageType = (typeof MessageType)[keyof typeof MessageType]

/** Names of message types, for counters and logs. */
export const MessageTypeName: Record<number, string> = Object.fromEntries(Object.entries(MessageType).map(([k, v]) => [v, k]))

/**
 * The version of this message set, advertised in every member's metadata as `proto`. 1: the
 * first release (strict decoders: exactly the known fields, no unknown types); 2: decoders that
 * ignore trailing fields and unknown types. Raised when a message type or field is added.
 */
export const GOSSIP_PROTOCOL = 2

/** The `proto` a member advertises; members of release 1 advertise none. */
export function gossipProtocolOf(meta: Readonly<Record<string, string>>): number {
  const v = Number(meta.proto)
  return Number.isSafeInteger(v) && v >= 1 ? v : 1
}

/**
 * What a decoder met that this version does not know, counted by the caller: messages of an
 * unknown type (skipped), messages with fields after the known ones (read without them), and
 * malformed parts of a compound (skipped, the other parts kept).
 */
export interface DecodeNotes {
  unknownTypes: number
  extraFields: number
  malformedParts: number
}

/** A fresh set of notes. */
export function decodeNotes(): DecodeNotes {
  return { unknownTypes: 0, extraFields: 0, malformedParts: 0 }
}

export const MAX_NAME_BYTES = 255
const MAX_SEQ = 2 ** 32 - 1
const MAX_INC = Number.MAX_SAFE_INTEGER

/** A member as carried by push-pull. */
export interface MemberRecord {
  name: string
  addr: string
  port: number
  meta: Record<string, string>
  inc: number
  state: MemberState
}

export interface PingMsg {
  type: typeof MessageType.ping
  seq: number
  target: string
  from: string
  addr: string
  port: number
}
export interface IndirectPingMsg {
  type: typeof MessageType.indirectPing
  seq: number
  target: string
  addr: string
  port: number
  from: string
  fromAddr: string
  fromPort: number
  nack: boolean
}
export interface AckMsg {
  type: typeof MessageType.ack
  seq: number
}
export interface NackMsg {
  type: typeof MessageType.nack
  seq: number
}
export interface SuspectMsg {
  type: typeof MessageType.suspect
  name: string
  inc: number
  from: string
  /**
   * `from`'s own stream ping to the member was refused (a TCP reset: the member's host is up
   * and nothing listens on its gossip port). Written only when true, as a 4th field, which
   * releases before it ignore; see docs/gossip.md, "Refusal evidence".
   */
  refused?: boolean
}
export interface AliveMsg {
  type: typeof MessageType.alive
  name: string
  inc: number
  addr: string
  port: number
  meta: Record<string, string>
}
export interface DeadMsg {
  type: typeof MessageType.dead
  name: string
  inc: number
  from: string
}
/** An application broadcast: `id` is random per broadcast so a node applies it once. */
export interface UserMsg {
  type: typeof MessageType.user
  origin: string
  id: number
  key: string
  payload: Uint8Array
}
export interface CompoundMsg {
  type: typeof MessageType.compound
  parts: Uint8Array[]
}
export interface PushPullMsg {
  type: typeof MessageType.pushPull
  join: boolean
  from: string
  members: MemberRecord[]
  state: Uint8Array | null
}
export interface StreamPingMsg {
  type: typeof MessageType.streamPing
  seq: number
  target: string
}
export interface AppRequestMsg {
  type: typeof MessageType.appRequest
  from: string
  payload: Uint8Array
}
export interface AppResponseMsg {
  type: typeof MessageType.appResponse
  payload: Uint8Array
}
export interface ErrorMsg {
  type: typeof MessageType.error
  code: string
  message: string
}
/** Tells a member that another node at (otherAddr, otherPort) tried to use its name. */
export interface ConflictMsg {
  type: typeof MessageType.conflict
  name: string
  otherAddr: string
  otherPort: number
}

export type Message =
  | PingMsg
  | IndirectPingMsg
  | AckMsg
  | NackMsg
  | SuspectMsg
  | AliveMsg
  | DeadMsg
  | UserMsg
  | CompoundMsg
  | PushPullMsg
  | StreamPingMsg
  | AppRequestMsg
  | AppResponseMsg
  | ErrorMsg
  | ConflictMsg

const packr = new Packr({ useRecords: false, variableMapSize: true })
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false })

function bin(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

function fields(m: Message): unknown[] {
  switch (m.type) {
    case MessageType.ping:
      return [m.seq, m.target, m.from, m.addr, m.port]
    case MessageType.indirectPing:
      return [m.seq, m.target, m.addr, m.port, m.from, m.fromAddr, m.fromPort, m.nack]
    case MessageType.ack:
      return [m.seq]
    case MessageType.nack:
      return [m.seq]
    case MessageType.suspect:
      return m.refused === true ? [m.name, m.inc, m.from, true] : [m.name, m.inc, m.from]
    case MessageType.alive:
      return [m.name, m.inc, m.addr, m.port, m.meta]
    case MessageType.dead:
      return [m.name, m.inc, m.from]
    case MessageType.user:
      return [m.origin, m.id, m.key, bin(m.payload)]
    case MessageType.compound:
      return m.parts.map(bin)
    case MessageType.pushPull:
      return [m.join, m.from, m.members.map((r) => [r.name, r.addr, r.port, r.meta, r.inc, r.state]), m.state ? bin(m.state) : null]
    case MessageType.streamPing:
      return [m.seq, m.target]
    case MessageType.appRequest:
      return [m.from, bin(m.payload)]
    case MessageType.appResponse:
      return [bin(m.payload)]
    case MessageType.error:
      return [m.code, m.message]
    case MessageType.conflict:
      return [m.name, m.otherAddr, m.otherPort]
  }
}

/** Encode one message (a compound included) as msgpack `[type, fields]`. */
export function encodeMessage(m: Message): Buffer {
  return packr.pack([m.type, fields(m)])
}

/** Bytes a compound adds around its parts: fixed header, plus `COMPOUND_PART_OVERHEAD` per part. */
export const COMPOUND_HEADER = 5
export const COMPOUND_PART_OVERHEAD = 3

/** Encode several already encoded messages as one compound; a single part is returned as is. */
export function encodeCompound(parts: Uint8Array[]): Buffer {
  if (parts.length === 1) return bin(parts[0]!)
  return encodeMessage({ type: MessageType.compound, parts })
}

/** Encoded size of a metadata map. */
export function metaSize(meta: Record<string, string>): number {
  return packr.pack(meta).length
}

class Reader {
  constructor(
    private readonly f: unknown[],
    private readonly what: string,
    private readonly notes: DecodeNotes | undefined,
  ) {}
  private i = 0
  private next(): unknown {
    return this.f[this.i++]
  }
  private bad(why: string): never {
    throw new ShoalError('SHOAL_ERR_DECODE', `${this.what} field ${this.i - 1}: ${why}`)
  }
  str(maxBytes: number, allowEmpty = false): string {
    const v = this.next()
    if (typeof v !== 'string') this.bad('not a string')
    if (!allowEmpty && v.length === 0) this.bad('empty string')
    if (Buffer.byteLength(v) > maxBytes) this.bad(`string longer than ${maxBytes} bytes`)
    return v
  }
  int(min: number, max: number): number {
    const v = this.next()
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.bad(`not an integer in [${min}, ${max}]`)
    return v
  }
  bool(): boolean {
    const v = this.next()
    if (typeof v !== 'boolean') this.bad('not a boolean')
    return v
  }
  bytes(max = Infinity): Uint8Array {
    const v = this.next()
    if (!(v instanceof Uint8Array)) this.bad('not binary')
    if (v.length > max) this.bad(`binary longer than ${max} bytes`)
    return v
  }
  bytesOrNull(): Uint8Array | null {
    const v = this.f[this.i]
    if (v === null) {
      this.i++
      return null
    }
    return this.bytes()
  }
  meta(): Record<string, string> {
    const v = this.next()
    return checkMeta(
      v,
      () => this.bad('metadata is not a map of strings'),
      (n) => this.bad(`metadata of ${n} bytes exceeds ${MAX_META_BYTES}`),
    )
  }
  array(): unknown[] {
    const v = this.next()
    if (!Array.isArray(v)) this.bad('not an array')
    return v
  }
  /** An optional field follows (a later addition that older senders leave out). */
  more(): boolean {
    return this.i < this.f.length
  }
  /** The known fields are read: more of them is a newer sender's addition (counted, ignored); fewer is an error. */
  end(): void {
    if (this.i > this.f.length) throw new ShoalError('SHOAL_ERR_DECODE', `${this.what}: ${this.f.length} fields, expected ${this.i}`)
    if (this.i < this.f.length && this.notes) this.notes.extraFields++
  }
}

function checkMeta(v: unknown, notMap: () => never, tooBig: (n: number) => never): Record<string, string> {
  if (!(v instanceof Map)) notMap()
  const out: Record<string, string> = {}
  for (const [k, val] of v) {
    if (typeof k !== 'string' || typeof val !== 'string') notMap()
    Object.defineProperty(out, k, { value: val, enumerable: true, writable: true, configurable: true })
  }
  const n = metaSize(out)
  if (n > MAX_META_BYTES) tooBig(n)
  return out
}

const memberStates = new Set<string>(Object.values(MemberState))

function record(v: unknown, idx: number, notes: DecodeNotes | undefined): MemberRecord {
  if (!Array.isArray(v)) throw new ShoalError('SHOAL_ERR_DECODE', `pushPull member ${idx}: not an array`)
  const r = new Reader(v, `pushPull member ${idx}`, notes)
  const name = r.str(MAX_NAME_BYTES)
  const addr = r.str(MAX_NAME_BYTES)
  const port = r.int(0, 65535)
  const meta = r.meta()
  const inc = r.int(0, MAX_INC)
  const state = r.str(16)
  if (!memberStates.has(state)) throw new ShoalError('SHOAL_ERR_DECODE', `pushPull member ${idx}: unknown state "${state}"`)
  r.end()
  return { name, addr, port, meta, inc, state: state as MemberState }
}

function fromFields(type: number, f: unknown[], notes: DecodeNotes | undefined): Message {
  const what = MessageTypeName[type] ?? `type ${type}`
  const r = new Reader(f, what, notes)
  let m: Message
  switch (type) {
    case MessageType.ping:
      m = {
        type,
        seq: r.int(0, MAX_SEQ),
        target: r.str(MAX_NAME_BYTES),
        from: r.str(MAX_NAME_BYTES),
        addr: r.str(MAX_NAME_BYTES),
        port: r.int(1, 65535),
      }
      break
    case MessageType.indirectPing:
      m = {
        type,
        seq: r.int(0, MAX_SEQ),
        target: r.str(MAX_NAME_BYTES),
        addr: r.str(MAX_NAME_BYTES),
        port: r.int(1, 65535),
        from: r.str(MAX_NAME_BYTES),
        fromAddr: r.str(MAX_NAME_BYTES),
        fromPort: r.int(1, 65535),
        nack: r.bool(),
      }
      break
    case MessageType.ack:
      m = { type, seq: r.int(0, MAX_SEQ) }
      break
    case MessageType.nack:
      m = { type, seq: r.int(0, MAX_SEQ) }
      break
    case MessageType.suspect:
      m = { type, name: r.str(MAX_NAME_BYTES), inc: r.int(0, MAX_INC), from: r.str(MAX_NAME_BYTES) }
      if (r.more() && r.bool()) m.refused = true
      break
    case MessageType.alive:
      m = { type, name: r.str(MAX_NAME_BYTES), inc: r.int(0, MAX_INC), addr: r.str(MAX_NAME_BYTES), port: r.int(1, 65535), meta: r.meta() }
      break
    case MessageType.dead:
      m = { type, name: r.str(MAX_NAME_BYTES), inc: r.int(0, MAX_INC), from: r.str(MAX_NAME_BYTES) }
      break
    case MessageType.user:
      m = {
        type,
        origin: r.str(MAX_NAME_BYTES),
        id: r.int(0, Number.MAX_SAFE_INTEGER),
        key: r.str(MAX_NAME_BYTES, true),
        payload: r.bytes(),
      }
      break
    case MessageType.compound: {
      if (f.length === 0) throw new ShoalError('SHOAL_ERR_DECODE', 'compound: no parts')
      const parts: Uint8Array[] = []
      for (let i = 0; i < f.length; i++) parts.push(r.bytes())
      m = { type, parts }
      break
    }
    case MessageType.pushPull: {
      const join = r.bool()
      const from = r.str(MAX_NAME_BYTES)
      const members = r.array().map((v, i) => record(v, i, notes))
      m = { type, join, from, members, state: r.bytesOrNull() }
      break
    }
    case MessageType.streamPing:
      m = { type, seq: r.int(0, MAX_SEQ), target: r.str(MAX_NAME_BYTES) }
      break
    case MessageType.appRequest:
      m = { type, from: r.str(MAX_NAME_BYTES), payload: r.bytes() }
      break
    case MessageType.appResponse:
      m = { type, payload: r.bytes() }
      break
    case MessageType.error:
      m = { type, code: r.str(64), message: r.str(1024, true) }
      break
    case MessageType.conflict:
      m = { type, name: r.str(MAX_NAME_BYTES), otherAddr: r.str(MAX_NAME_BYTES), otherPort: r.int(1, 65535) }
      break
    default:
      if (notes) notes.unknownTypes++
      throw new ShoalError('SHOAL_ERR_UNKNOWN_TYPE', `message type ${String(type)} is not known to this version (a newer peer's)`)
  }
  r.end()
  return m
}

/**
 * Decode one message. Throws SHOAL_ERR_DECODE on anything malformed and SHOAL_ERR_UNKNOWN_TYPE
 * on a type this version does not know (counted in `notes`); fields after the known ones are
 * ignored (counted in `notes`).
 */
export function decodeMessage(buf: Uint8Array, notes?: DecodeNotes): Message {
  let v: unknown
  try {
    v = unpackr.unpack(bin(buf))
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_DECODE', `not msgpack: ${(err as Error).message}`)
  }
  if (!Array.isArray(v) || v.length < 2 || typeof v[0] !== 'number' || !Array.isArray(v[1])) {
    throw new ShoalError('SHOAL_ERR_DECODE', 'not a [type, fields] message')
  }
  if (v.length > 2 && notes) notes.extraFields++
  return fromFields(v[0], v[1], notes)
}

/**
 * Decode a datagram payload into the messages this version knows: a single message, or the
 * parts of a compound, each decoded on its own. Throws SHOAL_ERR_DECODE when the payload
 * itself (or its only message) is malformed. Parts of an unknown type, and malformed parts of
 * a compound (a compound nested in a compound included), are skipped and counted in `notes`.
 */
export function decodePacket(buf: Uint8Array, notes?: DecodeNotes): Exclude<Message, CompoundMsg>[] {
  let m: Message
  try {
    m = decodeMessage(buf, notes)
  } catch (err) {
    if ((err as ShoalError).code === 'SHOAL_ERR_UNKNOWN_TYPE') return []
    throw err
  }
  if (m.type !== MessageType.compound) return [m]
  const out: Exclude<Message, CompoundMsg>[] = []
  for (const p of m.parts) {
    let inner: Message
    try {
      inner = decodeMessage(p, notes)
    } catch (err) {
      if ((err as ShoalError).code !== 'SHOAL_ERR_UNKNOWN_TYPE' && notes) notes.malformedParts++
      continue
    }
    if (inner.type === MessageType.compound) {
      if (notes) notes.malformedParts++
      continue
    }
    out.push(inner)
  }
  return out
}
