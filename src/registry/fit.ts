/**
 * The owner's side of the record limits (limits.ts): before a source's spec becomes this
 * owner's record, it is made to fit the `build` limits, so that every peer's decoder takes
 * it. What can be trimmed is trimmed (an image or a label value truncated with a marker,
 * labels dropped, largest first, their keys listed in one `shoal.labels-dropped` label; never
 * the labels Shoal itself reads from a record, see KEPT_LABELS; a bad or over-long tag or
 * attribute dropped alone);
 * what cannot (an id, a name, a port list, check arguments, a whole record too large) refuses
 * that one record. Strings are made well-formed first (a lone UTF-16 surrogate cannot cross
 * the wire as itself), so that peers hold exactly what the owner serves.
 */
import { AuthzLabel } from './authz.js'
import { ALLOW_LABEL, INBOUND_LABEL, type LocalServiceSpec, type ServiceRecord } from './types.js'
import { DROPPED_LABELS_KEY, DROPPED_LABELS_MAX, limitLabel, RecordLimits, truncationMarker, type RecordLimitName } from './limits.js'
import { attributeKeyProblem, tagProblem } from './tags.js'
import { unsafeChar } from '../text.js'
import { encodedRecordBytes } from './wire.js'

/** One limit a spec met: the limit's name, what the owner did and a line saying so. */
export interface LimitProblem {
  limit: RecordLimitName
  /** `trimmed`: the record is served without what was cut; `refused`: it is not served. */
  action: 'trimmed' | 'refused'
  message: string
}

export interface FitResult {
  /** The spec as it fits; undefined when refused. */
  spec?: LocalServiceSpec
  problems: LimitProblem[]
}

const utf8 = (s: string): number => Buffer.byteLength(s)

/**
 * Labels that every host reads from the record to decide how to serve it: the authorization
 * request (authz.ts), the allow-list of callers (`shoal.allow`) and where the owner's Envoy
 * takes mTLS (`shoal.inbound`). They are never dropped to fit (dropping `shoal.authz` or
 * `shoal.allow` would serve a protected service open on every host; dropping `shoal.inbound`
 * would leave the instance out of other hosts' mTLS assignments); they are a few short labels,
 * so the rest always makes room. A value over the length limit is still truncated, and no
 * longer reads as written: that fails closed (an allow-list whose last name is cut allows
 * fewer callers).
 */
const KEPT_LABELS: ReadonlySet<string> = new Set([...Object.values(AuthzLabel), ALLOW_LABEL, INBOUND_LABEL])

/** The first `n` characters of `v`, one fewer rather than half a surrogate pair (which would not cross the wire as itself). */
function head(v: string, n: number): string {
  const c = v.charCodeAt(n - 1)
  return v.slice(0, c >= 0xd800 && c <= 0xdbff ? n - 1 : n)
}

/** Cuts a value to `max` characters including the marker. */
function truncate(v: string, max: number): string {
  const marker = truncationMarker(v.length)
  return head(v, Math.max(0, max - marker.length)) + marker
}

/**
 * Makes `spec` fit the build limits for an owner named `host`. Idempotent: a fitted spec
 * fits unchanged. `problems` names every limit met, for the owner's warning and metric.
 *
 * @example
 *   const { spec, problems } = fitSpec(dockerSpec, 'node-a')
 *   // problems: [{ limit: 'labelValue', action: 'trimmed', message: 'label "io.buildpacks.lifecycle.metadata": 5000 characters, truncated to 1024' }]
 */
