// Issue 12, part 1, as a property: what the owner serves, every peer holds. Each case draws
// records at and beyond every limit of limits.ts (ids, names, images, ports, IPs, check args,
// label keys, values, counts and total size; tags and attributes; network addresses, their
// names and IPs, and ports without a host binding; node names up to their limit; astral
// characters and lone surrogates; status reasons, issue 14), builds them the way the owner does (Docker labels through mapContainer, a
// static file through parseStaticServices, LocalServices' fit), and runs them through real
// registry nodes on the gossip simulator: broadcast, reference fetch, a peer's merge, updates,
// and a pull after the peer restarts. Then the peer must hold exactly the owner's records, field
// for field, and must have rejected nothing. SHOAL_LIMITS_RUNS cases (default 1000) from seed
// SHOAL_LIMITS_BASE (default 1); a failure prints its seed (SHOAL_LIMITS_SEED replays one).
import { unsafeChar } from '../src/text.js'
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { mapContainer, type ContainerFacts } from '../src/docker/labels.js'
import { SimNetwork } from '../src/gossip/transport-sim.js'
import { RecordLimits } from '../src/registry/limits.js'
import { parseStaticServices } from '../src/registry/static.js'
import type { LocalServiceSpec, ServiceRecord } from '../src/registry/types.js'
import { seeded } from './lib/random.js'
import { joinSim, simNode, type SimNode } from './lib/registry-node.js'

const RUNS = Number(process.env.SHOAL_LIMITS_RUNS ?? 1000)
const ONE_SEED = process.env.SHOAL_LIMITS_SEED === undefined ? undefined : Number(process.env.SHOAL_LIMITS_SEED)
const BASE = Number(process.env.SHOAL_LIMITS_BASE ?? 1)
const L = RecordLimits

type Rnd = () => number

const int = (rnd: Rnd, n: number) => Math.floor(rnd() * n)
const pick = <T>(rnd: Rnd, a: readonly T[]): T => a[int(rnd, a.length)]!

/** A length at, just around or well past `limit`, or small. */
function lengthNear(rnd: Rnd, limit: number): number {
  return pick(rnd, [0, 1, 3, 12, limit - 1, limit, limit + 1, limit + int(rnd, 50), limit * 2, int(rnd, limit)])
}

const ALPHABETS = ['abcxyz0189-._', 'ÄéŒ中文', '😀🐳𝄞', 'a\ud800b\udc00', ' /:@{}"\\\n', 'a\u202eb\u0085c\u2028\u2066']

/** A string of about `len` characters: ASCII mostly, sometimes other planes or lone surrogates. */
function text(rnd: Rnd, len: number): string {
  const alphabet = rnd() < 0.7 ? ALPHABETS[0]! : pick(rnd, ALPHABETS)
  let s = ''
  while (s.length < len) s += alphabet[int(rnd, alphabet.length)]!
  return s.slice(0, Math.max(0, len))
}

function labels(rnd: Rnd): Record<string, string> {
  const out: Record<string, string> = {}
  const n = pick(rnd, [0, 1, 3, L.labels.build - 1, L.labels.build, L.labels.build + 1, 70])
  for (let i = 0; i < n; i++) {
    const key = rnd() < 0.05 ? pick(rnd, ['__proto__', 'constructor', 'shoal.labels-dropped']) : `k${i}.${text(rnd, lengthNear(rnd, 20))}`
    const longKey = rnd() < 0.05 ? text(rnd, lengthNear(rnd, L.labelKey.build)) : key
    const value = text(rnd, rnd() < 0.2 ? lengthNear(rnd, pick(rnd, [L.labelValue.build, L.labelValue.accept, 5000])) : int(rnd, 200))
    Object.defineProperty(out, longKey, { value, enumerable: true, writable: true, configurable: true })
  }
  return out
}

function ports(rnd: Rnd, ip: string): LocalServiceSpec['ports'] {
  const n = pick(rnd, [0, 1, 2, L.ports.build, L.ports.build + 1])
  return Array.from({ length: n }, (_, i) => ({
    type: rnd() < 0.9 ? ('tcp' as const) : ('udp' as const),
    port: 1 + i,
    servicePort: 10_000 + i,
    ip: rnd() < 0.05 ? text(rnd, lengthNear(rnd, L.portIp.build)) : ip,
  }))
}

