/**
 * The static services file's schema (JSON Schema draft-07), the one description of its shape:
 * the agent validates every load with the validators ajv generates from it ahead
 * (staticValidatorSource, `npm run schema`: static-validate.cjs), docs/static.schema.json publishes it for
 * editors (`"$schema": "./static.schema.json"` in a Shoal-format file, or the editor's own
 * mapping), and the README's field table is written from the same descriptions.
 *
 * What a schema can say lives here (types, ranges, enums, required and unknown fields); what
 * needs the agent's own rules (name normalisation, IP syntax, authz references, tag and
 * attribute keys, duplicate instance ids) stays in static.ts, after this check.
 */
import { createRequire } from 'node:module'
import type { Ajv as AjvClass, ErrorObject, ValidateFunction } from 'ajv'
import { CheckType } from '../health/types.js'
import { ProxyMode } from './types.js'

const port = (description: string, min = 1) => ({ type: 'integer', minimum: min, maximum: 65535, description })
const positiveInt = (description: string) => ({ type: 'integer', minimum: 1, description })

const shoalPort = {
  type: 'object',
  additionalProperties: false,
  required: ['port', 'servicePort'],
  properties: {
    port: port('The port the instance listens on, at `ip`.'),
    servicePort: port('The cluster-wide ServicePort of the service: every host’s Envoy listens on it.'),
    type: { enum: ['tcp', 'udp'], default: 'tcp', description: 'The port’s protocol.' },
    ip: {
      type: 'string',
      description:
        'The IP the instance is reached at: IPv4 or IPv6, without a zone ID (not fd00::5%eth0), not IPv6 link-local (fe80::/10), not 0.0.0.0 or ::. Default: the agent’s --advertise address.',
    },
  },
}

/**
 * The check types a static instance may have: all but Docker, which reads a container's state
 * (README, Health checks) and a static instance has no container; refused at load rather than
 * leaving the instance unhealthy for ever.
 */
export const STATIC_CHECK_TYPES: readonly CheckType[] = Object.values(CheckType).filter((t) => t !== CheckType.Docker)

const shoalCheck = {
  type: 'object',
  description: 'The instance’s health check; without one it is served as `unknown` (README, Health checks).',
  additionalProperties: false,
  required: ['type'],
  properties: {
    type: {
      enum: STATIC_CHECK_TYPES,
      description: 'The kind of check (README, Health checks); not Docker, which needs a container.',
    },
    args: { type: 'string', description: 'URL (HttpGet), host:port (Tcp), command line (External); templates such as {{ host }} allowed.' },
    intervalMs: positiveInt('Milliseconds between two checks (3000 unless the agent says otherwise).'),
    timeoutMs: positiveInt('Milliseconds one check may take (2000).'),
    rise: positiveInt('Passes in a row that make a failing instance healthy (2).'),
    fall: positiveInt('Failures in a row that make a healthy instance unhealthy (3).'),
  },
}

const stringMap = (description: string) => ({ type: 'object', additionalProperties: { type: 'string' }, description })

const shoalService = {
  type: 'object',
  additionalProperties: false,
  required: ['ports'],
  anyOf: [{ required: ['name'] }, { required: ['image'] }],
  properties: {
    id: {
      type: 'string',
      pattern: '^[A-Za-z0-9._-]{1,64}$',
      $comment: 'must be 1-64 characters of [A-Za-z0-9._-]',
      description: 'The instance id. Default: derived from the name and ports.',
    },
    name: { type: 'string', description: 'The service name (normalised like a container name). Default: from `image`.' },
    image: { type: 'string', description: 'An image name, shown in the API; names the service when `name` is absent.' },
    ports: { type: 'array', minItems: 1, items: shoalPort, description: 'The instance’s ports, each with its ServicePort.' },
    proxyMode: { enum: Object.values(ProxyMode), default: 'http', description: 'How Envoy proxies the service.' },
    check: shoalCheck,
    labels: stringMap('Labels, as a container’s (shoal.* labels apply).'),
    tags: { type: 'array', items: { type: 'string' }, description: 'Tags (Registrator’s SERVICE_TAGS), for DNS filters and xDS metadata.' },
    attributes: stringMap('Attributes (Registrator’s SERVICE_<key>), for xDS metadata.'),
    allow: {
      type: 'array',
      items: { type: 'string' },
      $comment: 'must be an array of service names',
      description: 'The services that may call this one over mTLS, kept as the label shoal.allow (README, Service identity).',
    },
    authz: {
      type: 'object',
      additionalProperties: false,
      required: ['service'],
      $comment: 'must be an object like {"service": "authz"}',
      description: 'External authorization of the service’s inbound requests (README, External authorization).',
      properties: {
        service: { type: 'string', description: 'The authorization service: NAME or NAME:SERVICEPORT.' },
        failureModeAllow: { type: 'boolean', default: false, description: 'Let requests through when the authorization service fails.' },
        timeout: { type: 'string', description: 'How long a Check may take, a duration like "250ms".' },
      },
    },
  },
}