export function fitSpec(input: LocalServiceSpec, host: string): FitResult {
  const problems: LimitProblem[] = []
  const L = RecordLimits
  const trimmed = (limit: RecordLimitName, message: string) => problems.push({ limit, action: 'trimmed', message })
  const refuse = (limit: RecordLimitName, message: string): FitResult => {
    problems.push({ limit, action: 'refused', message: `${message}; the record is not served` })
    return { problems }
  }
  const spec: LocalServiceSpec = {
    ...input,
    id: input.id.toWellFormed(),
    name: input.name.toWellFormed(),
    image: input.image.toWellFormed(),
    ports: input.ports.map((p) => (p.ip === undefined ? { ...p } : { ...p, ip: p.ip.toWellFormed() })),
  }
  if (input.networks) {
    const networks: Record<string, string> = {}
    for (const [n, ip] of Object.entries(input.networks))
      Object.defineProperty(networks, n.toWellFormed(), { value: ip.toWellFormed(), enumerable: true, writable: true, configurable: true })
    spec.networks = networks
  }
  if (input.check) spec.check = { ...input.check, ...(input.check.args !== undefined ? { args: input.check.args.toWellFormed() } : {}) }

  if (spec.id.length > L.id.build) return refuse('id', `instance id of ${spec.id.length} characters, at most ${L.id.build}`)
  if (spec.name.length > L.name.build) return refuse('name', `service name of ${spec.name.length} characters, at most ${L.name.build}`)
  if (spec.ports.length > L.ports.build) return refuse('ports', `${spec.ports.length} ports, at most ${L.ports.build}`)
  const longIp = spec.ports.find((p) => p.ip !== undefined && p.ip.length > L.portIp.build)
  if (longIp) return refuse('portIp', `port IP of ${longIp.ip!.length} characters, at most ${L.portIp.build}`)
  const networks = Object.entries(spec.networks ?? {})
  if (networks.length > L.networks.build)
    return refuse('networks', `${networks.length} network addresses, at most ${L.networks.build} (name fewer networks in --docker-network)`)
  for (const [n, ip] of networks) {
    if (n.length > L.networkName.build)
      return refuse('networkName', `network name of ${n.length} characters, at most ${L.networkName.build}`)
    if (ip.length > L.networkIp.build)
      return refuse('networkIp', `IP on network "${n}" of ${ip.length} characters, at most ${L.networkIp.build}`)
  }
  const args = spec.check?.args
  if (args !== undefined && args.length > L.checkArgs.build)
    return refuse('checkArgs', `health-check args of ${args.length} characters, at most ${L.checkArgs.build}`)
  if (spec.image.length > L.image.build) {
    trimmed('image', `image of ${spec.image.length} characters, truncated to ${L.image.build}`)
    spec.image = truncate(spec.image, L.image.build)
  }
  spec.labels = fitLabels(input.labels, trimmed)
  const { tags, attributes } = fitTagsAndAttributes(input.tags, input.attributes, trimmed)
  if (tags.length > 0) spec.tags = tags
  else delete spec.tags
  if (Object.keys(attributes).length > 0) spec.attributes = attributes
  else delete spec.attributes

  const bytes = encodedRecordBytes(worstCase(spec, host))
  if (bytes > L.recordBytes.build) return refuse('recordBytes', `record of ${bytes} bytes encoded, at most ${L.recordBytes.build}`)
  return { spec, problems }
}

/**
 * A status detail as the owner writes it into a record: well-formed, on one line, at most
 * `RecordLimits.detail.build` characters (cut with `…`; a marker would not leave room for
 * the detail itself).
 *
 * @example
 *   fitDetail('Tcp 10.0.0.5:5432: connection refused') // unchanged
 */
export function fitDetail(reason: string): string {
  const max = RecordLimits.detail.build
  const line = reason.toWellFormed().replace(/\s+/g, ' ').trim()
  return line.length <= max ? line : head(line, max - 1) + '…'
}

function fitLabels(input: Record<string, string>, trimmed: (limit: RecordLimitName, message: string) => void): Record<string, string> {
  const L = RecordLimits
  const labels = new Map<string, string>()
  const dropped: string[] = []
  for (const [rawKey, rawValue] of Object.entries(input)) {
    const key = rawKey.toWellFormed()
    let value = rawValue.toWellFormed()
    if (key.length > L.labelKey.build) {
      const short = head(key, 40) + '…'
      trimmed('labelKey', `label key of ${key.length} characters (${JSON.stringify(short)}) over ${L.labelKey.build}, dropped`)
      dropped.push(short)
      continue
    }
    if (value.length > L.labelValue.build) {
      trimmed('labelValue', `label "${key}": ${value.length} characters, truncated to ${L.labelValue.build}`)
      value = truncate(value, L.labelValue.build)
    }
    labels.set(key, value)
  }
  const size = (k: string, v: string) => utf8(k) + utf8(v)
  let bytes = 0
  for (const [k, v] of labels) bytes += size(k, v)
  // Once anything goes, the marker label must fit too: room for it at its largest.
  const reserve = utf8(DROPPED_LABELS_KEY) + DROPPED_LABELS_MAX * 3
  const over = (marker: boolean) => labels.size + (marker ? 1 : 0) > L.labels.build || bytes + (marker ? reserve : 0) > L.labelsBytes.build
  if (over(dropped.length > 0)) {
    const countOver = labels.size + 1 > L.labels.build
    const before = dropped.length
    // The largest first: a few big metadata blobs go, the small labels people and tools read stay.
    const bySize = [...labels]
      .filter(([k]) => k !== DROPPED_LABELS_KEY && !KEPT_LABELS.has(k))
      .sort((x, y) => size(y[0], y[1]) - size(x[0], x[1]))
    for (const [k, v] of bySize) {
      if (!over(true)) break
      labels.delete(k)
      bytes -= size(k, v)
      dropped.push(k)
    }
    trimmed(
      countOver ? 'labels' : 'labelsBytes',
      `labels over ${L.labels.build} entries or ${L.labelsBytes.build} bytes: dropped ${dropped.slice(before).join(', ')}`,
    )
  }
  if (dropped.length > 0) {
    const list = (labels.get(DROPPED_LABELS_KEY) ? [labels.get(DROPPED_LABELS_KEY)!, ...dropped] : dropped).join(',')
    labels.set(DROPPED_LABELS_KEY, list.length > DROPPED_LABELS_MAX ? truncate(list, DROPPED_LABELS_MAX) : list)
  }
  return plainObject(labels)
}

/** A short form of a value for a log line: at most 40 characters, quoted. */
function quoted(v: string): string {
  return JSON.stringify(v.length > 40 ? head(v, 40) + '…' : v)
}

