// Issue 17 ("lean"): /api/state.json serialised the whole catalog on every request. It now
// reads the one serialisation per catalog snapshot that /api/watch's first event shares
// (HttpServer.stateText): many requests and watch readers of one snapshot cost one
// serialisation, and a change is served fresh.
import t from 'tap'
import { openWatch, record, startHarness } from './lib/http-fixture.js'

t.test('50 state requests and a watch reader of one snapshot: one serialisation; a change is served fresh', async (t) => {
  const h = await startHarness(t)
  h.catalog.addHost('node-a')
  for (let i = 0; i < 300; i++) h.catalog.put(record({ name: `svc-${i % 10}`, host: 'node-a', id: `i${i}` }))
  // One record counts how often the catalog is serialised (stateView keeps its labels object).
  let serialised = 0
  const counted = { toJSON: () => (serialised++, { k: 'counted' }) } as unknown as Record<string, string>
  h.catalog.put(record({ name: 'svc-0', host: 'node-a', id: 'counted', labels: counted }))
  const ids = (body: unknown) => (body as { hosts: Array<{ services: Array<{ id: string }> }> }).hosts[0]!.services.map((r) => r.id)

  const bodies = await Promise.all(Array.from({ length: 50 }, async () => (await fetch(`${h.url}/api/state.json`)).text()))
  t.ok(
    bodies.every((b) => b === bodies[0]),
    'every request got the same text',
  )
  const first = JSON.parse(bodies[0]!) as { seq: number; node: string }
  t.equal(ids(first).length, 301, 'the whole catalog')
  t.equal(serialised, 1, 'serialised once for 50 requests, not once each')

  const w = await openWatch(h.url)
  t.teardown(() => w.close())
  await w.waitFor((evs) => evs.length >= 1)
  t.same(w.events[0]!.data.state, first, "the watch's first event carries the same state")
  t.equal(serialised, 1, 'and shares the serialisation')

  h.catalog.put(record({ name: 'svc-0', host: 'node-a', id: 'after' }))
  const after = (await (await fetch(`${h.url}/api/state.json`)).json()) as { seq: number }
  t.ok(ids(after).includes('after'), 'after a change the new catalog is served, not the shared old text')
  t.ok(after.seq > first.seq)
  t.equal(serialised, 2, 'serialised again once the catalog changed')
})
