/**
 * Makes src/xds/descriptors.json: the protobufjs JSON descriptors of the xDS types Shoal
 * serves, packs and reads (`DESCRIBED_TYPES` in src/xds/protos.ts) and of every type their
 * fields reach, with each field's protoc-gen-validate rules, from the Envoy, xds, googleapis
 * and PGV protos that @grpc/grpc-js-xds ships. The agent loads this one file instead of
 * parsing those protos at start (README "Memory": about 20 MiB less).
 *
 *   npm run xds:descriptors            write src/xds/descriptors.json
 *   npm run xds:descriptors -- --check exit 1 when the file is not what this script makes
 *
 * Run it after changing DESCRIBED_TYPES or upgrading @grpc/grpc-js-xds; test/xds-descriptors.test.ts
 * fails until the checked-in file matches.
 */
import { createRequire } from 'node:module'
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type * as Protobuf from 'protobufjs'
import { DESCRIBED_TYPES, type XdsDescriptors } from '../src/xds/protos.js'

const require = createRequire(import.meta.url)

/** The .proto files that define every type of DESCRIBED_TYPES (and Envoy's Bootstrap, which tests check bootstraps against). */
const FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  // External authorization (authz.ts): the ext_authz filters, and RBAC for a listener that fails closed.
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/network/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  // Service identity over mTLS: the TLS contexts of transport sockets, SDS secrets, the TLS inspector.
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
]

/** Where the generated file lives (next to protos.ts, which reads it). */
export const DESCRIPTORS_PATH = fileURLToPath(new URL('../src/xds/descriptors.json', import.meta.url))

/**
 * Every Envoy, xds, googleapis and PGV type of FILES, parsed from the .proto files with
 * @grpc/proto-loader's protobufjs loader (keepCase), as the agent loaded them before the
 * descriptors: for this script, and for tests that check documents of types Shoal does not
 * serve (Envoy's Bootstrap).
 */
export function loadEnvoyProtos(): Protobuf.Root {
  // The top-level import registers google/protobuf/*.proto as common protos; the util module
  // is the loader that hands back the protobufjs Root itself.
  require('@grpc/proto-loader')
  const util = require(join(dirname(require.resolve('@grpc/proto-loader')), 'util.js')) as {
    loadProtosWithOptionsSync(files: string[], opts: object): Protobuf.Root
  }
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps')
  const root = util.loadProtosWithOptionsSync(FILES, {
    keepCase: true,
    includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d) + '/'),
  })
  root.resolveAll()
  return root
}

type Json = Record<string, unknown>

/** Rules of one field: its `(validate.rules)` options merged (protobufjs keeps them as a list of parsed options). */
function fieldRules(f: Protobuf.Field): Json | undefined {
  let merged: Json | undefined
  for (const o of (f.parsedOptions as unknown as Json[] | null) ?? []) {
    const r = o['(validate.rules)']
    if (r && typeof r === 'object') merged = deepMerge(merged ?? {}, r as Json)
  }
  return merged
}

function deepMerge(a: Json, b: Json): Json {
  for (const [k, v] of Object.entries(b)) {
    const cur = a[k]
    a[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? deepMerge({ ...(cur as Json) }, v as Json)
        : v
  }
  return a
}

/** Options protobufjs itself reads (packed, proto3_optional, ...); custom `(...)` annotations are dropped. */
function builtinOptions(o: Json | undefined): Json | undefined {
  if (!o) return undefined
  const kept = Object.entries(o).filter(([k]) => !k.startsWith('('))
  return kept.length > 0 ? Object.fromEntries(kept) : undefined
}

/**
 * The descriptors of `typeNames` and every type their fields (and their enclosing types)
 * reach: protobufjs JSON with fully qualified field types, plus the PGV rules per field.
 */
export function buildDescriptors(root: Protobuf.Root, typeNames: readonly string[]): XdsDescriptors {
  const seen = new Set<Protobuf.ReflectionObject>()
  const todo: Protobuf.ReflectionObject[] = typeNames.map((n) => root.lookup(n)!)
  for (const n of typeNames) if (!root.lookup(n)) throw new Error(`type ${n} is not in the protos`)
  while (todo.length > 0) {
    const t = todo.pop()!
    if (seen.has(t)) continue
    seen.add(t)
    if ('fieldsArray' in t) for (const f of (t as Protobuf.Type).fieldsArray) if (f.resolvedType) todo.push(f.resolvedType)
    if (t.parent && 'fieldsArray' in t.parent) todo.push(t.parent)
  }
  const nested: Json = {}
  const rules: Record<string, Record<string, Json>> = {}
  const sorted = [...seen].sort((a, b) => (a.fullName < b.fullName ? -1 : 1))
  for (const t of sorted) {
    const path = t.fullName.slice(1).split('.')
    let ns = nested
    for (const part of path.slice(0, -1)) {
      const next = ((ns[part] as Json | undefined) ??= {}) as Json
      ns = ((next.nested as Json | undefined) ??= {}) as Json
    }
    const name = path.at(-1)!
    const prev = (ns[name] as Json | undefined)?.nested
    let json: Json
    if ('fieldsArray' in t) {
      const type = t as Protobuf.Type
      const fields: Json = {}
      for (const f of type.fieldsArray) {
        const fj: Json = { type: f.resolvedType ? f.resolvedType.fullName : f.type, id: f.id }
        const rule = (f as unknown as { rule?: string }).rule
        if (rule && rule !== 'optional') fj.rule = rule
        if ('keyType' in f) fj.keyType = (f as unknown as Protobuf.MapField).keyType
        const opts = builtinOptions(f.options as Json | undefined)
        if (opts) fj.options = opts
        fields[f.name] = fj
        const r = fieldRules(f)
        if (r) (rules[type.fullName.slice(1)] ??= {})[f.name] = r
      }
      const oneofs: Json = {}
      for (const o of type.oneofsArray) {
        const oj: Json = { oneof: o.oneof }
        if (o.options?.['(validate.required)'] === true) oj.options = { '(validate.required)': true }
        oneofs[o.name] = oj
      }
      json = { fields }
      if (type.oneofsArray.length > 0) json.oneofs = oneofs
    } else if ('values' in t) {
      json = { values: (t as Protobuf.Enum).values }
    } else continue
    if (prev) json.nested = prev
    ns[name] = json
  }
  return { generatedFrom: `@grpc/grpc-js-xds ${grpcJsXdsVersion()}`, types: [...typeNames], root: { nested }, rules }
}

function grpcJsXdsVersion(): string {
  return (require('@grpc/grpc-js-xds/package.json') as { version: string }).version
}

/** The file as this script writes it. */
export function descriptorsText(): string {
  return JSON.stringify(buildDescriptors(loadEnvoyProtos(), DESCRIBED_TYPES)) + '\n'
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = descriptorsText()
  if (process.argv.includes('--check')) {
    let current = ''
    try {
      current = readFileSync(DESCRIPTORS_PATH, 'utf8')
    } catch {
      // missing: differs
    }
    if (current !== text) {
      process.stderr.write(`${DESCRIPTORS_PATH} is not what scripts/xds-descriptors.ts makes: run npm run xds:descriptors\n`)
      process.exit(1)
    }
    process.stdout.write(`${DESCRIPTORS_PATH} is up to date\n`)
  } else {
    writeFileSync(DESCRIPTORS_PATH, text)
    process.stdout.write(`wrote ${DESCRIPTORS_PATH} (${text.length} bytes, ${DESCRIBED_TYPES.length} types and their closure)\n`)
  }
}