/** An object with `entries` as its own properties (a key such as `__proto__` stays plain data). */
function plainObject(entries: Iterable<readonly [string, string]>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true })
  return out
}

/**
 * Tags and attributes made to fit (limits.ts, the rules of tags.ts). A bad or over-long tag or
 * attribute is dropped alone (a cut one would match nothing it was meant to); repeated tags
 * count once; beyond 32 tags the first 32 stay; beyond 32 attributes, or over 4,096 bytes in
 * all, the largest attributes go first, then the last tags. Attributes come out sorted by key.
 */
function fitTagsAndAttributes(
  inputTags: readonly string[] | undefined,
  inputAttributes: Readonly<Record<string, string>> | undefined,
  trimmed: (limit: RecordLimitName, message: string) => void,
): { tags: string[]; attributes: Record<string, string> } {
  const L = RecordLimits
  const tags: string[] = []
  const seen = new Set<string>()
  for (const raw of inputTags ?? []) {
    const tag = raw.toWellFormed()
    const bad = tagProblem(tag) ?? (tag.length > L.tag.build ? `has ${tag.length} characters, at most ${L.tag.build}` : undefined)
    if (bad !== undefined) trimmed('tag', `tag ${quoted(tag)} ${bad}: dropped`)
    else if (!seen.has(tag)) {
      seen.add(tag)
      tags.push(tag)
    }
  }
  if (tags.length > L.tags.build) {
    const extra = tags.splice(L.tags.build)
    trimmed('tags', `${L.tags.build + extra.length} tags, at most ${L.tags.build}: kept the first ${L.tags.build}, dropped ${extra.length}`)
  }
  const attrs = new Map<string, string>()
  for (const [rawKey, rawValue] of Object.entries(inputAttributes ?? {})) {
    const key = rawKey.toWellFormed()
    const value = rawValue.toWellFormed()
    const bad = attributeKeyProblem(key)
    if (bad !== undefined) trimmed('attributeKey', `attribute key ${quoted(key)} ${bad}: dropped`)
    else if (key.length > L.attributeKey.build)
      trimmed('attributeKey', `attribute key ${quoted(key)} has ${key.length} characters, at most ${L.attributeKey.build}: dropped`)
    else if (unsafeChar(value) !== undefined)
      trimmed('attributeValue', `attribute "${key}": its value holds ${unsafeChar(value)!.codePoint}, a control or bidi character: dropped`)
    else if (value.length > L.attributeValue.build)
      trimmed('attributeValue', `attribute "${key}": ${value.length} characters, at most ${L.attributeValue.build}: dropped`)
    else attrs.set(key, value)
  }
  const size = (k: string, v: string) => utf8(k) + utf8(v)
  let bytes = 0
  for (const t of tags) bytes += utf8(t)
  for (const [k, v] of attrs) bytes += size(k, v)
  const over = () => attrs.size > L.attributes.build || bytes > L.tagsAndAttributesBytes.build
  if (over()) {
    const countOver = attrs.size > L.attributes.build
    const dropped: string[] = []
    const bySize = [...attrs].sort((x, y) => size(y[0], y[1]) - size(x[0], x[1]) || (x[0] < y[0] ? -1 : 1))
    for (const [k, v] of bySize) {
      if (!over()) break
      attrs.delete(k)
      bytes -= size(k, v)
      dropped.push(`attribute ${k}`)
    }
    while (over() && tags.length > 0) {
      const t = tags.pop()!
      bytes -= utf8(t)
      dropped.push(`tag ${quoted(t)}`)
    }
    trimmed(
      countOver ? 'attributes' : 'tagsAndAttributesBytes',
      `attributes over ${L.attributes.build} or tags and attributes over ${L.tagsAndAttributesBytes.build} bytes: dropped ${dropped.join(', ')}`,
    )
  }
  const sorted = [...attrs].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
  return { tags, attributes: plainObject(sorted) }
}

/** The record this spec becomes, with the owner's stamps (and status reason) at their largest, for the size limit. */
function worstCase(spec: LocalServiceSpec, host: string): ServiceRecord {
  return {
    id: spec.id,
    name: spec.name,
    image: spec.image,
    created: Number.MAX_SAFE_INTEGER,
    host,
    bootId: 'f'.repeat(RecordLimits.bootId.build),
    ports: spec.ports,
    proxyMode: spec.proxyMode,
    status: 'unhealthy',
    version: [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    updated: Number.MAX_SAFE_INTEGER,
    labels: spec.labels,
    // The owner writes a status reason (types.ts StatusReason) whenever the instance drains or starts.
    reason: 'r'.repeat(RecordLimits.reason.build),
    ...(spec.tags ? { tags: spec.tags } : {}),
    ...(spec.attributes ? { attributes: spec.attributes } : {}),
    ...(spec.networks ? { networks: spec.networks } : {}),
    // The longest detail a status can bring, in characters of up to three bytes of UTF-8.
    detail: '\u20ac'.repeat(RecordLimits.detail.build),
  }
}

/** The metric label of a problem's limit. */
export function problemLabel(p: LimitProblem): string {
  return limitLabel(p.limit)
}
