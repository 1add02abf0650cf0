// The gRPC echo server the rolling-restart suites run inside containers (node and the
// checkout's node_modules mounted read-only): it answers every call on the echo method with
// its host name (Docker's short container id), after ECHO_DELAY_MS (20), so calls are in
// flight at any moment. What it does on SIGTERM is the point of each scenario (ECHO_ON_TERM):
//   linger  keeps serving ECHO_LINGER_MS (1000), then exits at once (calls still in flight fail);
//   refuse  stops accepting connections at once, sends GOAWAY on the ones it has, and exits
//           when the calls in flight have finished (grpc-js Server.tryShutdown);
//   abrupt  exits at once, whatever is in flight.
// Usage: node echo-server.mjs PORT
import * as grpc from '@grpc/grpc-js'
import { hostname } from 'node:os'

const port = Number(process.argv[2] ?? 50051)
const onTerm = process.env.ECHO_ON_TERM ?? 'linger'
const delayMs = Number(process.env.ECHO_DELAY_MS ?? 20)
const lingerMs = Number(process.env.ECHO_LINGER_MS ?? 1000)
const id = hostname()
const ident = (b) => b
const server = new grpc.Server()
server.addService(
  {
    Echo: {
      path: '/shoal.test.Echo/Echo',
      requestStream: false,
      responseStream: false,
      requestSerialize: ident,
      requestDeserialize: ident,
      responseSerialize: ident,
      responseDeserialize: ident,
    },
  },
  { Echo: (_call, cb) => setTimeout(() => cb(null, Buffer.from(id)), delayMs) },
)
server.bindAsync(`0.0.0.0:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`echo ${id}: cannot listen on ${port}: ${err.message}`)
    process.exit(1)
  }
  console.log(`echo ${id} listening on ${port}, on SIGTERM: ${onTerm}`)
})
process.on('SIGTERM', () => {
  if (onTerm === 'abrupt') process.exit(0)
  if (onTerm === 'refuse') server.tryShutdown(() => process.exit(0))
  else setTimeout(() => process.exit(0), lingerMs)
})
