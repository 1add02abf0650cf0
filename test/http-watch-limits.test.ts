// Issue 17 ("burst-proof"): 400 concurrent /api/watch connections froze an agent, each reader
// serialising the whole catalog on its own and nothing capping the readers. Now the catalog
// part of the first event is serialised once per catalog snapshot and shared, and beyond
// --http-watch-max streams a reader gets a 503 that names the flag, counted.
import t from 'tap'
import { get } from 'node:http'
import { Writable } from 'node:stream'
import pino from 'pino'
import { openWatch, record, startHarness } from './lib/http-fixture.js'

t.test('beyond --http-watch-max streams: 503 naming the flag, counted; a freed slot is taken again', async (t) => {
  const h = await startHarness(t, { maxWatchStreams: 3 })
  h.catalog.addHost('node-a')
  h.catalog.put(record({ name: 'web', host: 'node-a' }))
  const open = []
  for (let i = 0; i < 3; i++) {
    const w = await openWatch(h.url)
    t.teardown(() => w.close())
    t.equal(w.status, 200, `stream ${i + 1} of 3 is served`)
    await w.waitFor((evs) => evs.length >= 1)
    open.push(w)
  }
  const res = await fetch(`${h.url}/api/watch`)
  t.equal(res.status, 503, 'the fourth is refused')
  const body = (await res.json()) as { error?: { message?: string } }
  t.match(body.error?.message ?? JSON.stringify(body), /--http-watch-max 3/, 'naming the flag and its value')
  t.match(await (await fetch(`${h.url}/metrics`)).text(), /shoal_http_watch_refused_total 1\b/, 'counted')
  open[0]!.close()
  let again: Awaited<ReturnType<typeof openWatch>> | undefined
  for (let i = 0; i < 100 && again?.status !== 200; i++) {
    again?.close()
    await new Promise((r) => setTimeout(r, 20))
    again = await openWatch(h.url)
  }
  t.teardown(() => again?.close())
  t.equal(again?.status, 200, 'once one closes, a new reader is served')
})

t.test('refusals past --http-watch-max: one warning per minute naming the flag, not an internal fault', async (t) => {
  const lines: string[] = []
  const logger = pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }))
  const h = await startHarness(t, { maxWatchStreams: 1 }, logger)
  const w = await openWatch(h.url)
  t.teardown(() => w.close())
  for (let i = 0; i < 5; i++) t.equal((await fetch(`${h.url}/api/watch`)).status, 503)
  const warns = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 40)
  t.equal(warns.length, 1, `one warning for 5 refusals (a client that retries cannot flood the log): ${JSON.stringify(warns)}`)
  t.match(warns[0]?.msg, /--http-watch-max/, 'it names the flag')
  t.notMatch(warns[0]?.msg, /a fault in Shoal/, 'a full endpoint is not a fault in Shoal')
})

t.test('a handler that throws is logged once, at error', async (t) => {
  const lines: string[] = []
  const logger = pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }))
  const h = await startHarness(t, {}, logger)
  h.catalog.snapshot = () => {
    throw new Error('boom')
  }
  t.equal((await fetch(`${h.url}/api/state.json`)).status, 500)
  const warns = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 40)
  t.equal(warns.length, 1, `one line, not one per layer: ${JSON.stringify(warns)}`)
  t.equal(warns[0]?.level, 50)
})

/** A reader that only counts the bytes of its first event (no parsing: the lag measured is the server's). */
function firstEventBytes(url: string): Promise<{ bytes: number; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = get(`${url}/api/watch`, (res) => {
      let bytes = 0
      let tail = ''
      res.on('data', (c: Buffer) => {
        bytes += c.length
        tail = (tail + c.toString('latin1')).slice(-4)
        // retry: 2000\n\n, then the snapshot event ending in \n\n
        if (bytes > 20 && tail.endsWith('\n\n')) resolve({ bytes, close: () => req.destroy() })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

t.test('200 readers of a 3000-record catalog: one serialisation shared, a fresh one after a change', async (t) => {
  const h = await startHarness(t, { maxWatchStreams: 256 })
  h.catalog.addHost('node-a')
  for (let i = 0; i < 3000; i++)
    h.catalog.put(record({ name: `svc-${i % 100}`, host: 'node-a', id: `i${i}`, labels: { k: 'v'.repeat(100) } }))
  // One record counts how often the catalog is serialised (stateView keeps its labels object).
  let serialised = 0
  const counted = { toJSON: () => (serialised++, { k: 'counted' }) } as unknown as Record<string, string>
  h.catalog.put(record({ name: 'svc-0', host: 'node-a', id: 'counted', labels: counted }))
  const readers = await Promise.all(Array.from({ length: 200 }, () => firstEventBytes(h.url)))
  t.teardown(() => readers.forEach((r) => r.close()))
  t.ok(
    readers.every((r) => Math.abs(r.bytes - readers[0]!.bytes) < 10 && r.bytes > 1_000_000),
    `every reader got the same whole snapshot (event ids aside; ${readers[0]!.bytes} bytes)`,
  )
  t.equal(serialised, 1, 'the catalog was serialised once for 200 readers, not once each')
  h.catalog.put(record({ name: 'svc-0', host: 'node-a', id: 'after' }))
  const late = await openWatch(h.url)
  t.teardown(() => late.close())
  await late.waitFor((evs) => evs.length >= 1)
  const ids = (late.events[0]!.data.state.hosts[0].services as Array<{ id: string }>).map((r) => r.id)
  t.ok(ids.includes('after'), 'a reader after a catalog change gets the changed catalog, not the shared old text')
  t.equal(serialised, 2, 'serialised again once the catalog changed')
})
