/**
 * The static file's schema (issue 15, item 5): typos are refused with their path and a
 * suggestion, the last good content stays in force, and the refusal shows in the log, the
 * metrics, /api/sources.json; the published JSON Schema and the README table are the schema.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import { isShoalError } from '../src/errors.js'
import {
  closestName,
  STATIC_FILE_SCHEMA,
  STATIC_VALIDATOR_FILE,
  staticSchemaMarkdown,
  staticSchemaProblems,
  staticValidatorSource,
} from '../src/registry/static-schema.js'
import { parseStaticServices } from '../src/registry/static.js'
import { cliAgent } from './lib/agent-process.js'

const web = { name: 'web', ports: [{ port: 8080, servicePort: 10080 }] }

function errorOf(doc: unknown): string {
  try {
    parseStaticServices(JSON.stringify(doc), 'static.json', '127.0.0.1')
  } catch (err) {
    if (isShoalError(err, 'SHOAL_ERR_STATIC')) return err.message
    throw err
  }
  return 'no error'
}

t.test('a typo in a field name is refused with its path and the nearest known name', async (t) => {
  const cases: Array<[unknown, string]> = [
    [
      { services: [{ ...web, chek: { type: 'HttpGet', args: 'http://{{ host }}:8080/' } }] },
      'services[0].chek: unknown field; did you mean "check"?',
    ],
    [{ services: [{ ...web, check: { tpye: 'Tcp' } }] }, 'services[0].check.tpye: unknown field; did you mean "type"?'],
    [
      { services: [{ ...web, ports: [{ port: 1, servicePort: 2, typ: 'udp' }] }] },
      'services[0].ports[0].typ: unknown field; did you mean "type"?',
    ],
    [{ services: [{ ...web, proxymode: 'tcp' }] }, 'services[0].proxymode: unknown field; did you mean "proxyMode"?'],
    [{ services: [{ ...web, lables: {} }] }, 'services[0].lables: unknown field; did you mean "labels"?'],
    [{ servces: [web] }, 'servces: unknown field; did you mean "services"?'],
    [
      [{ Service: { Name: 'a', Ports: [{ Port: 1, ServicePort: 0 }] }, Chek: { Type: 'Tcp' } }],
      '[0].Chek: unknown field; did you mean "Check"?',
    ],
    [{ services: [{ ...web, colour: 'blue' }] }, 'services[0].colour: unknown field; known fields: id, name, image, ports,'],
  ]
  for (const [doc, want] of cases) {
    const msg = errorOf(doc)
    t.ok(msg.startsWith('static.json: '), `names the file: ${msg}`)
    t.ok(msg.includes(want), `${msg}\n  includes ${want}`)
  }
  // `tpye` misses `type` too; the suggestion says both, so "type: is required" is not repeated.
  t.notMatch(errorOf({ services: [{ ...web, check: { tpye: 'Tcp' } }] }), /check\.type: is required/)
})

t.test('several problems are named at once, at most five and a count', async (t) => {
  const bad = { name: 'x', ports: [{ port: 0, servicePort: 70000, type: 'sctp' }], proxyMode: 'h2', chek: {}, lables: {}, imgae: '' }
  const msg = errorOf({ services: [bad] })
  t.equal(msg.match(/services\[0\]\.[\w.[\]]+: /g)?.length, 5, `five problems named: ${msg}`)
  t.match(msg, /; and 2 more$/, 'and the rest counted')
})

t.test("Sidecar's own fields are allowed and ignored; ours are not invented for it", async (t) => {
  const doc = [
    {
      Service: {
        ID: 'abc',
        Name: 'a',
        Image: 'a:1',
        Created: '2020-01-01T00:00:00Z',
        Hostname: 'h',
        Updated: 'x',
        Status: 0,
        Ports: [{ Port: 1, ServicePort: 2, Type: 'tcp', IP: '10.0.0.1' }],
      },
      Check: { ID: 'c', Type: 'HttpGet', Args: 'http://{{ host }}:1/' },
      ListenPort: 1,
    },
  ]
  t.same(staticSchemaProblems(doc), [])
  t.match(staticSchemaProblems([{ Service: { Name: 'a', Ports: [{ Port: 1, ServicePort: 2 }], labels: {} } }]), [
    /\[0\]\.Service\.labels: unknown field/,
  ])
})

t.test('closestName suggests only near names', async (t) => {
  t.equal(closestName('chek', ['check', 'labels']), 'check')
  t.equal(closestName('tpye', ['type', 'args']), 'type')
  t.equal(closestName('SERVICEPORT', ['servicePort', 'port']), 'servicePort')
  t.equal(closestName('zzz', ['check', 'labels']), undefined)
  t.equal(closestName('id', ['ip', 'image']), 'ip', 'one edit in two letters is near')
})

t.test('every static file this repository ships passes the schema and the agent', async (t) => {
  for (const f of ['examples/static.json', 'examples/authz/static.json', 'compose/static/shoal-2.json', 'compose/static/shoal-3.json']) {
    const text = readFileSync(f, 'utf8')
    t.same(staticSchemaProblems(JSON.parse(text)), [], f)
    t.ok(parseStaticServices(text, f, '127.0.0.1').length > 0, `${f} loads`)
  }
})

t.test('the published JSON Schema is the one the agent uses, and compiles alone (what an editor does)', async (t) => {
  const published = JSON.parse(readFileSync('docs/static.schema.json', 'utf8')) as unknown
  t.same(published, JSON.parse(JSON.stringify(STATIC_FILE_SCHEMA)), 'docs/static.schema.json is current (npm run schema writes it)')
  const validate = new Ajv({ strict: false }).compile(published as object)
  t.ok(validate(JSON.parse(readFileSync('examples/static.json', 'utf8'))), 'the example conforms')
  t.notOk(validate({ services: [{ ...web, chek: {} }] }), 'a typo does not')
  t.notOk(validate({ services: [{ ...web, ports: [{ port: 1, servicePort: 2, type: 'sctp' }] }] }), 'nor a bad enum')
  t.ok(validate([{ Service: { Name: 'a', Ports: [{ Port: 1, ServicePort: 0 }] } }]), "Sidecar's format conforms")
})

t.test("the README's field table is written from the schema", async (t) => {
  const readme = readFileSync('README.md', 'utf8')
  const begin = '<!-- static-schema:begin (npm run schema) -->\n'
  const i = readme.indexOf(begin)
  const j = readme.indexOf('\n<!-- static-schema:end -->')
  t.ok(i >= 0 && j > i, 'the README has the table markers')
  t.equal(readme.slice(i + begin.length, j), staticSchemaMarkdown(), 'README table is current (npm run schema writes it)')
})

t.test('a running agent refuses a typo, keeps serving the last good file, and says so in the log, metrics and API', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-schema-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'static.json')
  writeFileSync(path, JSON.stringify({ services: [{ ...web, check: { type: 'AlwaysSuccessful' } }] }))
  const a = await cliAgent(t, ['--node', 'a', '--discovery', 'static', '--static', path, '--dns', 'off'])
  const get = async (p: string): Promise<string> => (await fetch(`${a.http}${p}`)).text()
  const sources = async () => (JSON.parse(await get('/api/sources.json')) as { sources: Array<Record<string, unknown>> }).sources
  const until = async (what: string, ok: () => Promise<boolean>): Promise<void> => {
    // Polls until true; the file's 5-minute ceiling bounds it (no deadline that assumes an idle CPU).
    while (!(await ok())) await new Promise((r) => setTimeout(r, 100))
    t.pass(what)
  }

  t.match(await sources(), [{ source: 'static', where: path, ok: true, services: 1, rejected: 0 }])
  t.match(await get('/metrics'), /^shoal_static_file_valid 1$/m)

  writeFileSync(path, JSON.stringify({ services: [{ ...web, chek: { type: 'Tcp', args: '{{ host }}:1' } }] }))
  await until('the refusal shows in /api/sources.json', async () => (await sources())[0]?.ok === false)
  const [st] = await sources()
  t.match(st, {
    ok: false,
    services: 1,
    rejected: 1,
    error: { message: `${path}: services[0].chek: unknown field; did you mean "check"?` },
  })
  const metrics = await get('/metrics')
  t.match(metrics, /^shoal_static_file_valid 0$/m)
  t.match(metrics, /^shoal_static_file_loads_total\{result="rejected"\} 1$/m)
  const line = a.lines.find((l) => l.level === 40 && String(l.err).includes('did you mean "check"'))
  t.ok(line, 'a warning line names the file, the path and the suggestion')
  t.match(String(line?.msg), /keeping the previous services/)
  const services = JSON.parse(await get('/api/services.json')) as { services: Array<{ name: string }> }
  t.ok(
    services.services.some((s) => s.name === 'web'),
    'the last good content stays in force',
  )

  writeFileSync(path, JSON.stringify({ services: [{ ...web, check: { type: 'AlwaysSuccessful' } }], $schema: './static.schema.json' }))
  await until('a valid edit clears it', async () => (await sources())[0]?.ok === true)
  t.match(await get('/metrics'), /^shoal_static_file_valid 1$/m)
  t.equal(await a.stop(), 0)
})

t.test('the generated validators are what ajv compiles from the schema (npm run schema writes them)', async (t) => {
  t.ok(
    readFileSync(`src/registry/${STATIC_VALIDATOR_FILE}`, 'utf8') === staticValidatorSource(),
    `src/registry/${STATIC_VALIDATOR_FILE} is current: run npm run schema after changing the schema`,
  )
})
