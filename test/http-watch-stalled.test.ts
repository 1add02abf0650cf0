// A /api/watch reader that stops reading must not grow the agent's memory: once about
// 1 MB is queued for it, it is dropped, while a reader that keeps up gets every event.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { get } from 'node:http'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { record, startHarness } from './lib/http-fixture.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function memory(): number {
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}

/** Counts SSE events without keeping them, so the reader itself does not use memory. */
function countingReader(url: string): Promise<{ count: () => number; close: () => void }> {
  return new Promise((resolve, reject) => {
    let n = 0
    let tail = ''
    const req = get(`${url}/api/watch`, (res) => {
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        const s = tail + chunk
        const parts = s.split('\n\n')
        tail = parts.pop()!
        for (const p of parts) if (p.includes('\nevent: catalog\n')) n++
      })
      resolve({ count: () => n, close: () => req.destroy() })
    })
    req.on('error', reject)
  })
}

/** A raw client that sends the request, reads the first bytes, then stops reading. */
function stalledReader(port: number): Promise<{ sock: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () =>
      sock.write('GET /api/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n'),
    )
    const closed = new Promise<void>((r) => sock.once('close', () => r()))
    sock.once('data', (chunk) => {
      if (!chunk.toString().startsWith('HTTP/1.1 200')) reject(new Error('unexpected answer'))
      sock.pause()
      resolve({ sock, closed })
    })
    sock.on('error', () => undefined)
  })
}

t.test('a stalled reader over 10,000 events is dropped and the heap stays small', async (t) => {
  const h = await startHarness(t, { maxSseBufferBytes: 1_048_576 })
  const labels: Record<string, string> = {}
  for (let i = 0; i < 20; i++) labels[`com.example.label-${i}`] = 'x'.repeat(48)
  const big = record({ name: 'web', host: 'node-b', labels })
  const frameBytes = JSON.stringify({ type: 'service-added', record: big }).length
  t.ok(frameBytes > 1200, `each event is about ${frameBytes} bytes, ${Math.round((frameBytes * 10_000) / 1e6)} MB in all`)

  const stalled = await stalledReader(h.port)
  t.teardown(() => stalled.sock.destroy())
  const fast = await countingReader(h.url)
  t.teardown(() => fast.close())

  const before = memory()
  let peak = 0
  for (let batch = 0; batch < 100; batch++) {
    for (let i = 0; i < 100; i++) h.catalog.emit({ type: 'service-added', record: big })
    const want = (batch + 1) * 100
    // Let the reader that keeps up catch up, as a real one would between bursts.
    const deadline = Date.now() + 5000
    while (fast.count() < want && Date.now() < deadline) await new Promise((r) => setImmediate(r))
    if (batch % 10 === 9) peak = Math.max(peak, memory() - before)
  }
  const grown = memory() - before
  t.equal(fast.count(), 10_000, 'the reader that keeps up received all 10,000 events')
  t.ok(peak < 10 * 1024 * 1024, `heap + external grew at most ${(peak / 1e6).toFixed(2)} MB during the run (< 10 MB)`)
  t.ok(grown < 10 * 1024 * 1024, `and ${(grown / 1e6).toFixed(2)} MB at the end`)

  const metrics = await (await fetch(`${h.url}/metrics`)).text()
  t.match(metrics, /^shoal_http_watch_dropped_total 1$/m, 'exactly one reader was dropped')
  t.match(metrics, /^shoal_http_watch_clients 1$/m, 'the fast reader is still connected')

  stalled.sock.resume()
  await stalled.closed
  t.pass('the stalled reader sees its stream end once it reads again')
})

t.test('a snapshot larger than the bound is delivered whole, and the bound still drops a stalled reader after it', async (t) => {
  const limit = 64 * 1024
  const h = await startHarness(t, { maxSseBufferBytes: limit })
  // A catalog whose snapshot is about 4x the bound (the tester's was 1.7 MB against 1 MiB).
  const host = h.catalog.addHost('node-b')
  const labels = { 'com.example.big': 'x'.repeat(2000) }
  for (let i = 0; i < 130; i++) host.services.push(record({ name: `svc${i}`, host: 'node-b', labels }))
  const snapshotBytes = JSON.stringify(h.catalog.snapshot()).length
  t.ok(snapshotBytes > 4 * limit, `the snapshot is ${snapshotBytes} bytes, over 4x the ${limit}-byte bound`)

  // A reader that keeps up: the snapshot, then events.
  const got = await new Promise<{ snapshot: number; catalog: number; close: () => void }>((resolve, reject) => {
    let tail = ''
    const seen = { snapshot: 0, catalog: 0 }
    const req = get(`${h.url}/api/watch`, (res) => {
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        const parts = (tail + chunk).split('\n\n')
        tail = parts.pop()!
        for (const p of parts) {
          if (p.includes('\nevent: snapshot\n')) {
            seen.snapshot++
            h.catalog.emit({ type: 'service-added', record: record({ name: 'late', host: 'node-b' }) })
          }
          if (p.includes('\nevent: catalog\n')) seen.catalog++
          if (seen.snapshot === 1 && seen.catalog === 1) resolve({ ...seen, close: () => req.destroy() })
        }
      })
      res.on('end', () => reject(new Error('the stream ended: the reader was dropped')))
    })
    req.on('error', reject)
  })
  t.teardown(() => got.close())
  t.same([got.snapshot, got.catalog], [1, 1], 'the whole snapshot arrived, then the next event')

  // A reader that stops after the first bytes is still dropped once the bound passes.
  const stalled = await stalledReader(h.port)
  t.teardown(() => stalled.sock.destroy())
  // Events until it is dropped (the kernel's socket buffers take a few MB first); bounded.
  const dropped = async () => /^shoal_http_watch_dropped_total 1$/m.test(await (await fetch(`${h.url}/metrics`)).text())
  for (let i = 0; i < 20_000 && !(i % 200 === 0 && (await dropped())); i++) {
    h.catalog.emit({ type: 'service-added', record: record({ name: 'web', host: 'node-b', labels }) })
    await new Promise((r) => setImmediate(r))
  }
  t.ok(await dropped(), 'the stalled reader, and only it, was dropped')
})
