// Issue 19, as a property: for random catalogs (three hosts, five services, inbound labels
// present, absent or malformed, allow-lists with good and bad names) and random sets of local
// identities, an Envoy-kind client on the agent's Unix socket gets, in both TLS modes:
//  - every Secret that a Listener or Cluster it was sent names, when it asks for them;
//  - nothing that fails validation;
//  - another host's endpoint over mTLS only at that host's published inbound address, and under
//    strict no other-host endpoint without one;
//  - an inbound Listener exactly for each local instance with an inbound address whose service
//    holds an identity.
// SHOAL_SDS_CASES sets the count (default 30); SHOAL_SDS_SEED=N replays case N alone.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { IdentityIssuer } from '../src/identity/index.js'
import type { ServiceRecord } from '../src/registry/types.js'
import { silentLogger } from '../src/log.js'
import { makePki } from './lib/identity.js'
import { seeded } from './lib/random.js'
import { AdsClient, deepDecode, ENVOY_NODE, FixtureCatalog, host, rec, startServer, TypeUrl } from './lib/xds-fixture.js'

const COUNT = Number(process.env.SHOAL_SDS_CASES ?? 30)
const ONLY = process.env.SHOAL_SDS_SEED !== undefined ? Number(process.env.SHOAL_SDS_SEED) : null
const TD = 'prop'
const NAMES = ['a', 'b', 'c', 'd', 'e']
const HOSTS = ['h1', 'h2', 'h3']
const SP = (name: string) => 10010 + NAMES.indexOf(name)

/** SDS names inside decoded resources (the fields Envoy reads them from). */
function secretNames(v: unknown, key = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) for (const x of v) secretNames(x, key, out)
  else if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>
    if ((key === 'tls_certificate_sds_secret_configs' || key === 'validation_context_sds_secret_config') && typeof o.name === 'string')
      out.add(o.name)
    for (const [k, x] of Object.entries(o)) secretNames(x, k, out)
  }
  return out
}

function randomCatalog(r: () => number): { hosts: ReturnType<typeof host>[]; records: ServiceRecord[] } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
  const records: ServiceRecord[] = []
  let port = 9000
  for (const [hi, h] of HOSTS.entries()) {
    for (const name of NAMES) {
      if (r() < 0.5) continue
      const ip = `127.0.0.${hi + 1}`
      const base = rec({
        host: h,
        id: `${name}-${h}`,
        name,
        servicePort: SP(name),
        port: port++,
        ip,
        mode: pick(['tcp', 'http', 'grpc'] as const),
      })
      const labels: Record<string, string> = {}
      const x = r()
      if (x < 0.7) labels['shoal.inbound'] = `${SP(name)}=${ip}:${15000 + records.length}`
      else if (x < 0.8) labels['shoal.inbound'] = pick(['garbage', `${SP(name)}=nothost:1`, `0=${ip}:1`, `${SP(name)}=${ip}:99999`])
      if (r() < 0.3) labels['shoal.allow'] = [pick(NAMES), pick(NAMES), pick(['', 'Bad Name', 'zz'])].join(',')
      records.push({ ...base, labels })
    }
  }
  return {
    hosts: HOSTS.map((h) =>
      host(
        h,
        records.filter((x) => x.host === h),
      ),
    ),
    records,
  }
}

