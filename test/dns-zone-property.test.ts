// Property test of the DNS zone over random catalogs (hosts up and down, old boots,
// tombstones, every status, tcp and udp ports, IPv4 and IPv6, instances whose ports have
// several IPs, ids and names with dots, two services on one ServicePort). For every name:
// - NAME.service A/AAAA is exactly the IPs of NAME's live tcp ports that take traffic,
//   and NXDOMAIN with the SOA when there are none;
// - NAME.service SRV is exactly their (IP, port) pairs, and each target resolves, through
//   the same zone, to the IP of its port;
// - TAG.NAME.service A/AAAA is the same of the instances tagged TAG (tags with dots and in
//   upper case included), NXDOMAIN when none;
// - ID.NAME.instance resolves for every live instance with a tcp port, whatever its status;
// - each ServicePort is answered under exactly one NAME.serviceport: the smallest name;
// - a port without a host binding (reachable on a Docker network only) is never answered.
import t from 'tap'
import type { Answer, SrvAnswer, StringAnswer } from 'dns-packet'
import { Zone, Rcode, ipToHex } from '../src/dns/zone.js'
import {
  liveRecords,
  takesTraffic,
  type CatalogSnapshot,
  type HostView,
  type ServicePortSpec,
  type ServiceRecord,
  type ServiceStatus,
} from '../src/registry/types.js'
import { seeded } from './lib/random.js'

const RUNS = Number(process.env.SHOAL_PROPERTY_RUNS ?? 500)
const SEED = Number(process.env.SHOAL_PROPERTY_SEED ?? Date.now() % 1_000_000)

const STATUSES: ServiceStatus[] = ['alive', 'unknown', 'draining', 'unhealthy', 'tombstone']
const NAMES = ['web', 'api', 'db.primary', 'a', 'cache-1']
const TAGS = ['blue', 'Canary', 'v1.2', 'db']
const IPS = ['127.0.1.1', '127.0.1.2', '10.0.0.7', '::1', 'fd00::5', '::ffff:10.1.2.3']

function randomCatalog(random: () => number, seq: number): CatalogSnapshot {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
  const hosts: HostView[] = []
  for (let h = 0, nh = 1 + Math.floor(random() * 4); h < nh; h++) {
    const bootId = `boot${h}`
    const services: ServiceRecord[] = []
    for (let i = 0, n = Math.floor(random() * 6); i < n; i++) {
      const ports: ServicePortSpec[] = Array.from({ length: Math.floor(random() * 3) + (random() < 0.9 ? 1 : 0) }, () => {
        const type = random() < 0.85 ? ('tcp' as const) : ('udp' as const)
        const servicePort = 10000 + Math.floor(random() * 5)
        // Unpublished: on the record's networks only.
        if (random() < 0.15) return { type, servicePort, containerPort: 8080 }
        return { type, port: 1 + Math.floor(random() * 65535), servicePort, ip: pick(IPS) }
      })
      services.push({
        id: random() < 0.2 ? `h${h}.i${i}` : `H${h}-i${i}`,
        name: pick(NAMES),
        image: 'img',
        created: 0,
        host: `host-${h}`,
        bootId: random() < 0.9 ? bootId : 'old-boot',
        ports,
        proxyMode: 'http',
        status: pick(STATUSES),
        version: [1, 0],
        updated: 0,
        labels: {},
        ...(random() < 0.5 ? { tags: TAGS.filter(() => random() < 0.4) } : {}),
        ...(random() < 0.3 ? { networks: { apps: `10.9.${h}.${i + 2}` } } : {}),
      })
    }
    hosts.push({
      name: `host-${h}`,
      address: `127.0.0.1:${7000 + h}`,
      state: pick(['alive', 'alive', 'suspect', 'dead', 'left']),
      bootId,
      services,
    })
  }
  return { cluster: 'c', seq, hosts }
}

/** Addresses compared as bytes (hex), so `::1` and `0:0:0:0:0:0:0:1` are one address, as on the wire. */
const data = (as: Answer[], type: string): string[] =>
  as
    .filter((a) => a.type === type)
    .map((a) => ipToHex((a as StringAnswer).data))
    .sort()
