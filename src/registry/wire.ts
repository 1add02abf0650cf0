/**
 * The registry's messages on gossip, msgpack-encoded arrays (compact, positional). Every
 * decoder validates field by field against the accept limits of limits.ts and throws
 * SHOAL_ERR_REGISTRY_WIRE naming what is wrong, except for records: each record of a message
 * is decoded on its own, and one that fails is returned as `rejected` (with its owner and id
 * when they could be read), never costing its neighbours.
 *
 *   record   [1, ...RecordTuple]                      broadcast of one record
 *   ref      [2, host, id, wall, counter]             broadcast of a record too large for a datagram
 *   pull     [3, [[owner, bootId, [[id, wall, counter], ...]], ...]]
 *                                                     request: records of these owners that are
 *                                                     newer than, or absent from, what we hold
 *   get      [5, host, id]                            request: one record
 *   records  [4, [RecordTuple, ...], more?, covered?] response to pull, since and get; `more` (release 2):
 *                                                     the answer was cut at its byte budget, pull again;
 *                                                     `covered` (release 3): [[owner, bootId, wall, counter], ...],
 *                                                     per owner asked for, the version up to which the
 *                                                     answerer holds every record of that boot
 *   digest   [6, [[host, bootId, wall, counter, count, hash], ...]]   push-pull state on join,
 *                                                     and the answer to digestGet
 *   summary  [7, owners, records, hash]               push-pull state at rest: the number of
 *                                                     owners and records in our digest and a
 *                                                     64-bit hash (8 bytes) of all of it
 *   digestGet [8]                                     request: the per-owner digest
 *   notice   [9, bootId, toWall, toCounter, fromWall?, fromCounter?, [RecordTuple, ...]?]
 *                                                     (release 3) broadcast, per owner (the gossip origin):
 *                                                     "I am now at version `to`"; the records, when
 *                                                     present, are all of the owner's records with a
 *                                                     version in (from, to]; without them (and `from`),
 *                                                     pull them
 *   since    [10, [[owner, bootId, wall, counter], ...]]
 *                                                     (release 3) request: every record of these owners
 *                                                     with a version above the one given (all of them when
 *                                                     the answerer knows another boot), answered with
 *                                                     `records` and `covered`
 *
 *   RecordTuple = [id, name, image, created, host, bootId, ports, proxyMode, status, wall,
 *                  counter, updated, labels, reason?, tags?, attributes?, detail?, networks?, ...later fields]
 *                 (reason, issue 14: why the status, types.ts StatusReason, or null; tags, attributes,
 *                  issue 20: an array of strings and a map of strings, or null; detail, issue 15:
 *                  the owner's account of the status in one line, or null; networks, issue 13,
 *                  below, or null. Each is written only when the record has it or a later field
 *                  follows, so other records keep 13 fields; and none while an agent of the
 *                  first release, which takes exactly 13 fields, is a member: `legacy`)
 *   port        = [type, port, servicePort, ip, containerPort?, ...later fields]
 *                 (a port without a host binding: port 0 and ip '')
 *   networks    = [[networkName, ip], ...] sorted by name: the record's addresses on Docker
 *                 networks (issue 13), the 18th field. Never in `legacy` records: while an
 *                 agent of the first release is a member, records carry no network addresses.
 *
 * Compatibility (README "Upgrades"): a release may append fields to any of these arrays and
 * add message types, never change or remove one. A decoder reads the fields it knows, ignores
 * elements after them, keeps the unknown fields of a record and of its ports (`wireExtra`, so a
 * newer owner's fields survive a hop through this release), and returns an unknown type as
 * `{ type: 'unknown' }`; both are counted in `WireNotes`. `REGISTRY_PROTOCOL` (in the agent's
 * gossip metadata as `reg`) says which messages a member knows.
 */
import { Packr, Unpackr } from 'msgpackr'
import { ShoalError } from '../errors.js'
import type { Coverage, OwnerDigest } from './catalog.js'
import { isVersion } from './hlc.js'
import { limitLabel, RecordLimits, type RecordLimitName } from './limits.js'
import { ProxyMode, ServiceStatus, type NetworkAddresses, type ServicePortSpec, type ServiceRecord, type Version } from './types.js'

