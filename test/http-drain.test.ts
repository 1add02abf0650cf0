// Drain and undrain: who may call them (bearer token when configured, else loopback only,
// never cross-origin), and the answers for unknown ids and other hosts' instances.
//
// About the loopback rule: every address this test may use is in 127.0.0.0/8, and all of
// those are loopback (127.0.0.2 included), so a real non-loopback caller cannot be made
// here without a network namespace. The "remote caller" cases therefore go through the
// server's `clientAddress` option, which replaces only where the address is read from;
// the decision itself (isLoopbackAddress) is the real one and is tested on its own below.
import t from 'tap'
import { ShoalError } from '../src/errors.js'
import { isLoopbackAddress } from '../src/http/auth.js'
import { record, startHarness } from './lib/http-fixture.js'

async function post(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(url, { method: 'POST', headers })
  return { status: res.status, headers: res.headers, json: await res.json() }
}

t.test('isLoopbackAddress', async (t) => {
  for (const a of ['127.0.0.1', '127.0.0.2', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::FFFF:127.1.2.3']) {
    t.ok(isLoopbackAddress(a), `${a} is loopback`)
  }
  for (const a of [
    '10.0.0.1',
    '192.168.1.20',
    '128.0.0.1',
    '::',
    '::2',
    'fe80::1',
    '::ffff:10.0.0.1',
    '1::1',
    '',
    undefined,
    'localhost',
    '127.0.0.1.evil',
  ]) {
    t.notOk(isLoopbackAddress(a), `${String(a)} is not loopback`)
  }
})

t.test('without a token: loopback callers drain and undrain local instances', async (t) => {
  const h = await startHarness(t)
  const mine = record({ name: 'web', host: 'node-a' })
  const theirs = record({ name: 'web', host: 'node-b' })
  h.catalog.put(mine)
  h.catalog.put(theirs)

  const d = await post(`${h.url}/api/instances/${mine.id}/drain`)
  t.equal(d.status, 200)
  t.same(d.json, { id: mine.id, node: 'node-a', draining: true })
  const svc: any = await (await fetch(`${h.url}/api/services/web.json`)).json()
  t.equal(svc.instances.find((r: any) => r.id === mine.id).status, 'draining', 'the drained instance shows as draining')

  const u = await post(`${h.url}/api/instances/${mine.id}/undrain`)
  t.equal(u.status, 200)
  t.equal(u.json.draining, false)
  t.same(h.control.calls, [`drain ${mine.id}`, `undrain ${mine.id}`])

  const unknown = await post(`${h.url}/api/instances/deadbeef0000/drain`)
  t.equal(unknown.status, 404)
  t.equal(unknown.json.error.code, 'SHOAL_ERR_NOT_FOUND')
  t.match(unknown.json.error.message, /deadbeef0000/)

  const other = await post(`${h.url}/api/instances/${theirs.id}/drain`)
  t.equal(other.status, 403, "another host's instance is refused")
  t.equal(other.json.error.code, 'SHOAL_ERR_NOT_LOCAL')

  const bad = await post(`${h.url}/api/instances/${encodeURIComponent('a b<c>')}/drain`)
  t.equal(bad.status, 400)
  t.equal(bad.json.error.code, 'SHOAL_ERR_BAD_INSTANCE_ID')

  const cross = await post(`${h.url}/api/instances/${mine.id}/drain`, { origin: 'http://evil.example' })
  t.equal(cross.status, 403, 'a cross-origin browser POST is refused')
  t.equal(cross.json.error.code, 'SHOAL_ERR_FORBIDDEN')
  const sameOrigin = await post(`${h.url}/api/instances/${mine.id}/drain`, { origin: h.url })
  t.equal(sameOrigin.status, 200, 'the UI on the same origin may')
  t.same(h.control.calls.length, 3, 'refused calls never reached the control')

  const metrics = await (await fetch(`${h.url}/metrics`)).text()
  t.match(metrics, /shoal_http_requests_total\{route="\/api\/instances\/\{id\}\/drain",code="403"\} 2/)
  t.match(metrics, /shoal_http_requests_total\{route="\/api\/instances\/\{id\}\/drain",code="400"\} 1/)
})

t.test('without a token: a non-loopback caller is refused', async (t) => {
  let caller = '10.1.2.3'
  const h = await startHarness(t, { clientAddress: () => caller })
  const mine = record({ name: 'web', host: 'node-a' })
  h.catalog.put(mine)
  const r = await post(`${h.url}/api/instances/${mine.id}/drain`)
  t.equal(r.status, 403)
  t.equal(r.json.error.code, 'SHOAL_ERR_FORBIDDEN')
  t.match(r.json.error.message, /10\.1\.2\.3 is not on loopback/)
  t.same(h.control.calls, [])
  caller = '::ffff:127.0.0.1'
  t.equal((await post(`${h.url}/api/instances/${mine.id}/drain`)).status, 200, 'the same server lets a loopback caller through')
})

t.test('with a token: the bearer token is required, from anywhere', async (t) => {
  const h = await startHarness(t, { apiToken: 's3cret-token', clientAddress: () => '10.1.2.3' })
  const mine = record({ name: 'web', host: 'node-a' })
  h.catalog.put(mine)
  const url = `${h.url}/api/instances/${mine.id}/drain`

  const none = await post(url)
  t.equal(none.status, 401)
  t.equal(none.json.error.code, 'SHOAL_ERR_UNAUTHORIZED')
  t.match(none.headers.get('www-authenticate'), /^Bearer/)

  const wrong = await post(url, { authorization: 'Bearer s3cret-tokeX' })
  t.equal(wrong.status, 401)
  const basic = await post(url, { authorization: 'Basic czNjcmV0LXRva2Vu' })
  t.equal(basic.status, 401)
  t.same(h.control.calls, [])

  const ok = await post(url, { authorization: 'Bearer s3cret-token' })
  t.equal(ok.status, 200, 'a remote caller with the token may drain')
  t.same(h.control.calls, [`drain ${mine.id}`])
  const unknown = await post(`${h.url}/api/instances/nope/undrain`, { authorization: 'Bearer s3cret-token' })
  t.equal(unknown.status, 404)

  h.control.undrain = (id: string) => {
    throw new ShoalError('SHOAL_ERR_UNKNOWN_INSTANCE', `no local instance with id "${id}"`)
  }
  const unknown2 = await post(`${h.url}/api/instances/gone/undrain`, { authorization: 'Bearer s3cret-token' })
  t.equal(unknown2.status, 404, "LocalServices' SHOAL_ERR_UNKNOWN_INSTANCE is a 404 too")
  t.equal(unknown2.json.error.code, 'SHOAL_ERR_UNKNOWN_INSTANCE')
})
