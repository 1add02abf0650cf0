/**
 * The envelope around every gossip packet and stream frame:
 *
 *   byte 0      version (1), | 0x80 when the body is encrypted
 *   byte 1      label length L (0..255)
 *   2..2+L      cluster label, UTF-8
 *   encrypted:  nonce(12) | ciphertext | tag(16), bytes 0..2+L as additional authenticated data
 *   plain:      payload | CRC-32 (big-endian) of every byte before it
 *
 * The flag makes a node with keys drop plain packets and a node without keys drop
 * encrypted ones, each with its own error and counter.
 *
 * A stream frame that cannot be opened is answered with a refusal, so that a joining node
 * can say why (docs/gossip.md, "Wire"):
 *
 *   refusal     | 0x00 | reason (1) |     reason: 1 label, 2 key, 3 plain, 4 encrypted, 5 version, 6 malformed
 *
 * It is not authenticated and carries nothing but the reason; every reason is something the
 * sender can learn anyway (the label travels in clear in every envelope, the flag byte shows
 * whether a node encrypts, and a failed GCM tag says nothing about the keys). It only ever
 * answers a TCP connection, so it cannot be aimed at a third party.
 */
import { ShoalError, type ErrorCode } from '../errors.js'
import { crc32 } from './crc32.js'
import { Keyring } from './keyring.js'
import { RejectReason } from './types.js'

export const WIRE_VERSION = 1
const ENCRYPTED_FLAG = 0x80
const CRC_BYTES = 4
const MAX_LABEL_BYTES = 255
const REFUSAL_VERSION = 0
/** Reason byte of a refusal = index + 1. Append only: the numbers are on the wire. */
const REFUSAL_REASONS: readonly RejectReason[] = [
  RejectReason.label,
  RejectReason.key,
  RejectReason.plain,
  RejectReason.encrypted,
  RejectReason.version,
  RejectReason.malformed,
]

/** A packet or frame this node cannot open, with the reason in the terms of RejectReason. */
export class WireError extends ShoalError {
  constructor(
    code: ErrorCode,
    readonly reason: RejectReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options)
  }
}

/** The reason of an error thrown by Wire.open (any ShoalError is mapped by its code). */
export function rejectReasonOf(err: unknown): RejectReason {
  if (err instanceof WireError) return err.reason
  if (err instanceof ShoalError) {
    if (err.code === 'SHOAL_ERR_AUTH') return RejectReason.key
    if (err.code === 'SHOAL_ERR_LABEL') return RejectReason.label
    if (err.code === 'SHOAL_ERR_VERSION') return RejectReason.version
  }
  return RejectReason.malformed
}

/** The answer to a stream frame that could not be opened: 2 bytes, see the header. */
export function encodeRefusal(reason: RejectReason): Buffer {
  return Buffer.from([REFUSAL_VERSION, REFUSAL_REASONS.indexOf(reason) + 1])
}

/** The reason of a refusal, or undefined when the bytes are not one (a sealed answer never is). */
export function decodeRefusal(bytes: Uint8Array): RejectReason | undefined {
  if (bytes.length !== 2 || bytes[0] !== REFUSAL_VERSION) return undefined
  return REFUSAL_REASONS[bytes[1]! - 1] ?? RejectReason.malformed
}

/** Counters of Wire.open(), by outcome. */
export interface WireStats {
  opened: number
  sealed: number
  /** Failures by error code (SHOAL_ERR_VERSION, SHOAL_ERR_LABEL, ...). */
  errors: Record<string, number>
  /** Plain packets dropped because this node has keys. */
  plainRejected: number
  /** Encrypted packets dropped because this node has no keys. */
  encryptedRejected: number
}

/**
 * @example
 *   const wire = new Wire({ label: 'prod', keyring: Keyring.fromBase64([key]) })
 *   const packet = wire.seal(payload)      // payload.length + wire.overhead bytes
 *   wire.open(packet)                      // payload, or throws ShoalError
 */
export class Wire {
  private readonly label: string
  private readonly header: Buffer
  private keyring: Keyring | undefined
  private readonly counters: WireStats = { opened: 0, sealed: 0, errors: {}, plainRejected: 0, encryptedRejected: 0 }

  constructor(opts: { label: string; keyring?: Keyring }) {
    const labelBytes = Buffer.from(opts.label, 'utf8')
    if (labelBytes.length > MAX_LABEL_BYTES) {
      throw new ShoalError(
        'SHOAL_ERR_LABEL',
        `cluster label "${opts.label.slice(0, 40)}..." is ${labelBytes.length} bytes in UTF-8, at most ${MAX_LABEL_BYTES}`,
      )
    }
    this.label = opts.label
    this.header = Buffer.concat([Buffer.from([WIRE_VERSION, labelBytes.length]), labelBytes])
    this.keyring = opts.keyring
  }

