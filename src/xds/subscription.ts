/**
 * One stream's state for one resource type (state of the world): what the client subscribes
 * to, what it holds as far as the server can know, and the nonce / ACK / NACK bookkeeping of
 * the xDS protocol ("ACK/NACK and resource type instance version", "When to send an update",
 * "How the client specifies what resources to return" in Envoy's xDS protocol doc). The
 * server (server.ts) decides what to send; this file only keeps the books, so delta xDS can
 * reuse it.
 *
 * What the client holds: the content of the last response sent (optimistic: a NACK falls back
 * to the last ACKed content), narrowed when the client unsubscribes names. A client that
 * reconnects with a `version_info` holds a version, not a content: when that version is the
 * content hash of what the server would send now, the server knows the content; otherwise it
 * holds "something earlier", null here, and the server treats every subscribed resource as
 * possibly held (removals stay last).
 */
import type { XdsType } from './protos.js'
import { isRestoredVariant, versionOfSet, type ServedResource } from './snapshot.js'

/** The fields of a DiscoveryRequest this file reads (keepCase, as the ADS method decodes them). */
export interface SubscriptionRequest {
  version_info?: string
  resource_names?: string[]
  response_nonce?: string
  error_detail?: { code?: number; message?: string } | null
}

/** What one request meant. */
export type RequestOutcome =
  /** The nonce is not the last one sent (xDS protocol: a stale nonce): not answered, ACK/NACK ignored, names applied. */
  | { kind: 'stale'; nonce: string; changed: boolean; added: boolean }
  /** A first request for the type on this stream (no nonce, or nothing sent yet). */
  | { kind: 'initial'; changed: boolean; added: boolean; versionInfo: string }
  /**
   * The nonce was ACKed or NACKed already (Envoy re-sends its last request, error_detail and
   * all, when its subscription changes): names applied, no ACK or NACK booked again.
   */
  | { kind: 'repeat'; nonce: string; changed: boolean; added: boolean }
  | { kind: 'ack'; changed: boolean; added: boolean; version: string | null }
  | { kind: 'nack'; changed: boolean; added: boolean; version: string; error: string }

const EMPTY: ReadonlyMap<string, ServedResource> = new Map()

/**
 * @example
 *   const sub = new TypeSubscription(xdsType(TypeUrl.cluster)!)
 *   const o = sub.onRequest({ resource_names: ['echo:10001'] })   // { kind: 'initial', ... }
 *   sub.recordSent('v1', content, 'n1', null)
 *   sub.onRequest({ resource_names: ['echo:10001'], version_info: 'v1', response_nonce: 'n1' }) // { kind: 'ack', ... }
 */
export class TypeSubscription {
  /** Wildcard: every resource of the type (`*`, or the legacy empty list for LDS and CDS). */
  wildcard = false
  /** Only ever sent empty lists so far: an empty list still means wildcard (legacy). */
  private legacy = true
  names: Set<string> = new Set()
  nonce: string | null = null
  /** Version of the last response sent (or the version a reconnecting client says it holds). */
  sentVersion: string | null = null
  /** What the client holds: see the file header. Null: unknown (it reconnected holding an older version). */
  held: ReadonlyMap<string, ServedResource> | null = EMPTY
  ackedVersion: string | null = null
  acked: ReadonlyMap<string, ServedResource> | null = EMPTY
  /** Versions the client rejected: never sent again. */
  readonly nacked = new Set<string>()
  lastNack: { version: string; error: string } | null = null
  /** Nonce of the last response the client ACKed or NACKed. */
  private answeredNonce: string | null = null
  /** The last response is neither ACKed nor NACKed yet. */
  inFlight = false
  /** The next sync must send a response even when the content equals what the client holds. */
  mustAnswer = false
  /** Clock.now() of the catalog change the in-flight response carries (for the latency metric). */
  changeAt: number | null = null
  pushes = 0
  /** Full-set types: resources deleted from the client (by omission); true when it held a restored form then. */
  readonly deleted = new Map<string, boolean>()
  /** Full-set types: names sent in their restored form (see restoredVariant), by the hash of the normal form. */
  readonly restored = new Map<string, { from: string; variant: ServedResource }>()
  /** Last named selection: reused while neither the snapshot map, the names nor the server Listeners' epoch changed. */
  selection: { from: Map<string, ServedResource>; names: Set<string>; epoch: number; out: Map<string, ServedResource> } | null = null

  constructor(readonly type: XdsType) {}

  /** The client asks for `name`. */
  subscribed(name: string): boolean {
    return this.wildcard || this.names.has(name)
  }

  /** Version of what the client holds, for comparing with a candidate response. */
  heldVersion(): string | null {
    return this.held ? versionOfSet(this.held as Map<string, ServedResource>) : this.sentVersion
  }

