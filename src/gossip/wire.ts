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
 */
import { ShoalError } from '../errors.js'
import { crc32 } from './crc32.js'
import { Keyring } from './keyring.js'

export const WIRE_VERSION = 1
const ENCRYPTED_FLAG = 0x80
const CRC_BYTES = 4
const MAX_LABEL_BYTES = 255

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

  /** The payload of a sealed packet; throws only ShoalError, whatever the bytes. */
  open(packet: Uint8Array): Buffer {
    try {
      const out = this.openUnchecked(packet)
      this.counters.opened++
      return out
    } catch (err) {
      const shoal =
        err instanceof ShoalError
          ? err
          : new ShoalError('SHOAL_ERR_DECODE', `undecodable packet of ${packet?.length} bytes`, { cause: err })
      this.counters.errors[shoal.code] = (this.counters.errors[shoal.code] ?? 0) + 1
      throw shoal
    }
  }

  stats(): WireStats {
    return { ...this.counters, errors: { ...this.counters.errors } }
  }

  private openUnchecked(packet: Uint8Array): Buffer {
    if (!(packet instanceof Uint8Array)) throw new ShoalError('SHOAL_ERR_DECODE', 'packet is not bytes')
    const buf = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength)
    if (buf.length < 2) throw new ShoalError('SHOAL_ERR_DECODE', `packet of ${buf.length} bytes is shorter than its header`)
    const version = buf[0]! & ~ENCRYPTED_FLAG
    if (version !== WIRE_VERSION) throw new ShoalError('SHOAL_ERR_VERSION', `packet version ${version}, this node speaks ${WIRE_VERSION}`)
    const isEncrypted = (buf[0]! & ENCRYPTED_FLAG) !== 0
    const labelLen = buf[1]!
    const bodyStart = 2 + labelLen
    if (buf.length < bodyStart) {
      throw new ShoalError('SHOAL_ERR_DECODE', `packet of ${buf.length} bytes is truncated inside its ${labelLen}-byte label`)
    }
    const labelBytes = buf.subarray(2, bodyStart)
    if (!labelBytes.equals(this.header.subarray(2))) {
      throw new ShoalError(
        'SHOAL_ERR_LABEL',
        `packet label ${JSON.stringify(labelBytes.toString('utf8'))} does not match this cluster's label ${JSON.stringify(this.label)}`,
      )
    }
    const body = buf.subarray(bodyStart)
    if (isEncrypted) {
      if (!this.keyring) {
        this.counters.encryptedRejected++
        throw new ShoalError('SHOAL_ERR_AUTH', 'encrypted packet, but this node has no keys')
      }
      if (body.length < Keyring.overhead) {
        throw new ShoalError(
          'SHOAL_ERR_DECODE',
          `encrypted packet of ${buf.length} bytes is truncated (nonce and tag need ${Keyring.overhead})`,
        )
      }
      return this.keyring.decrypt(body, buf.subarray(0, bodyStart))
    }
    if (this.keyring) {
      this.counters.plainRejected++
      throw new ShoalError('SHOAL_ERR_AUTH', 'plain (unencrypted) packet, but this node requires encryption')
    }
    if (body.length < CRC_BYTES) {
      throw new ShoalError('SHOAL_ERR_DECODE', `packet of ${buf.length} bytes is truncated (no room for its CRC)`)
    }
    const end = buf.length - CRC_BYTES
    const want = buf.readUInt32BE(end)
    const got = crc32(buf.subarray(0, end))
    if (want !== got) throw new ShoalError('SHOAL_ERR_CRC', `packet CRC ${hex(want)} does not match its content (${hex(got)})`)
    return Buffer.from(buf.subarray(bodyStart, end))
  }
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0')
}
