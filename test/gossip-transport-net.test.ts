import t from 'tap'
import dgram from 'node:dgram'
import net from 'node:net'
import { NetTransport } from '../src/gossip/transport-net.js'
import type { Address } from '../src/gossip/types.js'
import { silentLogger } from '../src/log.js'

const logger = silentLogger()
const local = { host: '127.0.0.1', port: 0 }

async function started(t: { teardown(fn: () => unknown): void }, opts: { maxFrameBytes?: number; idleTimeoutMs?: number } = {}) {
  const tr = new NetTransport({ bind: local, ...opts }, { logger })
  t.teardown(() => tr.stop())
  const addr = await tr.start()
  return { tr, addr }
}

function waitFor(pred: () => boolean, ms = 2000): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now()
    const poll = () => {
      if (pred()) resolve()
      else if (Date.now() - start > ms) reject(new Error('condition not met in time'))
      else setTimeout(poll, 5)
    }
    poll()
  })
}

/** Opens a raw TCP connection, writes chunks, resolves with what came back once closed. */
function raw(addr: Address, chunks: Buffer[]): Promise<{ data: Buffer; hadError: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(addr.port, addr.host)
    const got: Buffer[] = []
    let hadError = false
    s.on('connect', async () => {
      for (const c of chunks) {
        s.write(c)
        await new Promise((r) => setTimeout(r, 5))
      }
    })
    s.on('data', (d) => got.push(d))
    s.on('error', () => (hadError = true))
    s.on('close', () => resolve({ data: Buffer.concat(got), hadError }))
  })
}

t.test('packets both ways; UDP and TCP share one port', async (t) => {
  const a = await started(t)
  const b = await started(t)
  t.not(a.addr.port, 0)
  const gotB: Array<[string, Address]> = []
  const gotA: string[] = []
  b.tr.onPacket((data, from) => gotB.push([Buffer.from(data).toString(), from]))
  a.tr.onPacket((data) => gotA.push(Buffer.from(data).toString()))
  const buf = Buffer.from('hello')
  a.tr.sendPacket(b.addr, buf)
  buf.write('XXXXX')
  b.tr.sendPacket(a.addr, Buffer.from('back'))
  await waitFor(() => gotB.length === 1 && gotA.length === 1)
  t.equal(gotB[0]![0], 'hello', 'reusing the buffer after send does not change the datagram')
  t.same(gotB[0]![1], a.addr, 'the datagram comes from the transport port')
  t.same(gotA, ['back'])
  t.match(a.tr.stats(), { packetsOut: 1, bytesOut: 5, packetsIn: 1, bytesIn: 4 })

  // The same port number answers TCP.
  b.tr.onRequest(async (data) => Buffer.concat([Buffer.from('re:'), data]))
  const len = Buffer.alloc(4)
  len.writeUInt32BE(2)
  const r = await raw(b.addr, [len.subarray(0, 2), len.subarray(2), Buffer.from('h'), Buffer.from('i')])
  t.equal(r.data.subarray(4).toString(), 're:hi', 'a frame written in pieces is reassembled')
  t.equal(r.data.readUInt32BE(0), 5)

  // A throwing packet handler is counted, and the socket keeps working.
  b.tr.onPacket(() => {
    throw new Error('boom')
  })
  a.tr.sendPacket(b.addr, Buffer.from('x'))
  await waitFor(() => b.tr.stats().handlerErrors === 1)
  a.tr.sendPacket({ host: '127.0.0.1', port: 1 }, Buffer.from('nobody'))
  a.tr.sendPacket({ host: 'not an address', port: 99999 }, Buffer.from('x'))
  await new Promise((r) => setTimeout(r, 50))
  t.ok(a.tr.stats().packetErrors >= 1, 'a bad destination is counted, not thrown')
})

t.test('request/response, no answer, throwing handler, refused', async (t) => {
  const a = await started(t)
  const b = await started(t)
  b.tr.onRequest(async (data, from) => {
    const s = Buffer.from(data).toString()
    if (s === 'none') return undefined
    if (s === 'throw') throw new Error('handler failed')
    if (s === 'big') return Buffer.alloc(3 * 1024 * 1024, 7)
    return Buffer.from(`re:${s}:${from.host}`)
  })
  t.equal(Buffer.from(await a.tr.request(b.addr, Buffer.from('ping'), 1000)).toString(), 're:ping:127.0.0.1')
  await t.rejects(a.tr.request(b.addr, Buffer.from('none'), 1000), { code: 'SHOAL_ERR_STREAM', message: /without an answer/ })
  await t.rejects(a.tr.request(b.addr, Buffer.from('throw'), 1000), { code: 'SHOAL_ERR_STREAM' })
  t.equal(b.tr.stats().handlerErrors, 1)
  const big = await a.tr.request(b.addr, Buffer.from('big'), 5000)
  t.equal(big.length, 3 * 1024 * 1024, 'a large response arrives whole')
  t.equal(Buffer.from(await a.tr.request(b.addr, Buffer.from('again'), 1000)).toString(), 're:again:127.0.0.1', 'still serving')

  const gone = new NetTransport({ bind: local }, { logger })
  const goneAddr = await gone.start()
  await gone.stop()
  await t.rejects(a.tr.request(goneAddr, Buffer.from('x'), 1000), { code: 'SHOAL_ERR_STREAM', message: /ECONNREFUSED/ })
  t.match(a.tr.stats(), { streamRequestsOut: 6, streamErrors: 3 })
  t.match(b.tr.stats(), { streamRequestsIn: 5 })
})

