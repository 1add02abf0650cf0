// Every read-only route of the HTTP debug endpoint answers what the README's table promises
// (README.md "HTTP API"), with JSON errors for unknown paths, bad input and wrong methods.
import t from 'tap'
import { capturedLogger } from './lib/log.js'
import { record, startHarness } from './lib/http-fixture.js'

async function get(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; text: string; json: any }> {
  const res = await fetch(url, init)
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, text, json }
}

t.test('catalog and membership routes', async (t) => {
  const h = await startHarness(t)
  h.catalog.addHost('node-a')
  h.catalog.addHost('node-b')
  h.catalog.addHost('node-c')
  const web1 = record({ name: 'web', host: 'node-a', ports: [{ type: 'tcp', port: 31000, servicePort: 10001, ip: '10.0.0.1' }] })
  const web2 = record({
    name: 'web',
    host: 'node-b',
    status: 'unhealthy',
    ports: [{ type: 'tcp', port: 31001, servicePort: 10001, ip: '10.0.0.2' }],
  })
  const api = record({ name: 'api', host: 'node-b', status: 'draining' })
  const gone = record({ name: 'old', host: 'node-a', status: 'tombstone' })
  const onDead = record({ name: 'db', host: 'node-c' })
  for (const r of [web1, web2, api, gone, onDead]) h.catalog.put(r)
  h.catalog.setHostState('node-c', 'dead')
  h.membership.set('node-a', 'alive')
  h.membership.set('node-b', 'suspect')
  h.membership.set('node-c', 'dead')

  const state = await get(`${h.url}/api/state.json`)
  t.equal(state.status, 200)
  t.match(state.headers.get('content-type'), /^application\/json/)
  t.equal(state.json.cluster, 'test')
  t.equal(state.json.node, 'node-a')
  t.equal(typeof state.json.seq, 'number')
  t.same(
    state.json.hosts.map((x: any) => [x.name, x.state]),
    [
      ['node-a', 'alive'],
      ['node-b', 'alive'],
      ['node-c', 'dead'],
    ],
  )
  const a = state.json.hosts[0]
  t.same(a.services.map((r: any) => r.status).sort(), ['alive', 'tombstone'], 'state.json is the whole catalog, tombstones included')
  t.same(a.services.find((r: any) => r.id === web1.id).version, web1.version, 'versions are [wallMs, counter]')

  const services = await get(`${h.url}/api/services.json`)
  t.equal(services.status, 200)
  t.same(
    services.json.services.map((s: any) => s.name),
    ['api', 'web'],
    'live services only: no tombstone, no records of the dead host',
  )
  const web = services.json.services[1]
  t.same(web.servicePorts, [10001])
  t.same(web.counts, { alive: 1, unhealthy: 1 })
  t.same(
    web.instances.map((r: any) => r.host),
    ['node-a', 'node-b'],
  )
  t.same(
    services.json.members.map((m: any) => [m.name, m.state]),
    [
      ['node-a', 'alive'],
      ['node-b', 'suspect'],
      ['node-c', 'dead'],
    ],
  )

  const one = await get(`${h.url}/api/services/web.json`)
  t.equal(one.status, 200)
  t.equal(one.json.name, 'web')
  t.equal(one.json.instances.length, 2)
  t.equal(one.json.cluster, 'test')

  const missing = await get(`${h.url}/api/services/nope.json`)
  t.equal(missing.status, 404)
  t.equal(missing.json.error.code, 'SHOAL_ERR_SERVICE_NOT_FOUND')
  t.match(missing.json.error.message, /"nope"/)

  const deadOnly = await get(`${h.url}/api/services/db.json`)
  t.equal(deadOnly.status, 404, 'a service only on a dead host is not served')

  const badName = await get(`${h.url}/api/services/Bad%20Name.json`)
  t.equal(badName.status, 400)
  t.equal(badName.json.error.code, 'SHOAL_ERR_BAD_SERVICE_NAME')

  const badEnc = await get(`${h.url}/api/services/%E0%A4%A.json`)
  t.equal(badEnc.status, 400)
  t.equal(badEnc.json.error.code, 'SHOAL_ERR_BAD_REQUEST')

  const members = await get(`${h.url}/api/members.json`)
  t.equal(members.status, 200)
  const b = members.json.members.find((m: any) => m.name === 'node-b')
  t.equal(b.state, 'suspect')
  t.equal(b.address, '127.0.0.1:7946')
  t.equal(b.incarnation, 1)
  t.ok(Math.abs(b.lastChange - Date.now()) < 10_000, 'lastChange is wall time (epoch ms)')
})