/**
 * The version of this message set, advertised in the agent's gossip metadata as `reg`. 1: the
 * first release (a record of exactly 13 fields, a bad record or an unknown type dropped the
 * whole message); 2: per-record decoding, trailing fields kept, unknown types skipped, `more`
 * on records answers; 3: per-owner version notices (`notice`), pulls since a version
 * (`since`), `covered` on records answers. An owner sends notices only while every member that
 * is up speaks 3 (README "Upgrades").
 */
export const REGISTRY_PROTOCOL = 3

/** The `reg` a member advertises; agents of release 1 advertise none. */
export function registryProtocolOf(meta: Readonly<Record<string, string>>): number {
  const v = Number(meta.reg)
  return Number.isSafeInteger(v) && v >= 1 ? v : 1
}

export const MsgType = {
  record: 1,
  ref: 2,
  pull: 3,
  records: 4,
  get: 5,
  digest: 6,
  summary: 7,
  digestGet: 8,
  notice: 9,
  since: 10,
} as const
export type MsgType = (typeof MsgType)[keyof typeof MsgType]

/** A record a decoder could not take: its owner and id when they could be read, why, and which limit (or `malformed`). */
export interface RejectedRecord {
  host?: string
  id?: string
  /** A limit's label (limits.ts `limitLabel`, e.g. `label-value`) or `malformed`. */
  reason: string
  message: string
}

export type RegistryMessage =
  | { type: typeof MsgType.record; record: ServiceRecord }
  | { type: typeof MsgType.record; rejected: RejectedRecord }
  | { type: typeof MsgType.ref; host: string; id: string; version: readonly [number, number] }
  | { type: typeof MsgType.pull; wants: PullWant[] }
  | { type: typeof MsgType.records; records: ServiceRecord[]; rejected: RejectedRecord[]; more: boolean; covered: Coverage[] }
  | { type: typeof MsgType.get; host: string; id: string }
  | { type: typeof MsgType.digest; digests: OwnerDigest[] }
  | { type: typeof MsgType.summary; owners: number; records: number; hash: Uint8Array }
  | { type: typeof MsgType.digestGet }
  | {
      type: typeof MsgType.notice
      bootId: string
      from: Version
      to: Version
      records: ServiceRecord[]
      rejected: RejectedRecord[]
    }
  | { type: typeof MsgType.since; wants: Coverage[] }
  | { type: 'unknown'; code: unknown }

/** What a decoder met that this version does not know, counted by the caller. */
export interface WireNotes {
  /** Messages of an unknown type (a newer peer's), returned as `{ type: 'unknown' }`. */
  unknownTypes: number
  /** Records or ports with fields after the known ones, kept opaque in `wireExtra`. */
  extraFields: number
}

/** Bytes of a summary's hash. */
export const SUMMARY_HASH_BYTES = 8

/** What a puller holds of one owner: its boot as the puller knows it and the version of each id. */
export interface PullWant {
  owner: string
  bootId: string
  have: Array<[id: string, wall: number, counter: number]>
}

// Plain arrays and maps only: no msgpackr records/structures, so every peer decodes every message alone.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true })
// Maps decode as Map: as objects, msgpackr renames a `__proto__` key (a label may be called that)
// to `__proto_`, and the peer would hold another label than the owner serves.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false })

const statuses = new Set<string>(Object.values(ServiceStatus))
const proxyModes = new Set<string>(Object.values(ProxyMode))
/** Strings outside a record (owner names in digests, pulls and refs) follow the record's limits. */
const MAX_HOST = RecordLimits.host.accept
const MAX_ID = RecordLimits.id.accept
const MAX_BOOT = RecordLimits.bootId.accept
/** Fields every record has (the first release wrote and took exactly these). */
const RECORD_FIELDS = 13
/** Where the later fields this release reads sit: the status reason (issue 14), tags and attributes (issue 20), the status detail (issue 15), network addresses (issue 13). */
const REASON_FIELD = 13
const TAGS_FIELD = 14
const ATTRIBUTES_FIELD = 15
const DETAIL_FIELD = 16
const NETWORKS_FIELD = 17
/** Fields this release reads; later ones are kept opaque and passed on. */
const KNOWN_RECORD_FIELDS = 18
const PORT_FIELDS = 5