/** Tags around their limits: empty, white space, control characters, repeats, 40 of them, over 128 characters. */
function tags(rnd: Rnd): string[] | undefined {
  if (rnd() < 0.5) return undefined
  const n = pick(rnd, [0, 1, 3, L.tags.build, L.tags.build + 1, 40])
  return Array.from({ length: n }, (_, i) =>
    rnd() < 0.1
      ? pick(rnd, ['', ' x', 'a\u0001', 'b\u202e', 'c\u009b', 'dup'])
      : text(rnd, rnd() < 0.1 ? lengthNear(rnd, L.tag.build) : 1 + int(rnd, 20)) || `t${i}`,
  )
}

/** Attributes around their limits: bad keys, long keys and values, 40 of them, over the byte total. */
function attributes(rnd: Rnd): Record<string, string> | undefined {
  if (rnd() < 0.5) return undefined
  const out: Record<string, string> = {}
  const n = pick(rnd, [0, 1, 3, L.attributes.build, L.attributes.build + 1, 40])
  for (let i = 0; i < n; i++) {
    const key = rnd() < 0.1 ? pick(rnd, ['__proto__', 'Upper', '', '-x', 'k'.repeat(L.attributeKey.build + 1)]) : `a${i}`
    const value = text(rnd, rnd() < 0.2 ? lengthNear(rnd, L.attributeValue.build) : int(rnd, 100))
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
  }
  return out
}

function check(rnd: Rnd): LocalServiceSpec['check'] {
  if (rnd() < 0.6) return undefined
  return { type: 'AlwaysSuccessful', args: text(rnd, lengthNear(rnd, L.checkArgs.build)) }
}

/** A spec straight from a source of tomorrow: no parser in front of the owner's fit. */
function directSpec(rnd: Rnd, i: number, ip: string): LocalServiceSpec {
  const s: LocalServiceSpec = {
    id: rnd() < 0.1 ? text(rnd, lengthNear(rnd, L.id.build)) || `d${i}` : `d${i}`,
    name: text(rnd, lengthNear(rnd, L.name.build)) || 'x',
    image: text(rnd, lengthNear(rnd, L.image.build)),
    created: int(rnd, 2 ** 40),
    ports: ports(rnd, ip),
    proxyMode: pick(rnd, ['http', 'tcp', 'ws', 'grpc'] as const),
    labels: labels(rnd),
    source: 'static',
  }
  const c = check(rnd)
  if (c) s.check = c
  const tg = tags(rnd)
  if (tg) s.tags = tg
  const at = attributes(rnd)
  if (at) s.attributes = at
  return s
}

function dockerSpec(rnd: Rnd, i: number, ip: string): LocalServiceSpec | undefined {
  const id = (i.toString(16).padStart(4, '0') + 'ab'.repeat(32)).slice(0, 64)
  const l = labels(rnd)
  l.ServiceName = text(rnd, lengthNear(rnd, L.name.build)) || 'svc'
  l.ServicePort_80 = String(10_080 + i)
  const c = check(rnd)
  if (c) {
    l.HealthCheck = c.type
    l.HealthCheckArgs = c.args ?? ''
  }
  // Registrator's keys in the environment (issue 20): tag lists up to 1,000 entries, odd keys and values.
  const env: Record<string, string> = {}
  if (rnd() < 0.4) {
    env.SERVICE_TAGS = Array.from({ length: pick(rnd, [1, 5, 40, 1000]) }, () => text(rnd, int(rnd, 20))).join(',')
    for (let k = 0; k < int(rnd, 40); k++)
      env[`SERVICE_${pick(rnd, ['', '80_', '99999_'])}${text(rnd, 1 + int(rnd, 10))}`] = text(rnd, lengthNear(rnd, L.attributeValue.build))
  }
  // Sometimes on networks the agent advertises (names and IPs near their limits, counts around
  // theirs), and then sometimes without a published port.
  const networks: ContainerFacts['networks'] = {}
  const names: string[] = []
  if (rnd() < 0.4) {
    const n = pick(rnd, [1, 2, L.networks.build, L.networks.build + 1])
    for (let k = 0; k < n; k++) {
      const name = rnd() < 0.1 ? text(rnd, lengthNear(rnd, L.networkName.build)) || `net${k}` : `net${k}`
      const netIp = rnd() < 0.05 ? text(rnd, lengthNear(rnd, L.networkIp.build)) : `10.${k}.0.${2 + i}`
      Object.defineProperty(networks, name, { value: { ip: netIp, prefixLen: 24 }, enumerable: true, writable: true, configurable: true })
      names.push(name)
    }
  }
  const facts: ContainerFacts = {
    env,
    id,
    name: `c${i}-${text(rnd, int(rnd, 30))}`,
    image: text(rnd, lengthNear(rnd, L.image.build)) || 'img',
    created: int(rnd, 2 ** 40),
    labels: l,
    bindings: names.length && rnd() < 0.5 ? [] : [{ containerPort: 80, type: 'tcp', hostIp: '0.0.0.0', hostPort: 30_000 + i }],
    networks,
    health: 'none',
    running: true,
  }
  return mapContainer(facts, { advertiseIp: ip, networks: names }).spec
}

