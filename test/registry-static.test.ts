import t from 'tap'
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isShoalError } from '../src/errors.js'
import { silentLogger } from '../src/log.js'
import { parseStaticServices, StaticSource } from '../src/registry/static.js'
import type { LocalServiceSpec } from '../src/registry/types.js'

const logger = silentLogger()

function errorOf(text: string): string {
  try {
    parseStaticServices(text, '/etc/shoal/static.json', '10.0.0.5')
  } catch (err) {
    if (isShoalError(err, 'SHOAL_ERR_STATIC')) return err.message
    throw err
  }
  return 'no error'
}

const shoal = (entry: object) => JSON.stringify({ services: [{ name: 'web', ports: [{ port: 8080, servicePort: 10080 }] }, entry] })

t.test("Shoal's format: defaults, stable ids, explicit id", async (t) => {
  const text = JSON.stringify({
    services: [
      {
        name: 'Web App',
        image: 'reg/web:1',
        ports: [{ port: 8080, servicePort: 10080 }],
        check: { type: 'HttpGet', args: 'http://{{ host }}:8080/', rise: 1 },
        labels: { team: 'a' },
      },
      { id: 'db-1', image: 'reg/postgres:16', ports: [{ port: 5432, servicePort: 15432, type: 'tcp', ip: '127.0.0.1' }], proxyMode: 'tcp' },
    ],
  })
  const specs = parseStaticServices(text, 'f.json', '10.0.0.5')
  t.equal(specs.length, 2)
  const [web, db] = specs as [LocalServiceSpec, LocalServiceSpec]
  t.equal(web.name, 'web-app')
  t.match(web.id, /^[0-9a-f]{12}$/)
  t.equal(parseStaticServices(text, 'f.json', '10.0.0.9')[0]!.id, web.id, 'same id across loads and advertise IPs')
  t.same(web.ports, [{ type: 'tcp', port: 8080, servicePort: 10080, ip: '10.0.0.5' }], 'ip defaults to the advertise IP')
  t.equal(web.proxyMode, 'http')
  t.same(web.check, { type: 'HttpGet', args: 'http://{{ host }}:8080/', rise: 1 })
  t.same(web.labels, { team: 'a' })
  t.equal(web.source, 'static')
  t.equal(db.id, 'db-1')
  t.equal(db.name, 'postgres', 'name falls back to the image')
  t.equal(db.ports[0]!.ip, '127.0.0.1')
  t.equal(db.check, undefined)
})

t.test('allow: the callers a service accepts, normalised, kept as the label shoal.allow', async (t) => {
  const text = JSON.stringify({ services: [{ name: 'b', allow: ['Svc-A', 'c', 'c'], ports: [{ port: 1, servicePort: 2 }] }] })
  t.same(parseStaticServices(text, 'f.json', '10.0.0.5')[0]!.labels, { 'shoal.allow': 'svc-a,c' })
  const none = JSON.stringify({ services: [{ name: 'b', allow: [], ports: [{ port: 1, servicePort: 2 }] }] })
  t.same(parseStaticServices(none, 'f.json', '10.0.0.5')[0]!.labels, { 'shoal.allow': '' }, 'an empty list: nobody may call')
})

t.test("Sidecar's static.json format", async (t) => {
  const text = JSON.stringify([
    {
      Service: { Name: 'some_service', Image: 'bb6268ff91dc', Ports: [{ Type: 'tcp', Port: 10234, ServicePort: 9999 }], ProxyMode: 'tcp' },
      Check: { Type: 'HttpGet', Args: 'http://:10234/' },
      ListenPort: 0,
    },
    { Service: { ID: 'fixed', Image: 'reg/app:1.2', Ports: [{ Port: 80, ServicePort: 0, IP: '192.168.1.1' }] } },
  ])
  const [a, b] = parseStaticServices(text, 'sidecar.json', '10.0.0.5') as [LocalServiceSpec, LocalServiceSpec]
  t.equal(a.name, 'some_service')
  t.equal(a.proxyMode, 'tcp')
  t.same(a.ports, [{ type: 'tcp', port: 10234, servicePort: 9999, ip: '10.0.0.5' }])
  t.same(a.check, { type: 'HttpGet', args: 'http://:10234/' })
  t.match(a.id, /^[0-9a-f]{12}$/, 'Sidecar gave random ids; ours are stable')
  t.equal(b.id, 'fixed')
  t.equal(b.name, 'app')
  t.equal(b.ports[0]!.servicePort, 0, 'Sidecar allows ServicePort 0 (not proxied)')
})

