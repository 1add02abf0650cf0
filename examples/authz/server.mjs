#!/usr/bin/env node
// An example external authorization server for Shoal (README, External authorization): a
// gRPC `envoy.service.auth.v3.Authorization/Check` service that Envoy's ext_authz filter
// calls before a request (HTTP) or a connection (TCP) reaches a protected service. It allows
//  - a request carrying an allowed header value (`--allow-header x-team=payments`), or
//  - a caller whose SPIFFE ID is allowed (`--allow-spiffe spiffe://default/svc/web`): Envoy
//    puts the peer certificate's URI SAN in `attributes.source.principal` when the
//    connection it checks is mTLS, and Shoal's service leaves carry spiffe://DOMAIN/svc/NAME;
// and denies everything else: PERMISSION_DENIED in the CheckResponse status, with a 403 and a
// body for HTTP. Every decision is one line on stdout.
//
//   node examples/authz/server.mjs --listen 127.0.0.1:9191 --allow-header x-team=payments
//
// Run it as a service in the registry with proxy mode grpc (examples/authz/static.json), and
// give the protected service `shoal.authz=authz` (or the static file's `authz` field).
// It uses the project's own dependencies (@grpc/grpc-js, @grpc/proto-loader) and the Envoy
// protos shipped with @grpc/grpc-js-xds.
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'

const USAGE = `Usage: node examples/authz/server.mjs [--listen HOST:PORT] [--allow-header NAME=VALUE ...] [--allow-spiffe ID ...]

  --listen HOST:PORT        where the gRPC server listens (default 127.0.0.1:9191; port 0 picks one)
  --allow-header NAME=VALUE allow a request whose header NAME (any case) has exactly VALUE (repeatable)
  --allow-spiffe ID         allow a caller whose SPIFFE ID (spiffe://DOMAIN/PATH) is ID (repeatable)
`

function fail(message) {
  process.stderr.write(`authz example: ${message}\n${USAGE}`)
  process.exit(2)
}

let args
try {
  args = parseArgs({
    options: {
      listen: { type: 'string', default: '127.0.0.1:9191' },
      'allow-header': { type: 'string', multiple: true, default: [] },
      'allow-spiffe': { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h' },
    },
  }).values
} catch (err) {
  fail(err.message)
}
if (args.help) {
  process.stdout.write(USAGE)
  process.exit(0)
}

const headers = args['allow-header'].map((rule) => {
  const eq = rule.indexOf('=')
  if (eq < 1) fail(`--allow-header: "${rule}" is not NAME=VALUE`)
  return { name: rule.slice(0, eq).trim().toLowerCase(), value: rule.slice(eq + 1) }
})
const spiffeIds = new Set(
  args['allow-spiffe'].map((id) => {
    if (!/^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/.test(id))
      fail(`--allow-spiffe: "${id}" is not a SPIFFE ID like spiffe://default/svc/web`)
    return id
  }),
)
if (headers.length === 0 && spiffeIds.size === 0) fail('nothing would ever be allowed: give --allow-header or --allow-spiffe')
const listen = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(args.listen)
if (!listen || Number(listen[2]) > 65535) fail(`--listen: "${args.listen}" is not HOST:PORT`)

// The Envoy protos that @grpc/grpc-js-xds ships (envoy-api, xds, googleapis, protoc-gen-validate).
const require = createRequire(import.meta.url)
const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps')
const definition = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d)),
})
const Authorization = grpc.loadPackageDefinition(definition).envoy.service.auth.v3.Authorization

const OK = 0
const PERMISSION_DENIED = 7

/** The decision for one CheckRequest: which rule allowed it, or why not. */
function decide(attributes) {
  const principal = attributes?.source?.principal ?? ''
  if (principal && spiffeIds.has(principal)) return { allow: true, why: `SPIFFE ID ${principal}` }
  const sent = attributes?.request?.http?.headers ?? {}
  for (const h of headers) if (sent[h.name] === h.value) return { allow: true, why: `header ${h.name}` }
  return { allow: false, why: principal ? `SPIFFE ID ${principal} is not allowed and no allowed header` : 'no allowed header or SPIFFE ID' }
}

function check(call, callback) {
  const attributes = call.request.attributes
  const { allow, why } = decide(attributes)
  const http = attributes?.request?.http
  const what = http?.method ? `${http.method} ${http.host ?? ''}${http.path ?? ''}` : 'connection'
  process.stdout.write(`${allow ? 'allow' : 'deny'} ${what} from ${attributes?.source?.address?.socket_address?.address ?? '?'}: ${why}\n`)
  if (allow) return callback(null, { status: { code: OK }, ok_response: {} })
  callback(null, {
    status: { code: PERMISSION_DENIED, message: why },
    denied_response: { status: { code: 'Forbidden' }, body: `denied by the authorization service: ${why}\n` },
  })
}

const server = new grpc.Server()
server.addService(Authorization.service, { Check: check })
server.bindAsync(args.listen, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`authz example: --listen ${args.listen}: ${err.message}\n`)
    process.exit(2)
  }
  const rules = [...headers.map((h) => `header ${h.name}=${h.value}`), ...[...spiffeIds].map((id) => `SPIFFE ID ${id}`)]
  process.stdout.write(`authz example listening on ${listen[1]}:${port}; allows ${rules.join(', ')}\n`)
})

let stopping = false
function stop() {
  if (stopping) process.exit(1)
  stopping = true
  const force = setTimeout(() => server.forceShutdown(), 2000)
  server.tryShutdown(() => {
    clearTimeout(force)
    process.exit(0)
  })
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
