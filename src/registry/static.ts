/**
 * The static services file: Shoal's own format or Sidecar's static.json, validated with
 * errors that name the file, the entry and the field, reloaded when the file changes. A
 * bad edit keeps the previous set.
 *
 * Shoal's format:
 *   { "services": [ { "id"?: "web-1", "name": "web", "image"?: "web:1",
 *       "ports": [ { "port": 8080, "servicePort": 10080, "type"?: "tcp", "ip"?: "127.0.0.1" } ],
 *       "proxyMode"?: "http", "check"?: { "type": "HttpGet", "args": "http://{{ host }}:8080/" },
 *       "labels"?: { "team": "a" }, "tags"?: ["blue", "canary"], "attributes"?: { "region": "us-east" },
 *       "allow"?: ["svc-a", "svc-b"],
 *       "authz"?: { "service": "authz" or "authz:10100", "failureModeAllow"?: false, "timeout"?: "200ms" } } ] }
 *   `allow` (the callers a service accepts, README Service identity) is kept as the label `shoal.allow`.
 *
 * Sidecar's format (a top-level array of targets):
 *   [ { "Service": { "ID"?, "Name", "Image", "Ports": [ { "Type", "Port", "ServicePort", "IP"? } ],
 *       "ProxyMode"? }, "Check"?: { "Type", "Args" }, "ListenPort"? } ]
 */
import { EventEmitter } from 'node:events'
import { watch, type FSWatcher } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import type { Gauge, Registry } from 'prom-client'
import { advertisedIpProblem, canonicalIp, formatHostPort } from '../address.js'
import { RealClock, type Clock, type Timer } from '../clock.js'
import { ShoalError } from '../errors.js'
import type { CheckSpec } from '../health/types.js'
import { CheckType } from '../health/types.js'
import { logProblem, type Logger } from '../log.js'
import { AuthzLabel, authzLabels, authzOf } from './authz.js'
import { counter, gauge } from '../metrics.js'
import { imageName, normaliseName, staticInstanceId } from './names.js'
import { portClashes } from './ports.js'
import { capProblems, describe, STATIC_CHECK_TYPES, staticSchemaProblems } from './static-schema.js'
import { attributeKeyProblem, tagProblem } from './tags.js'
import { ALLOW_LABEL, ProxyMode, type LocalServiceSpec, type ServicePortSpec, type ServiceSource, type SourceStatus } from './types.js'

const ID_RE = /^[A-Za-z0-9._-]{1,64}$/
const proxyModes = new Set<string>(Object.values(ProxyMode))
const checkTypes = new Set<string>(STATIC_CHECK_TYPES)

type Obj = Record<string, unknown>

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** The problem of one field (`where: what to do`), thrown by Problems.fail and caught by Problems.field. */
class FieldProblem extends Error {}

/**
 * The problems of one load by the agent's own rules: a field that breaks one is recorded and
 * the others are still checked, every entry on its own, so one load names up to
 * MAX_STATIC_PROBLEMS of them, as the schema's check does (README, The static file).
 */
class Problems {
  readonly lines: string[] = []
  constructor(readonly file: string) {}
  fail(where: string, msg: string): never {
    throw new FieldProblem(`${where}: ${msg}`)
  }
  /** Runs `f`; a problem it fails with is recorded, and undefined returned. */
  field<T>(f: () => T): T | undefined {
    try {
      return f()
    } catch (err) {
      if (!(err instanceof FieldProblem)) throw err
      // An empty message: the problems of its parts are recorded already.
      if (err.message !== '') this.lines.push(err.message)
      return undefined
    }
  }
  /** Throws SHOAL_ERR_STATIC naming the file and the recorded problems (capProblems), when there are any. */
  throwIfAny(): void {
    if (this.lines.length > 0) throw new ShoalError('SHOAL_ERR_STATIC', `${this.file}: ${capProblems(this.lines).join('; ')}`)
  }
}