for (const mode of ['permissive', 'strict'] as const) {
  t.test(`${mode}: every Secret named is served, everything valid, endpoints at inbound addresses`, async (t) => {
    const clock = new VirtualClock({ startWall: Date.now() })
    const pki = await makePki(t, { cluster: TD, nodes: ['h1'], now: clock.wallNow() })
    const issuer = new IdentityIssuer(
      { dir: pki.tlsDir('h1'), trustDomain: TD, leafTtlMs: 24 * 3_600_000, node: 'h1' },
      { logger: silentLogger(), clock },
    )
    t.teardown(() => issuer.stop())
    await issuer.start()
    const dir = mkdtempSync(join(tmpdir(), 'shoal-sds-prop-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const socket = join(dir, 'ads.sock')
    const cat = new FixtureCatalog([])
    const { server } = await startServer(
      t,
      cat,
      { tls: { mode, trustDomain: TD }, localHost: 'h1', socket, minPushIntervalMs: 0 },
      { logger: silentLogger(), identities: issuer },
    )
    const seeds = ONLY !== null ? [ONLY] : Array.from({ length: COUNT }, (_, k) => k + 1)
    let failed = 0
    for (const seed of seeds) {
      const r = seeded(seed)
      const { hosts, records } = randomCatalog(r)
      cat.set(hosts)
      issuer.setServices(NAMES.filter(() => r() < 0.6))
      await issuer.settled()
      await clock.advance(61_000) // removals of identities no longer wanted
      await issuer.settled()
      const problems: string[] = []
      const c = new AdsClient(`unix:${socket}`)
      try {
        c.send({ node: ENVOY_NODE, type_url: TypeUrl.cluster })
        const cds = await c.next(10_000, TypeUrl.cluster)
        c.ack(cds, [])
        c.send({ type_url: TypeUrl.listener })
        const lds = await c.next(10_000, TypeUrl.listener)
        c.ack(lds, [])
        const clusters = cds.resources.map((x) => deepDecode(x) as any)
        const listeners = lds.resources.map((x) => deepDecode(x) as any)
        const named = secretNames([...clusters, ...listeners])
        if (named.size) {
          c.send({ type_url: TypeUrl.secret, resource_names: [...named] })
          const sds = await c.next(10_000, TypeUrl.secret)
          for (const n of named) if (!sds.names.includes(n)) problems.push(`Secret ${n} named but not served`)
        }
        const invalid = server.debugInfo().invalid
        if (invalid.length) problems.push(`invalid: ${JSON.stringify(invalid)}`)
        // Inbound Listeners: exactly the local instances with a good inbound address and an identity.
        const held = new Set(issuer.identities().map((i) => i.service))
        const want = records
          .filter((x) => x.host === 'h1' && held.has(x.name))
          .filter((x) => {
            const m = new RegExp(`^${SP(x.name)}=127\\.0\\.0\\.1:(\\d{1,5})$`).exec(x.labels['shoal.inbound'] ?? '')
            return m !== null && Number(m[1]) <= 65535
          })
          .map((x) => `shoal/inbound/${x.id}:${SP(x.name)}`)
          .sort()
        const got = listeners
          .map((l) => l.name as string)
          .filter((n) => n.startsWith('shoal/inbound/'))
          .sort()
        if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`inbound Listeners ${got.join(' ')} != ${want.join(' ')}`)
        // Endpoints: other hosts' only at their inbound address (marked), local ones directly.
        const eds = clusters.filter((x) => !String(x.name).startsWith('shoal/')).map((x) => x.name as string)
        if (eds.length) {
          c.send({ type_url: TypeUrl.endpoint, resource_names: eds })
          const got = await c.next(10_000, TypeUrl.endpoint)
          for (const cla of got.resources as any[]) {
            for (const e of cla.endpoints.flatMap((l: any) => l.lb_endpoints)) {
              const sa = e.endpoint.address.socket_address
              const marked = e.metadata?.filter_metadata?.['envoy.transport_socket_match']?.fields?.['shoal.mtls']?.boolValue === true
              const owner = records.find((x) => x.ports[0]!.ip === sa.address && x.ports[0]!.port === sa.port_value)
              const inboundOf = records.find(
                (x) => x.labels['shoal.inbound'] === `${x.ports[0]!.servicePort}=${sa.address}:${sa.port_value}`,
              )
              if (marked && (!inboundOf || inboundOf.host === 'h1'))
                problems.push(`${cla.cluster_name}: marked endpoint ${sa.address}:${sa.port_value} is no other host's inbound address`)
              if (!marked && owner && owner.host !== 'h1' && mode === 'strict')
                problems.push(`${cla.cluster_name}: strict serves ${owner.id} in plain text`)
              if (!marked && !owner) problems.push(`${cla.cluster_name}: unmarked endpoint ${sa.address}:${sa.port_value} is no instance`)
            }
          }
        }
      } catch (err) {
        problems.push((err as Error).message)
      } finally {
        c.close()
      }
      if (problems.length) {
        failed++
        t.fail(`seed ${seed} (replay: SHOAL_SDS_SEED=${seed}): ${problems.join('; ')}`)
      }
    }
    t.equal(failed, 0, `${seeds.length} random catalogs and identity sets`)
  })
}