const sidecarPort = {
  type: 'object',
  additionalProperties: false,
  required: ['Port', 'ServicePort'],
  properties: {
    Type: { enum: ['tcp', 'udp', ''] },
    Port: port('The port the instance listens on.'),
    ServicePort: port('The ServicePort; 0 means none.', 0),
    IP: { type: 'string' },
  },
}

/** Sidecar's own fields that Sidecar writes and Shoal ignores are allowed (Created, Hostname, Updated, Status). */
const sidecarTarget = {
  type: 'object',
  additionalProperties: false,
  required: ['Service'],
  properties: {
    Service: {
      type: 'object',
      additionalProperties: false,
      required: ['Ports'],
      properties: {
        ID: { type: 'string' },
        Name: { type: 'string' },
        Image: { type: 'string' },
        Ports: { type: 'array', minItems: 1, items: sidecarPort },
        ProxyMode: { enum: [...Object.values(ProxyMode), ''] },
        Created: {},
        Hostname: {},
        Updated: {},
        Status: {},
      },
    },
    Check: {
      type: 'object',
      additionalProperties: false,
      properties: { ID: { type: 'string' }, Type: { enum: [...Object.values(CheckType), ''] }, Args: { type: 'string' } },
    },
    ListenPort: { type: 'integer' },
  },
}

/** The published schema (docs/static.schema.json is this object, written by `npm run schema`). */
export const STATIC_FILE_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'urn:shoal:static-services-file',
  title: 'Shoal static services file',
  description:
    'Services announced by a Shoal agent from a file (--static): Shoal’s format, or Sidecar’s static.json (an array of targets).',
  definitions: {
    shoalFile: {
      type: 'object',
      additionalProperties: false,
      required: ['services'],
      properties: {
        $schema: { type: 'string', description: 'Where an editor finds this schema; ignored by the agent.' },
        services: { type: 'array', items: shoalService, description: 'One entry per instance this host runs.' },
      },
    },
    sidecarFile: { type: 'array', items: sidecarTarget },
  },
  oneOf: [{ $ref: '#/definitions/shoalFile' }, { $ref: '#/definitions/sidecarFile' }],
} as const

/** The file the validators are generated into (`npm run schema`), next to this module in src/ and dist/. */
export const STATIC_VALIDATOR_FILE = 'static-validate.cjs'

/**
 * The static file's two validators (Shoal's format, Sidecar's) as a standalone CommonJS module:
 * the code ajv compiles from STATIC_FILE_SCHEMA at run time, written out ahead (ajv's
 * "standalone validation code"). `npm run schema` writes it to src/registry/static-validate.cjs;
 * test/static-schema.test.ts fails while that file differs from this. The agent then reads a
 * static file without loading ajv (63 modules, about 3 MiB of RSS: README "Memory").
 */
export function staticValidatorSource(): string {
  const require = createRequire(import.meta.url)
  const { Ajv } = require('ajv') as { Ajv: typeof AjvClass }
  const standaloneCode = (require('ajv/dist/standalone') as { default: (ajv: AjvClass, refs: Record<string, string>) => string }).default
  const ajv = new Ajv({
    allErrors: true,
    strict: true,
    strictRequired: false,
    allowUnionTypes: true,
    verbose: true,
    code: { source: true },
  })
  ajv.addSchema(STATIC_FILE_SCHEMA)
  const ref = (def: string) => `${STATIC_FILE_SCHEMA.$id}#/definitions/${def}`
  return (
    '// Generated by `npm run schema` from src/registry/static-schema.ts (ajv standalone code): do not edit.\n' +
    standaloneCode(ajv, { shoal: ref('shoalFile'), sidecar: ref('sidecarFile') }) +
    '\n'
  )
}

let validators: { shoal: ValidateFunction; sidecar: ValidateFunction } | undefined

function compiled(): { shoal: ValidateFunction; sidecar: ValidateFunction } {
  validators ??= createRequire(import.meta.url)(`./${STATIC_VALIDATOR_FILE}`) as { shoal: ValidateFunction; sidecar: ValidateFunction }
  return validators
}

