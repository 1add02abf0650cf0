/**
 * The registry's messages on gossip, msgpack-encoded arrays (compact, positional). Every
 * decoder validates field by field and throws SHOAL_ERR_REGISTRY_WIRE naming what is wrong;
 * the bridge catches, counts and logs.
 *
 *   record   [1, ...RecordTuple]                      broadcast of one record
 *   ref      [2, host, id, wall, counter]             broadcast of a record too large for a datagram
 *   pull     [3, [[owner, bootId, [[id, wall, counter], ...]], ...]]
 *                                                     request: records of these owners that are
 *                                                     newer than, or absent from, what we hold
 *   get      [5, host, id]                            request: one record
 *   records  [4, [RecordTuple, ...]]                  response to pull and get
 *   digest   [6, [[host, bootId, wall, counter, count, hash], ...]]   push-pull state on join,
 *                                                     and the answer to digestGet
 *   summary  [7, owners, records, hash]               push-pull state at rest: the number of
 *                                                     owners and records in our digest and a
 *                                                     64-bit hash (8 bytes) of all of it
 *   digestGet [8]                                     request: the per-owner digest
 */
import { Packr } from 'msgpackr'
import { ShoalError } from '../errors.js'
import type { OwnerDigest } from './catalog.js'
import { isVersion } from './hlc.js'
import { ProxyMode, ServiceStatus, type ServicePortSpec, type ServiceRecord } from './types.js'

export const MsgType = { record: 1, ref: 2, pull: 3, records: 4, get: 5, digest: 6, summary: 7, digestGet: 8 } as const
export type MsgType = (typeof MsgType)[keyof typeof MsgType]

export type RegistryMessage =
  | { type: typeof MsgType.record; record: ServiceRecord }
  | { type: typeof MsgType.ref; host: string; id: string; version: readonly [number, number] }
  | { type: typeof MsgType.pull; wants: PullWant[] }
  | { type: typeof MsgType.records; records: ServiceRecord[] }
  | { type: typeof MsgType.get; host: string; id: string }
  | { type: typeof MsgType.digest; digests: OwnerDigest[] }
  | { type: typeof MsgType.summary; owners: number; records: number; hash: Uint8Array }
  | { type: typeof MsgType.digestGet }

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

const statuses = new Set<string>(Object.values(ServiceStatus))
const proxyModes = new Set<string>(Object.values(ProxyMode))
const MAX_STR = 1024

function bad(what: string): never {
  throw new ShoalError('SHOAL_ERR_REGISTRY_WIRE', what)
}

