// One rule for the address an instance may be advertised at (src/address.ts
// advertisedIpProblem), over random strings near IP addresses (zone IDs, brackets, ports, white
// space, leading zeros, names, the unspecified address): the static file refuses exactly what
// the xDS endpoint filter drops as not_an_ip, the Docker source skips exactly that host binding,
// and DNS answers exactly the others. A zone ID (`fe80::1%eth0`) was accepted by the static
// file and then served by xDS as the string and by DNS as a wrong AAAA.
import dnsPacket, { type StringAnswer } from 'dns-packet'
import t from 'tap'
import { advertisedIpProblem, canonicalIp } from '../src/address.js'
import { mapContainer, type ContainerFacts } from '../src/docker/labels.js'
import { Zone } from '../src/dns/zone.js'
import { parseStaticServices } from '../src/registry/static.js'
import type { CatalogSnapshot } from '../src/registry/types.js'
import { endpointFilter } from '../src/xds/groups.js'
import { seeded } from './lib/random.js'
import { host, rec } from './lib/xds-fixture.js'

const RUNS = Number(process.env.SHOAL_PROPERTY_RUNS ?? 2000)
const SEED = Number(process.env.SHOAL_PROPERTY_SEED ?? Date.now() % 1_000_000)

const SEEDS = [
  '10.0.0.5',
  '127.0.0.1',
  '0.0.0.0',
  '::',
  '::1',
  'fe80::1',
  'fd00::5',
  'FEBF::2',
  '2001:db8::5',
  '::ffff:10.1.2.3',
  'FD00::A',
  'db.local',
]
const PIECES = ['%eth0', '%', '%25en0', '%1', '[', ']', ':80', ' ', '\t', '0', '.', ':', '::', 'x', '%lo', '1', 'a', 'ffff']

/** A string near an IP address: a known one with a few pieces put in, taken out or replaced, or random characters. */
function nearIp(random: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
  if (random() < 0.1) return Array.from({ length: 1 + Math.floor(random() * 12) }, () => pick([...'0123456789abcdef.:%[] '])).join('')
  let s = pick(SEEDS)
  for (let k = Math.floor(random() * 3); k > 0; k--) {
    const at = Math.floor(random() * (s.length + 1))
    const op = random()
    if (op < 0.5) s = s.slice(0, at) + pick(PIECES) + s.slice(at)
    else if (op < 0.75) s = s.slice(0, at) + s.slice(at + 1)
    else s = random() < 0.5 ? s + pick(PIECES) : pick(PIECES) + s
  }
  return s
}

