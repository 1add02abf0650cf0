/**
 * A generic protoc-gen-validate walker: checks a resource object along its protobufjs type
 * against
 *  - the `(validate.rules)` field annotations and `(validate.required)` oneof annotations read
 *    from the loaded protos (github.com/bufbuild/protoc-gen-validate, validate.proto):
 *    message required/skip; numeric const/lt/lte/gt/gte/in/not_in (also through wrapper
 *    types); string and bytes const/len/min_len/max_len/min_bytes/max_bytes/pattern/prefix/
 *    suffix/contains/in/not_in and the well-known formats; enum const/defined_only/in/not_in;
 *    repeated min_items/max_items/unique/items; map min_pairs/max_pairs/keys/values; duration
 *    and any rules;
 *  - structural checks protobufjs `fromObject` would hide: unknown or misspelled fields,
 *    wrong value types, two members of one oneof, an Any whose type is not loaded.
 * It knows nothing about Envoy: a caller adds its own constraints per message type through
 * `extra` (validate.ts holds Shoal's).
 */
import { isIP } from 'node:net'
import type * as Protobuf from 'protobufjs'
import type { XdsProtos } from './protos.js'

// PGV rule objects as protobufjs parses them: nested, dynamically shaped option trees.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Rules = Record<string, any>
type Obj = Record<string, unknown>

const MAX_DEPTH = 64

/**
 * Further checks for one message: called with the message's full name (".pkg.Type"), the
 * object, its path, and `err(path, message)` to report a problem.
 */
export type ExtraCheck = (fullName: string, o: Record<string, unknown>, path: string, err: (path: string, msg: string) => void) => void

/**
 * Walk one resource (or extension config) object of `typeUrl`; returns readable problems as
 * `path: message`, empty when valid.
 *
 * @example
 *   walkPgv(protos, TypeUrl.cluster, { name: '', type: 'EDS' }, () => undefined) // ['Cluster.name: needs at least 1 characters']
 */
export function walkPgv(protos: XdsProtos, typeUrl: string, obj: unknown, extra: ExtraCheck): string[] {
  const errs: string[] = []
  const type = protos.typeOf(typeUrl)
  if (!type) return [`type ${typeUrl} is not loaded`]
  new Walker(protos, errs, extra).message(type, obj, typeUrl.slice(typeUrl.lastIndexOf('/') + 1), 0)
  return errs
}

const fieldRuleCache = new WeakMap<Protobuf.Field, Rules | null>()

function fieldRules(f: Protobuf.Field): Rules | null {
  const hit = fieldRuleCache.get(f)
  if (hit !== undefined) return hit
  let merged: Rules | null = null
  for (const o of (f.parsedOptions as unknown as Array<Record<string, unknown>> | null) ?? []) {
    const r = o['(validate.rules)']
    if (r && typeof r === 'object') merged = deepMerge(merged ?? {}, r as Rules)
  }
  fieldRuleCache.set(f, merged)
  return merged
}

function deepMerge(a: Rules, b: Rules): Rules {
  for (const [k, v] of Object.entries(b)) {
    a[k] = v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object' ? deepMerge({ ...a[k] }, v) : v
  }
  return a
}

// protobufjs computes fullName on every read (a walk up the parents and a join).
const fullNames = new WeakMap<Protobuf.Type, string>()

function fullNameOf(t: Protobuf.Type): string {
  let n = fullNames.get(t)
  if (n === undefined) {
    n = t.fullName
    fullNames.set(t, n)
  }
  return n
}

const oneofCache = new WeakMap<Protobuf.OneOf, boolean>()

function oneofRequired(o: Protobuf.OneOf): boolean {
  let hit = oneofCache.get(o)
  if (hit === undefined) {
    hit = o.options?.['(validate.required)'] === true
    for (const opt of (o.parsedOptions as unknown as Array<Record<string, unknown>> | null) ?? [])
      if (opt['(validate.required)'] === true) hit = true
    oneofCache.set(o, hit)
  }
  return hit
}

