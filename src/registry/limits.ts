/**
 * Every limit of a service record, in one table (README "Known limits" prints it). The owner
 * applies `build` when it turns a source's spec into a record (fit.ts: trim what can be
 * trimmed, else refuse that one record, loudly); a peer's decoder applies `accept` (wire.ts:
 * it rejects only the record over it, never its neighbours).
 *
 * The rule that keeps them apart safely: `accept >= build` in every release, and `accept`
 * never drops below what the previous release built, so that whatever an owner of this or the
 * previous release writes, every peer of either takes (README "Upgrades": any two
 * consecutive releases interoperate). To raise a limit, raise `accept` in one release and
 * `build` in the next. A new record field adds one line here, and its check in fit.ts and
 * wire.ts names the line.
 *
 * Characters are JavaScript string units (UTF-16), as the first release's decoder counted them.
 */
import { NODE_NAME_MAX } from '../text.js'

export interface RecordLimit {
  /** What is measured. */
  unit: 'characters' | 'bytes' | 'entries'
  /** The most an owner writes. */
  build: number
  /** The most a peer takes (Infinity: bounded only by `recordBytes`; the first release had no limit of its own here). */
  accept: number
  /** What the owner does with a spec over `build`: refuse the record, truncate the value with a marker, or drop entries. */
  over: 'refuse' | 'truncate' | 'drop'
  /** The field, for log lines and the README. */
  what: string
}

export const RecordLimits = {
  id: { unit: 'characters', build: 128, accept: 128, over: 'refuse', what: 'instance id' },
  name: { unit: 'characters', build: 128, accept: 256, over: 'refuse', what: 'service name' },
  image: { unit: 'characters', build: 1024, accept: 1024, over: 'truncate', what: 'image' },
  // The owner's node name: `--node` takes at most `build` characters of [A-Za-z0-9._-] (text.ts
  // nodeNameProblem, the one check), the agent refuses to start with a longer one. (The gossip
  // layer's own bound, 1..255 bytes of UTF-8, is its wire's and wider.)
  host: { unit: 'characters', build: NODE_NAME_MAX, accept: 256, over: 'refuse', what: 'node name' },
  bootId: { unit: 'characters', build: 128, accept: 128, over: 'refuse', what: 'boot id' },
  ports: { unit: 'entries', build: 64, accept: Infinity, over: 'refuse', what: 'ports' },
  portIp: { unit: 'characters', build: 64, accept: 64, over: 'refuse', what: 'port IP' },
  labels: { unit: 'entries', build: 64, accept: Infinity, over: 'drop', what: 'labels' },
  labelKey: { unit: 'characters', build: 256, accept: Infinity, over: 'drop', what: 'label key' },
  labelValue: { unit: 'characters', build: 1024, accept: 4096, over: 'truncate', what: 'label value' },
  // Keys and values in UTF-8, summed; the largest labels are dropped first.
  labelsBytes: { unit: 'bytes', build: 8192, accept: Infinity, over: 'drop', what: 'labels in all' },
  // Release 3 (issue 14): the 14th field, why the owner gives the status (types.ts StatusReason). The owner
  // writes only the reasons of StatusReason; a reason over `build` would be dropped (the status stays).
  reason: { unit: 'characters', build: 32, accept: 64, over: 'drop', what: 'status reason' },
  // Tags and attributes (README "Tags and attributes"): the 15th and 16th record fields. A tag or an
  // attribute over its limit is dropped, never truncated: a cut value would match nothing it was
  // meant to (a DNS tag, an Envoy route rule).
  tags: { unit: 'entries', build: 32, accept: Infinity, over: 'drop', what: 'tags' },
  tag: { unit: 'characters', build: 128, accept: 1024, over: 'drop', what: 'tag' },
  attributes: { unit: 'entries', build: 32, accept: Infinity, over: 'drop', what: 'attributes' },
  attributeKey: { unit: 'characters', build: 64, accept: 256, over: 'drop', what: 'attribute key' },
  attributeValue: { unit: 'characters', build: 512, accept: 4096, over: 'drop', what: 'attribute value' },
  // Tags, attribute keys and values in UTF-8, summed: the largest attributes go first, then the last tags.
  tagsAndAttributesBytes: { unit: 'bytes', build: 4096, accept: Infinity, over: 'drop', what: 'tags and attributes in all' },
  // Release 3 (issue 15): the 17th field, the owner's account of the status in one line (`Tcp
  // 10.0.0.5:5432: connection refused`, a drain's text); the owner sets it when the status
  // changes, never for check output alone, so it causes no gossip of its own (fit.ts fitDetail).
  detail: { unit: 'characters', build: 120, accept: 256, over: 'truncate', what: 'status detail' },
  // Health-check arguments stay on the owner (not on the wire): no accept.
  checkArgs: { unit: 'characters', build: 4096, accept: Infinity, over: 'refuse', what: 'health-check args' },
  // Issue 13: record field 18 (after the detail), addresses on Docker networks: one per network the owner advertises (--docker-network).
  networks: { unit: 'entries', build: 16, accept: 64, over: 'refuse', what: 'network addresses' },
  // Docker network names: letters, digits and [_.-], as `docker network create` takes them; a stack prefixes its own.
  networkName: { unit: 'characters', build: 128, accept: 256, over: 'refuse', what: 'network name' },
  networkIp: { unit: 'characters', build: 64, accept: 64, over: 'refuse', what: 'network IP' },
  // The record as one broadcast message (msgpack); over ~1000 bytes it travels as a reference fetched over a stream.
  recordBytes: { unit: 'bytes', build: 16_384, accept: 1_048_576, over: 'refuse', what: 'encoded record' },
} as const satisfies Record<string, RecordLimit>

export type RecordLimitName = keyof typeof RecordLimits

/** The kebab-case name of a limit, as metric labels and log lines carry it (`labelValue` -> `label-value`). */
export function limitLabel(name: RecordLimitName): string {
  return name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
}

/** Marks a value the owner truncated; the marker counts within the limit. */
export function truncationMarker(originalLength: number): string {
  return `…[truncated by Shoal from ${originalLength} characters]`
}

/** The label an owner adds when it drops labels: the dropped keys, comma-separated, cut to `DROPPED_LABELS_MAX` characters. */
export const DROPPED_LABELS_KEY = 'shoal.labels-dropped'
export const DROPPED_LABELS_MAX = 256
