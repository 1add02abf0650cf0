// One load of the static file names up to five problems (README, The static file), the agent's
// own rules' as the schema's: names, ids, tags, addresses, ports, duplicates. They were
// reported one per load, so a file with five bad names took five edits to learn it.
import t from 'tap'
import { parseStaticServices } from '../src/registry/static.js'

const refusal = (doc: unknown): string => {
  try {
    parseStaticServices(JSON.stringify(doc), 'f.json', '10.0.0.9')
  } catch (err) {
    return (err as Error).message
  }
  throw new Error('accepted')
}
const port = { port: 80, servicePort: 10080 }

t.test('up to five problems of the agent’s rules, over entries and fields, then a count', async (t) => {
  const msg = refusal({
    services: [
      { name: '!!!', id: 'a b', tags: [' x'], ports: [port] },
      { name: 'ok', ports: [{ port: 81, servicePort: 10081, ip: 'fe80::1%eth0' }] },
      { name: '***', ports: [port] },
      { name: '+++', ports: [port] },
      { name: '===', ports: [port] },
      { name: 'fine', ports: [{ port: 82, servicePort: 10082 }] },
    ],
  })
  // The schema's problems first (the id's pattern), then the agent's own rules'.
  const want = [
    'services[0].id: must be 1-64 characters of [A-Za-z0-9._-] (got "a b")',
    'services[0].name: has no usable characters (got "!!!")',
    'services[0].tags[0]: has white space around it (got " x")',
    'services[1].ports[0].ip: "fe80::1%eth0" has a zone ID (%eth0)',
    'services[2].name: has no usable characters (got "***")',
  ]
  let at = 0
  for (const w of want) {
    const i = msg.indexOf(w, at)
    t.ok(i >= at, `names ${w}`, { msg })
    at = i
  }
  t.match(msg, /^f\.json: services\[0\]\.id: /, 'names the file first')
  t.match(msg, /; and 2 more$/, 'five problems and the count of the rest (services[3] and [4])')
})

t.test('fewer than five: each of them, and no count', async (t) => {
  const msg = refusal({
    services: [
      { name: 'web', id: 'same', ports: [port] },
      { name: 'api', id: 'same', ports: [{ port: 81, servicePort: 10081 }] },
      { name: '!!!', ports: [{ port: 0, servicePort: 10082 }] },
    ],
  })
  t.equal(
    msg,
    'f.json: services[2].ports[0].port: must be an integer 1-65535 (got 0); services[2].name: has no usable characters (got "!!!"); services[1]: instance id "same" is already used by entry 0',
  )
})

t.test("Sidecar's format too", async (t) => {
  const msg = refusal([{ Service: { Name: '!!!', ID: 'a b', Ports: [{ Port: 80, ServicePort: 10080, IP: 'x' }] } }])
  for (const w of ['[0].Service.Name: has no usable', '[0].Service.Ports[0].IP: "x" is not an IP address', '[0].Service.ID: must be 1-64'])
    t.ok(msg.includes(w), `names ${w}`, { msg })
})
