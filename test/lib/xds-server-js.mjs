// A proxyless gRPC server on @grpc/grpc-js-xds: an XdsServer (gRFC A36) that takes its Listener,
// its mTLS settings (gRFC A29, with XdsServerCredentials) and its RBAC filter (gRFC A41) from
// the agent named in GRPC_XDS_BOOTSTRAP_CONFIG, as a user's server would. Each call is answered
// with `ID|PEER`: this server's id and the URI SAN of the caller's certificate (empty over plain
// text), so a test sees who answered and whom the server saw.
//
//   node xds-server-js.mjs ID IP:PORT [plain]   ("plain": insecure ServerCredentials, ignoring the Listener's TLS)
// Prints {"serving": true} once the Listener is applied and the port listens, then one JSON
// line per serving-state change; exits on stdin's end. grpc-js's own log goes to stderr.
import * as grpc from '@grpc/grpc-js'
import * as xds from '@grpc/grpc-js-xds'

const [id, address, mode] = process.argv.slice(2)
const ident = (b) => b
const line = (...args) => process.stderr.write(args.join(' ').replace(/\s*\n\s*/g, ' ') + '\n')
grpc.setLogger({ error: line, info: line, debug: line })
xds.register()

const echo = {
  Echo: {
    path: '/shoal.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: ident,
    requestDeserialize: ident,
    responseSerialize: ident,
    responseDeserialize: ident,
  },
}
const server = new xds.XdsServer()
server.addService(echo, {
  Echo: (call, cb) => {
    const san = call.getAuthContext().sslPeerCertificate?.subjectaltname ?? ''
    const peer = /URI:([^,]*)/.exec(san)?.[1] ?? ''
    cb(null, Buffer.from(`${id}|${peer}`))
  },
})
const insecure = grpc.ServerCredentials.createInsecure()
const creds = mode === 'plain' ? insecure : new xds.XdsServerCredentials(insecure)
server.bindAsync(address, creds, (err) => {
  if (err) {
    process.stdout.write(JSON.stringify({ error: err.message }) + '\n')
    process.exit(1)
  }
  process.stdout.write(JSON.stringify({ serving: true }) + '\n')
})
server.addServingStateListener(address, (s) =>
  process.stdout.write(JSON.stringify({ state: grpc.status[s.code], details: s.details }) + '\n'),
)
process.stdin.on('data', () => undefined)
process.stdin.on('end', () => {
  server.forceShutdown()
  process.exit(0)
})
