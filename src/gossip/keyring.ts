/**
 * The gossip keyring: AES-256-GCM keys, the first one primary. Messages are sealed with
 * the primary key and opened with any key of the ring, so keys rotate without loss:
 * add the new key everywhere, make it primary everywhere, then remove the old one.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { ShoalError } from '../errors.js'

const KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16
const FINGERPRINT_BYTES = 8

/**
 * A key's public name: the first 8 bytes of its SHA-256, in hex (16 characters). Shown by
 * `shoal keyring list` and the API instead of the key, which it does not reveal.
 */
export function keyFingerprint(key: Uint8Array): string {
  return createHash('sha256').update(key).digest().subarray(0, FINGERPRINT_BYTES).toString('hex')
}

/** Fingerprints of the ring's own key buffers, so opening a packet does not hash the key again. */
const fingerprintCache = new WeakMap<Buffer, string>()
function cachedFingerprint(key: Buffer): string {
  let fp = fingerprintCache.get(key)
  if (fp === undefined) fingerprintCache.set(key, (fp = keyFingerprint(key)))
  return fp
}

/**
 * @example
 *   const ring = Keyring.fromBase64([process.env.KEY!])
 *   const sealed = ring.encrypt(Buffer.from('hi'), aad)
 *   ring.decrypt(sealed, aad) // <Buffer 68 69>
 */
export class Keyring {
  /** Bytes encrypt() adds: nonce (12) + tag (16). */
  static readonly overhead = NONCE_BYTES + TAG_BYTES

  /** Primary first. */
  private ring: Buffer[] = []

  constructor(keys: Uint8Array[]) {
    if (keys.length === 0) throw new ShoalError('SHOAL_ERR_KEY', 'keyring: at least one key is required')
    keys.forEach((k, i) => checkKey(k, `key #${i + 1}`))
    for (const k of keys) this.add(k)
  }

  /**
   * Keys as base64 strings (each 32 bytes once decoded). The error names the bad entry by
   * position, never by its text: it may be a secret.
   */
  static fromBase64(list: string[]): Keyring {
    const keys = list.map((s, i) => {
      const text = s.trim()
      const bytes = Buffer.from(text, 'base64')
      const canonical = bytes.toString('base64')
      const valid = /^[A-Za-z0-9+/]*={0,2}$/.test(text) && canonical.replace(/=+$/, '') === text.replace(/=+$/, '')
      if (!valid) throw new ShoalError('SHOAL_ERR_KEY', `key #${i + 1} of ${list.length}: not valid base64`)
      if (bytes.length !== KEY_BYTES) {
        throw new ShoalError(
          'SHOAL_ERR_KEY',
          `key #${i + 1} of ${list.length}: decodes to ${bytes.length} bytes, AES-256 needs ${KEY_BYTES}`,
        )
      }
      return bytes
    })
    return new Keyring(keys)
  }

  primary(): Buffer {
    return Buffer.from(this.ring[0]!)
  }

  /** Copies of every key, primary first. */
  keys(): Buffer[] {
    return this.ring.map((k) => Buffer.from(k))
  }

  /** keyFingerprint of every key, primary first. */
  fingerprints(): string[] {
    return this.ring.map(cachedFingerprint)
  }

  /** Adds a key as secondary; adding a key already in the ring does nothing. */
  add(key: Uint8Array): void {
    checkKey(key, 'added key')
    if (this.indexOf(key) >= 0) return
    this.ring.push(Buffer.from(key))
  }

  /** Makes a key of the ring primary. */
  use(key: Uint8Array): void {
    checkKey(key, 'key to use')
    const i = this.indexOf(key)
    if (i < 0) throw new ShoalError('SHOAL_ERR_KEY', 'keyring: the key to use as primary is not in the ring; add it first')
    const [k] = this.ring.splice(i, 1)
    this.ring.unshift(k!)
  }

  /** Removes a secondary key; removing a key not in the ring does nothing. */
  remove(key: Uint8Array): void {
    checkKey(key, 'key to remove')
    const i = this.indexOf(key)
    if (i === 0) throw new ShoalError('SHOAL_ERR_KEY', 'keyring: cannot remove the primary key; make another key primary first')
    if (i > 0) this.ring.splice(i, 1)
  }

  /** nonce | ciphertext | tag, with the primary key. */
  encrypt(plain: Uint8Array, aad: Uint8Array): Buffer {
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.ring[0]!, nonce)
    cipher.setAAD(aad)
    const body = cipher.update(plain)
    const final = cipher.final()
    return Buffer.concat([nonce, body, final, cipher.getAuthTag()])
  }

  /** Opens what encrypt() sealed, trying each key; SHOAL_ERR_AUTH when none fits. */
  decrypt(data: Uint8Array, aad: Uint8Array): Buffer {
    return this.decryptWithKey(data, aad).plain
  }

  /** decrypt(), and the fingerprint of the key that opened it (the sender's primary). */
  decryptWithKey(data: Uint8Array, aad: Uint8Array): { plain: Buffer; key: string } {
    if (data.length < Keyring.overhead) {
      throw new ShoalError(
        'SHOAL_ERR_DECODE',
        `encrypted message of ${data.length} bytes is shorter than nonce and tag (${Keyring.overhead})`,
      )
    }
    const nonce = data.subarray(0, NONCE_BYTES)
    const body = data.subarray(NONCE_BYTES, data.length - TAG_BYTES)
    const tag = data.subarray(data.length - TAG_BYTES)
    for (const key of this.ring) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, nonce)
        decipher.setAAD(aad)
        decipher.setAuthTag(tag)
        const out = decipher.update(body)
        return { plain: Buffer.concat([out, decipher.final()]), key: cachedFingerprint(key) }
      } catch {
        // wrong key or tampered: try the next key
      }
    }
    throw new ShoalError('SHOAL_ERR_AUTH', `message fails authentication with all ${this.ring.length} key(s) of the ring`)
  }

  private indexOf(key: Uint8Array): number {
    return this.ring.findIndex((k) => k.equals(key))
  }
}

function checkKey(key: Uint8Array, what: string): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    const len = key instanceof Uint8Array ? `${key.length} bytes` : typeof key
    throw new ShoalError('SHOAL_ERR_KEY', `keyring: ${what} is ${len}, AES-256 needs ${KEY_BYTES} bytes`)
  }
}