const INT_TYPES = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'])
const NUM_TYPES = new Set([...INT_TYPES, 'double', 'float'])
const WRAPPERS: Record<string, string> = {
  '.google.protobuf.DoubleValue': 'double',
  '.google.protobuf.FloatValue': 'float',
  '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64',
  '.google.protobuf.Int32Value': 'int32',
  '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.BoolValue': 'bool',
  '.google.protobuf.StringValue': 'string',
  '.google.protobuf.BytesValue': 'bytes',
}

class Walker {
  private readonly report = (path: string, msg: string): void => this.err(path, msg)

  constructor(
    private readonly protos: XdsProtos,
    private readonly errs: string[],
    private readonly extra: ExtraCheck,
  ) {}

  private err(path: string, msg: string): void {
    this.errs.push(`${path}: ${msg}`)
  }

  message(type: Protobuf.Type, obj: unknown, path: string, depth: number): void {
    if (depth > MAX_DEPTH) return this.err(path, 'nested too deep')
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return this.err(path, `expected a ${type.name} object`)
    const o = obj as Obj
    if (fullNameOf(type) === '.google.protobuf.Any') return this.any(o, path, depth)
    for (const key of Object.keys(o)) {
      if (o[key] === undefined) continue
      if (!type.fields[key]) this.err(path, `unknown field "${key}" in ${type.name}`)
    }
    for (const oneof of type.oneofsArray) {
      const set = oneof.fieldsArray.filter((f) => o[f.name] !== undefined && o[f.name] !== null)
      if (set.length > 1) this.err(path, `oneof ${oneof.name} has ${set.map((f) => f.name).join(' and ')}`)
      if (set.length === 0 && oneofRequired(oneof)) this.err(path, `oneof ${oneof.name} is required`)
    }
    for (const f of type.fieldsArray) {
      const v = o[f.name]
      // An absent field without rules has nothing to check (most of a Cluster's ~60 fields):
      // skipping it here saves building its path.
      if ((v === undefined || v === null) && fieldRules(f) === null) continue
      this.field(f, v, `${path}.${f.name}`, depth)
    }
    this.extra(fullNameOf(type), o, path, this.report)
  }

  private any(o: Obj, path: string, depth: number): void {
    const url = (o['@type'] ?? o.type_url) as unknown
    if (typeof url !== 'string' || url === '') return this.err(path, 'Any without a type')
    const inner = this.protos.typeOf(url)
    if (!inner) return this.err(path, `Any of type ${url}, which is not loaded (it would be packed empty)`)
    if ('@type' in o) {
      const { '@type': _t, ...rest } = o
      this.message(inner, rest, `${path}<${inner.name}>`, depth + 1)
    } else if (!(o.value instanceof Uint8Array)) {
      this.err(path, 'Any value is not bytes')
    }
  }

  private field(f: Protobuf.Field, v: unknown, path: string, depth: number): void {
    f.resolve()
    const present = v !== undefined && v !== null
    // PGV checks a oneof member only when it is the one set.
    if (!present && f.partOf) return
    const rules = fieldRules(f)
    if (f.map) {
      if (present && (typeof v !== 'object' || Array.isArray(v))) return this.err(path, 'expected a map object')
      const entries = present ? Object.entries(v as Obj) : []
      const mr = rules?.map as Rules | undefined
      if (mr) {
        if (mr.min_pairs !== undefined && entries.length < Number(mr.min_pairs)) this.err(path, `needs at least ${mr.min_pairs} entries`)
        if (mr.max_pairs !== undefined && entries.length > Number(mr.max_pairs)) this.err(path, `allows at most ${mr.max_pairs} entries`)
      }
      for (const [k, val] of entries) {
        if (mr?.keys) this.scalarRules(mr.keys, (f as unknown as Protobuf.MapField).keyType ?? 'string', k, `${path}[${k}] key`)
        this.single(f, val, mr?.values ?? null, `${path}[${k}]`, depth, true)
      }
      return
    }
    if (f.repeated) {
      if (present && !Array.isArray(v)) return this.err(path, 'expected a list')
      const list = (present ? v : []) as unknown[]
      const rr = rules?.repeated as Rules | undefined
      if (rr) {
        if (rr.min_items !== undefined && list.length < Number(rr.min_items)) this.err(path, `needs at least ${rr.min_items} items`)
        if (rr.max_items !== undefined && list.length > Number(rr.max_items)) this.err(path, `allows at most ${rr.max_items} items`)
        if (rr.unique && new Set(list.map((x) => JSON.stringify(x))).size !== list.length) this.err(path, 'items must be unique')
      }
      list.forEach((x, i) => this.single(f, x, rr?.items ?? null, `${path}[${i}]`, depth, true))
      return
    }
    this.single(f, v, rules, path, depth, false)
  }