const uniq = (xs: string[]): string[] => [...new Set(xs.map(ipToHex))].sort()
/** A record's tcp host bindings: what DNS answers (callers on hosts' networks). */
const hostTcp = (r: ServiceRecord): Array<{ ip: string; port: number }> =>
  r.ports.flatMap((p) => (p.type === 'tcp' && p.ip !== undefined && p.port !== undefined ? [{ ip: p.ip, port: p.port }] : []))

t.test(`DNS zone over ${RUNS} random catalogs (seed ${SEED}; SHOAL_PROPERTY_SEED replays it)`, async (t) => {
  const random = seeded(SEED)
  let checked = 0
  for (let run = 0; run < RUNS; run++) {
    const snap = randomCatalog(random, run)
    const zone = new Zone({ domain: 'shoal', ttl: 0, envoyBind: '127.0.0.1' }, random)
    const live = liveRecords(snap)
    const ask = (name: string, type: string) => zone.answer({ name, type: type as 'A' }, snap)
    let failed = false
    const fail = (what: string): void => {
      if (!failed) t.fail(`run ${run}: ${what}\n${JSON.stringify(snap)}`)
      failed = true
    }
    for (const name of NAMES) {
      const served = live.filter((r) => r.name === name && takesTraffic(r.status))
      const tcp = served.flatMap(hostTcp)
      const a = ask(`${name}.service.shoal`, 'A')
      const aaaa = ask(`${name}.service.shoal`, 'AAAA')
      const srv = ask(`${name}.service.shoal.`, 'SRV')
      if (tcp.length === 0) {
        for (const r of [a, aaaa, srv])
          if (r.rcode !== Rcode.nxDomain || r.authorities[0]?.type !== 'SOA')
            fail(`${name}: no tcp port takes traffic, yet not NXDOMAIN+SOA`)
        continue
      }
      const want = uniq(tcp.map((p) => p.ip))
      const got = [...data(a.answers, 'A'), ...data(aaaa.answers, 'AAAA')].sort()
      if (got.join() !== want.join()) fail(`${name}: A+AAAA ${got} but the instances have ${want}`)
      if (new Set(got).size !== got.length) fail(`${name}: an address twice`)
      const pairs = (srv.answers as SrvAnswer[]).map((s) => `${s.data.port}`).sort()
      if (
        pairs.join() !==
        tcp
          .map((p) => `${p.port}`)
          .sort()
          .join()
      )
        fail(`${name}: SRV ports ${pairs} but tcp ports ${tcp.map((p) => p.port)}`)
      for (const s of srv.answers as SrvAnswer[]) {
        const target = ask(s.data.target, 'ANY')
        const ips = [...data(target.answers, 'A'), ...data(target.answers, 'AAAA')]
        const port = tcp.find((p) => p.port === s.data.port && ips.includes(ipToHex(p.ip)))
        if (!port) fail(`${name}: SRV ${s.data.port} ${s.data.target} resolves to ${ips}, no such port`)
        else if (ips.length !== 1) fail(`${name}: target ${s.data.target} resolves to ${ips.length} addresses`)
      }
      checked++
      for (const tag of TAGS) {
        const tagged = served.filter((r) => r.tags?.includes(tag)).flatMap((r) => hostTcp(r))
        const q = `${tag.toLowerCase()}.${name}.service.shoal`
        const ta = ask(q, 'A')
        const tips = [...data(ta.answers, 'A'), ...data(ask(q, 'AAAA').answers, 'AAAA')].sort()
        if (tagged.length === 0 && ta.rcode !== Rcode.nxDomain) fail(`${q}: no instance has the tag, yet not NXDOMAIN`)
        if (tips.join() !== uniq(tagged.map((p) => p.ip)).join())
          fail(`${q}: A+AAAA ${tips} but the tagged instances have ${tagged.map((p) => p.ip)}`)
      }
    }
    for (const r of live) {
      if (hostTcp(r).length === 0) continue
      const got = ask(`${r.id}.${r.name}.instance.shoal`, 'ANY')
      const ips = [...data(got.answers, 'A'), ...data(got.answers, 'AAAA')]
      const want = uniq(hostTcp(r).map((p) => p.ip))
      // Two live instances may share an id on different hosts; the answer is one of them.
      const sameId = live.filter((x) => x.name === r.name && x.id.toLowerCase() === r.id.toLowerCase())
      if (!sameId.some((x) => uniq(hostTcp(x).map((p) => p.ip)).join() === ips.sort().join()))
        fail(`${r.id}.${r.name}.instance: ${ips}, want ${want}`)
    }
    const owners = new Map<number, string[]>()
    for (const name of NAMES) {
      for (const s of ask(`${name}.serviceport.shoal`, 'SRV').answers as SrvAnswer[]) {
        owners.set(s.data.port, [...(owners.get(s.data.port) ?? []), name])
      }
    }
    for (const r of live)
      for (const p of r.ports) {
        if (p.type !== 'tcp') continue
        const smallest = live
          .filter((x) => x.ports.some((q) => q.type === 'tcp' && q.servicePort === p.servicePort))
          .map((x) => x.name)
          .sort()[0]
        if ((owners.get(p.servicePort) ?? []).join() !== smallest)
          fail(`ServicePort ${p.servicePort}: answered under ${owners.get(p.servicePort)}, want ${smallest}`)
      }
    if (failed) break
  }
  t.ok(checked > RUNS / 2, `${checked} service names checked`)
})