function portNumber(p: Problems, where: string, v: unknown, allowZero: boolean): number {
  const min = allowZero ? 0 : 1
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 65535)
    p.fail(where, `must be an integer ${min}-65535 (got ${describe(v)})`)
  return v
}

function optString(p: Problems, where: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') p.fail(where, `must be a string (got ${describe(v)})`)
  return v
}

/** A port's `ip` (`IP`): the advertise IP when absent or empty, else an address the one rule allows (address.ts advertisedIpProblem). */
function ipOf(p: Problems, where: string, v: unknown, fallback: string): string {
  const s = optString(p, where, v)
  if (s === undefined || s === '') return fallback
  const bad = advertisedIpProblem(s)
  if (bad !== undefined) p.fail(where, `${describe(v)} ${bad}`)
  return s
}

/**
 * The rule of an instance's ports (ports.ts portClashes, as the Docker source applies it to
 * labels): one port per ServicePort, one ServicePort per port. `at(j)` names port j's entry.
 */
function checkPortClashes(p: Problems, ports: readonly ServicePortSpec[], at: (j: number) => string, spField: string): void {
  const socketOf = (x: ServicePortSpec): string => `${x.type} ${formatHostPort({ host: canonicalIp(x.ip!) ?? x.ip!, port: x.port! })}`
  const [c] = portClashes(ports.map((x) => ({ servicePort: x.servicePort, socket: socketOf(x) })))
  if (!c) return
  const [x, first] = [ports[c.index]!, ports[c.first]!]
  if (socketOf(x) === socketOf(first) && x.servicePort === first.servicePort) p.fail(at(c.index), `repeats ${at(c.first)}: remove one`)
  if (c.kind === 'servicePort')
    p.fail(
      `${at(c.index)}.${spField}`,
      `${x.servicePort} is also the ServicePort of ${at(c.first)}; an instance has one port per ServicePort (as a container's labels): give this port another ServicePort, or make it an entry of its own`,
    )
  p.fail(
    at(c.index),
    `${socketOf(x)} is also ${at(c.first)} (ServicePort ${first.servicePort}); a port has one ServicePort (as a container port's ServicePort_<port> label): keep one of the two`,
  )
}

function positive(p: Problems, where: string, v: unknown): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) p.fail(where, `must be a positive integer (got ${describe(v)})`)
  return v
}

function checkOf(p: Problems, where: string, v: unknown, sidecar: boolean): CheckSpec | undefined {
  if (v === undefined || v === null) return undefined
  if (!isObj(v)) p.fail(where, `must be an object (got ${describe(v)})`)
  const tKey = sidecar ? 'Type' : 'type'
  const aKey = sidecar ? 'Args' : 'args'
  const type = v[tKey]
  if (sidecar && (type === undefined || type === '')) return undefined
  if (typeof type !== 'string' || !checkTypes.has(type))
    p.fail(
      `${where}.${tKey}`,
      `must be one of ${[...checkTypes].join(', ')} (got ${describe(type)}${type === CheckType.Docker ? ': a Docker check reads a container, and a static instance has none' : ''})`,
    )
  const check: CheckSpec = { type: type as CheckType }
  const args = optString(p, `${where}.${aKey}`, v[aKey])
  if (args !== undefined && args !== '') check.args = args
  if (!sidecar) {
    for (const k of ['intervalMs', 'timeoutMs', 'rise', 'fall'] as const) {
      const n = positive(p, `${where}.${k}`, v[k])
      if (n !== undefined) check[k] = n
    }
  }
  return check
}

function labelsOf(p: Problems, where: string, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {}
  if (!isObj(v)) p.fail(where, `must be an object of strings (got ${describe(v)})`)
  const out: Record<string, string> = {}
  for (const [k, lv] of Object.entries(v)) {
    if (typeof lv !== 'string') p.fail(`${where}.${k}`, `must be a string (got ${describe(lv)})`)
    out[k] = lv
  }
  return out
}

