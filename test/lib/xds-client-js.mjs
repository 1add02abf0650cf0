// A proxyless xDS client on @grpc/grpc-js-xds, driven over stdin/stdout with the same line
// protocol as xds-client-ccore.py (see there). grpc-js-xds registers globally, once per
// process: one process is one client, configured by GRPC_XDS_BOOTSTRAP_CONFIG. Its trace
// (GRPC_TRACE=xds_client) goes to stderr one line per entry, so the harness can read the
// discovery requests that carry an error_detail (its NACKs).
import * as grpc from '@grpc/grpc-js'
import * as xds from '@grpc/grpc-js-xds'
import { createInterface } from 'node:readline'

const METHOD = '/shoal.test.Echo/Echo'
const ident = (b) => b
const line = (...args) => process.stderr.write(args.join(' ').replace(/\s*\n\s*/g, ' ') + '\n')
grpc.setLogger({ error: line, info: line, debug: line })
xds.register()

// SHOAL_TEST_CREDS=xds: xDS credentials (gRFC A29), the mTLS the agent's Clusters configure;
// else plain credentials, which ignore it.
const credentials =
  process.env.SHOAL_TEST_CREDS === 'xds'
    ? new xds.XdsChannelCredentials(grpc.credentials.createInsecure())
    : grpc.credentials.createInsecure()
const clients = new Map()
function client(target) {
  let c = clients.get(target)
  if (!c) clients.set(target, (c = new grpc.Client(target, credentials)))
  return c
}

function callOn(c, timeoutMs) {
  return new Promise((resolve) =>
    c.makeUnaryRequest(METHOD, ident, ident, Buffer.from('hi'), { deadline: Date.now() + timeoutMs }, (err, res) =>
      resolve(
        err ? { ok: false, code: grpc.status[err.code] ?? String(err.code), error: err.details ?? '' } : { ok: true, who: res.toString() },
      ),
    ),
  )
}

function call(target, timeoutMs) {
  return callOn(client(target), timeoutMs)
}

// A new channel for one call, closed after it: a new connection, so a new TLS handshake.
async function fresh(target, timeoutMs) {
  const c = new grpc.Client(target, credentials)
  const r = await callOn(c, timeoutMs)
  c.close()
  return r
}

// Calls at a steady rate (op load-start), each recorded with its start time, until load-stop.
let load
function startLoad(target, rate, timeoutMs) {
  const results = []
  const inFlight = new Set()
  const t0 = Date.now()
  let sent = 0
  const timer = setInterval(() => {
    // Catch up on the schedule (timers on a loaded machine fire late), never faster.
    const due = Math.floor(((Date.now() - t0) * rate) / 1000)
    for (; sent < due; sent++) {
      const at = Date.now()
      const p = call(target, timeoutMs).then((r) => {
        results.push({ at, end: Date.now(), ...r })
        inFlight.delete(p)
      })
      inFlight.add(p)
    }
  }, 5)
  return { timer, results, inFlight }
}

async function handle(req) {
  if (req.op === 'load-start') {
    load = startLoad(req.target, req.rate ?? 200, req.timeoutMs ?? 3000)
    return { ok: true }
  }
  if (req.op === 'load-stop') {
    if (!load) return { ok: false, code: 'FAILED_PRECONDITION', error: 'no load running' }
    clearInterval(load.timer)
    await Promise.all([...load.inFlight])
    const { results } = load
    load = undefined
    return { ok: true, results }
  }
  if (req.op === 'call') return call(req.target, req.timeoutMs ?? 3000)
  if (req.op === 'burst') {
    const results = await Promise.all(Array.from({ length: req.n }, () => call(req.target, req.timeoutMs ?? 3000)))
    return { ok: true, results }
  }
  if (req.op === 'fresh') return fresh(req.target, req.timeoutMs ?? 3000)
  if (req.op === 'time') {
    // n calls in a row, each timed here (no harness in between): on the open channel, or each on a new one.
    const ms = []
    for (let i = 0; i < req.n; i++) {
      const t0 = performance.now()
      const r = req.fresh ? await fresh(req.target, 5000) : await call(req.target, 5000)
      if (!r.ok) return r
      ms.push(performance.now() - t0)
    }
    return { ok: true, ms }
  }
  if (req.op === 'watch') {
    // Asking for the state with tryToConnect starts the xds resolver without a call.
    for (const target of req.targets) client(target).getChannel().getConnectivityState(true)
    return { ok: true }
  }
  return { ok: false, code: 'INVALID_ARGUMENT', error: `unknown op ${req.op}` }
}

process.stdout.write(JSON.stringify({ id: 0, ok: true, ready: true }) + '\n')
const rl = createInterface({ input: process.stdin })
for await (const text of rl) {
  if (!text.trim()) continue
  const req = JSON.parse(text)
  if (req.op === 'exit') break
  const out = await handle(req)
  process.stdout.write(JSON.stringify({ ...out, id: req.id }) + '\n')
}
for (const c of clients.values()) c.close()
process.exit(0)
