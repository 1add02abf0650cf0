// The xDS listeners read a connection's first bytes before gRPC gets it (src/xds/grpc.ts
// refusedKind): what begins as HTTP/2's client preface (RFC 9113 section 3.4), as much of it as
// arrived, is handed over; anything else is refused and counted by kind. Random first chunks
// (seeded; a failure prints its seed): the classification against an oracle, then real
// connections to a real server: every refused one closed and counted with its kind, and real
// clients whose preface arrives split in random pieces still served.
import t, { type Test } from 'tap'
import { createConnection, createServer, type Socket } from 'node:net'
import { Registry } from 'prom-client'
import { refusedKind } from '../src/xds/grpc.js'
import { seeded } from './lib/random.js'
import { AdsClient, echoCatalog, GRPC_NODE, startServer, TypeUrl } from './lib/xds-fixture.js'
import { silentLogger } from '../src/log.js'

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
const SEED = Number(process.env.SHOAL_FUZZ_SEED ?? 20261202)

/** A random first chunk, of one of the shapes a listener meets. */
function chunk(random: () => number): Buffer {
  const n = (max: number) => Math.floor(random() * max)
  const bytes = (len: number) => Buffer.from(Array.from({ length: len }, () => n(256)))
  switch (n(6)) {
    case 0: // noise
      return bytes(1 + n(64))
    case 1: // a prefix of the preface, maybe with more after it
      return Buffer.concat([PREFACE.subarray(0, 1 + n(PREFACE.length)), random() < 0.5 ? bytes(n(16)) : Buffer.alloc(0)])
    case 2: {
      // the preface with one byte changed
      const b = Buffer.from(PREFACE.subarray(0, 1 + n(PREFACE.length)))
      const at = n(b.length)
      b[at] = (b[at]! + 1 + n(255)) & 0xff
      return b
    }
    case 3: // a TLS record header and whatever follows
      return Buffer.concat([Buffer.from([0x16, 0x03]), bytes(n(40))])
    case 4: // an HTTP/1 request line
      return Buffer.from(`${['GET', 'POST', 'OPTIONS', 'PRI'][n(4)]} /${'x'.repeat(n(8))} HTTP/1.${n(2)}\r\n`)
    default: // printable text
      return Buffer.from(Array.from({ length: 1 + n(40) }, () => 32 + n(95)))
  }
}

/** The rule: a chunk is handed to HTTP/2 exactly when it agrees with the preface as far as both go. */
function oracle(b: Buffer): 'http2' | 'tls' | 'http1' | 'not_http2' {
  const k = Math.min(b.length, PREFACE.length)
  if (b.subarray(0, k).equals(PREFACE.subarray(0, k))) return 'http2'
  if (b[0] === 0x16 && b[1] === 0x03) return 'tls'
  if (/^[A-Z]{3,7} \S+ HTTP\/1\.[01]\r?\n/.test(b.toString('latin1'))) return 'http1'
  return 'not_http2'
}

t.test(`refusedKind agrees with the rule on 20,000 random first chunks (seed ${SEED})`, async (t) => {
  const random = seeded(SEED)
  let http2 = 0
  let wrong = 0
  for (let i = 0; i < 20_000; i++) {
    const b = chunk(random)
    const want = oracle(b)
    const got = refusedKind(b) ?? 'http2'
    if (got === 'http2') http2++
    if (got !== want && wrong++ < 5) t.fail(`chunk ${b.toString('hex')}: ${got}, expected ${want}`)
  }
  t.equal(wrong, 0, 'no disagreement')
  t.ok(http2 > 1000, `the preface's prefixes were among them (${http2})`)
})

/** Sends `first` on a new connection; resolves true when the server closed it. */
function refusedOn(port: number, first: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ host: '127.0.0.1', port })
    c.resume()
    c.on('error', () => undefined)
    c.once('connect', () => c.write(first))
    const timer = setTimeout(() => {
      c.destroy()
      resolve(false)
    }, 60_000)
    c.once('close', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}

/**
 * A TCP relay to `port` that passes the client's first `PREFACE.length + 9` bytes on in random
 * pieces, each on its own turn, then the rest as it comes: the server's first read sees only
 * part of the preface.
 */
async function splittingRelay(t: Test, port: number, random: () => number): Promise<number> {
  const sockets = new Set<Socket>()
  const relay = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => undefined)
      s.once('close', () => sockets.delete(s))
    }
    upstream.pipe(client)
    let pending = Buffer.alloc(0)
    let split = PREFACE.length + 9
    const drip = () => {
      if (pending.length === 0 || upstream.destroyed) return
      const take = split > 0 ? Math.min(pending.length, split, 1 + Math.floor(random() * 7)) : pending.length
      split -= take
      upstream.write(pending.subarray(0, take))
      pending = pending.subarray(take)
      setTimeout(drip, 2)
    }
    client.on('data', (d: Buffer) => {
      const idle = pending.length === 0
      pending = Buffer.concat([pending, d])
      if (idle) drip()
    })
    client.once('close', () => upstream.destroy())
    upstream.once('close', () => client.destroy())
  })
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    relay.close()
  })
  return (relay.address() as { port: number }).port
}

t.test('a real server: 150 random first chunks refused and counted by kind; split prefaces served', async (t) => {
  const random = seeded(SEED + 1)
  const registry = new Registry()
  const { port } = await startServer(t, echoCatalog(), {}, { logger: silentLogger(), registry })
  const want = new Map<string, number>()
  let sent = 0
  while (sent < 150) {
    const b = chunk(random)
    const kind = oracle(b)
    // A prefix of the preface is HTTP/2's to judge: it waits for the rest.
    if (kind === 'http2') continue
    sent++
    want.set(kind, (want.get(kind) ?? 0) + 1)
    if (!(await refusedOn(port, b))) t.fail(`not closed after ${b.toString('hex')} (seed ${SEED + 1})`)
  }
  const metrics = await registry.metrics()
  for (const [kind, count] of want)
    t.match(metrics, new RegExp(`shoal_xds_refused_connections_total\\{reason="${kind}"\\} ${count}\\b`), `${count} counted as ${kind}`)

  const relay = await splittingRelay(t, port, random)
  for (let i = 0; i < 5; i++) {
    const c = new AdsClient(relay)
    t.teardown(() => c.close())
    c.send({ type_url: TypeUrl.endpoint, node: GRPC_NODE, resource_names: ['echo:10001'] })
    t.ok(await c.next(30_000), `client ${i + 1}, its preface in random pieces: answered`)
  }
})