/** The `tags` field: an array of tags (tags.ts). Over the record limits they are trimmed by the owner's fit, with a warning. */
function tagsOf(p: Problems, where: string, v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v)) p.fail(where, `must be an array of strings like ["blue", "canary"] (got ${describe(v)})`)
  return v.map((tag: unknown, i: number) => {
    if (typeof tag !== 'string') p.fail(`${where}[${i}]`, `must be a string (got ${describe(tag)})`)
    const bad = tagProblem(tag)
    if (bad !== undefined) p.fail(`${where}[${i}]`, `${bad} (got ${describe(tag)})`)
    return tag
  })
}

/** The `attributes` field: an object of strings whose keys are attribute keys (tags.ts). */
function attributesOf(p: Problems, where: string, v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined
  if (!isObj(v)) p.fail(where, `must be an object of strings like {"region": "us-east"} (got ${describe(v)})`)
  const out: Record<string, string> = {}
  for (const [k, av] of Object.entries(v)) {
    const bad = attributeKeyProblem(k)
    if (bad !== undefined) p.fail(`${where}.${k}`, `the key ${bad}`)
    if (typeof av !== 'string') p.fail(`${where}.${k}`, `must be a string (got ${describe(av)})`)
    Object.defineProperty(out, k, { value: av, enumerable: true, writable: true, configurable: true })
  }
  return out
}

/**
 * The `authz` field (README, External authorization) as the labels a record carries, checked
 * with the rule every consumer reads them by; or the `shoal.authz*` labels written directly.
 * Both at once is refused: one place says how a service is protected.
 */
function withAuthz(p: Problems, where: string, v: unknown, labels: Record<string, string>): Record<string, string> {
  const spelled = Object.values(AuthzLabel).filter((k) => labels[k] !== undefined)
  if (v === undefined || v === null) {
    const r = authzOf(labels)
    if (r.kind === 'invalid') p.fail(`${where.replace(/authz$/, 'labels')}.${r.label}`, r.problem)
    return labels
  }
  if (spelled.length) p.fail(where, `cannot be combined with the label ${spelled[0]}: say it in one place`)
  if (!isObj(v)) p.fail(where, `must be an object like {"service": "authz"} (got ${describe(v)})`)
  for (const k of Object.keys(v))
    if (k !== 'service' && k !== 'failureModeAllow' && k !== 'timeout')
      p.fail(`${where}.${k}`, 'is not a field (service, failureModeAllow, timeout)')
  if (typeof v.service !== 'string') p.fail(`${where}.service`, `must be a string NAME or NAME:SERVICEPORT (got ${describe(v.service)})`)
  if (v.failureModeAllow !== undefined && typeof v.failureModeAllow !== 'boolean')
    p.fail(`${where}.failureModeAllow`, `must be true or false (got ${describe(v.failureModeAllow)})`)
  if (v.timeout !== undefined && typeof v.timeout !== 'string')
    p.fail(`${where}.timeout`, `must be a duration like "250ms" or "1s" (got ${describe(v.timeout)})`)
  const raw: Record<string, string> = { [AuthzLabel.service]: v.service }
  if (v.failureModeAllow !== undefined) raw[AuthzLabel.failureModeAllow] = String(v.failureModeAllow)
  if (v.timeout !== undefined) raw[AuthzLabel.timeout] = v.timeout
  const r = authzOf(raw)
  if (r.kind === 'invalid') {
    const field = { [AuthzLabel.service]: 'service', [AuthzLabel.failureModeAllow]: 'failureModeAllow', [AuthzLabel.timeout]: 'timeout' }[
      r.label
    ]
    p.fail(`${where}.${field}`, r.problem)
  }
  return r.kind === 'spec' ? { ...labels, ...authzLabels(r.spec) } : labels
}

/** The `allow` field: service names, normalised, as the value of the label `shoal.allow`. */
function allowOf(p: Problems, where: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v)) p.fail(where, `must be an array of service names (got ${describe(v)})`)
  const names = v.map((n: unknown, i: number) => {
    if (typeof n !== 'string' || normaliseName(n) === '') p.fail(`${where}[${i}]`, `must be a service name (got ${describe(n)})`)
    return normaliseName(n)
  })
  return [...new Set(names)].join(',')
}