t.test('a slow handler makes request() time out', async (t) => {
  const a = await started(t)
  const b = await started(t)
  let release!: () => void
  const held = new Promise<void>((r) => (release = r))
  t.teardown(() => release())
  b.tr.onRequest(async () => {
    await held
    return Buffer.from('late')
  })
  const start = Date.now()
  await t.rejects(a.tr.request(b.addr, Buffer.from('x'), 150), { code: 'SHOAL_ERR_STREAM', message: /no answer within 150 ms/ })
  const took = Date.now() - start
  t.ok(took >= 140 && took < 1000, `timed out after ${took} ms`)
})

t.test('oversize frames are refused both ways and counted', async (t) => {
  const small = await started(t, { maxFrameBytes: 1024 })
  const big = await started(t)
  small.tr.onRequest(async () => Buffer.from('ok'))
  big.tr.onRequest(async () => Buffer.alloc(4096))

  const header = Buffer.alloc(4)
  header.writeUInt32BE(2048)
  const r = await raw(small.addr, [header, Buffer.alloc(100)])
  t.equal(r.data.length, 0, 'no answer to an oversize request')
  t.equal(small.tr.stats().oversizeFrames, 1)

  await t.rejects(small.tr.request(big.addr, Buffer.from('x'), 1000), { code: 'SHOAL_ERR_STREAM', message: /exceeds the 1024-byte/ })
  await t.rejects(small.tr.request(big.addr, Buffer.alloc(2000), 1000), { code: 'SHOAL_ERR_STREAM', message: /exceeds/ })
  t.equal(small.tr.stats().oversizeFrames, 3)
  t.equal(Buffer.from(await big.tr.request(small.addr, Buffer.alloc(1000), 1000)).toString(), 'ok', 'a frame at the limit passes')
})

t.test('an idle incoming stream is closed', async (t) => {
  const a = await started(t, { idleTimeoutMs: 100 })
  const start = Date.now()
  const r = await raw(a.addr, [Buffer.from([0, 0])])
  // Closed by the 100 ms idle timeout, not left open: the bound is for "closed at all" and
  // holds on a loaded machine.
  t.ok(Date.now() - start < 20_000, `closed after ${Date.now() - start} ms`)
  t.equal(r.data.length, 0)
  t.equal(a.tr.stats().streamErrors, 1)
})

t.test('stop() closes everything, aborts pending requests, is idempotent', async (t) => {
  const count = () => {
    const kinds = process.getActiveResourcesInfo()
    return kinds.filter((k) => k === 'TCPServerWrap' || k === 'UDPWrap' || k === 'TCPSocketWrap' || k === 'TCPWRAP').length
  }
  // Sockets of the earlier subtests finish closing first.
  await waitFor(() => count() === 0)
  const before = count()
  const a = new NetTransport({ bind: local }, { logger })
  const b = new NetTransport({ bind: local }, { logger })
  const addrA = await a.start()
  t.same(await a.start(), addrA, 'start is idempotent')
  const addrB = await b.start()
  let release!: () => void
  b.onRequest(() => new Promise<Uint8Array>((r) => (release = () => r(Buffer.from('late')))))
  const pending = a.request(addrB, Buffer.from('x'), 10_000)
  const pendingCheck = t.rejects(pending, { code: 'SHOAL_ERR_STREAM', message: /stopped/ })
  await waitFor(() => b.stats().streamRequestsIn === 1)
  t.ok(count() > before)
  await Promise.all([a.stop(), a.stop()])
  await pendingCheck
  await b.stop()
  await b.stop()
  release()
  await new Promise((r) => setTimeout(r, 20))
  t.equal(count(), before, 'no socket or server left open')
  const probe = await raw(addrA, [Buffer.from([0, 0, 0, 1, 1])])
  t.ok(probe.hadError, 'the TCP port refuses connections')
  t.doesNotThrow(() => a.sendPacket(addrB, Buffer.from('x')))
  t.equal(a.stats().packetErrors, 1)
  await t.rejects(a.request(addrB, Buffer.from('x'), 100), { code: 'SHOAL_ERR_STREAM' })
  await t.rejects(a.start(), { code: 'SHOAL_ERR_BIND' })

  // The UDP port is free again: binding it succeeds.
  const u = dgram.createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    u.once('error', reject)
    u.bind(addrA.port, '127.0.0.1', () => resolve())
  })
  await new Promise<void>((r) => u.close(() => r()))
})

t.test('binding a taken port fails with SHOAL_ERR_BIND naming it', async (t) => {
  const a = await started(t)
  const b = new NetTransport({ bind: { host: '127.0.0.1', port: a.addr.port } }, { logger })
  await t.rejects(b.start(), { code: 'SHOAL_ERR_BIND', message: new RegExp(`127.0.0.1:${a.addr.port}`) })
  await b.stop()
})