  private single(f: Protobuf.Field, v: unknown, rules: Rules | null, path: string, depth: number, inList: boolean): void {
    const present = v !== undefined && v !== null
    const rt = f.resolvedType
    if (rt && 'fieldsArray' in rt) {
      const type = rt as Protobuf.Type
      if (!present) {
        if (rules?.message?.required || rules?.duration?.required || rules?.any?.required || rules?.timestamp?.required)
          this.err(path, 'is required')
        if (inList) this.err(path, 'null list item')
        return
      }
      const wrapped = WRAPPERS[fullNameOf(type)]
      if (wrapped && rules && rules[wrapped] && typeof v === 'object')
        this.scalarRules(rules[wrapped], wrapped, (v as Obj).value ?? defaultOf(wrapped), path)
      if (fullNameOf(type) === '.google.protobuf.Duration' && rules?.duration) this.durationRules(rules.duration, v as Obj, path)
      if (fullNameOf(type) === '.google.protobuf.Any' && rules?.any) {
        const url = (v as Obj)['@type'] ?? (v as Obj).type_url
        const ar = rules.any as Rules
        if (Array.isArray(ar.in) && ar.in.length && !ar.in.includes(url)) this.err(path, `Any type ${String(url)} not allowed`)
        if (Array.isArray(ar.not_in) && ar.not_in.includes(url)) this.err(path, `Any type ${String(url)} not allowed`)
      }
      if (rules?.message?.skip) return
      this.message(type, v, path, depth + 1)
      return
    }
    if (rt && 'values' in rt) {
      const en = rt as Protobuf.Enum
      let num: number | undefined
      if (!present) num = 0
      else if (typeof v === 'string') num = en.values[v]
      else if (typeof v === 'number' && Number.isInteger(v)) num = v
      else return this.err(path, `expected an enum ${en.name} name or number`)
      if (typeof v === 'string' && num === undefined) return this.err(path, `"${v}" is not a value of ${en.name}`)
      const er = rules?.enum as Rules | undefined
      if (er && num !== undefined) {
        if (er.defined_only && !Object.values(en.values).includes(num)) this.err(path, `${num} is not a defined ${en.name}`)
        if (er.const !== undefined && num !== Number(er.const)) this.err(path, `must be ${er.const}`)
        if (Array.isArray(er.in) && er.in.length && !er.in.map(Number).includes(num)) this.err(path, `must be one of ${er.in.join(',')}`)
        if (Array.isArray(er.not_in) && er.not_in.map(Number).includes(num)) this.err(path, `must not be one of ${er.not_in.join(',')}`)
      }
      return
    }
    // Scalars: type check, then rules on the value (proto3: an absent scalar is its default).
    const t = f.type
    if (present && !scalarTypeOk(t, v)) return this.err(path, `expected ${t}, got ${typeof v}`)
    const key = t === 'bytes' ? 'bytes' : t === 'string' ? 'string' : t === 'bool' ? 'bool' : t
    if (rules && rules[key]) this.scalarRules(rules[key], t, present ? v : defaultOf(t), path)
  }