/** The ports of an entry, each checked on its own; undefined when one has a problem. */
function portsOf(
  p: Problems,
  at: (j: number) => string,
  raws: unknown[],
  advertiseIp: string,
  sidecar: boolean,
): ServicePortSpec[] | undefined {
  const k = sidecar
    ? { type: 'Type', port: 'Port', servicePort: 'ServicePort', ip: 'IP' }
    : { type: 'type', port: 'port', servicePort: 'servicePort', ip: 'ip' }
  const ports = raws.map((raw, j) =>
    p.field((): ServicePortSpec => {
      const pw = at(j)
      if (!isObj(raw)) p.fail(pw, `must be an object (got ${describe(raw)})`)
      const type = raw[k.type] === undefined || (sidecar && raw[k.type] === '') ? 'tcp' : raw[k.type]
      if (type !== 'tcp' && type !== 'udp') p.fail(`${pw}.${k.type}`, `must be "tcp" or "udp" (got ${describe(type)})`)
      const port = p.field(() => portNumber(p, `${pw}.${k.port}`, raw[k.port], false))
      const servicePort = p.field(() => portNumber(p, `${pw}.${k.servicePort}`, raw[k.servicePort], sidecar))
      const ip = p.field(() => ipOf(p, `${pw}.${k.ip}`, raw[k.ip], advertiseIp))
      if (port === undefined || servicePort === undefined || ip === undefined) throw new FieldProblem() // recorded above
      return { type, port, servicePort, ip }
    }),
  )
  if (ports.some((x) => x === undefined)) return undefined
  const all = ports as ServicePortSpec[]
  return p.field(() => {
    checkPortClashes(p, all, at, k.servicePort)
    return all
  })
}

function shoalEntry(p: Problems, e: unknown, i: number, advertiseIp: string): LocalServiceSpec | undefined {
  const w = `services[${i}]`
  const before = p.lines.length
  if (!isObj(e)) return p.field(() => p.fail(w, `must be an object (got ${describe(e)})`))
  const named = p.field(() => {
    const rawName = optString(p, `${w}.name`, e.name)
    const image = optString(p, `${w}.image`, e.image) ?? ''
    const name = rawName !== undefined ? normaliseName(rawName) : imageName(image)
    if (!name)
      p.fail(`${w}.name`, rawName === undefined && !image ? 'is required' : `has no usable characters (got ${describe(rawName ?? image)})`)
    return { name, image }
  })
  const ports =
    Array.isArray(e.ports) && e.ports.length > 0
      ? portsOf(p, (j) => `${w}.ports[${j}]`, e.ports, advertiseIp, false)
      : p.field(() => p.fail(`${w}.ports`, `must be a non-empty array (got ${describe(e.ports)})`))
  const id = p.field(() => {
    const id = optString(p, `${w}.id`, e.id)
    if (id !== undefined && !ID_RE.test(id)) p.fail(`${w}.id`, `must be 1-64 characters of [A-Za-z0-9._-] (got ${describe(id)})`)
    return id
  })
  const proxyMode = p.field(() => {
    const proxyMode = e.proxyMode ?? 'http'
    if (typeof proxyMode !== 'string' || !proxyModes.has(proxyMode))
      p.fail(`${w}.proxyMode`, `must be one of ${[...proxyModes].join(', ')} (got ${describe(proxyMode)})`)
    return proxyMode as ProxyMode
  })
  const labels = p.field(() => withAuthz(p, `${w}.authz`, e.authz, labelsOf(p, `${w}.labels`, e.labels)))
  const tags = p.field(() => tagsOf(p, `${w}.tags`, e.tags))
  const attributes = p.field(() => attributesOf(p, `${w}.attributes`, e.attributes))
  const allow = p.field(() => {
    const allow = allowOf(p, `${w}.allow`, e.allow)
    if (allow !== undefined && labels?.[ALLOW_LABEL] !== undefined) p.fail(`${w}.allow`, `and labels["${ALLOW_LABEL}"] both set: keep one`)
    return allow
  })
  const check = p.field(() => checkOf(p, `${w}.check`, e.check, false))
  if (p.lines.length > before || !named || !ports || !labels || !proxyMode) return undefined
  const spec: LocalServiceSpec = {
    id: id ?? staticInstanceId(named.name, ports),
    name: named.name,
    image: named.image,
    created: 0,
    ports,
    proxyMode,
    labels,
    source: 'static',
    origin: `${p.file} ${w}`,
  }
  if (tags?.length) spec.tags = tags
  if (attributes && Object.keys(attributes).length > 0) spec.attributes = attributes
  if (allow !== undefined) spec.labels[ALLOW_LABEL] = allow
  if (check) spec.check = check
  return spec
}