function str(v: unknown, what: string, max = MAX_STR): string {
  if (typeof v !== 'string' || v.length > max) bad(`${what}: expected a string of at most ${max} characters`)
  return v
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

function recordTuple(r: ServiceRecord): unknown[] {
  const ports = r.ports.map((p) =>
    p.containerPort !== undefined ? [p.type, p.port, p.servicePort, p.ip, p.containerPort] : [p.type, p.port, p.servicePort, p.ip],
  )
  return [r.id, r.name, r.image, r.created, r.host, r.bootId, ports, r.proxyMode, r.status, r.version[0], r.version[1], r.updated, r.labels]
}

function parseRecord(v: unknown, what: string): ServiceRecord {
  const t = arr(v, what)
  if (t.length !== 13) bad(`${what}: expected 13 fields, got ${t.length}`)
  const ports: ServicePortSpec[] = arr(t[6], `${what}.ports`).map((p, i) => {
    const pw = `${what}.ports[${i}]`
    const a = arr(p, pw)
    const type = a[0]
    if (type !== 'tcp' && type !== 'udp') bad(`${pw}.type: expected tcp or udp`)
    const out: ServicePortSpec = {
      type,
      port: int(a[1], `${pw}.port`, 0, 65535),
      servicePort: int(a[2], `${pw}.servicePort`, 0, 65535),
      ip: str(a[3], `${pw}.ip`, 64),
    }
    if (a.length > 4 && a[4] !== undefined && a[4] !== null) out.containerPort = int(a[4], `${pw}.containerPort`, 0, 65535)
    return out
  })
  const proxyMode = str(t[7], `${what}.proxyMode`, 8)
  if (!proxyModes.has(proxyMode)) bad(`${what}.proxyMode: unknown "${proxyMode}"`)
  const status = str(t[8], `${what}.status`, 16)
  if (!statuses.has(status)) bad(`${what}.status: unknown "${status}"`)
  const version = [t[9], t[10]] as const
  if (!isVersion(version)) bad(`${what}.version: expected two non-negative integers`)
  const labelsRaw = t[12]
  if (labelsRaw === null || typeof labelsRaw !== 'object' || Array.isArray(labelsRaw)) bad(`${what}.labels: expected a map`)
  const labels: Record<string, string> = {}
  for (const [k, lv] of Object.entries(labelsRaw as Record<string, unknown>)) labels[k] = str(lv, `${what}.labels.${k}`, 4096)
  const id = str(t[0], `${what}.id`, 128)
  const host = str(t[4], `${what}.host`, 256)
  if (!id || !host) bad(`${what}: empty id or host`)
  return {
    id,
    name: str(t[1], `${what}.name`, 256),
    image: str(t[2], `${what}.image`),
    created: num(t[3], `${what}.created`),
    host,
    bootId: str(t[5], `${what}.bootId`, 128),
    ports,
    proxyMode: proxyMode as ProxyMode,
    status: status as ServiceStatus,
    version,
    updated: num(t[11], `${what}.updated`),
    labels,
  }
}

export function encodeMessage(m: RegistryMessage): Uint8Array {
  switch (m.type) {
    case MsgType.record:
      return packr.pack([MsgType.record, ...recordTuple(m.record)])
    case MsgType.ref:
      return packr.pack([MsgType.ref, m.host, m.id, m.version[0], m.version[1]])
    case MsgType.pull:
      return packr.pack([MsgType.pull, m.wants.map((w) => [w.owner, w.bootId, w.have])])
    case MsgType.records:
      return packr.pack([MsgType.records, m.records.map(recordTuple)])
    case MsgType.get:
      return packr.pack([MsgType.get, m.host, m.id])
    case MsgType.digest:
      return packr.pack([MsgType.digest, m.digests.map((d) => [d.host, d.bootId, d.max[0], d.max[1], d.count, d.hash])])
    case MsgType.summary:
      return packr.pack([MsgType.summary, m.owners, m.records, Buffer.from(m.hash.buffer, m.hash.byteOffset, m.hash.byteLength)])
    case MsgType.digestGet:
      return packr.pack([MsgType.digestGet])
  }
}

/** Decodes and validates one registry message; throws SHOAL_ERR_REGISTRY_WIRE when malformed. */
export function decodeMessage(data: Uint8Array): RegistryMessage {
  let v: unknown
  try {
    v = packr.unpack(data)
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_REGISTRY_WIRE', `not msgpack (${data.length} bytes): ${(err as Error).message}`)
  }
  const a = arr(v, 'message')
  switch (a[0]) {
    case MsgType.record:
      return { type: MsgType.record, record: parseRecord(a.slice(1), 'record') }
    case MsgType.ref: {
      const version = [a[3], a[4]] as const
      if (!isVersion(version)) bad('ref.version: expected two non-negative integers')
      return { type: MsgType.ref, host: str(a[1], 'ref.host', 256), id: str(a[2], 'ref.id', 128), version }
    }
    case MsgType.pull:
      return {
        type: MsgType.pull,
        wants: arr(a[1], 'pull').map((o, i) => {
          const w = `pull[${i}]`
          const e = arr(o, w)
          const have = arr(e[2], `${w}.have`).map((h, j): [string, number, number] => {
            const x = arr(h, `${w}.have[${j}]`)
            return [str(x[0], `${w}.have[${j}].id`, 128), int(x[1], `${w}.have[${j}].wall`), int(x[2], `${w}.have[${j}].counter`)]
          })
          return { owner: str(e[0], `${w}.owner`, 256), bootId: str(e[1], `${w}.bootId`, 128), have }
        }),
      }
    case MsgType.records:
      return { type: MsgType.records, records: arr(a[1], 'records').map((r, i) => parseRecord(r, `records[${i}]`)) }
    case MsgType.get:
      return { type: MsgType.get, host: str(a[1], 'get.host', 256), id: str(a[2], 'get.id', 128) }
    case MsgType.digest:
      return {
        type: MsgType.digest,
        digests: arr(a[1], 'digest').map((d, i) => {
          const w = `digest[${i}]`
          const e = arr(d, w)
          const max = [e[2], e[3]] as const
          if (!isVersion(max)) bad(`${w}.max: expected two non-negative integers`)
          return {
            host: str(e[0], `${w}.host`, 256),
            bootId: str(e[1], `${w}.bootId`, 128),
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
      return bad(`unknown message type ${JSON.stringify(a[0])}`)
  }
}
