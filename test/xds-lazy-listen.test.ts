// The ADS listeners of src/xds/grpc.ts: a DNS name listens on every address it resolves to and
// succeeds when at least one could be bound, as grpc-js's bindAsync did (`localhost` on a host
// without IPv6 still serves on 127.0.0.1); when none could, SHOAL_ERR_BIND names the address.
// Stopping ends with a client connected and one gone (a behaviour check: the hang once seen
// in `npm run demo` with an awaited listener close did not come back on demand).
import t from 'tap'
import { createConnection, createServer, type Server } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { RealClock } from '../src/clock.js'
import { FIRST_BYTES_WAIT_MS, LazyGrpcServer } from '../src/xds/grpc.js'
import { Registry } from 'prom-client'
import { capturedLogger } from './lib/log.js'
import { echoCatalog, GRPC_NODE, startServer, TypeUrl } from './lib/xds-fixture.js'

function listen(host: string, port = 0): Promise<Server> {
  const s = createServer()
  return new Promise((resolve, reject) => {
    s.once('error', reject)
    s.listen({ host, port }, () => resolve(s))
  })
}

const connects = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const c = createConnection({ host, port })
    c.once('connect', () => {
      c.destroy()
      resolve(true)
    })
    c.once('error', () => resolve(false))
  })

const lazy = (addrs: string[]) =>
  new LazyGrpcServer(
    () => {
      throw new Error('no client connects in this test')
    },
    () => undefined,
    async () => addrs,
  )

t.test('a name with one address taken listens on the others', async (t) => {
  const blocker = await listen('127.0.0.2')
  t.teardown(() => blocker.close())
  const port = (blocker.address() as { port: number }).port
  const s = lazy(['127.0.0.1', '127.0.0.2'])
  t.teardown(() => s.close(0, new RealClock()))
  t.equal(await s.listen({ host: 'both.test', port }, '--xds'), port, 'bound on the port asked for')
  t.ok(await connects('127.0.0.1', port), 'the free address listens')
})

t.test('a name with every address taken: SHOAL_ERR_BIND naming the flag and the reason', async (t) => {
  const blocker = await listen('127.0.0.2')
  t.teardown(() => blocker.close())
  const port = (blocker.address() as { port: number }).port
  const s = lazy(['127.0.0.2'])
  await t.rejects(s.listen({ host: 'taken.test', port }, '--xds'), {
    code: 'SHOAL_ERR_BIND',
    message: /--xds: cannot listen on taken\.test:\d+: the address is already in use/,
  })
  await s.close(0, new RealClock())
})

t.test('stop resolves after a client came and went, with another still connected', async (t) => {
  const { server, connect } = await startServer(t, echoCatalog())
  const ask = (c: ReturnType<typeof connect>) => c.send({ type_url: TypeUrl.endpoint, node: GRPC_NODE, resource_names: ['echo:10001'] })
  const gone = connect()
  ask(gone)
  await gone.next(30_000)
  gone.close()
  const held = connect()
  ask(held)
  await held.next(30_000)
  // The ceiling is far above the 200 ms grace.
  const stopped = await Promise.race([
    server.stop().then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 60_000).unref()),
  ])
  t.ok(stopped, 'the server stopped')
})

// A client that connects and then neither sends nor reads (a hung Envoy, a port scanner)
// must not outlive the server's stop: HTTP/2's close sends GOAWAY and its FIN, then waits for
// the peer's FIN, which such a client never sends; the agent logged "shoal agent stopped" and
// then did not exit (SIGTERM, socket in FIN-WAIT-2, for as long as the client stayed). After
// stop the server's end of the connection is gone: the client's next writes fail.
async function silentClientOutlivesStop(t: Test, target: { port: number } | { path: string }, stop: () => Promise<void>) {
  const c = createConnection('path' in target ? target : { host: '127.0.0.1', port: target.port })
  await new Promise<void>((resolve, reject) => c.once('connect', resolve).once('error', reject))
  c.pause()
  const gone = new Promise<boolean>((resolve) => {
    c.once('error', () => resolve(true))
    c.once('close', () => resolve(true))
  })
  t.teardown(() => c.destroy())
  await new Promise((r) => setTimeout(r, 100))
  await stop()
  const poke = setInterval(() => c.write('x'), 50)
  const closed = await Promise.race([gone, new Promise<boolean>((r) => setTimeout(() => r(false), 20_000))])
  clearInterval(poke)
  t.ok(closed, "the server's end of the silent connection is closed once stop resolves")
}

t.test('stop closes a TCP connection that sent nothing and reads nothing', async (t) => {
  const { server, port } = await startServer(t, echoCatalog())
  await silentClientOutlivesStop(t, { port }, () => server.stop())
})

t.test('stop closes such a connection on the Unix socket (--xds-socket)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-lazy-listen-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'xds.sock')
  const { server } = await startServer(t, echoCatalog(), { socket: path })
  await silentClientOutlivesStop(t, { path }, () => server.stop())
})