  /** Apply one DiscoveryRequest of this type. */
  onRequest(req: SubscriptionRequest): RequestOutcome {
    const nonce = String(req.response_nonce ?? '')
    const names = Array.isArray(req.resource_names) ? req.resource_names.map(String) : []
    if (nonce !== '' && this.nonce !== null && nonce !== this.nonce) {
      // Not answered and its ACK or NACK does not count, but its names are the client's
      // interest: a client that unsubscribed drops the resource, and the response in flight
      // that still carries it is ignored, so it must be sent again when it subscribes again.
      const { changed, added } = this.updateNames(names)
      return { kind: 'stale', nonce, changed, added }
    }
    if (nonce === '' || this.nonce === null) {
      const { changed, added } = this.updateNames(names)
      const versionInfo = String(req.version_info ?? '')
      // A first request is answered, unless it says it holds what would be sent (resume()).
      this.mustAnswer = true
      return { kind: 'initial', changed, added, versionInfo }
    }
    if (this.answeredNonce === nonce) {
      // A repeat: its ACK or NACK was booked when it first came. Booking a NACK again would
      // reject the version the first NACK fell back to (the last ACKed one), and the client
      // would be stuck on it.
      const { changed, added } = this.updateNames(names)
      // The same names again: the client asks again (it dropped and re-took a subscription
      // between two requests and lost the resource meanwhile): answer it.
      if (!changed) this.mustAnswer = true
      return { kind: 'repeat', nonce, changed, added }
    }
    const detail = req.error_detail
    let outcome: RequestOutcome
    this.inFlight = false
    if (detail && (detail.message || detail.code)) {
      const version = this.sentVersion ?? ''
      const error = String(detail.message ?? `code ${detail.code}`)
      // A version "" is no content (a client that resumed saying it holds nothing): nothing to bar.
      if (version !== '') this.nacked.add(version)
      this.lastNack = { version, error }
      // The client keeps what it had: fall back to the last ACKed state.
      this.sentVersion = this.ackedVersion
      this.held = this.acked
      this.changeAt = null
      outcome = { kind: 'nack', changed: false, added: false, version, error }
    } else {
      this.ackedVersion = this.sentVersion
      this.acked = this.held
      outcome = { kind: 'ack', changed: false, added: false, version: this.sentVersion }
    }
    this.answeredNonce = nonce
    const { changed, added } = this.updateNames(names)
    outcome.changed = changed
    outcome.added = added
    return outcome
  }

  /**
   * A reconnecting client's `version_info` for this type: when it is the version of
   * `current` (what would be sent now), the client holds exactly that and needs nothing;
   * otherwise what it holds is unknown.
   */
  resume(versionInfo: string, current: Map<string, ServedResource>): void {
    this.sentVersion = versionInfo
    this.ackedVersion = versionInfo
    if (versionOfSet(current) === versionInfo) {
      this.held = current
      this.mustAnswer = false
    } else {
      this.held = null
    }
    this.acked = this.held
  }

  /** Book a response written to the client. */
  recordSent(version: string, content: Map<string, ServedResource>, nonce: string, changeAt: number | null): void {
    if (this.type.fullSet) {
      if (this.held)
        for (const [name, r] of this.held) if (!content.has(name) && this.subscribed(name)) this.deleted.set(name, isRestoredVariant(r))
      for (const name of content.keys()) this.deleted.delete(name)
    }
    this.nonce = nonce
    this.sentVersion = version
    this.held = content
    this.inFlight = true
    this.mustAnswer = false
    this.changeAt = changeAt
    this.pushes++
  }

  /**
   * Apply a request's resource_names. Names removed are dropped from what the client holds
   * (an unsubscribed resource is forgotten by the client: answering it would repeat content);
   * names added ask for an answer on full-set types, where a missing name means "does not
   * exist" and the client should learn it at once.
   */
  private updateNames(names: string[]): { changed: boolean; added: boolean } {
    const wildcardBefore = this.wildcard
    const before = this.names
    if (names.length === 0) {
      // Legacy: an empty list is a wildcard for LDS/CDS until the client names something.
      this.wildcard = this.type.fullSet && this.legacy
      this.names = new Set()
    } else {
      this.legacy = false
      this.wildcard = names.includes('*')
      this.names = new Set(names.filter((n) => n !== '*'))
    }
    // Every ACK repeats the subscription (an Envoy's EDS ACK names every cluster): compare sets, no sort.
    // Added: something the client did not ask for before (a wildcard asked for everything).
    let added = this.wildcard && !wildcardBefore
    for (const n of this.names) if (!before.has(n) && !wildcardBefore) added = true
    const removed = (wildcardBefore && !this.wildcard) || [...before].some((n) => !this.names.has(n))
    const namesChanged = this.names.size !== before.size || [...this.names].some((n) => !before.has(n))
    if (!added && !removed && !namesChanged) {
      // Unchanged: keep the old set, so selections made from it stay valid.
      this.names = before
      return { changed: false, added: false }
    }
    if (removed && !this.wildcard) {
      this.held = this.narrow(this.held)
      this.acked = this.narrow(this.acked)
    }
    if (added && this.type.fullSet) this.mustAnswer = true
    return { changed: true, added }
  }

  private narrow(m: ReadonlyMap<string, ServedResource> | null): ReadonlyMap<string, ServedResource> | null {
    if (!m) return m
    let out: Map<string, ServedResource> | null = null
    for (const name of m.keys()) {
      if (this.names.has(name)) continue
      out ??= new Map(m)
      out.delete(name)
    }
    return out ?? m
  }
}
