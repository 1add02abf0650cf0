// The generated xDS descriptors (src/xds/descriptors.json, scripts/xds-descriptors.ts) stand in
// for the Envoy protos the agent used to parse at start: the checked-in file is what the script
// makes, it holds every type Shoal packs, serves or checks, and against the protos themselves
// it encodes every resource of a catalog to the same bytes and finds the same problems in
// seeded random mutations of them.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { DESCRIPTORS_PATH, descriptorsText, loadEnvoyProtos } from '../scripts/xds-descriptors.js'
import { DESCRIBED_TYPES, ExtUrl, loadXdsProtos, TypeUrl, XDS_TYPES, xdsProtosOf } from '../src/xds/protos.js'
import { validateResource } from '../src/xds/validate.js'
import { seeded } from './lib/random.js'
import { buildResources, resourcesOf } from './lib/xds-oracle.js'
import { mixedCatalog } from './lib/xds-fixture.js'

const described = loadXdsProtos()
const full = xdsProtosOf(loadEnvoyProtos())

t.test('the checked-in descriptors are what scripts/xds-descriptors.ts makes', async (t) => {
  t.ok(
    readFileSync(DESCRIPTORS_PATH, 'utf8') === descriptorsText(),
    'run npm run xds:descriptors after changing DESCRIBED_TYPES or @grpc/grpc-js-xds',
  )
})

t.test('every type Shoal serves, packs into a resource or reads from a client is described', async (t) => {
  const urls = [...XDS_TYPES.map((x) => x.url), ...Object.values(ExtUrl)]
  for (const url of urls) t.ok(described.typeOf(url), `${url} is loaded`)
  for (const name of ['envoy.service.discovery.v3.DiscoveryRequest', 'envoy.service.discovery.v3.DiscoveryResponse'])
    t.ok(described.root.lookupType(name), name)
  t.same(JSON.parse(readFileSync(DESCRIPTORS_PATH, 'utf8')).types, DESCRIBED_TYPES)
  t.notOk(described.typeOf('type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap'), 'and nothing Shoal does not serve (the Bootstrap)')
})

function resources(): Array<{ url: string; name: string; obj: Record<string, unknown> }> {
  const snap = mixedCatalog().snapshot()
  const out: Array<{ url: string; name: string; obj: Record<string, unknown> }> = []
  for (const kind of ['envoy', 'grpc'] as const) {
    const r = buildResources(snap, kind, { envoyBind: '127.0.0.1' })
    for (const [, url, name, obj] of resourcesOf(r)) out.push({ url, name: `${kind} ${name}`, obj: obj as Record<string, unknown> })
  }
  return out
}

t.test('every resource of a catalog encodes to the same bytes with the descriptors as with the protos', async (t) => {
  for (const { url, name, obj } of resources()) {
    t.same(validateResource(described, url, obj), [], `${name} is valid`)
    t.same(Buffer.from(described.pack(url, obj).value), Buffer.from(full.pack(url, obj).value), `${url} ${name}`)
  }
  const req = {
    version_info: '1',
    node: { id: 'n', cluster: 'c', user_agent_name: 'envoy', client_features: ['xds.config.resource-in-sotw'] },
    resource_names: ['web:10002'],
    type_url: TypeUrl.cluster,
    response_nonce: '3',
    error_detail: { code: 3, message: 'bad' },
  }
  const ser = described.adsService.StreamAggregatedResources!
  const serFull = full.adsService.StreamAggregatedResources!
  const bytes = ser.requestSerialize(req)
  t.same(bytes, serFull.requestSerialize(req), 'a DiscoveryRequest encodes alike')
  t.same(ser.requestDeserialize(bytes), serFull.requestDeserialize(bytes), 'and decodes alike')
})

/** A seeded mutation of a resource: a field dropped, emptied, set out of range, misspelled or of the wrong type. */
function mutate(obj: unknown, rnd: () => number): unknown {
  const copy = JSON.parse(JSON.stringify(obj)) as unknown
  const paths: Array<{ parent: Record<string, unknown> | unknown[]; key: string | number }> = []
  const walk = (o: unknown): void => {
    if (Array.isArray(o))
      o.forEach((v, i) => {
        paths.push({ parent: o, key: i })
        walk(v)
      })
    else if (o && typeof o === 'object')
      for (const [k, v] of Object.entries(o)) {
        if (k === '@type') continue
        paths.push({ parent: o as Record<string, unknown>, key: k })
        walk(v)
      }
  }
  walk(copy)
  const p = paths[Math.floor(rnd() * paths.length)]!
  const parent = p.parent as Record<string | number, unknown>
  const choice = Math.floor(rnd() * 6)
  if (choice === 0) delete parent[p.key]
  else if (choice === 1) parent[p.key] = ''
  else if (choice === 2) parent[p.key] = -1
  else if (choice === 3) parent[p.key] = 70000
  else if (choice === 4 && !Array.isArray(parent)) parent[`${String(p.key)}x`] = parent[p.key]
  else parent[p.key] = { unexpected: true }
  return copy
}

t.test('seeded mutations of every resource: the same problems with the descriptors as with the protos', async (t) => {
  const rnd = seeded(Number(process.env.SHOAL_DESCRIPTORS_SEED ?? 17))
  let problems = 0
  let cases = 0
  for (const { url, obj } of resources()) {
    for (let i = 0; i < 40; i++) {
      const m = mutate(obj, rnd)
      const a = validateResource(described, url, m)
      const b = validateResource(full, url, m)
      cases++
      problems += a.length
      if (JSON.stringify(a) !== JSON.stringify(b)) {
        t.fail(`${url}: ${JSON.stringify(m)}\n descriptors: ${JSON.stringify(a)}\n protos: ${JSON.stringify(b)}`)
        return
      }
    }
  }
  t.pass(`${cases} mutated resources, ${problems} problems found alike`)
  t.ok(problems > cases / 4, 'the mutations break the rules often enough to compare the checkers')
})