function sidecarEntry(p: Problems, e: unknown, i: number, advertiseIp: string): LocalServiceSpec | undefined {
  const w = `[${i}]`
  const sw = `${w}.Service`
  const before = p.lines.length
  if (!isObj(e)) return p.field(() => p.fail(w, `must be an object (got ${describe(e)})`))
  const s = e.Service
  if (!isObj(s)) return p.field(() => p.fail(sw, `must be an object (got ${describe(s)})`))
  const named = p.field(() => {
    const rawName = optString(p, `${sw}.Name`, s.Name)
    const image = optString(p, `${sw}.Image`, s.Image) ?? ''
    const name = rawName ? normaliseName(rawName) : imageName(image)
    if (!name)
      p.fail(
        `${sw}.Name`,
        rawName === undefined && !image ? 'is required (or Image)' : `has no usable characters (got ${describe(rawName || image)})`,
      )
    return { name, image }
  })
  const ports =
    Array.isArray(s.Ports) && s.Ports.length > 0
      ? portsOf(p, (j) => `${sw}.Ports[${j}]`, s.Ports, advertiseIp, true)
      : p.field(() => p.fail(`${sw}.Ports`, `must be a non-empty array (got ${describe(s.Ports)})`))
  const id = p.field(() => {
    const id = optString(p, `${sw}.ID`, s.ID)
    if (id !== undefined && id !== '' && !ID_RE.test(id))
      p.fail(`${sw}.ID`, `must be 1-64 characters of [A-Za-z0-9._-] (got ${describe(id)})`)
    return id
  })
  const proxyMode = p.field(() => {
    const pm = s.ProxyMode === undefined || s.ProxyMode === '' ? 'http' : s.ProxyMode
    if (typeof pm !== 'string' || !proxyModes.has(pm))
      p.fail(`${sw}.ProxyMode`, `must be one of ${[...proxyModes].join(', ')} (got ${describe(pm)})`)
    return pm as ProxyMode
  })
  const check = p.field(() => checkOf(p, `${w}.Check`, e.Check, true))
  if (p.lines.length > before || !named || !ports || !proxyMode) return undefined
  const spec: LocalServiceSpec = {
    id: id || staticInstanceId(named.name, ports),
    name: named.name,
    image: named.image,
    created: 0,
    ports,
    proxyMode,
    labels: {},
    source: 'static',
    origin: `${p.file} ${w}`,
  }
  if (check) spec.check = check
  return spec
}

/**
 * Parses and validates a static services file's text against the schema (static-schema.ts,
 * published as docs/static.schema.json), then the agent's own rules. `created` is left 0:
 * StaticSource fills it with the time it first saw each id. Throws ShoalError SHOAL_ERR_STATIC
 * naming the file and, for each problem (at most 5: the schema's, else the agent's own rules',
 * every entry and field checked), the path and the fix
 * (`static.json: services[0].chek: unknown field; did you mean "check"?`).
 *
 * @example
 *   parseStaticServices('{"services":[{"name":"web","ports":[{"port":8080,"servicePort":10080}]}]}', 'static.json', '127.0.0.1')
 */
