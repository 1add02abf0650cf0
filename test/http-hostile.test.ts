// What a hostile client sends the HTTP endpoint: forged log lines and bidi controls in a
// drain reason, two Authorization headers, bodies the API never takes (large, or sent with a
// wrong token), more connections than the cap, and paths that are not routes.
import t from 'tap'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import pino from 'pino'
import { MAX_BODY_BYTES } from '../src/http/server.js'
import { quoteText, unsafeChar } from '../src/text.js'
import { record, startHarness } from './lib/http-fixture.js'

async function post(url: string, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: 'POST', headers })
  return { status: res.status, json: await res.json() }
}

t.test('unsafeChar and quoteText', async (t) => {
  t.same(unsafeChar('ok\n[01:00:00.000] ERROR: fake'), { index: 2, codePoint: 'U+000A' })
  t.same(unsafeChar('a\u202Eb'), { index: 1, codePoint: 'U+202E' })
  for (const c of ['\r', '\u001b', '\u007f', '\u0085', '\u2028', '\u2066', '\u200f', '\u061c'])
    t.ok(unsafeChar(`x${c}`), `U+${c.codePointAt(0)!.toString(16)}`)
  t.equal(unsafeChar('maintenance: disk swap, café 🐟 (ticket #12)'), undefined, 'plain text, accents and emoji are fine')
  t.equal(quoteText('a\u202Eb\n'), '"a\\u202eb\\n"')
})

t.test('a drain reason with a line break or a bidi control is refused, naming the parameter', async (t) => {
  const lines: string[] = []
  const logger = pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }))
  const h = await startHarness(t, {}, logger)
  const mine = record({ name: 'web', host: 'node-a' })
  h.catalog.put(mine)
  const forged = await post(`${h.url}/api/instances/${mine.id}/drain?reason=ok%0A[01:00:00.000]%20ERROR:%20fake`)
  t.equal(forged.status, 400)
  t.equal(forged.json.error.code, 'SHOAL_ERR_BAD_DRAIN_REASON')
  t.match(forged.json.error.message, /parameter "reason" holds U\+000A at character 2/)
  const bidi = await post(`${h.url}/api/instances/${mine.id}/drain?reason=${encodeURIComponent('ok\u202Eevil')}`)
  t.equal(bidi.status, 400)
  t.match(bidi.json.error.message, /parameter "reason" holds U\+202E/)
  t.same(h.control.calls, [], 'nothing drained')
  const ok = await post(`${h.url}/api/instances/${mine.id}/drain?reason=${encodeURIComponent('disk swap, café')}`)
  t.equal(ok.status, 200)
  t.equal(ok.json.reason, 'disk swap, café')
  // An instance id is client text too: its 400 quotes it with the bidi control escaped.
  const badId = await post(`${h.url}/api/instances/${encodeURIComponent('a\u202Eb')}/drain`)
  t.equal(badId.status, 400)
  t.match(badId.json.error.message, /"a\\u202eb"/)
  t.notOk(
    lines.some((l) => /\u202e|fake/i.test(l)),
    'no log line holds the forged text or the bidi control',
  )
})

function rawPost(port: number, path: string, headers: Record<string, string | string[]>): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('two Authorization headers are a 400, whichever is right', async (t) => {
  const h = await startHarness(t, { apiToken: 'tok' })
  const mine = record({ name: 'web', host: 'node-a' })
  h.catalog.put(mine)
  for (const pair of [
    ['Bearer tok', 'Bearer wrong'],
    ['Bearer wrong', 'Bearer tok'],
  ]) {
    const r = await rawPost(h.port, `/api/instances/${mine.id}/drain`, { authorization: pair })
    t.equal(r.status, 400, pair.join(' + '))
    t.match(r.body.error.message, /2 Authorization headers; send exactly one/)
  }
  t.same(h.control.calls, [])
  t.equal((await rawPost(h.port, `/api/instances/${mine.id}/drain`, { authorization: 'Bearer tok' })).status, 200)
})

