// /api/watch: a snapshot first, then catalog and membership changes as they happen,
// heartbeat comments, and stop() ends every open stream.
import t from 'tap'
import { openWatch, record, startHarness } from './lib/http-fixture.js'

t.test('snapshot, catalog events, member events, heartbeats', async (t) => {
  const h = await startHarness(t, { heartbeatMs: 40 })
  h.catalog.addHost('node-a')
  const first = record({ name: 'web', host: 'node-a' })
  h.catalog.put(first)
  h.membership.set('node-a', 'alive')

  const w = await openWatch(h.url)
  t.teardown(() => w.close())
  t.equal(w.status, 200)
  t.match(String(w.headers['content-type']), /^text\/event-stream/)
  await w.waitFor((evs) => evs.length >= 1)
  const snap = w.events[0]!
  t.equal(snap.event, 'snapshot', 'the first event is a snapshot')
  t.equal(snap.data.state.cluster, 'test')
  t.same(
    snap.data.state.hosts[0].services.map((r: any) => r.id),
    [first.id],
  )
  t.same(
    snap.data.members.map((m: any) => [m.name, m.state]),
    [['node-a', 'alive']],
  )

  const second = record({ name: 'api', host: 'node-b' })
  h.catalog.put(second)
  h.catalog.put({ ...first, status: 'unhealthy' })
  h.membership.set('node-b', 'suspect', 'suspect')
  h.catalog.setHostState('node-b', 'dead')
  await w.waitFor((evs) => evs.some((e) => e.event === 'catalog' && e.data.type === 'host-down'))

  const kinds = w.events.slice(1).map((e) => (e.event === 'catalog' ? e.data.type : `member:${e.data.event}`))
  t.same(kinds, ['host-up', 'service-added', 'service-updated', 'member:suspect', 'host-down'], 'events in order')
  const added = w.events.find((e) => e.data.type === 'service-added')!
  t.equal(added.data.record.id, second.id)
  t.equal(added.data.record.name, 'api')
  const updated = w.events.find((e) => e.data.type === 'service-updated')!
  t.equal(updated.data.record.status, 'unhealthy')
  t.equal(updated.data.previous.status, 'alive')
  const suspect = w.events.find((e) => e.event === 'member')!
  t.same([suspect.data.member.name, suspect.data.member.state, suspect.data.member.address], ['node-b', 'suspect', '127.0.0.1:7946'])
  t.same(w.events.at(-1)!.data, { type: 'host-down', host: 'node-b', state: 'dead' })

  // Two more heartbeats while nothing else happens (waited for, not timed: the machine may be loaded).
  const beats = () => w.comments.filter((c) => c === 'heartbeat').length
  const before = beats()
  while (beats() < before + 2) await new Promise((r) => setTimeout(r, 20))
  t.pass('heartbeat comments keep arriving while idle')

  const metrics = await (await fetch(`${h.url}/metrics`)).text()
  t.match(metrics, /^shoal_http_watch_clients 1$/m)
})

t.test('every reader gets every event; stop() ends the streams', async (t) => {
  const h = await startHarness(t)
  const readers = await Promise.all([openWatch(h.url), openWatch(h.url), openWatch(h.url)])
  t.teardown(() => readers.forEach((r) => r.close()))
  await Promise.all(readers.map((r) => r.waitFor((e) => e.length >= 1)))
  for (let i = 0; i < 50; i++) h.catalog.put(record({ name: `svc-${i}`, host: 'node-a' }))
  await Promise.all(readers.map((r) => r.waitFor((e) => e.filter((x) => x.data.type === 'service-added').length === 50)))
  t.pass('three readers got 50 additions each')
  await h.server.stop()
  await Promise.all(readers.map((r) => r.ended))
  t.pass('streams ended when the server stopped')
  t.equal(h.catalog.listenerCount, 0)
})

t.test('a reader that goes away is forgotten', async (t) => {
  const h = await startHarness(t)
  const w = await openWatch(h.url)
  await w.waitFor((e) => e.length >= 1)
  w.close()
  const deadline = Date.now() + 2000
  let text = ''
  while (Date.now() < deadline) {
    text = await (await fetch(`${h.url}/metrics`)).text()
    if (/^shoal_http_watch_clients 0$/m.test(text)) break
    await new Promise((r) => setTimeout(r, 20))
  }
  t.match(text, /^shoal_http_watch_clients 0$/m)
  h.catalog.put(record({ name: 'web', host: 'node-a' }))
  t.match(await (await fetch(`${h.url}/metrics`)).text(), /^shoal_http_watch_dropped_total 0$/m, 'a clean close is not a drop')
})