// A connection that does not begin as HTTP/2 (an Envoy whose xDS cluster has TLS on, a browser
// or curl at the xDS port, a scanner) was closed by HTTP/2 without a word: the operator saw
// nothing. Now it is closed, counted by what it looked like, and logged naming the peer and
// the fix, before grpc-js loads for it; a real client is served after all of them.
t.test('a TLS ClientHello, an HTTP/1.1 request and garbage: closed, counted and logged; a real client still served', async (t) => {
  const { logger, lines } = capturedLogger('warn')
  const registry = new Registry()
  const { port, connect } = await startServer(t, echoCatalog(), {}, { logger, registry })
  const hello = Buffer.from('16030100a5010000a10303' + '00'.repeat(32) + '000004c02f00ff01000074', 'hex')
  for (const bytes of [hello, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from([0xde, 0xad, 0xbe, 0xef, 0, 1, 2])]) {
    const c = createConnection({ host: '127.0.0.1', port })
    c.resume()
    c.write(bytes)
    const closed = await Promise.race([
      new Promise<boolean>((r) => c.once('close', () => r(true))),
      new Promise<boolean>((r) => setTimeout(() => r(false), 20_000)),
    ])
    c.destroy()
    t.ok(closed, `closed by the server (${bytes.subarray(0, 4).toString('hex')})`)
  }
  const metrics = await registry.metrics()
  for (const reason of ['tls', 'http1', 'not_http2'])
    t.match(metrics, new RegExp(`shoal_xds_refused_connections_total\\{reason="${reason}"\\} 1`))
  const warned = lines.filter((l) => l.level === 40).map((l) => String(l.msg))
  t.equal(warned.length, 3, 'one line each')
  t.match(warned[0], /127\.0\.0\.1:\d+ sent a TLS ClientHello .* drop the TLS transport_socket/)
  t.match(warned[1], /sent an HTTP\/1 request .* --http/)
  t.match(warned[2], /not HTTP\/2/)
  const real = connect()
  real.send({ type_url: TypeUrl.endpoint, node: GRPC_NODE, resource_names: ['echo:10001'] })
  t.ok(await real.next(30_000), 'a real client is answered')
})

// A connection that sends nothing at all held a descriptor for as long as its client stayed.
t.test('a connection that sends nothing for 10 s is closed and reported as silent', async (t) => {
  const refused: string[] = []
  const server = new LazyGrpcServer(
    () => {
      throw new Error('no client gets this far in this test')
    },
    () => undefined,
    undefined,
    (kind) => refused.push(kind),
  )
  const port = await server.listen({ host: '127.0.0.1', port: 0 }, '--xds')
  t.teardown(() => server.close(1000, new RealClock()))
  const c = createConnection({ host: '127.0.0.1', port })
  t.teardown(() => c.destroy())
  c.resume()
  const started = Date.now()
  const closed = await Promise.race([
    new Promise<boolean>((r) => c.once('close', () => r(true))),
    new Promise<boolean>((r) => setTimeout(() => r(false), 60_000)),
  ])
  t.ok(closed, 'closed by the server')
  t.ok(Date.now() - started >= FIRST_BYTES_WAIT_MS - 100, `not before ${FIRST_BYTES_WAIT_MS} ms`)
  t.same(refused, ['silent'])
})

// close() waits up to its grace for the gRPC sessions; a connection accepted before the
// listeners closed whose first bytes arrive in that wait was handed to a second gRPC server,
// made after the first was dropped, which nothing ever shut down (review of 90587e5..HEAD).
t.test('a preface that arrives while close() waits for the sessions is not served by a new server', { timeout: 60_000 }, async (t) => {
  const grpc = await import('@grpc/grpc-js')
  const same = (b: Buffer) => b
  const HANG = { path: '/shoal.test.T/Hang', requestStream: false, responseStream: true } as const
  const def = { Hang: { ...HANG, requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same } }
  let made = 0
  const s = new LazyGrpcServer(
    (g) => {
      made++
      const server = new g.Server()
      // Sends its headers and holds the stream open until the stop forces it.
      server.addService(def, { Hang: (call: { sendMetadata(m: unknown): void }) => call.sendMetadata(new g.Metadata()) })
      return server
    },
    (err) => t.fail(`make failed: ${(err as Error).message}`),
    async () => ['127.0.0.1'],
  )
  const port = await s.listen({ host: '127.0.0.1', port: 0 }, '--xds')
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  t.teardown(() => client.close())
  const call = client.makeServerStreamRequest(HANG.path, same, same, Buffer.alloc(0))
  call.on('error', () => undefined)
  await new Promise<void>((resolve) => call.on('metadata', () => resolve()))
  t.equal(made, 1, 'the first client made the gRPC server')

  const late = createConnection({ host: '127.0.0.1', port })
  await new Promise<void>((resolve, reject) => late.once('connect', resolve).once('error', reject))
  const lateClosed = new Promise<void>((resolve) => late.once('close', () => resolve()))
  late.on('error', () => undefined)
  t.teardown(() => late.destroy())
  await new Promise((r) => setTimeout(r, 100)) // accepted, waiting for its first bytes

  const closing = s.close(3000, new RealClock())
  late.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
  const closedInTime = await Promise.race([lateClosed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))])
  t.equal(made, 1, 'no second gRPC server was made for it')
  t.ok(closedInTime, 'the late connection is closed')
  await Promise.race([closing, new Promise((r) => setTimeout(r, 10_000))])
})