export function parseStaticServices(text: string, file: string, advertiseIp: string): LocalServiceSpec[] {
  const p = new Problems(file)
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_STATIC', `${file}: JSON${jsonErrorPlace(text)}: ${(err as Error).message}`)
  }
  // The schema first (static-schema.ts): every structural problem, unknown fields with a
  // suggestion; then the agent's own rules, on every entry and field that are there to check
  // (each checks the shape it reads), leaving out what the schema already said of a field.
  const schema = staticSchemaProblems(doc, { all: true })
  if (schema.length > 0 && !Array.isArray(doc) && !(isObj(doc) && Array.isArray(doc.services)))
    throw new ShoalError('SHOAL_ERR_STATIC', `${file}: ${capProblems(schema).join('; ')}`)
  let specs: Array<LocalServiceSpec | undefined>
  if (Array.isArray(doc)) {
    specs = doc.map((e, i) => sidecarEntry(p, e, i, advertiseIp))
  } else if (isObj(doc) && Array.isArray(doc.services)) {
    specs = doc.services.map((e, i) => shoalEntry(p, e, i, advertiseIp))
  } else {
    throw new ShoalError(
      'SHOAL_ERR_STATIC',
      `${file}: top level: must be {"services": [...]} (Shoal) or an array of {"Service": ...} (Sidecar)`,
    )
  }
  const seen = new Map<string, number>()
  specs.forEach((s, i) => {
    if (!s) return
    const prev = seen.get(s.id)
    if (prev !== undefined)
      p.field(() => p.fail(Array.isArray(doc) ? `[${i}]` : `services[${i}]`, `instance id "${s.id}" is already used by entry ${prev}`))
    else seen.set(s.id, i)
  })
  p.lines.splice(0, p.lines.length, ...schema, ...p.lines.filter((l) => !schema.some((sl) => samePlace(sl, l))))
  p.throwIfAny()
  return specs as LocalServiceSpec[]
}

/** Whether two problem lines (`path: what`) are about one field, or one holds the other (`services[0].ports` and `services[0].ports[1].ip`). */
function samePlace(a: string, b: string): boolean {
  const [x, y] = [a.slice(0, a.indexOf(': ')), b.slice(0, b.indexOf(': '))]
  const within = (inner: string, outer: string): boolean =>
    inner === outer || inner.startsWith(outer + '.') || inner.startsWith(outer + '[')
  return within(x, y) || within(y, x)
}

export interface StaticSourceOptions {
  path: string
  /** The IP of ports that do not name one. */
  advertiseIp: string
  /** Poll period, a fallback for file systems where fs.watch misses changes. Default 2000 ms. */
  pollMs?: number
}

/** How long a burst of change notices is gathered into one reload. */
const RELOAD_DEBOUNCE_MS = 50

export interface StaticSourceStats {
  loads: number
  /** Reloads refused because the new content was invalid (the previous set was kept). */
  rejected: number
}

/**
 * Watches a static services file. `start()` rejects when the file cannot be read or is
 * invalid; after that a bad edit is logged and the previous set kept. Emits 'change' with
 * the new specs when the set changes.
 *
 * @example
 *   const src = new StaticSource({ path: 'examples/static.json', advertiseIp: '127.0.0.1' }, { logger })
 *   src.on('change', (specs) => local.setSource('static', specs))
 *   await src.start()
 *   local.setSource('static', src.services())
 */
export class StaticSource extends EventEmitter<{ change: [specs: LocalServiceSpec[]] }> implements ServiceSource {
  readonly source = 'static'
  readonly stats: StaticSourceStats = { loads: 0, rejected: 0 }
  private readonly opts: Required<StaticSourceOptions>
  private readonly log: Logger
  private current: LocalServiceSpec[] = []
  private readonly firstSeen = new Map<string, number>()
  private watcher: FSWatcher | undefined
  private readonly clock: Clock
  private poll: Timer | undefined
  private debounce: Timer | undefined
  private lastStamp = ''
  private lastText: string | undefined
  private started = false
  private loading: Promise<void> = Promise.resolve()
  private firstLoaded: () => void = () => undefined
  private readonly firstView = new Promise<void>((resolve) => (this.firstLoaded = resolve))