function staticSpecs(rnd: Rnd, n: number, ip: string): LocalServiceSpec[] {
  const services = Array.from({ length: n }, (_, i) => {
    const e: Record<string, unknown> = {
      id: `s${i}`,
      name: text(rnd, lengthNear(rnd, L.name.build)).replace(/[^a-z0-9]/g, '') || `svc${i}`,
      image: text(rnd, lengthNear(rnd, L.image.build)),
      ports: [{ port: 8000 + i, servicePort: 20_000 + i }],
      labels: labels(rnd),
    }
    const c = check(rnd)
    if (c) e.check = c
    return e
  })
  return parseStaticServices(JSON.stringify({ services }), 'static.json', ip)
}

/** Everything of a record, the fields a newer release may add included, in one comparable line. */
const line = (r: ServiceRecord): string =>
  JSON.stringify([
    r.id,
    r.name,
    r.image,
    r.created,
    r.host,
    r.bootId,
    r.ports,
    r.proxyMode,
    r.status,
    r.version,
    r.updated,
    r.labels,
    r.reason,
    r.tags,
    r.attributes && Object.entries(r.attributes),
    r.detail,
    Object.entries(r.networks ?? {}).sort(),
  ])

// Served: the owner's live records (a restarted peer need not learn tombstones it never held).
const served = (rs: readonly ServiceRecord[]): string[] =>
  rs
    .filter((r) => r.status !== 'tombstone')
    .map(line)
    .sort()
const ownerTruth = (owner: SimNode): string[] => served(owner.catalog.localRecords())
const heldBy = (peer: SimNode, owner: string): string[] =>
  served(peer.catalog.snapshot().hosts.find((h) => h.name === owner)?.services ?? [])

interface Outcome {
  ok: boolean
  why: string
  records: number
  /** Records with network addresses, and ports without a host binding. */
  networked: number
  unpublished: number
  trimmed: number
  refused: number
}