const staticRefuses = (ip: string): string | undefined => {
  try {
    parseStaticServices(
      JSON.stringify({ services: [{ name: 'web', ports: [{ port: 80, servicePort: 10080, ip }] }] }),
      'f.json',
      '10.0.0.9',
    )
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

const xdsDrops = (ip: string): boolean =>
  endpointFilter(10080, 'web', [
    { host: 'h', id: 'a', status: 'alive', ip, port: 80, mode: 'http', servicePort: 10080, idempotent: false },
  ]).dropped.some((d) => d.reason === 'not_an_ip')

const dockerSkips = (ip: string): boolean => {
  const facts: ContainerFacts = {
    id: 'c'.repeat(64),
    name: 'web',
    image: 'web',
    created: 0,
    labels: { ServiceName: 'web', ServicePort_80: '10080' },
    bindings: [{ containerPort: 80, type: 'tcp', hostIp: ip, hostPort: 32768 }],
    networks: {},
    health: 'none',
    running: true,
  }
  const r = mapContainer(facts, { advertiseIp: '10.0.0.9' })
  return r.problems.some((p) => p.reason === 'bad-address')
}

/** The A/AAAA addresses DNS answers for the instance, as a resolver reads them off the wire. */
const dnsAnswers = (ip: string): string[] => {
  const snap: CatalogSnapshot = {
    cluster: 'c',
    seq: 1,
    hosts: [host('h', [rec({ host: 'h', id: 'a', name: 'web', servicePort: 10080, port: 80, ip })])],
  }
  const zone = new Zone({ domain: 'shoal', ttl: 0, envoyBind: '127.0.0.1' })
  const answers = zone.answer({ name: 'web.service.shoal', type: 'ANY' as 'A' }, snap).answers
  const wire = dnsPacket.decode(dnsPacket.encode({ type: 'response', id: 1, answers }))
  return (wire.answers ?? []).map((a) => (a as StringAnswer).data)
}

t.test(
  `the static file refuses exactly what xDS drops as not_an_ip: ${RUNS} strings (seed ${SEED}; SHOAL_PROPERTY_SEED replays it)`,
  async (t) => {
    const random = seeded(SEED)
    const seen = { refused: 0, kept: 0 }
    let failed = 0
    for (let run = 0; run < RUNS && failed < 5; run++) {
      const ip = nearIp(random)
      // An empty ip is the advertise IP (the field's default), not an address to check.
      if (ip === '') continue
      const refused = staticRefuses(ip)
      const dropped = xdsDrops(ip)
      const skipped = ip === '' || ip === '0.0.0.0' || ip === '::' ? dropped : dockerSkips(ip) // Docker's wildcards mean the advertise IP
      const answered = dnsAnswers(ip)
      // What is kept is the address itself on every path: DNS carries it byte for byte (a zone ID made a wrong AAAA).
      const dnsRight = dropped ? answered.length === 0 : answered.length === 1 && canonicalIp(answered[0]!) === canonicalIp(ip)
      const ok = (refused !== undefined) === dropped && skipped === dropped && dnsRight
      if (!ok) {
        failed++
        t.fail(
          `${JSON.stringify(ip)}: static ${refused ? 'refuses' : 'accepts'}, xDS ${dropped ? 'drops' : 'keeps'}, Docker ${skipped ? 'skips' : 'keeps'}, DNS answers ${JSON.stringify(answered)}`,
        )
      }
      if (refused !== undefined && !refused.includes('f.json: services[0].ports[0].ip: '))
        t.fail(`the refusal names the file and field: ${refused}`)
      seen[dropped ? 'refused' : 'kept']++
    }
    t.ok(seen.refused > RUNS / 10 && seen.kept > RUNS / 20, `both kinds drawn (${seen.refused} refused, ${seen.kept} kept)`)
  },
)

t.test('zone IDs, brackets and the unspecified address: the message says what to write instead', async (t) => {
  t.match(
    staticRefuses('fe80::1%eth0'),
    /^f\.json: services\[0\]\.ports\[0\]\.ip: "fe80::1%eth0" has a zone ID \(%eth0\).*write a global or unique-local/,
  )
  t.match(staticRefuses('fd00::5%eth0'), /"fd00::5%eth0" has a zone ID \(%eth0\), which no other host can use; write "fd00::5"/)
  t.match(staticRefuses('fe80::1'), /"fe80::1" is IPv6 link-local/)
  t.equal(staticRefuses('fe8::1'), undefined, '0fe8::1 is not link-local')
  t.match(staticRefuses('[2001:db8::5]'), /"\[2001:db8::5\]" is not written bare; write "2001:db8::5"/)
  t.match(staticRefuses('0.0.0.0'), /is the unspecified address, which names no host/)
  t.match(staticRefuses('db.local'), /"db.local" is not an IP address; write an IPv4 address/)
  t.equal(staticRefuses('2001:DB8::5'), undefined, 'upper case is an IPv6 address')
  t.equal(canonicalIp('2001:DB8::5'), '2001:db8::5')
  t.equal(canonicalIp('fe80::1%eth0'), null)
  t.equal(advertisedIpProblem('127.0.0.1'), undefined)
  // Sidecar's format follows the same rule.
  t.throws(
    () =>
      parseStaticServices(
        JSON.stringify([{ Service: { Name: 'web', Ports: [{ Port: 80, ServicePort: 10080, IP: 'fe80::1%eth0' }] } }]),
        'f.json',
        '10.0.0.9',
      ),
    /f\.json: \[0\]\.Service\.Ports\[0\]\.IP: "fe80::1%eth0" has a zone ID/,
  )
})