class WireError extends ShoalError {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super('SHOAL_ERR_REGISTRY_WIRE', message)
  }
}

function bad(what: string, reason = 'malformed'): never {
  throw new WireError(reason, what)
}

function str(v: unknown, what: string, max: number, limit?: RecordLimitName): string {
  if (typeof v !== 'string') bad(`${what}: expected a string`)
  if (v.length > max) bad(`${what}: ${v.length} characters, at most ${max}`, limit ? limitLabel(limit) : 'malformed')
  return v
}

/** A string field of a record, checked against its accept limit. */
function field(v: unknown, what: string, limit: RecordLimitName): string {
  return str(v, what, RecordLimits[limit].accept, limit)
}

function int(v: unknown, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) bad(`${what}: expected an integer ${min}..${max}`)
  return v
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${what}: expected a number`)
  return v
}

function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) bad(`${what}: expected an array`)
  return v
}

/** Attaches the fields after the known ones, out of JSON and enumeration, so re-encoding passes them on. */
function keepExtra<T extends object>(o: T, a: unknown[], known: number, notes: WireNotes | undefined): T {
  if (a.length <= known) return o
  if (notes) notes.extraFields++
  Object.defineProperty(o, 'wireExtra', { value: Object.freeze(a.slice(known)), enumerable: false })
  return o
}

function portTuple(p: ServicePortSpec): unknown[] {
  // No host binding: port 0 and ip '', which every release decodes (and earlier ones leave out of xDS).
  const t: unknown[] = [p.type, p.port ?? 0, p.servicePort, p.ip ?? '']
  if (p.containerPort !== undefined || p.wireExtra) t.push(p.containerPort ?? null)
  if (p.wireExtra) t.push(...p.wireExtra)
  return t
}

/**
 * How to write records. `legacy`: a member of the first release (registry protocol 1, which
 * drops a whole message for a record of more than 13 fields) is in the cluster: records go out
 * with their 13 fields only, so that it takes them (without reason, tags, attributes, detail and networks).
 */
export interface EncodeOptions {
  legacy?: boolean
}

function hasAttributes(r: ServiceRecord): boolean {
  for (const _ in r.attributes ?? {}) return true
  return false
}

/** Whether a record's legacy form (13 fields) leaves something out: its owner writes it again once no such member is left. */
export function cutInLegacyForm(r: ServiceRecord): boolean {
  return (
    r.reason !== undefined ||
    (r.tags?.length ?? 0) > 0 ||
    hasAttributes(r) ||
    r.detail !== undefined ||
    Object.keys(r.networks ?? {}).length > 0 ||
    r.wireExtra !== undefined
  )
}

function recordTuple(r: ServiceRecord, o: EncodeOptions = {}): unknown[] {
  const t: unknown[] = [
    r.id,
    r.name,
    r.image,
    r.created,
    r.host,
    r.bootId,
    r.ports.map(portTuple),
    r.proxyMode,
    r.status,
    r.version[0],
    r.version[1],
    r.updated,
    r.labels,
  ]
  if (o.legacy) return t
  const networks = r.networks ? Object.entries(r.networks).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)) : []
  const later: unknown[] = [
    r.reason ?? null,
    r.tags?.length ? r.tags : null,
    hasAttributes(r) ? r.attributes : null,
    r.detail ?? null,
    networks.length > 0 ? networks : null,
  ]
  // Trailing empty fields are left out (the record keeps the form earlier releases wrote), unless later fields follow.
  if (!r.wireExtra) while (later.length > 0 && later[later.length - 1] === null) later.pop()
  t.push(...later)
  if (r.wireExtra) t.push(...r.wireExtra)
  return t
}

/** Bytes of a record as one broadcast message: what the `recordBytes` limit measures. */
export function encodedRecordBytes(r: ServiceRecord): number {
  return packr.pack([MsgType.record, ...recordTuple(r)]).length
}

function parsePort(p: unknown, pw: string, notes: WireNotes | undefined): ServicePortSpec {
  const a = arr(p, pw)
  const type = a[0]
  if (type !== 'tcp' && type !== 'udp') bad(`${pw}.type: expected tcp or udp`)
  const out: ServicePortSpec = {
    type,
    port: int(a[1], `${pw}.port`, 0, 65535),
    servicePort: int(a[2], `${pw}.servicePort`, 0, 65535),
    ip: field(a[3], `${pw}.ip`, 'portIp'),
  }
  if (out.port === 0 && out.ip === '') {
    delete out.port
    delete out.ip
  }
  if (a.length > 4 && a[4] !== undefined && a[4] !== null) out.containerPort = int(a[4], `${pw}.containerPort`, 0, 65535)
  return keepExtra(out, a, PORT_FIELDS, notes)
}

function parseRecord(v: unknown, what: string, notes: WireNotes | undefined): ServiceRecord {
  const t = arr(v, what)
  if (t.length < RECORD_FIELDS) bad(`${what}: expected at least ${RECORD_FIELDS} fields, got ${t.length}`)
  const portsRaw = arr(t[6], `${what}.ports`)
  if (portsRaw.length > RecordLimits.ports.accept) bad(`${what}.ports: ${portsRaw.length}, at most ${RecordLimits.ports.accept}`, 'ports')
  const ports = portsRaw.map((p, i) => parsePort(p, `${what}.ports[${i}]`, notes))
  const proxyMode = str(t[7], `${what}.proxyMode`, 8)
  if (!proxyModes.has(proxyMode)) bad(`${what}.proxyMode: unknown "${proxyMode}"`)
  const status = str(t[8], `${what}.status`, 16)
  if (!statuses.has(status)) bad(`${what}.status: unknown "${status}"`)
  const version = [t[9], t[10]] as const
  if (!isVersion(version)) bad(`${what}.version: expected two non-negative integers`)
  const labelsRaw = t[12]
  if (!(labelsRaw instanceof Map)) bad(`${what}.labels: expected a map`)
  if (labelsRaw.size > RecordLimits.labels.accept) bad(`${what}.labels: ${labelsRaw.size}, at most ${RecordLimits.labels.accept}`, 'labels')
  const labels = stringMap(labelsRaw as Map<unknown, unknown>, `${what}.labels`, 'labelKey', 'labelValue')
  const id = field(t[0], `${what}.id`, 'id')
  const host = field(t[4], `${what}.host`, 'host')
  if (!id || !host) bad(`${what}: empty id or host`)
  const rec: ServiceRecord = {
    id,
    name: field(t[1], `${what}.name`, 'name'),
    image: field(t[2], `${what}.image`, 'image'),
    created: num(t[3], `${what}.created`),
    host,
    bootId: field(t[5], `${what}.bootId`, 'bootId'),
    ports,
    proxyMode: proxyMode as ProxyMode,
    status: status as ServiceStatus,
    version,
    updated: num(t[11], `${what}.updated`),
    labels,
  }
  const reason = t[REASON_FIELD]
  if (reason !== undefined && reason !== null) rec.reason = field(reason, `${what}.reason`, 'reason')
  const tags = t[TAGS_FIELD]
  if (tags !== undefined && tags !== null) {
    const list = arr(tags, `${what}.tags`)
    if (list.length > RecordLimits.tags.accept) bad(`${what}.tags: ${list.length}, at most ${RecordLimits.tags.accept}`, 'tags')
    if (list.length > 0) rec.tags = list.map((x, i) => field(x, `${what}.tags[${i}]`, 'tag'))
  }
  const attributes = t[ATTRIBUTES_FIELD]
  if (attributes !== undefined && attributes !== null) {
    if (!(attributes instanceof Map)) bad(`${what}.attributes: expected a map`)
    if (attributes.size > RecordLimits.attributes.accept)
      bad(`${what}.attributes: ${attributes.size}, at most ${RecordLimits.attributes.accept}`, 'attributes')
    if (attributes.size > 0)
      rec.attributes = stringMap(attributes as Map<unknown, unknown>, `${what}.attributes`, 'attributeKey', 'attributeValue')
  }
  const detail = t[DETAIL_FIELD]
  if (detail !== undefined && detail !== null) rec.detail = field(detail, `${what}.detail`, 'detail')
  const networks = t[NETWORKS_FIELD]
  if (networks !== undefined && networks !== null) {
    const parsed = parseNetworks(networks, `${what}.networks`)
    if (Object.keys(parsed).length > 0) rec.networks = parsed
  }
  return keepExtra(rec, t, KNOWN_RECORD_FIELDS, notes)
}

/** A map of strings as a plain object, each key and value checked against its accept limit. */
function stringMap(m: Map<unknown, unknown>, what: string, keyLimit: RecordLimitName, valueLimit: RecordLimitName): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [rawKey, v] of m) {
    const k = field(rawKey, `${what} key`, keyLimit)
    // defineProperty: a key such as __proto__ stays plain data.
    Object.defineProperty(out, k, { value: field(v, `${what}.${k}`, valueLimit), enumerable: true, writable: true, configurable: true })
  }
  return out
}

/** `[[name, ip], ...]` -> name -> ip, each checked against its accept limit; a name given twice is malformed. */
function parseNetworks(v: unknown, what: string): NetworkAddresses {
  const list = arr(v, what)
  if (list.length > RecordLimits.networks.accept) bad(`${what}: ${list.length}, at most ${RecordLimits.networks.accept}`, 'networks')
  const out: Record<string, string> = {}
  list.forEach((e, i) => {
    const pair = arr(e, `${what}[${i}]`)
    const name = field(pair[0], `${what}[${i}].name`, 'networkName')
    if (Object.hasOwn(out, name)) bad(`${what}[${i}]: network "${name}" given twice`)
    // defineProperty: a network called __proto__ stays plain data.
    Object.defineProperty(out, name, {
      value: field(pair[1], `${what}[${i}].ip`, 'networkIp'),
      enumerable: true,
      writable: true,
      configurable: true,
    })
  })
  return out
}

/** Decodes one record of a message; a record that fails is returned as rejected, with what could be read of it. */
function takeRecord(
  v: unknown,
  what: string,
  notes: WireNotes | undefined,
  sizeOf: () => number,
): { record: ServiceRecord } | { rejected: RejectedRecord } {
  try {
    const record = parseRecord(v, what, notes)
    const bytes = sizeOf()
    if (bytes > RecordLimits.recordBytes.accept)
      bad(`${what}: ${bytes} bytes encoded, at most ${RecordLimits.recordBytes.accept}`, limitLabel('recordBytes'))
    return { record }
  } catch (err) {
    const t = Array.isArray(v) ? v : []
    const rejected: RejectedRecord = {
      reason: err instanceof WireError ? err.reason : 'malformed',
      message: (err as Error).message,
    }
    if (typeof t[4] === 'string') rejected.host = t[4].slice(0, MAX_HOST)
    if (typeof t[0] === 'string') rejected.id = t[0].slice(0, MAX_ID)
    return { rejected }
  }
}

function coverageTuple(c: Coverage): unknown[] {
  return [c.owner, c.bootId, c.version[0], c.version[1]]
}

/**
 * Encodes a records answer that fits `budgetBytes` (the first record always goes, so an answer
 * makes progress); `more` tells the puller that records were left out. `covered` goes along for
 * the owners none of whose records were left out (a cut owner's coverage would be a false
 * claim). Returns the message and how many records it carries.
 */
export function encodeRecordsWithin(
  records: readonly ServiceRecord[],
  budgetBytes: number,
  o: EncodeOptions = {},
  covered: readonly Coverage[] = [],
): { bytes: Uint8Array; sent: number } {
  const tuples: unknown[] = []
  let used = 16 + covered.length * 48
  for (const r of records) {
    const t = recordTuple(r, o)
    const n = packr.pack(t).length
    if (tuples.length > 0 && used + n > budgetBytes) break
    tuples.push(t)
    used += n
  }
  const more = tuples.length < records.length
  const cut = new Set(records.slice(tuples.length).map((r) => r.host))
  const cov = covered.filter((c) => !cut.has(c.owner)).map(coverageTuple)
  const msg: unknown[] = [MsgType.records, tuples]
  if (more || cov.length > 0) msg.push(more)
  if (cov.length > 0) msg.push(cov)
  return { bytes: packr.pack(msg), sent: tuples.length }
}

function version(w: unknown, c: unknown, what: string): Version {
  const v = [w, c] as const
  if (!isVersion(v)) bad(`${what}: expected two non-negative integers`)
  return v
}

function coverageList(v: unknown, what: string): Coverage[] {
  return arr(v, what).map((e, i) => {
    const w = `${what}[${i}]`
    const x = arr(e, w)
    return {
      owner: str(x[0], `${w}.owner`, MAX_HOST),
      bootId: str(x[1], `${w}.bootId`, MAX_BOOT),
      version: version(x[2], x[3], `${w}.version`),
    }
  })
}

/** Decodes each record of a list alone: the ones taken, and the ones rejected with why. */
function recordList(v: unknown, what: string, notes: WireNotes | undefined): { records: ServiceRecord[]; rejected: RejectedRecord[] } {
  const records: ServiceRecord[] = []
  const rejected: RejectedRecord[] = []
  arr(v, what).forEach((r, i) => {
    const got = takeRecord(r, `${what}[${i}]`, notes, () => packr.pack([MsgType.record, ...(r as unknown[])]).length)
    if ('record' in got) records.push(got.record)
    else rejected.push(got.rejected)
  })
  return { records, rejected }
}

/** A message as this agent sends it (records it could not take are never sent on). */
export type OutgoingMessage =
  | Exclude<
      RegistryMessage,
      { type: 'unknown' } | { rejected: RejectedRecord } | { type: typeof MsgType.records } | { type: typeof MsgType.notice }
    >
  | { type: typeof MsgType.records; records: readonly ServiceRecord[]; more?: boolean }
  | { type: typeof MsgType.notice; bootId: string; from: Version; to: Version; records: readonly ServiceRecord[] }

export function encodeMessage(m: OutgoingMessage, o: EncodeOptions = {}): Uint8Array {
  switch (m.type) {
    case MsgType.record:
      return packr.pack([MsgType.record, ...recordTuple(m.record, o)])
    case MsgType.ref:
      return packr.pack([MsgType.ref, m.host, m.id, m.version[0], m.version[1]])
    case MsgType.pull:
      return packr.pack([MsgType.pull, m.wants.map((w) => [w.owner, w.bootId, w.have])])
    case MsgType.records: {
      const tuples = m.records.map((r) => recordTuple(r, o))
      return packr.pack(m.more ? [MsgType.records, tuples, true] : [MsgType.records, tuples])
    }
    case MsgType.get:
      return packr.pack([MsgType.get, m.host, m.id])
    case MsgType.digest:
      return packr.pack([MsgType.digest, m.digests.map((d) => [d.host, d.bootId, d.max[0], d.max[1], d.count, d.hash])])
    case MsgType.summary:
      return packr.pack([MsgType.summary, m.owners, m.records, Buffer.from(m.hash.buffer, m.hash.byteOffset, m.hash.byteLength)])
    case MsgType.digestGet:
      return packr.pack([MsgType.digestGet])
    case MsgType.notice:
      // A notice without records is 4 fields: every byte counts when a burst sends hundreds.
      return packr.pack(
        m.records.length === 0
          ? [MsgType.notice, m.bootId, m.to[0], m.to[1]]
          : [MsgType.notice, m.bootId, m.to[0], m.to[1], m.from[0], m.from[1], m.records.map((r) => recordTuple(r, o))],
      )
    case MsgType.since:
      return packr.pack([MsgType.since, m.wants.map(coverageTuple)])
  }
}

/**
 * Decodes and validates one registry message; throws SHOAL_ERR_REGISTRY_WIRE when the message
 * itself is malformed. Records that fail come back in `rejected`; a type this version does
 * not know comes back as `{ type: 'unknown' }` (counted in `notes`).
 */
export function decodeMessage(data: Uint8Array, notes?: WireNotes): RegistryMessage {
  let v: unknown
  try {
    v = unpackr.unpack(data)
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_REGISTRY_WIRE', `not msgpack (${data.length} bytes): ${(err as Error).message}`)
  }
  const a = arr(v, 'message')
  switch (a[0]) {
    case MsgType.record: {
      const r = takeRecord(a.slice(1), 'record', notes, () => data.length)
      return 'record' in r ? { type: MsgType.record, record: r.record } : { type: MsgType.record, rejected: r.rejected }
    }
    case MsgType.ref: {
      const version = [a[3], a[4]] as const
      if (!isVersion(version)) bad('ref.version: expected two non-negative integers')
      return { type: MsgType.ref, host: str(a[1], 'ref.host', MAX_HOST), id: str(a[2], 'ref.id', MAX_ID), version }
    }
    case MsgType.pull:
      return {
        type: MsgType.pull,
        wants: arr(a[1], 'pull').map((o, i) => {
          const w = `pull[${i}]`
          const e = arr(o, w)
          const have = arr(e[2], `${w}.have`).map((h, j): [string, number, number] => {
            const x = arr(h, `${w}.have[${j}]`)
            return [str(x[0], `${w}.have[${j}].id`, MAX_ID), int(x[1], `${w}.have[${j}].wall`), int(x[2], `${w}.have[${j}].counter`)]
          })
          return { owner: str(e[0], `${w}.owner`, MAX_HOST), bootId: str(e[1], `${w}.bootId`, MAX_BOOT), have }
        }),
      }
    case MsgType.records: {
      const { records, rejected } = recordList(a[1], 'records', notes)
      const covered = a[3] === undefined || a[3] === null ? [] : coverageList(a[3], 'records.covered')
      return { type: MsgType.records, records, rejected, more: a[2] === true, covered }
    }
    case MsgType.notice: {
      const bootId = str(a[1], 'notice.bootId', MAX_BOOT)
      const to = version(a[2], a[3], 'notice.to')
      if (a.length <= 4) return { type: MsgType.notice, bootId, from: to, to, records: [], rejected: [] }
      const from = version(a[4], a[5], 'notice.from')
      const { records, rejected } = recordList(a[6], 'notice.records', notes)
      return { type: MsgType.notice, bootId, from, to, records, rejected }
    }
    case MsgType.since:
      return { type: MsgType.since, wants: coverageList(a[1], 'since') }
    case MsgType.get:
      return { type: MsgType.get, host: str(a[1], 'get.host', MAX_HOST), id: str(a[2], 'get.id', MAX_ID) }
    case MsgType.digest:
      return {
        type: MsgType.digest,
        digests: arr(a[1], 'digest').map((d, i) => {
          const w = `digest[${i}]`
          const e = arr(d, w)
          const max = [e[2], e[3]] as const
          if (!isVersion(max)) bad(`${w}.max: expected two non-negative integers`)
          return {
            host: str(e[0], `${w}.host`, MAX_HOST),
            bootId: str(e[1], `${w}.bootId`, MAX_BOOT),
            max,
            count: int(e[4], `${w}.count`),
            hash: int(e[5], `${w}.hash`, 0, 0xffffffff),
          }
        }),
      }
    case MsgType.summary: {
      const h = a[3]
      if (!(h instanceof Uint8Array) || h.length !== SUMMARY_HASH_BYTES) bad(`summary.hash: expected ${SUMMARY_HASH_BYTES} bytes`)
      return { type: MsgType.summary, owners: int(a[1], 'summary.owners'), records: int(a[2], 'summary.records'), hash: h }
    }
    case MsgType.digestGet:
      return { type: MsgType.digestGet }
    default:
      if (notes) notes.unknownTypes++
      return { type: 'unknown', code: a[0] }
  }
}