  private lastError: { message: string; at: string } | undefined
  private readonly loadsMetric
  private readonly validMetric: Gauge

  /**
   * `registry`: where `shoal_static_file_loads_total{result}` and `shoal_static_file_valid` go;
   * `clock` (default RealClock): the poll, the reload debounce and the `created` stamps run on it.
   */
  constructor(opts: StaticSourceOptions, components: { logger: Logger; registry?: Registry; clock?: Clock }) {
    super()
    this.opts = { pollMs: 2000, ...opts }
    this.clock = components.clock ?? new RealClock()
    this.log = components.logger.child({ component: 'static-source', file: opts.path })
    this.loadsMetric = counter<'result'>(components.registry, {
      name: 'shoal_static_file_loads_total',
      help: 'Reads of the static services file by result: loaded, or rejected (invalid or unreadable; the previous services stay).',
      labelNames: ['result'],
    })
    for (const result of ['loaded', 'rejected']) this.loadsMetric.inc({ result }, 0)
    this.validMetric = gauge(components.registry, {
      name: 'shoal_static_file_valid',
      help: '1 when the static services file as it is now was accepted, 0 while its content is refused (see /api/sources.json).',
    })
  }

  /** For /api/sources.json: the file, its services, and the last refusal while it lasts. */
  status(): SourceStatus {
    const st: SourceStatus = {
      source: this.source,
      where: this.opts.path,
      ok: this.lastError === undefined,
      services: this.current.length,
      loads: this.stats.loads,
      rejected: this.stats.rejected,
    }
    if (this.lastError) st.error = this.lastError
    return st
  }

  private accepted(): void {
    this.stats.loads++
    this.loadsMetric.inc({ result: 'loaded' })
    this.validMetric.set(1)
    if (this.lastError) this.log.info('static file valid again')
    this.lastError = undefined
  }

  private refused(err: Error, what: string): void {
    this.stats.rejected++
    this.loadsMetric.inc({ result: 'rejected' })
    this.validMetric.set(0)
    this.lastError = { message: err.message, at: new Date(this.clock.wallNow()).toISOString() }
    logProblem(
      this.log,
      'warn',
      {
        what: `${what}: ${err.message}`,
        input: this.opts.path,
        fix: 'keeping the previous services (fix the file: it is read again on every change)',
      },
      { err: err.message },
    )
  }