/** Sends `head` then up to `bodyBytes` of body as fast as the socket takes it; resolves to what came back and how much was written before the agent closed. */
function flood(port: number, head: string, bodyBytes: number): Promise<{ answer: string; written: number }> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1')
    let answer = ''
    let written = 0
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    s.setEncoding('utf8')
    s.on('data', (d) => (answer += d))
    s.on('error', () => undefined)
    s.on('close', () => resolve({ answer, written }))
    s.on('connect', () => {
      s.write(head)
      const pump = (): void => {
        while (written < bodyBytes && !s.destroyed) {
          written += chunk.length
          if (!s.write(chunk)) return void s.once('drain', pump)
        }
        if (written >= bodyBytes) s.end()
      }
      pump()
    })
  })
}

t.test("request bodies: a large one is a 413 before it is read; a refused caller's body is never read", async (t) => {
  const h = await startHarness(t, { apiToken: 'tok' })
  const mine = record({ name: 'web', host: 'node-a' })
  h.catalog.put(mine)
  const total = 200 * 1024 * 1024
  const big = await flood(
    h.port,
    `POST /api/instances/${mine.id}/drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: ${total}\r\n\r\n`,
    total,
  )
  t.match(big.answer, /^HTTP\/1\.1 413 /)
  t.match(big.answer, /at most 1024/)
  t.ok(big.written < total / 4, `the agent closed after ${big.written} of ${total} bytes`)

  // Chunked (no length declared) with a wrong token: 401, then the connection is closed, not drained.
  const chunked = await flood(
    h.port,
    `POST /api/instances/${mine.id}/drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nTransfer-Encoding: chunked\r\n\r\n4000000\r\n`,
    64 * 1024 * 1024,
  )
  t.match(chunked.answer, /^HTTP\/1\.1 401 /)
  t.ok(chunked.written < 16 * 1024 * 1024, `closed after ${chunked.written} bytes`)

  // A small body with the right token is read and the answer is the drain's.
  const small = await fetch(`${h.url}/api/instances/${mine.id}/drain`, {
    method: 'POST',
    headers: { authorization: 'Bearer tok' },
    body: 'x'.repeat(MAX_BODY_BYTES),
  })
  t.equal(small.status, 200)
  await small.arrayBuffer()
})

t.test('connections over --maxConnections are closed and counted', async (t) => {
  const h = await startHarness(t, { maxConnections: 2 })
  const open: Socket[] = []
  t.teardown(() => open.forEach((s) => s.destroy()))
  for (let i = 0; i < 2; i++) {
    const s = connect(h.port, '127.0.0.1')
    open.push(s)
    await new Promise((r) => s.once('connect', r))
  }
  const third = connect(h.port, '127.0.0.1')
  third.on('error', () => undefined)
  await new Promise((r) => third.once('close', r))
  t.pass('the third connection was closed')
  open.forEach((s) => s.destroy())
  let text = ''
  for (let i = 0; i < 50 && !/shoal_http_connections_dropped_total/.test(text); i++) {
    // The agent may not have seen the two closes yet, and then drops this connection too.
    text = await fetch(`${h.url}/metrics`).then(
      (r) => r.text(),
      () => new Promise<string>((r) => setTimeout(() => r(''), 20)),
    )
  }
  t.match(text, /shoal_http_connections_dropped_total [1-9]\d*\b/)
  t.match(text, /shoal_http_connections \d+/)
})

t.test('404: every route once with its methods, and a hint for /api/services/NAME', async (t) => {
  const h = await startHarness(t)
  const res = await fetch(`${h.url}/api/services/web`)
  t.equal(res.status, 404)
  const msg: string = ((await res.json()) as any).error.message
  t.match(msg, /did you mean \/api\/services\/web\.json\?/)
  t.equal(msg.split('/ui/*').length - 1, 1, '/ui/* once')
  t.match(msg, /POST \/api\/instances\/\{id\}\/drain/)
  t.match(msg, /POST \/api\/instances\/\{id\}\/undrain/)
  t.match(msg, /GET \/api\/state\.json/)
  const other: any = await (await fetch(`${h.url}/nope`)).json()
  t.notMatch(other.error.message, /did you mean/)
})