  private scalarRules(r: Rules, t: string, v: unknown, path: string): void {
    if (NUM_TYPES.has(t)) {
      const n = Number(v)
      const gt = r.gt !== undefined ? Number(r.gt) : undefined
      const gte = r.gte !== undefined ? Number(r.gte) : undefined
      const lt = r.lt !== undefined ? Number(r.lt) : undefined
      const lte = r.lte !== undefined ? Number(r.lte) : undefined
      if (r.const !== undefined && n !== Number(r.const)) this.err(path, `must be ${r.const}`)
      const lower = gt !== undefined ? n > gt : gte !== undefined ? n >= gte : true
      const upper = lt !== undefined ? n < lt : lte !== undefined ? n <= lte : true
      const lo = gt ?? gte
      const hi = lt ?? lte
      // PGV: when the upper bound is below the lower one, the range is exclusive (outside).
      const ok = lo !== undefined && hi !== undefined && hi < lo ? lower || upper : lower && upper
      if (!ok) this.err(path, `${n} out of range (${JSON.stringify({ gt, gte, lt, lte })})`)
      if (Array.isArray(r.in) && r.in.length && !r.in.map(Number).includes(n)) this.err(path, `must be one of ${r.in.join(',')}`)
      if (Array.isArray(r.not_in) && r.not_in.map(Number).includes(n)) this.err(path, `must not be one of ${r.not_in.join(',')}`)
      return
    }
    if (t === 'bool') {
      if (r.const !== undefined && v !== r.const) this.err(path, `must be ${r.const}`)
      return
    }
    if (t === 'bytes') {
      const len = v instanceof Uint8Array ? v.length : typeof v === 'string' ? Buffer.from(v, 'base64').length : 0
      if (r.len !== undefined && len !== Number(r.len)) this.err(path, `must be ${r.len} bytes`)
      if (r.min_len !== undefined && len < Number(r.min_len)) this.err(path, `needs at least ${r.min_len} bytes`)
      if (r.max_len !== undefined && len > Number(r.max_len)) this.err(path, `allows at most ${r.max_len} bytes`)
      return
    }
    if (t === 'string') this.stringRules(r, String(v), path)
  }