t.test('names: case, trailing dot, outside the domain, addr form', async (t) => {
  const snap: CatalogSnapshot = {
    cluster: 'c',
    seq: 3,
    hosts: [
      {
        name: 'h',
        address: '127.0.0.1:7946',
        state: 'alive',
        bootId: 'b',
        services: [
          {
            id: 'Web-1',
            name: 'web',
            image: '',
            created: 0,
            host: 'h',
            bootId: 'b',
            proxyMode: 'http',
            status: 'alive',
            version: [1, 0],
            updated: 0,
            labels: {},
            // Two IPs: the SRV targets fall back to the addr form, which names one IP each.
            ports: [
              { type: 'tcp', port: 80, servicePort: 10001, ip: '10.0.0.5' },
              { type: 'tcp', port: 81, servicePort: 10002, ip: 'fd00::1' },
            ],
          },
        ],
      },
    ],
  }
  const zone = new Zone({ domain: 'svc.example', ttl: 5, envoyBind: '::1' })
  t.ok(zone.contains('WEB.service.SVC.example.'))
  t.notOk(zone.contains('web.service.shoal'))
  t.notOk(zone.contains('example'))
  const srv = zone.answer({ name: 'Web.Service.Svc.Example', type: 'SRV' }, snap)
  t.same((srv.answers as SrvAnswer[]).map((s) => s.data.target).sort(), [
    '0a000005.addr.svc.example',
    'fd000000000000000000000000000001.addr.svc.example',
  ])
  t.equal(srv.answers[0]?.name, 'Web.Service.Svc.Example', 'answers carry the name as asked')
  t.equal((srv.answers[0] as SrvAnswer | undefined)?.ttl, 5)
  t.same(data(zone.answer({ name: 'fd000000000000000000000000000001.addr.svc.example', type: 'AAAA' }, snap).answers, 'AAAA'), [
    ipToHex('fd00::1'),
  ])
  t.same(
    data(zone.answer({ name: 'web-1.web.instance.svc.example', type: 'A' }, snap).answers, 'A'),
    [ipToHex('10.0.0.5')],
    'ids match whatever their case',
  )
  t.same(data(zone.answer({ name: 'web.serviceport.svc.example', type: 'AAAA' }, snap).answers, 'AAAA'), [ipToHex('::1')])
  const soa = zone.answer({ name: 'svc.example', type: 'SOA' }, snap)
  t.same(soa.answers[0]?.type, 'SOA')
  t.equal(zone.answer({ name: 'svc.example', type: 'A' }, snap).rcode, Rcode.noError, 'the apex exists (NODATA for A)')
  t.equal(zone.answer({ name: 'zzz.addr.svc.example', type: 'A' }, snap).rcode, Rcode.nxDomain)
})