  /** The exact number of bytes seal() adds to a payload. */
  get overhead(): number {
    return this.header.length + (this.keyring ? Keyring.overhead : CRC_BYTES)
  }

  get encrypted(): boolean {
    return this.keyring !== undefined
  }

  /** Switches encryption on (a ring), off (undefined), or to another ring. */
  setKeyring(k: Keyring | undefined): void {
    this.keyring = k
  }

  seal(payload: Uint8Array): Buffer {
    this.counters.sealed++
    if (this.keyring) {
      const head = Buffer.from(this.header)
      head[0] = WIRE_VERSION | ENCRYPTED_FLAG
      return Buffer.concat([head, this.keyring.encrypt(payload, head)])
    }
    const out = Buffer.allocUnsafe(this.header.length + payload.length + CRC_BYTES)
    this.header.copy(out, 0)
    out.set(payload, this.header.length)
    const end = out.length - CRC_BYTES
    out.writeUInt32BE(crc32(out.subarray(0, end)), end)
    return out
  }

  /** The payload of a sealed packet; throws only WireError (a ShoalError with a RejectReason), whatever the bytes. */
  open(packet: Uint8Array): Buffer {
    return this.openWithKey(packet).payload
  }

  /**
   * The payload and the fingerprint of the key that opened it (undefined for a plain packet):
   * the key the sender seals with, its primary. Throws WireError like open().
   */
  openWithKey(packet: Uint8Array): { payload: Buffer; key: string | undefined } {
    try {
      const out = this.openUnchecked(packet)
      this.counters.opened++
      return out
    } catch (err) {
      const wire =
        err instanceof WireError
          ? err
          : err instanceof ShoalError
            ? new WireError(err.code, rejectReasonOf(err), err.message, { cause: err.cause })
            : new WireError('SHOAL_ERR_DECODE', RejectReason.malformed, `undecodable packet of ${packet?.length} bytes`, { cause: err })
      this.counters.errors[wire.code] = (this.counters.errors[wire.code] ?? 0) + 1
      throw wire
    }
  }

  stats(): WireStats {
    return { ...this.counters, errors: { ...this.counters.errors } }
  }

  private openUnchecked(packet: Uint8Array): { payload: Buffer; key: string | undefined } {
    const malformed = (message: string) => new WireError('SHOAL_ERR_DECODE', RejectReason.malformed, message)
    if (!(packet instanceof Uint8Array)) throw malformed('packet is not bytes')
    const buf = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength)
    if (buf.length < 2) throw malformed(`packet of ${buf.length} bytes is shorter than its header`)
    const version = buf[0]! & ~ENCRYPTED_FLAG
    if (version !== WIRE_VERSION) {
      throw new WireError('SHOAL_ERR_VERSION', RejectReason.version, `packet version ${version}, this node speaks ${WIRE_VERSION}`)
    }
    const isEncrypted = (buf[0]! & ENCRYPTED_FLAG) !== 0
    const labelLen = buf[1]!
    const bodyStart = 2 + labelLen
    if (buf.length < bodyStart) throw malformed(`packet of ${buf.length} bytes is truncated inside its ${labelLen}-byte label`)
    const labelBytes = buf.subarray(2, bodyStart)
    if (!labelBytes.equals(this.header.subarray(2))) {
      throw new WireError(
        'SHOAL_ERR_LABEL',
        RejectReason.label,
        `packet label ${JSON.stringify(labelBytes.toString('utf8'))} does not match this cluster's label ${JSON.stringify(this.label)}`,
      )
    }
    const body = buf.subarray(bodyStart)
    if (isEncrypted) {
      if (!this.keyring) {
        this.counters.encryptedRejected++
        throw new WireError('SHOAL_ERR_AUTH', RejectReason.encrypted, 'encrypted packet, but this node has no keys')
      }
      if (body.length < Keyring.overhead) {
        throw malformed(`encrypted packet of ${buf.length} bytes is truncated (nonce and tag need ${Keyring.overhead})`)
      }
      const { plain, key } = this.keyring.decryptWithKey(body, buf.subarray(0, bodyStart))
      return { payload: plain, key }
    }
    if (this.keyring) {
      this.counters.plainRejected++
      throw new WireError('SHOAL_ERR_AUTH', RejectReason.plain, 'plain (unencrypted) packet, but this node requires encryption')
    }
    if (body.length < CRC_BYTES) throw malformed(`packet of ${buf.length} bytes is truncated (no room for its CRC)`)
    const end = buf.length - CRC_BYTES
    const want = buf.readUInt32BE(end)
    const got = crc32(buf.subarray(0, end))
    if (want !== got) {
      throw new WireError('SHOAL_ERR_CRC', RejectReason.malformed, `packet CRC ${hex(want)} does not match its content (${hex(got)})`)
    }
    return { payload: Buffer.from(buf.subarray(bodyStart, end)), key: undefined }
  }
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0')
}