  private stringRules(r: Rules, s: string, path: string): void {
    const chars = [...s].length
    const bytes = Buffer.byteLength(s)
    if (r.const !== undefined && s !== r.const) this.err(path, `must be "${r.const}"`)
    if (r.len !== undefined && chars !== Number(r.len)) this.err(path, `must be ${r.len} characters`)
    if (r.min_len !== undefined && chars < Number(r.min_len)) this.err(path, `needs at least ${r.min_len} characters`)
    if (r.max_len !== undefined && chars > Number(r.max_len)) this.err(path, `allows at most ${r.max_len} characters`)
    if (r.len_bytes !== undefined && bytes !== Number(r.len_bytes)) this.err(path, `must be ${r.len_bytes} bytes`)
    if (r.min_bytes !== undefined && bytes < Number(r.min_bytes)) this.err(path, `needs at least ${r.min_bytes} bytes`)
    if (r.max_bytes !== undefined && bytes > Number(r.max_bytes)) this.err(path, `allows at most ${r.max_bytes} bytes`)
    if (typeof r.prefix === 'string' && !s.startsWith(r.prefix)) this.err(path, `must start with "${r.prefix}"`)
    if (typeof r.suffix === 'string' && !s.endsWith(r.suffix)) this.err(path, `must end with "${r.suffix}"`)
    if (typeof r.contains === 'string' && !s.includes(r.contains)) this.err(path, `must contain "${r.contains}"`)
    if (typeof r.not_contains === 'string' && s.includes(r.not_contains)) this.err(path, `must not contain "${r.not_contains}"`)
    if (Array.isArray(r.in) && r.in.length && !r.in.includes(s)) this.err(path, `must be one of ${r.in.join(',')}`)
    if (Array.isArray(r.not_in) && r.not_in.includes(s)) this.err(path, `must not be "${s}"`)
    if (typeof r.pattern === 'string') {
      const re = compile(r.pattern)
      if (re && !re.test(s)) this.err(path, `"${s}" does not match ${r.pattern}`)
    }
    if (r.ip && isIP(s) === 0) this.err(path, `"${s}" is not an IP address`)
    if (r.ipv4 && isIP(s) !== 4) this.err(path, `"${s}" is not an IPv4 address`)
    if (r.ipv6 && isIP(s) !== 6) this.err(path, `"${s}" is not an IPv6 address`)
    if (r.hostname && !isHostname(s)) this.err(path, `"${s}" is not a hostname`)
    if (r.address && isIP(s) === 0 && !isHostname(s)) this.err(path, `"${s}" is not an address`)
    if (r.uuid && !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s))
      this.err(path, `"${s}" is not a UUID`)
    if (r.well_known_regex !== undefined) {
      const kind = r.well_known_regex
      const strict = r.strict !== false
      // HTTP_HEADER_NAME (1) and HTTP_HEADER_VALUE (2), RFC 7230, as PGV spells them.
      if ((kind === 'HTTP_HEADER_NAME' || kind === 1) && (strict ? !/^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/.test(s) : /[\0\n\r]/.test(s)))
        this.err(path, `"${s}" is not an HTTP header name`)
      // Control characters are exactly what this rule forbids.
      // eslint-disable-next-line no-control-regex
      if ((kind === 'HTTP_HEADER_VALUE' || kind === 2) && (strict ? /[\0-\x08\x0A-\x1F\x7F]/.test(s) : /[\0\n\r]/.test(s)))
        this.err(path, `"${s}" is not an HTTP header value`)
    }
  }

  private durationRules(r: Rules, v: Obj, path: string): void {
    const ns = (d: unknown): number => {
      const o = (d ?? {}) as Obj
      return Number(o.seconds ?? 0) * 1e9 + Number(o.nanos ?? 0)
    }
    const n = ns(v)
    if (r.const !== undefined && n !== ns(r.const)) this.err(path, 'duration must equal const')
    if (r.gt !== undefined && !(n > ns(r.gt))) this.err(path, `duration must be > ${ns(r.gt) / 1e9}s`)
    if (r.gte !== undefined && !(n >= ns(r.gte))) this.err(path, `duration must be >= ${ns(r.gte) / 1e9}s`)
    if (r.lt !== undefined && !(n < ns(r.lt))) this.err(path, `duration must be < ${ns(r.lt) / 1e9}s`)
    if (r.lte !== undefined && !(n <= ns(r.lte))) this.err(path, `duration must be <= ${ns(r.lte) / 1e9}s`)
  }
}

function defaultOf(t: string): unknown {
  if (t === 'string') return ''
  if (t === 'bool') return false
  if (t === 'bytes') return new Uint8Array(0)
  return 0
}

function scalarTypeOk(t: string, v: unknown): boolean {
  if (t === 'string') return typeof v === 'string'
  if (t === 'bool') return typeof v === 'boolean'
  if (t === 'bytes') return v instanceof Uint8Array || typeof v === 'string'
  if (t === 'double' || t === 'float') return typeof v === 'number'
  if (INT_TYPES.has(t)) {
    if (typeof v === 'number') return Number.isInteger(v) && (!t.startsWith('u') && !t.startsWith('fixed') ? true : v >= 0)
    return typeof v === 'string' && /^-?\d+$/.test(v)
  }
  return true
}

function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false
  return s.split('.').every((p) => /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(p))
}

const reCache = new Map<string, RegExp | null>()
function compile(p: string): RegExp | null {
  if (!reCache.has(p)) {
    try {
      reCache.set(p, new RegExp(p, 'u'))
    } catch {
      try {
        reCache.set(p, new RegExp(p))
      } catch {
        reCache.set(p, null) // RE2 syntax JavaScript cannot read: not checked
      }
    }
  }
  return reCache.get(p)!
}