/** `/services/0/check` → `services[0].check`; the path style of every static-file error. */
function pathOf(pointer: string): string {
  let out = ''
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`
  }
  return out
}

/** Edit distance with adjacent transpositions (optimal string alignment), case-insensitive: `tpye` is one edit from `type`. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase()
  const y = b.toLowerCase()
  const d: number[][] = Array.from({ length: x.length + 1 }, (_, i) =>
    Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  const at = (i: number, j: number): number => d[i]?.[j] ?? Infinity
  for (let i = 1; i <= x.length; i++) {
    const row = d[i]!
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost)
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1)
      row[j] = best
    }
  }
  return at(x.length, y.length)
}

/** The closest known name within a third of its length (at least 1, at most 3 edits), or undefined. */
export function closestName(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestD = Infinity
  for (const k of known) {
    const d = distance(word, k)
    if (d < bestD) [best, bestD] = [k, d]
  }
  const allowed = Math.min(3, Math.max(1, Math.floor(word.length / 3)))
  return bestD <= allowed ? best : undefined
}

/** A value as an error message quotes it: JSON, cut to 60 characters (`"web"`, `8080`, `{"port":1,...`). */
export function describe(v: unknown): string {
  const s = JSON.stringify(v)
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s
}

function valueAt(doc: unknown, pointer: string): unknown {
  let v = doc
  for (const raw of pointer.split('/').slice(1)) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<string, unknown>)[raw.replace(/~1/g, '/').replace(/~0/g, '~')]
  }
  return v
}

/** One line per schema error: `path: problem`, with a suggestion where a field name is near a known one. */
function lineOf(e: ErrorObject, doc: unknown): string | undefined {
  const at = pathOf(e.instancePath)
  const where = (field?: string): string => (field === undefined ? at || 'top level' : at ? `${at}.${field}` : field)
  const got = ` (got ${describe(valueAt(doc, e.instancePath))})`
  const p = e.params as Record<string, unknown>
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = String(p.additionalProperty)
      const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {})
      const near = closestName(field, known)
      return `${where(field)}: unknown field; ${near ? `did you mean "${near}"?` : `known fields: ${known.join(', ')}`}`
    }
    case 'required':
      return `${where(String(p.missingProperty))}: is required`
    case 'enum': {
      const vs = (p.allowedValues as unknown[]).filter((v) => v !== '').map((v) => JSON.stringify(v))
      return `${where()}: must be ${vs.length === 2 ? `${vs[0]} or ${vs[1]}` : `one of ${vs.join(', ')}`}${got}`
    }
    case 'type':
    case 'minimum':
    case 'maximum': {
      const s = e.parentSchema as { type?: string; minimum?: number; maximum?: number; $comment?: string }
      if (s.$comment) return `${where()}: ${s.$comment}${got}`
      if (s.type === 'integer' && s.maximum !== undefined) return `${where()}: must be an integer ${s.minimum ?? 0}-${s.maximum}${got}`
      if (s.type === 'integer' && s.minimum === 1) return `${where()}: must be a positive integer${got}`
      if (s.type === 'boolean') return `${where()}: must be true or false${got}`
      const t = String(p.type ?? s.type)
      return `${where()}: must be ${t === 'integer' ? 'an integer' : `a${/^[aeiou]/.test(t) ? 'n' : ''} ${t}`}${got}`
    }
    case 'minItems':
      return p.limit === 1 ? `${where()}: must be a non-empty array` : `${where()}: must have at least ${String(p.limit)} items`
    case 'pattern': {
      const c = (e.parentSchema as { $comment?: string }).$comment
      return `${where()}: ${c ?? `must match ${String(p.pattern)}`}${got}`
    }
    case 'anyOf':
      // The name-or-image rule; its own `required` errors say it better than anyOf's summary.
      return undefined
    default:
      return `${where()}: ${e.message ?? e.keyword}`
  }
}

/** At most this many problems are reported from one load (the rest are counted): the schema's, then the agent's own rules' (static.ts). */
export const MAX_STATIC_PROBLEMS = 5

/**
 * The problems of one load as reported: the first MAX_STATIC_PROBLEMS, then `and N more`.
 *
 * @example
 *   capProblems(['a', 'b', 'c', 'd', 'e', 'f', 'g']) // ['a', 'b', 'c', 'd', 'e', 'and 2 more']
 */
export function capProblems(lines: readonly string[]): string[] {
  if (lines.length <= MAX_STATIC_PROBLEMS) return [...lines]
  return [...lines.slice(0, MAX_STATIC_PROBLEMS), `and ${lines.length - MAX_STATIC_PROBLEMS} more`]
}

/**
 * The schema's verdict on a parsed static file: an empty list when it conforms, else one line
 * per problem (`services[0].chek: unknown field; did you mean "check"?`), at most 5 and a
 * count of the rest (every one with `all`). A document that is neither an object nor an array gets one line.
 */
export function staticSchemaProblems(doc: unknown, opts: { all?: boolean } = {}): string[] {
  const v = compiled()
  let validate: ValidateFunction
  if (Array.isArray(doc)) validate = v.sidecar
  else if (doc !== null && typeof doc === 'object') validate = v.shoal
  else return ['top level: must be {"services": [...]} (Shoal) or an array of {"Service": ...} (Sidecar)']
  if (validate(doc)) return []
  const lines: string[] = []
  const anyOfName = new Set<string>()
  for (const e of validate.errors ?? []) {
    // `name` or `image`: both missing yields two `required` errors under one anyOf; say it once.
    if (e.keyword === 'required' && (e.params.missingProperty === 'name' || e.params.missingProperty === 'image')) {
      if (anyOfName.has(e.instancePath)) continue
      anyOfName.add(e.instancePath)
      const at = pathOf(e.instancePath)
      lines.push(`${at ? `${at}.` : ''}name: is required (or image)`)
      continue
    }
    const line = lineOf(e, doc)
    if (line !== undefined && !lines.includes(line)) lines.push(line)
  }
  // `tpye` for `type` gives two errors; the suggestion says both, so the missing field's line goes.
  const suggested = new Set(
    lines.map((l) => /^(.*?)[^.[\]]+: unknown field; did you mean "([^"]+)"/.exec(l)).flatMap((m) => (m ? [`${m[1]}${m[2]}`] : [])),
  )
  const kept = lines.filter((l) => !(l.endsWith(': is required') && suggested.has(l.slice(0, -': is required'.length))))
  lines.splice(0, lines.length, ...kept)
  return opts.all ? lines : capProblems(lines)
}

interface SchemaNode {
  type?: string
  enum?: readonly unknown[]
  items?: SchemaNode
  properties?: Record<string, SchemaNode>
  required?: readonly string[]
  additionalProperties?: boolean | SchemaNode
  minimum?: number
  maximum?: number
  default?: unknown
  description?: string
  $comment?: string
}

function typeOf(n: SchemaNode): string {
  if (n.enum)
    return n.enum
      .filter((v) => v !== '')
      .map((v) => `\`${JSON.stringify(v)}\``)
      .join(' \\| ')
  if (n.type === 'array') return `array of ${n.items ? typeOf(n.items) : 'any'}s`
  if (n.type === 'integer' && n.maximum !== undefined) return `integer ${n.minimum ?? 0}-${n.maximum}`
  if (n.type === 'integer' && n.minimum === 1) return 'positive integer'
  if (n.type === 'object' && typeof n.additionalProperties === 'object') return `object of ${typeOf(n.additionalProperties)}s`
  return n.type ?? 'any'
}

/**
 * The Shoal format's fields as a Markdown table (path, type, required, default, meaning), for
 * the README between `<!-- static-schema:begin -->` and `<!-- static-schema:end -->`
 * (`npm run schema` writes it; test/static-schema.test.ts checks it).
 */
export function staticSchemaMarkdown(): string {
  const rows: string[] = ['| Field | Type | Required | Default | Meaning |', '|---|---|---|---|---|']
  const walk = (node: SchemaNode, path: string): void => {
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      if (name === '$schema') continue
      const p = path ? `${path}.${name}` : name
      const req = node.required?.includes(name) ? 'yes' : p === 'services[].name' ? 'yes, or `image`' : ''
      const def = child.default === undefined ? '' : `\`${JSON.stringify(child.default)}\``
      rows.push(`| \`${p}\` | ${typeOf(child)} | ${req} | ${def} | ${(child.description ?? '').replace(/\|/g, '\\|')} |`)
      const inner = child.type === 'array' ? child.items : child
      if (inner?.properties) walk(inner, child.type === 'array' ? `${p}[]` : p)
    }
  }
  walk(STATIC_FILE_SCHEMA.definitions.shoalFile as unknown as SchemaNode, '')
  return rows.join('\n')
}