t.test('health, readiness, xds debug', async (t) => {
  const { logger, lines } = capturedLogger('debug')
  const h = await startHarness(t, {}, logger)
  const healthz = await get(`${h.url}/healthz`)
  t.equal(healthz.status, 200)
  t.equal(healthz.json.status, 'ok')

  const notReady = await get(`${h.url}/readyz`)
  t.equal(notReady.status, 503, 'not ready until the warm start is done')
  t.equal(notReady.json.error.code, 'SHOAL_ERR_NOT_READY')
  t.equal(notReady.json.ready, false)
  t.equal(notReady.json.warmStart, false)
  t.equal(notReady.json.join, null, 'join: null without --join')
  // A readiness probe polls /readyz: its 503 is logged at debug, never warn.
  const line = lines.find((l) => l.code === 'SHOAL_ERR_NOT_READY')
  t.equal(line?.level, 20, 'the 503 is logged at debug')
  h.ready.value = true
  const ready = await get(`${h.url}/readyz`)
  t.equal(ready.status, 200)
  t.same(ready.json, { ready: true, node: 'node-a' }, '200 {ready, node}')

  const xds = await get(`${h.url}/debug/xds`)
  t.equal(xds.status, 200)
  t.equal(xds.json.clients[0].nodeId, 'envoy-1')
})

t.test('web UI and its assets', async (t) => {
  const h = await startHarness(t)
  const page = await get(`${h.url}/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  t.match(page.text, /<script src="\/ui\/app\.js"/)
  t.match(page.headers.get('content-security-policy'), /default-src 'self'/)
  const js = await get(`${h.url}/ui/app.js`)
  t.equal(js.status, 200)
  t.match(js.headers.get('content-type'), /^text\/javascript/)
  t.match(js.text, /EventSource\('\/api\/watch'\)/)
  const css = await get(`${h.url}/ui/style.css`)
  t.equal(css.status, 200)
  t.match(css.headers.get('content-type'), /^text\/css/)
  const icon = await get(`${h.url}/ui/favicon.svg`)
  t.equal(icon.status, 200)
  const traversal = await get(`${h.url}/ui/..%2F..%2Fserver.ts`)
  t.equal(traversal.status, 404, 'only the listed assets are served')
})

t.test('unknown paths, wrong methods, HEAD', async (t) => {
  const h = await startHarness(t)
  for (const path of ['/nope', '/api', '/api/state', '/api/services/', '/ui/other.js', '/metrics/x']) {
    const r = await get(`${h.url}${path}`)
    t.equal(r.status, 404, `${path} is 404`)
    t.equal(r.json?.error?.code, 'SHOAL_ERR_NOT_FOUND', `${path} answers a JSON error`)
  }
  // The hint lists every GET route (from the route table, so a new route cannot be left out).
  const hint = String((await get(`${h.url}/nope`)).json?.error?.message)
  for (const route of [
    '/api/state.json',
    '/api/services.json',
    '/api/keys.json',
    '/api/watch',
    '/metrics',
    '/healthz',
    '/readyz',
    '/debug/xds',
  ])
    t.ok(hint.includes(route), `the 404 hint names ${route}`)
  t.match(hint, /POST \/api\/instances\/\{id\}\/drain/, 'and the POST routes, with their method')
  const post = await get(`${h.url}/api/state.json`, { method: 'POST' })
  t.equal(post.status, 405)
  t.equal(post.headers.get('allow'), 'GET, HEAD')
  t.equal(post.json.error.code, 'SHOAL_ERR_METHOD_NOT_ALLOWED')
  const del = await get(`${h.url}/metrics`, { method: 'DELETE' })
  t.equal(del.status, 405)
  const getDrain = await get(`${h.url}/api/instances/abc/drain`)
  t.equal(getDrain.status, 405)
  t.equal(getDrain.headers.get('allow'), 'POST')
  const head = await fetch(`${h.url}/api/state.json`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(await head.text(), '', 'HEAD has no body')

  const metrics = await get(`${h.url}/metrics`)
  t.equal(metrics.status, 200)
  t.match(metrics.headers.get('content-type'), /^text\/plain/)
  t.match(metrics.text, /shoal_http_requests_total\{route="unmatched",code="404"\} 7/)
  t.match(metrics.text, /shoal_http_requests_total\{route="\/api\/state.json",code="405"\} 1/)
  t.match(metrics.text, /shoal_http_requests_total\{route="\/api\/instances\/\{id\}\/drain",code="405"\} 1/)
})

t.test('start and stop are idempotent; a bad bind names the flag', async (t) => {
  const h = await startHarness(t)
  const again = await h.server.start()
  t.equal(again.port, h.port)
  await h.server.stop()
  await h.server.stop()
  await t.rejects(fetch(`${h.url}/healthz`), 'nothing listens after stop')
  t.equal(h.catalog.listenerCount, 0, 'catalog listener removed')
  t.equal(h.membership.listenerCount('join'), 0, 'membership listeners removed')

  const { HttpServer } = await import('../src/http/server.js')
  const { createServer } = await import('node:net')
  const holder = createServer()
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => new Promise<void>((r) => holder.close(() => r())))
  const busy = (holder.address() as { port: number }).port
  const bad = new HttpServer(
    { bind: { host: '127.0.0.1', port: busy }, cluster: 'x', node: 'n' },
    {
      logger: (await import('../src/log.js')).silentLogger(),
      catalog: h.catalog,
      membership: h.membership,
      control: h.control,
      ready: () => true,
      xdsDebug: () => [],
      registry: h.registry,
    },
  )
  await t.rejects(bad.start(), {
    code: 'SHOAL_ERR_BIND',
    message: new RegExp(`^cannot listen on 127.0.0.1:${busy}: the address is already in use`),
  })
  await bad.stop()
})