async function runCase(seed: number): Promise<Outcome> {
  const rnd = seeded(seed)
  const clock = new VirtualClock()
  const net = new SimNetwork(clock, { latencyMs: 1, random: rnd })
  const ownerName = rnd() < 0.2 ? 'o'.repeat(pick(rnd, [64, RecordLimits.host.build])) : 'owner'
  const owner = await simNode(net, ownerName, '10.0.0.1', { random: rnd })
  let peer = await simNode(net, 'peer', '10.0.0.2', { random: rnd })
  const nodes = [owner, peer]
  try {
    const build = (): void => {
      const docker: LocalServiceSpec[] = []
      const n = 1 + int(rnd, 4)
      for (let i = 0; i < n; i++) {
        const s = rnd() < 0.5 ? dockerSpec(rnd, i, owner.ip) : directSpec(rnd, i, owner.ip)
        // Issue 14: some are stopping (draining with a reason, the 14th field).
        if (s) docker.push({ ...s, source: 'docker', ...(rnd() < 0.2 ? { stopping: true } : {}) })
      }
      owner.local.setSource('docker', docker)
      owner.local.setSource('static', staticSpecs(rnd, int(rnd, 3), owner.ip))
      // Issue 15: an operator's drain text becomes the record's detail (the 15th field), cut to fit.
      const text = (): string | undefined => (rnd() < 0.5 ? undefined : `maintenance \u20ac${'x'.repeat(int(rnd, 300))}`)
      for (const spec of owner.local.list()) if (rnd() < 0.15) owner.local.drain(spec.id, text())
    }
    build()
    await clock.advance(10)
    await joinSim(net, peer, owner)
    await clock.advance(300)
    const check = (when: string): string => {
      const want = ownerTruth(owner)
      const got = heldBy(peer, owner.name)
      if (want.join('\n') !== got.join('\n')) {
        const missing = want.filter((w) => !got.includes(w))
        const extra = got.filter((g) => !want.includes(g))
        const at = (a: string, b: string) => {
          let i = 0
          while (i < a.length && a[i] === b[i]) i++
          return `${a.slice(0, 40)}… at ${i}: owner ${JSON.stringify(a.slice(Math.max(0, i - 30), i + 60))}, peer ${JSON.stringify(b.slice(Math.max(0, i - 30), i + 60))}`
        }
        return `${when}: the peer holds ${got.length} records of the owner's ${want.length}; ${missing.map((m, k) => at(m, extra[k] ?? '')).join(' | ')}`
      }
      // Tags and attribute values reach logs, DNS names and the UI: none keeps a control or bidi character (src/text.ts).
      for (const r of owner.catalog.localRecords()) {
        const unsafe = [...(r.tags ?? []), ...Object.values(r.attributes ?? {})].find((x) => unsafeChar(x) !== undefined)
        if (unsafe !== undefined) return `${when}: ${r.id} keeps ${JSON.stringify(unsafe)} in its tags or attributes`
      }
      const rejected = Object.keys(peer.bridge.stats.recordsRejected)
      if (rejected.length > 0) return `${when}: the peer rejected records (${rejected.join(', ')})`
      return ''
    }
    let why = check('after the join')
    if (!why) {
      // Changes while both run: broadcasts, references fetched over a stream.
      build()
      await clock.advance(500)
      why = check('after an update')
    }
    if (!why) {
      // The peer restarts (a new boot, same address) and learns everything by the join's pull.
      await peer.stop()
      peer = await simNode(net, 'peer', '10.0.0.2', { random: rnd })
      nodes.push(peer)
      await joinSim(net, peer, owner)
      await clock.advance(300)
      why = check('after the peer restarted')
    }
    const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0)
    return {
      ok: why === '',
      why,
      records: owner.catalog.localRecords().length,
      networked: owner.catalog.localRecords().filter((r) => r.networks).length,
      unpublished: owner.catalog.localRecords().filter((r) => r.ports.some((p) => p.ip === undefined)).length,
      trimmed: sum(owner.local.stats.trimmed),
      refused: sum(owner.local.stats.refused),
    }
  } finally {
    for (const n of nodes) await n.stop()
  }
}

t.test(`the peer holds exactly what the owner serves (${ONE_SEED === undefined ? RUNS : 1} random cases)`, async (t) => {
  const base = ONE_SEED ?? BASE
  const runs = ONE_SEED === undefined ? RUNS : 1
  const totals = { records: 0, networked: 0, unpublished: 0, trimmed: 0, refused: 0 }
  for (let i = 0; i < runs; i++) {
    const seed = base + i
    const out = await runCase(seed)
    if (!out.ok) {
      t.fail(`seed ${seed}: ${out.why} (replay: SHOAL_LIMITS_SEED=${seed} npx tap ${'test/registry-limits-property.test.ts'})`)
      return
    }
    totals.records += out.records
    totals.networked += out.networked
    totals.unpublished += out.unpublished
    totals.trimmed += out.trimmed
    totals.refused += out.refused
  }
  t.comment(JSON.stringify(totals))
  t.ok(totals.trimmed > runs / 4, `records trimmed to fit: ${totals.trimmed}`)
  t.ok(totals.refused > runs / 10, `records refused: ${totals.refused}`)
  t.ok(
    totals.networked > runs / 20 && totals.unpublished > 0,
    `records with network addresses: ${totals.networked}, of them unpublished: ${totals.unpublished}`,
  )
  t.pass(`${runs} cases, ${totals.records} records: every peer held exactly what its owner served`)
})