  async start(): Promise<void> {
    if (this.started) return
    const text = await this.read()
    const specs = parseStaticServices(text, this.opts.path, this.opts.advertiseIp)
    this.lastText = text
    this.current = this.stamp(specs)
    this.accepted()
    this.lastStamp = await this.fileStamp()
    this.started = true
    try {
      // Watch the directory: editors often replace the file (rename), which a file watch loses.
      this.watcher = watch(dirname(this.opts.path), { persistent: false }, (_ev, name) => {
        if (name === null || name.toString() === basename(this.opts.path)) this.schedule()
      })
      this.watcher.on('error', (err) => this.log.debug({ err: err.message }, 'fs.watch failed; polling only'))
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'fs.watch unavailable; polling only')
    }
    this.schedulePoll()
    this.log.info({ services: this.current.length }, 'static services loaded')
    this.firstLoaded()
  }

  /** Resolves once the file has been loaded for the first time (start() succeeded). */
  firstSync(): Promise<void> {
    return this.firstView
  }

  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.watcher?.close()
    this.watcher = undefined
    this.poll?.cancel()
    this.debounce?.cancel()
    this.poll = undefined
    this.debounce = undefined
    await this.loading
  }

  /** The current set (the last valid content of the file). */
  services(): LocalServiceSpec[] {
    return this.current
  }

  /** Re-reads the file now (also what the watcher and the poll do). */
  reload(): Promise<void> {
    this.loading = this.loading.then(() => this.doReload())
    return this.loading
  }

  /** The next poll, `pollMs` after this one's stat answered (so polls never overlap). */
  private schedulePoll(): void {
    const poll: Timer = this.clock.setTimer(this.opts.pollMs, () => {
      void this.fileStamp().then((s) => {
        if (!this.started || this.poll !== poll) return // stopped (and maybe started again) meanwhile
        if (s !== this.lastStamp) this.schedule()
        this.schedulePoll()
      })
    })
    this.poll = poll
  }

  private schedule(): void {
    if (!this.started || this.debounce) return
    this.debounce = this.clock.setTimer(RELOAD_DEBOUNCE_MS, () => {
      this.debounce = undefined
      void this.reload()
    })
  }

  private async doReload(): Promise<void> {
    if (!this.started) return
    let text: string
    try {
      this.lastStamp = await this.fileStamp()
      text = await this.read()
    } catch (err) {
      this.lastText = undefined
      this.refused(err as Error, 'static file unreadable')
      return
    }
    if (text === this.lastText) return
    let specs: LocalServiceSpec[]
    try {
      specs = parseStaticServices(text, this.opts.path, this.opts.advertiseIp)
    } catch (err) {
      this.lastText = text
      this.refused(err as Error, 'static file invalid')
      return
    }
    this.lastText = text
    const next = this.stamp(specs)
    this.accepted()
    if (JSON.stringify(next) === JSON.stringify(this.current)) return
    this.current = next
    this.log.info({ services: next.length }, 'static services reloaded')
    this.emit('change', next)
  }

  private stamp(specs: LocalServiceSpec[]): LocalServiceSpec[] {
    const now = this.clock.wallNow()
    return specs.map((s) => {
      let c = this.firstSeen.get(s.id)
      if (c === undefined) {
        c = now
        this.firstSeen.set(s.id, c)
      }
      return { ...s, created: c }
    })
  }

  private async read(): Promise<string> {
    try {
      return await readFile(this.opts.path, 'utf8')
    } catch (err) {
      throw new ShoalError('SHOAL_ERR_STATIC', `${this.opts.path}: cannot read: ${(err as Error).message}`, { cause: err })
    }
  }

  private async fileStamp(): Promise<string> {
    try {
      const s = await stat(this.opts.path)
      return `${s.ino}:${s.size}:${s.mtimeMs}`
    } catch {
      return 'missing'
    }
  }
}

/**
 * ` line L column C` (1-based) of the first character JSON.parse refuses in `text`, '' when the
 * text is only cut short. Node 20's messages give a position for some errors only ("Unexpected
 * token 'x', ... is not valid JSON" has none), so the place is found by parsing prefixes: a
 * prefix before the fault parses or fails at its end, every prefix that holds it fails before; a binary search finds the shortest, O(log n) parses.
 */
export function jsonErrorPlace(text: string): string {
  const faulty = (k: number): boolean => {
    try {
      JSON.parse(text.slice(0, k))
      return false
    } catch (err) {
      // At the cut, V8 says "Unexpected end" or names a position at the end ("Unterminated
      // string in JSON at position 4" for `"abc`): the prefix is only short, not wrong.
      const message = (err as Error).message
      const at = /at position (\d+)/.exec(message)
      return !/Unexpected end of JSON input/.test(message) && !(at && Number(at[1]) >= k)
    }
  }
  if (!faulty(text.length)) return ''
  let lo = 0
  let hi = text.length // faulty(hi); the shortest faulty prefix is in (lo, hi]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (faulty(mid)) hi = mid
    else lo = mid
  }
  const before = text.slice(0, hi - 1)
  const line = before.split('\n').length
  return ` line ${line} column ${before.length - before.lastIndexOf('\n')}`
}
