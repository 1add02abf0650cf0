// The DNS interface as a user meets it: the real `dig` against a running agent (static
// discovery, DNS on 127.0.0.1 port 0). A, AAAA and SRV whose targets resolve, NXDOMAIN with
// the SOA, TAG.NAME filtered by tag, a drained instance absent, a change visible in the very next query, a large
// answer truncated over UDP and complete over TCP, ServicePort and instance names, and
// forwarding to a recursor (another agent's DNS server) over UDP and TCP.
import t from 'tap'
import dgram from 'node:dgram'
import { dig, digMissing } from './lib/dig.js'
import { dnsAgent, type StaticEntry } from './lib/dns-agent.js'
import { waitFor } from './lib/wait.js'

const missing = digMissing()
if (missing) {
  t.test('dig against a running agent', { skip: missing }, () => undefined)
} else {
  // Tags (issue 20): web-1 is blue and canary, web-2 green.
  const TAGS: Record<number, string[]> = { 1: ['blue', 'Canary'], 2: ['green'] }
  const web = (n: number): StaticEntry => ({
    id: `web-${n}`,
    name: 'web',
    ports: [{ port: 8080 + n, servicePort: 10001, ip: `127.0.1.${n}` }],
    ...(TAGS[n] ? { tags: TAGS[n], attributes: { region: `r${n}` } } : {}),
  })
  // 150 instances: about 5 kB of A records, over dig's EDNS size (1232) and over 512.
  const big: StaticEntry[] = Array.from({ length: 150 }, (_, i) => ({
    id: `big-${i}`,
    name: 'big',
    ports: [{ port: 9000, servicePort: 10002, ip: `127.0.2.${i + 1}` }],
  }))
  const six: StaticEntry = { id: 'six-1', name: 'six', ports: [{ port: 80, servicePort: 10003, ip: '::1' }] }
  const base = [web(1), web(2), six, ...big]

  t.test('dig against a running agent', async (t) => {
    const a = await dnsAgent(t, base)

    t.test('A: the IPs of the instances', async (t) => {
      const r = await dig(a.port, ['web.service.shoal', 'A'])
      t.equal(r.status, 'NOERROR')
      t.ok(r.flags.includes('aa'), 'authoritative')
      t.same(r.answer.map((x) => x.data[0]).sort(), ['127.0.1.1', '127.0.1.2'])
      t.ok(
        r.answer.every((x) => x.ttl === 0),
        'TTL 0 by default',
      )
      const upper = await dig(a.port, ['WEB.Service.SHOAL', 'A'])
      t.equal(upper.answer.length, 2, 'names match whatever their case')
    })

    t.test('AAAA: IPv6 instances', async (t) => {
      const r = await dig(a.port, ['six.service.shoal', 'AAAA'])
      t.same(
        r.answer.map((x) => x.data[0]),
        ['::1'],
      )
      const none = await dig(a.port, ['six.service.shoal', 'A'])
      t.equal(none.status, 'NOERROR', 'a known name without A records: NODATA, not NXDOMAIN')
      t.equal(none.answer.length, 0)
      t.equal(none.authority[0]?.type, 'SOA', 'with the SOA')
    })

    t.test('SRV: port and a target that resolves to the instance', async (t) => {
      const r = await dig(a.port, ['web.service.shoal', 'SRV'])
      t.equal(r.answer.length, 2)
      for (const rec of r.answer) {
        const [priority, weight, port, target] = rec.data
        t.equal(priority, '1')
        t.equal(weight, '1')
        const n = Number(port) - 8080
        t.equal(target, `web-${n}.web.instance.shoal.`, 'the target names the instance')
        const glue = r.additional.find((x) => x.name === target)
        t.equal(glue?.data[0], `127.0.1.${n}`, 'its address rides along in the additional section')
        const resolved = await dig(a.port, [target!, 'A'])
        t.same(
          resolved.answer.map((x) => x.data[0]),
          [`127.0.1.${n}`],
          'and the target resolves on its own',
        )
      }
    })

    t.test('TAG.NAME.service: the instances with that tag', async (t) => {
      const blue = await dig(a.port, ['blue.web.service.shoal', 'A'])
      t.equal(blue.status, 'NOERROR')
      t.same(
        blue.answer.map((x) => x.data[0]),
        ['127.0.1.1'],
      )
      const canary = await dig(a.port, ['CANARY.web.service.shoal', 'SRV'])
      t.same(
        canary.answer.map((x) => [x.data[2], x.data[3]]),
        [['8081', 'web-1.web.instance.shoal.']],
        'SRV too; tags compared without regard to case',
      )
      const green = await dig(a.port, ['green.web.service.shoal', 'A'])
      t.same(
        green.answer.map((x) => x.data[0]),
        ['127.0.1.2'],
      )
      const api = (await (await fetch(`${a.http}/api/services/web.json`)).json()) as {
        instances: Array<{ id: string; tags?: string[]; attributes?: Record<string, string> }>
      }
      t.same(
        api.instances.map((i) => [i.id, i.tags, i.attributes]),
        [
          ['web-1', ['blue', 'Canary'], { region: 'r1' }],
          ['web-2', ['green'], { region: 'r2' }],
        ],
        'the API shows the tags and attributes DNS reads',
      )
      const red = await dig(a.port, ['red.web.service.shoal', 'A'])
      t.equal(red.status, 'NXDOMAIN', 'a tag no instance has: NXDOMAIN')
      t.equal(red.authority[0]?.type, 'SOA')
    })

    t.test('NXDOMAIN with the SOA for unknown names', async (t) => {
      for (const name of ['nope.service.shoal', 'web.nope.shoal', 'x.web.instance.shoal', 'service.shoal']) {
        const r = await dig(a.port, [name, 'A'])
        t.equal(r.status, 'NXDOMAIN', name)
        t.equal(r.authority[0]?.type, 'SOA', `${name}: SOA in the authority section`)
        t.equal(r.authority[0]?.name, 'shoal.')
      }
      const soa = await dig(a.port, ['shoal', 'SOA'])
      t.equal(soa.answer[0]?.type, 'SOA', 'the apex answers its SOA')
    })

    t.test('a name outside the domain, no recursors: REFUSED', async (t) => {
      const r = await dig(a.port, ['example.com', 'A'])
      t.equal(r.status, 'REFUSED')
    })

    t.test('ServicePort: where the local Envoy listens for the service', async (t) => {
      const r = await dig(a.port, ['web.serviceport.shoal', 'SRV'])
      t.same(
        r.answer.map((x) => x.data.slice(2)),
        [['10001', 'web.serviceport.shoal.']],
      )
      const ip = await dig(a.port, ['web.serviceport.shoal', 'A'])
      t.same(
        ip.answer.map((x) => x.data[0]),
        ['127.0.0.1'],
        '--envoy-bind',
      )
    })

    t.test('a large answer: truncated over UDP, complete over TCP', async (t) => {
      const udp = await dig(a.port, ['big.service.shoal', 'A', '+ignore', '+notcp'])
      t.ok(udp.flags.includes('tc'), 'TC set over UDP')
      t.ok(udp.answer.length > 0 && udp.answer.length < 150, `a part over UDP (${udp.answer.length} of 150)`)
      const classic = await dig(a.port, ['big.service.shoal', 'A', '+ignore', '+noedns'])
      t.ok(classic.flags.includes('tc'), 'TC set without EDNS too')
      t.ok(classic.answer.length < udp.answer.length, 'which allows only 512 bytes')
      const tcp = await dig(a.port, ['big.service.shoal', 'A', '+tcp'])
      t.notOk(tcp.flags.includes('tc'))
      t.equal(tcp.answer.length, 150, 'all 150 over TCP')
      const auto = await dig(a.port, ['big.service.shoal', 'A'])
      t.ok(auto.retriedOverTcp, 'dig saw TC and retried over TCP by itself')
      t.equal(auto.answer.length, 150)
      t.equal(new Set(auto.answer.map((x) => x.data[0])).size, 150, 'each address once')
    })

    t.test('answers are shuffled per query', async (t) => {
      const orders = new Set<string>()
      for (let i = 0; i < 10; i++) orders.add((await dig(a.port, ['big.service.shoal', 'A', '+tcp'])).answer.map((x) => x.data[0]).join())
      t.ok(orders.size > 1, `${orders.size} different orders in 10 queries`)
    })

    t.test('a drained instance is absent; undrained it is back', async (t) => {
      const post = (what: string): Promise<Response> => fetch(`${a.http}/api/instances/web-1/${what}`, { method: 'POST' })
      t.equal((await post('drain')).status, 200)
      const r = await dig(a.port, ['web.service.shoal', 'A'])
      t.same(
        r.answer.map((x) => x.data[0]),
        ['127.0.1.2'],
        'only web-2',
      )
      const srv = await dig(a.port, ['web.service.shoal', 'SRV'])
      t.same(
        srv.answer.map((x) => x.data[3]),
        ['web-2.web.instance.shoal.'],
      )
      const inst = await dig(a.port, ['web-1.web.instance.shoal', 'A'])
      t.same(
        inst.answer.map((x) => x.data[0]),
        ['127.0.1.1'],
        'the instance name still resolves (it is live, only draining)',
      )
      t.equal((await post('undrain')).status, 200)
      const back = await dig(a.port, ['web.service.shoal', 'A'])
      t.equal(back.answer.length, 2)
    })

    t.test('a change is visible in the next query', async (t) => {
      await a.write([...base, web(3)])
      const r = await dig(a.port, ['web.service.shoal', 'A'])
      t.same(r.answer.map((x) => x.data[0]).sort(), ['127.0.1.1', '127.0.1.2', '127.0.1.3'], 'a new instance, at once')
      await a.write(base.filter((s) => s.id !== 'web-2'))
      const gone = await dig(a.port, ['web.service.shoal', 'A'])
      t.same(
        gone.answer.map((x) => x.data[0]),
        ['127.0.1.1'],
        'a removed one, at once',
      )
      await a.write(base.filter((s) => s.name !== 'web'))
      t.equal((await dig(a.port, ['web.service.shoal', 'A'])).status, 'NXDOMAIN', 'a service with no instance left is unknown')
    })
  })

  t.test('--dns-ttl and --dns-domain', async (t) => {
    const a = await dnsAgent(t, [web(1)], { flags: ['--dns-ttl', '30s', '--dns-domain', 'svc.example.'] })
    const r = await dig(a.port, ['web.service.svc.example', 'A'])
    t.equal(r.answer[0]?.ttl, 30)
    const nx = await dig(a.port, ['nope.service.svc.example', 'A'])
    t.equal(nx.status, 'NXDOMAIN')
    t.equal(nx.authority[0]?.data[6], '30', 'the SOA MINIMUM (negative TTL) follows --dns-ttl')
    t.equal((await dig(a.port, ['web.service.shoal', 'A'])).status, 'REFUSED', 'shoal. is not served any more')
  })

  t.test('--dns-recursors: other names are forwarded, over UDP and TCP', async (t) => {
    const upstream = await dnsAgent(t, [{ id: 'db-1', name: 'db', ports: [{ port: 5432, servicePort: 10005, ip: '127.0.3.1' }] }], {
      node: 'upstream',
      flags: ['--dns-domain', 'other.'],
    })
    // A recursor that never answers comes first: the next one is asked after the timeout.
    const silent = dgram.createSocket('udp4')
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()))
    t.teardown(() => new Promise<void>((r) => silent.close(() => r())))
    const silentPort = silent.address().port
    const a = await dnsAgent(t, [web(1)], { flags: ['--dns-recursors', `127.0.0.1:${silentPort},127.0.0.1:${upstream.port}`] })
    const r = await dig(a.port, ['db.service.other', 'A'])
    t.equal(r.status, 'NOERROR')
    t.same(
      r.answer.map((x) => x.data[0]),
      ['127.0.3.1'],
      "the upstream's answer",
    )
    t.ok(r.flags.includes('ra'), 'recursion available')
    const tcp = await dig(a.port, ['db.service.other', 'A', '+tcp'])
    t.same(
      tcp.answer.map((x) => x.data[0]),
      ['127.0.3.1'],
      'over TCP as well',
    )
    const own = await dig(a.port, ['web.service.shoal', 'A'])
    t.same(
      own.answer.map((x) => x.data[0]),
      ['127.0.1.1'],
      'its own names are still its own',
    )
    const norec = await dig(a.port, ['db.service.other', 'A', '+norec'])
    t.equal(norec.status, 'REFUSED', 'without recursion desired, other names are refused')
  })

  t.test('no recursor answers: SERVFAIL, counted', async (t) => {
    const silent = dgram.createSocket('udp4')
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()))
    t.teardown(() => new Promise<void>((r) => silent.close(() => r())))
    const a = await dnsAgent(t, [web(1)], { flags: ['--dns-recursors', `127.0.0.1:${silent.address().port}`] })
    const r = await dig(a.port, ['example.com', 'A'])
    t.equal(r.status, 'SERVFAIL')
    await waitFor('the failure to be counted', async () =>
      /shoal_dns_forward_failures_total 1/.test(await (await fetch(`${a.http}/metrics`)).text()),
    )
  })
}