t.test('each invalid field is named with file, entry and field', async (t) => {
  const cases: Array<[string, string]> = [
    ['{', 'static.json: JSON:'],
    ['{"nope":1}', 'static.json: services: is required; nope: unknown field'],
    [shoal({ ports: [{ port: 1, servicePort: 2 }] }), 'services[1].name: is required'],
    [shoal({ name: '!!!', ports: [{ port: 1, servicePort: 2 }] }), 'services[1].name: has no usable characters'],
    [shoal({ name: 5, ports: [{ port: 1, servicePort: 2 }] }), 'services[1].name: must be a string'],
    [shoal({ name: 'x' }), 'services[1].ports: is required'],
    [shoal({ name: 'x', ports: [{ port: 0, servicePort: 2 }] }), 'services[1].ports[0].port: must be an integer 1-65535 (got 0)'],
    [
      shoal({ name: 'x', ports: [{ port: 1, servicePort: 'abc' }] }),
      'services[1].ports[0].servicePort: must be an integer 1-65535 (got "abc")',
    ],
    [shoal({ name: 'x', ports: [{ port: 1, servicePort: 2, type: 'sctp' }] }), 'services[1].ports[0].type: must be "tcp" or "udp"'],
    [
      shoal({ name: 'x', ports: [{ port: 1, servicePort: 2, ip: 'example.com' }] }),
      'services[1].ports[0].ip: "example.com" is not an IP address',
    ],
    [shoal({ name: 'x', id: 'has space', ports: [{ port: 1, servicePort: 2 }] }), 'services[1].id: must be 1-64 characters'],
    [
      shoal({ name: 'x', proxyMode: 'udp', ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].proxyMode: must be one of "http", "tcp", "ws", "grpc" (got "udp")',
    ],
    [shoal({ name: 'x', check: { type: 'Ping' }, ports: [{ port: 1, servicePort: 2 }] }), 'services[1].check.type: must be one of'],
    [
      shoal({ name: 'x', check: { type: 'Tcp', intervalMs: -5 }, ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].check.intervalMs: must be a positive integer',
    ],
    [shoal({ name: 'x', labels: { a: 1 }, ports: [{ port: 1, servicePort: 2 }] }), 'services[1].labels.a: must be a string'],
    [shoal({ name: 'x', allow: 'a', ports: [{ port: 1, servicePort: 2 }] }), 'services[1].allow: must be an array of service names'],
    [shoal({ name: 'x', allow: ['a', '!!'], ports: [{ port: 1, servicePort: 2 }] }), 'services[1].allow[1]: must be a service name'],
    [
      shoal({ name: 'x', allow: ['a'], labels: { 'shoal.allow': 'b' }, ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].allow: and labels["shoal.allow"] both set',
    ],
    [shoal({ name: 'web', ports: [{ port: 8080, servicePort: 10080 }] }), 'services[1]: instance id'],
    [
      shoal({ name: 'x', authz: 'authz', ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].authz: must be an object like {"service": "authz"}',
    ],
    [shoal({ name: 'x', authz: {}, ports: [{ port: 1, servicePort: 2 }] }), 'services[1].authz.service: is required'],
    [
      shoal({ name: 'x', authz: { service: 'authz:0' }, ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].authz.service: "authz:0" is not NAME or NAME:SERVICEPORT',
    ],
    [
      shoal({ name: 'x', authz: { service: 'authz', failureModeAllow: 'yes' }, ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].authz.failureModeAllow: must be true or false',
    ],
    [
      shoal({ name: 'x', authz: { service: 'authz', timeout: '5' }, ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].authz.timeout: "5" is not a duration like 500ms',
    ],
    [
      shoal({ name: 'x', authz: { service: 'authz', timeout: '90s' }, ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].authz.timeout: "90s" is outside 1ms to 60s',
    ],
    [
      shoal({ name: 'x', authz: { service: 'a', mode: 'tcp' }, ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].authz.mode: unknown field; known fields: service, failureModeAllow, timeout',
    ],
    [
      shoal({ name: 'x', authz: { service: 'a' }, labels: { 'shoal.authz': 'b' }, ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].authz: cannot be combined with the label shoal.authz',
    ],
    [
      shoal({ name: 'x', labels: { 'shoal.authz': 'a', 'shoal.authz.failure_mode_allow': 'no' }, ports: [{ port: 1, servicePort: 2 }] }),
      'services[1].labels.shoal.authz.failure_mode_allow: "no" is not true or false',
    ],
    [JSON.stringify([{ Service: { Name: 'a', Ports: [{ Port: 'x', ServicePort: 1 }] } }]), '[0].Service.Ports[0].Port: must be an integer'],
    [JSON.stringify([{ Service: { Name: 'a', Ports: [] } }]), '[0].Service.Ports: must be a non-empty array'],
    [JSON.stringify([{ Nope: 1 }]), '[0].Service: is required; [0].Nope: unknown field'],
    [
      JSON.stringify([{ Service: { Name: 'a', Ports: [{ Port: 1, ServicePort: 1 }] }, Check: { Type: 'Bogus' } }]),
      '[0].Check.Type: must be one of',
    ],
  ]
  for (const [text, want] of cases) {
    const msg = errorOf(text)
    t.ok(msg.startsWith('/etc/shoal/static.json: '), `names the file: ${msg}`)
    t.ok(msg.includes(want.replace(/^static\.json: /, '')), `"${msg}" includes "${want}"`)
  }
})

t.test('the authz field becomes the labels every consumer reads', async (t) => {
  const [, web] = parseStaticServices(
    shoal({ name: 'x', authz: { service: 'Authz:10100', failureModeAllow: true, timeout: '1s' }, ports: [{ port: 1, servicePort: 2 }] }),
    'f.json',
    '10.0.0.5',
  ) as [LocalServiceSpec, LocalServiceSpec]
  t.same(web.labels, { 'shoal.authz': 'authz:10100', 'shoal.authz.failure_mode_allow': 'true', 'shoal.authz.timeout': '1000ms' })
  const [, bare] = parseStaticServices(
    shoal({ name: 'x', authz: { service: 'authz' }, ports: [{ port: 1, servicePort: 2 }] }),
    'f.json',
    '10.0.0.5',
  ) as [LocalServiceSpec, LocalServiceSpec]
  t.same(bare.labels, { 'shoal.authz': 'authz', 'shoal.authz.failure_mode_allow': 'false', 'shoal.authz.timeout': '200ms' })
})

t.test('examples/static.json is valid', async (t) => {
  const specs = parseStaticServices(readFileSync('examples/static.json', 'utf8'), 'examples/static.json', '127.0.0.1')
  t.ok(specs.length >= 2)
  for (const s of specs) for (const p of s.ports) t.equal(p.ip, '127.0.0.1', `${s.name} works on loopback`)
})

function waitFor(src: StaticSource, ms: number): Promise<LocalServiceSpec[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no change within ${ms} ms`)), ms)
    src.once('change', (v) => {
      clearTimeout(timer)
      resolve(v)
    })
  })
}

t.test('StaticSource: loads, reloads on change, keeps the previous set on a bad edit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-static-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'static.json')
  writeFileSync(path, JSON.stringify({ services: [{ name: 'web', ports: [{ port: 8080, servicePort: 10080 }] }] }))
  const src = new StaticSource({ path, advertiseIp: '127.0.0.1', pollMs: 100 }, { logger })
  t.teardown(() => src.stop())
  await src.start()
  await src.start()
  t.same(
    src.services().map((s) => s.name),
    ['web'],
  )
  const created = src.services()[0]!.created
  t.ok(created > 0, 'created is stamped')
  const firstId = src.services()[0]!.id

  let changed = waitFor(src, 5000)
  writeFileSync(
    path,
    JSON.stringify({
      services: [
        { name: 'web', ports: [{ port: 8080, servicePort: 10080 }] },
        { name: 'api', ports: [{ port: 9090, servicePort: 10090 }] },
      ],
    }),
  )
  let specs = await changed
  t.same(
    specs.map((s) => s.name),
    ['web', 'api'],
  )
  t.equal(specs[0]!.id, firstId, 'unchanged entry keeps its id')
  t.equal(specs[0]!.created, created, 'and its created time')

  writeFileSync(path, '{"services": [ { "name": "web", "ports": [ { "port": 99999, "servicePort": 1 } ] } ]}')
  await new Promise((r) => setTimeout(r, 400))
  t.equal(src.stats.rejected, 1, 'the bad edit was seen and refused')
  t.same(
    src.services().map((s) => s.name),
    ['web', 'api'],
    'previous set kept',
  )

  // An editor's save: write a temp file and rename it over the original.
  changed = waitFor(src, 5000)
  writeFileSync(path + '.tmp', JSON.stringify([{ Service: { Name: 'sidecar-style', Ports: [{ Port: 1, ServicePort: 2 }] } }]))
  renameSync(path + '.tmp', path)
  specs = await changed
  t.same(
    specs.map((s) => s.name),
    ['sidecar-style'],
  )
  await src.stop()
  await src.stop()
})

t.test('StaticSource.start() rejects a missing or invalid file with SHOAL_ERR_STATIC', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-static-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const missing = new StaticSource({ path: join(dir, 'none.json'), advertiseIp: '127.0.0.1' }, { logger })
  await t.rejects(missing.start(), { code: 'SHOAL_ERR_STATIC', message: /none\.json: cannot read/ })
  const path = join(dir, 'bad.json')
  writeFileSync(path, '{"services":[{"name":"x","ports":[{"port":1}]}]}')
  const bad = new StaticSource({ path, advertiseIp: '127.0.0.1' }, { logger })
  await t.rejects(bad.start(), { code: 'SHOAL_ERR_STATIC', message: /bad\.json: services\[0\]\.ports\[0\]\.servicePort/ })
})

t.test('a Docker check is refused at load, in both formats: a static instance has no container', async (t) => {
  const entry = { name: 'api', ports: [{ port: 8081, servicePort: 10081 }] }
  const shoalError = errorOf(shoal({ ...entry, check: { type: 'Docker' } }))
  t.match(shoalError, /services\[1\]\.check\.type: must be one of .*"HttpGet".*\(got "Docker"\)/)
  t.notMatch(shoalError.split('(got')[0], /Docker/, 'Docker is not among the allowed types')
  const sidecar = JSON.stringify([{ Service: { Name: 'api', Ports: [{ Port: 8081, ServicePort: 10081 }] }, Check: { Type: 'Docker' } }])
  t.match(errorOf(sidecar), /Check\.Type.*a static instance has none/)
  // The other types still load.
  for (const type of ['HttpGet', 'Tcp', 'External']) t.equal(errorOf(shoal({ ...entry, check: { type, args: 'x' } })), 'no error', type)
})

t.test('a JSON syntax error names its line and column', async (t) => {
  t.match(errorOf('{\n  "services": [\n   x]}'), /static\.json: JSON line 3 column 4: /)
  t.match(errorOf('{"services": [],}'), /JSON line 1 column 17: /)
  t.match(errorOf('{\n"a": tru }'), /JSON line 2 column 9: /)
  t.match(errorOf('{\n  "services": ['), /static\.json: JSON: /, 'a text cut short has no place to name')
  // Property: a stray character put into a valid file outside a string (where it is a syntax
  // error) is named at the place it was put.
  const base = readFileSync('examples/static.json', 'utf8')
  for (let i = 0, tried = 0; i < 200 && tried < 10_000; tried++) {
    const at = Math.floor(Math.random() * base.length)
    const text = base.slice(0, at) + '#' + base.slice(at)
    if (!errorOf(text).includes(': JSON')) continue // inside a string: still valid JSON
    i++
    const before = base.slice(0, at)
    const want = `line ${before.split('\n').length} column ${before.length - before.lastIndexOf('\n')}`
    if (!errorOf(text).includes(`JSON ${want}: `)) t.fail(`'#' at offset ${at}: ${errorOf(text)}, wanted ${want}`)
  }
  t.pass('200 stray characters found at their place')
})
