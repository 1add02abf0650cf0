import t from 'tap'
import type { ContainerInspectInfo } from 'dockerode'
import { factsFromInspect, mapContainer, mapContainers, type ContainerFacts } from '../src/docker/labels.js'
import { imageName, normaliseName } from '../src/registry/names.js'

const ID = 'a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2'

function facts(over: Partial<ContainerFacts> = {}): ContainerFacts {
  return {
    id: ID,
    name: 'web-1',
    image: 'registry.example:5000/team/Web-App:1.2',
    created: 1_700_000_000_000,
    labels: {},
    bindings: [],
    networks: { bridge: { ip: '172.17.0.2', prefixLen: 16 } },
    health: 'none',
    running: true,
    ...over,
  }
}
const adv = { advertiseIp: '10.0.0.5' }

t.test('names: label, Swarm service, image fallback; normalised', async (t) => {
  t.equal(imageName('reg/app:1.2'), 'app')
  t.equal(imageName('reg.example:5000/team/Web-App@sha256:abc'), 'web-app')
  t.equal(normaliseName('My Service!'), 'my-service')
  const a = mapContainer(
    facts({
      labels: { ServiceName: 'Billing API', ServicePort_80: '10080' },
      bindings: [{ containerPort: 80, type: 'tcp', hostIp: '0.0.0.0', hostPort: 32768 }],
    }),
    adv,
  )
  t.equal(a.spec?.name, 'billing-api')
  const b = mapContainer(facts({ labels: { 'com.docker.swarm.service.name': 'stack_web', 'shoal.port.80': '10080' } }), {
    advertiseIp: '10.0.0.5',
    networks: ['overlay'],
  })
  t.equal(b.spec?.name, 'stack_web')
  const c = mapContainer(facts({ labels: { ServicePort_80: '10080' } }), adv)
  t.equal(c.spec?.name, 'web-app', 'image name without registry, path or tag')
  t.equal(c.spec?.id, ID.slice(0, 12))
  t.equal(c.spec?.containerId, ID)
  t.equal(c.spec?.source, 'docker')
  t.equal(c.spec?.proxyMode, 'http')
})

t.test('containers that are not services', async (t) => {
  t.equal(mapContainer(facts(), adv).spec, undefined, 'no ServiceName and no ServicePort label')
  t.equal(mapContainer(facts({ labels: { ServiceName: 'x', SidecarDiscover: 'false' } }), adv).spec, undefined)
  t.equal(mapContainer(facts({ labels: { ServiceName: 'x', 'shoal.discover': 'false' } }), adv).spec, undefined)
  t.equal(mapContainers([facts({ labels: { ServiceName: 'x' }, running: false })], adv).specs.length, 0, 'stopped containers are left out')
  const onlyName = mapContainer(facts({ labels: { ServiceName: 'x' } }), adv)
  t.same(onlyName.spec?.ports, [], 'a named container without ServicePorts is listed without ports')
})

t.test('published ports: paired 0.0.0.0/:: count once, specific IPs, loopback rules', async (t) => {
  const bindings = [
    // Docker 20.10 gives the v4 and v6 wildcard of one port different host ports
    { containerPort: 80, type: 'tcp' as const, hostIp: '::', hostPort: 32768 },
    { containerPort: 80, type: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 32769 },
    { containerPort: 443, type: 'tcp' as const, hostIp: '192.168.7.9', hostPort: 8443 },
    { containerPort: 53, type: 'udp' as const, hostIp: '', hostPort: 5353 },
    { containerPort: 9000, type: 'tcp' as const, hostIp: '127.0.0.1', hostPort: 9001 },
  ]
  const labels = {
    ServiceName: 'svc',
    ServicePort_80: '10080',
    'shoal.port.443': '10443',
    ServicePort_53: '10053',
    ServicePort_9000: '19000',
    ServicePort_7000: '17000',
  }
  const r = mapContainer(facts({ labels, bindings }), adv)
  t.same(r.spec?.ports, [
    { type: 'udp', port: 5353, servicePort: 10053, ip: '10.0.0.5', containerPort: 53 },
    { type: 'tcp', port: 32769, servicePort: 10080, ip: '10.0.0.5', containerPort: 80 },
    { type: 'tcp', port: 8443, servicePort: 10443, ip: '192.168.7.9', containerPort: 443 },
  ])
  t.same(r.problems.map((p) => [p.reason, p.label, p.skipped]).sort(), [
    ['loopback-binding', 'ServicePort_9000', 'port'],
    ['unpublished-port', 'ServicePort_7000', 'port'],
  ])
  t.match(r.problems.find((p) => p.reason === 'loopback-binding')!.message, /container web-1: ServicePort_9000/)
  const local = mapContainer(facts({ labels, bindings }), { advertiseIp: '127.0.0.1' })
  t.same(
    local.spec?.ports.find((p) => p.containerPort === 9000),
    { type: 'tcp', port: 9001, servicePort: 19000, ip: '127.0.0.1', containerPort: 9000 },
    'loopback advertised in a single-machine cluster',
  )
  t.equal(local.spec?.ports.find((p) => p.containerPort === 80)?.ip, '127.0.0.1')
})

t.test('--docker-network: the IP on each named network is advertised beside the host binding; a port without one stays', async (t) => {
  const nets = {
    ingress: { ip: '10.0.0.9', prefixLen: 24 },
    mynet: { ip: '10.20.0.7', prefixLen: 24 },
    other: { ip: '10.30.0.2', prefixLen: 24 },
  }
  const published = mapContainer(
    facts({
      labels: { ServiceName: 's', ServicePort_8080: '18080', ServicePort_9090: '19090' },
      bindings: [{ containerPort: 8080, type: 'tcp', hostIp: '0.0.0.0', hostPort: 32770 }],
      networks: nets,
    }),
    { advertiseIp: '10.0.0.5', networks: ['mynet', 'missing'] },
  )
  t.same(
    published.spec?.ports,
    [
      { type: 'tcp', port: 32770, servicePort: 18080, ip: '10.0.0.5', containerPort: 8080 },
      { type: 'tcp', servicePort: 19090, containerPort: 9090 },
    ],
    'the published port keeps its host binding; the unpublished one is listed without one (reachable on mynet only)',
  )
  t.same(published.spec?.networks, { mynet: '10.20.0.7' }, 'only the networks --docker-network names, that the container is on')
  t.same(published.problems, [])
  const off = mapContainer(facts({ labels: { ServiceName: 's', ServicePort_8080: '18080' } }), {
    advertiseIp: '10.0.0.5',
    networks: ['mynet'],
  })
  t.same(
    off.problems.map((p) => [p.reason, p.skipped]),
    [['not-on-network', 'port']],
    'not published and not on a named network: the port has no address at all',
  )
  t.match(
    off.problems[0]!.message,
    /container port 8080 is not published and the container is on none of the networks --docker-network names \(mynet\)/,
  )
  t.equal(off.spec?.networks, undefined)
  const plain = mapContainer(facts({ labels: { ServiceName: 's', ServicePort_8080: '18080' }, networks: nets }), adv)
  t.match(
    plain.problems[0]?.message,
    /container port 8080 is not published \(docker run -p 8080; docker service create --publish mode=host,target=8080\)/,
  )
  t.equal(plain.spec?.networks, undefined, 'without --docker-network no network address is advertised')
})

t.test(
  "health checks target an address the agent reaches: the host binding, a network of its own, else the container's HEALTHCHECK",
  async (t) => {
    const labels = {
      ServiceName: 's',
      ServicePort_8080: '18080',
      HealthCheck: 'HttpGet',
      HealthCheckArgs: 'http://{{ host }}:{{ tcp 8080 }}/health',
    }
    const overlay = { apps: { ip: '10.0.1.7', prefixLen: 24 } }
    const opts = { advertiseIp: '10.0.0.5', networks: ['apps'] }
    const bound = mapContainer(
      facts({ labels, networks: overlay, bindings: [{ containerPort: 8080, type: 'tcp', hostIp: '', hostPort: 32771 }] }),
      opts,
    )
    t.same(bound.spec?.check, { type: 'HttpGet', args: 'http://{{ host }}:{{ tcp 8080 }}/health' })
    t.same(bound.spec?.checkTarget, { host: '10.0.0.5', ports: [{ port: 32771, containerPort: 8080 }] }, 'the host binding')
    t.same(bound.problems, [])

    const onLink = mapContainer(facts({ labels, networks: overlay }), {
      ...opts,
      onAgentLink: (ip, len) => ip === '10.0.1.7' && len === 24,
    })
    t.same(
      onLink.spec?.checkTarget,
      { host: '10.0.1.7', ports: [{ port: 8080, containerPort: 8080 }] },
      "the agent's own network: the container's IP and port",
    )
    t.same(onLink.problems, [])

    const onLinkBound = (l: Record<string, string>) =>
      mapContainer(
        facts({ labels: l, networks: overlay, bindings: [{ containerPort: 8080, type: 'tcp', hostIp: '127.0.0.1', hostPort: 32771 }] }),
        { ...opts, advertiseIp: '127.0.0.1', onAgentLink: (ip, len) => ip === '10.0.1.7' && len === 24 },
      )
    t.same(
      onLinkBound(labels).spec?.checkTarget,
      { host: '127.0.0.1', ports: [{ port: 32771, containerPort: 8080 }] },
      'an HttpGet check: the binding alone (it fails through docker-proxy by itself)',
    )
    const boundOnLink = onLinkBound({ ...labels, HealthCheck: 'Tcp', HealthCheckArgs: '{{ host }}:{{ tcp 8080 }}' })
    t.same(
      boundOnLink.spec?.checkTarget,
      {
        host: '127.0.0.1',
        ports: [{ port: 32771, containerPort: 8080 }],
        behind: { host: '10.0.1.7', ports: [{ port: 8080, containerPort: 8080 }] },
      },
      "a host binding of a container on the agent's own network: the binding, and the container's address behind it",
    )
    t.same(
      onLinkBound({ ...labels, HealthCheck: 'Tcp', HealthCheckArgs: '{{ host }}:32771' }).spec?.checkTarget,
      { host: '127.0.0.1', ports: [{ port: 32771, containerPort: 8080 }] },
      "a Tcp check with the host port written out: the binding alone (the container's address does not listen on the host's port)",
    )

    const withHealthcheck = mapContainer(facts({ labels, networks: overlay, health: 'starting' }), opts)
    t.same(withHealthcheck.spec?.check, { type: 'Docker' }, "no address the agent reaches: the engine's HEALTHCHECK")
    t.same(
      withHealthcheck.problems.map((p) => [p.reason, p.skipped, p.label]),
      [['unreachable-check', 'check', 'HealthCheck']],
    )
    t.match(
      withHealthcheck.problems[0]!.message,
      /names container port 8080, which has no host binding, and the agent is on none of the container's networks: the container's own HEALTHCHECK is used instead/,
    )

    const none = mapContainer(facts({ labels, networks: overlay }), opts)
    t.same(none.spec?.check, { type: 'HttpGet', args: 'http://{{ host }}:{{ tcp 8080 }}/health' }, 'no HEALTHCHECK either: kept, and said')
    t.match(
      none.problems[0]?.message,
      /the check cannot pass; publish the port \(--publish mode=host,target=PORT\) or give the container a HEALTHCHECK/,
    )

    const literal = mapContainer(facts({ labels: { ...labels, HealthCheckArgs: 'http://10.9.9.9:80/' }, networks: overlay }), opts)
    t.same(
      [literal.spec?.check?.type, literal.spec?.checkTarget, literal.problems],
      ['HttpGet', undefined, []],
      'a check naming its own address is left alone',
    )
  },
)

t.test('bad labels: the bad port or container is skipped with a problem naming both', async (t) => {
  const bindings = [80, 81, 82, 83, 84, 85].map((p) => ({ containerPort: p, type: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 30000 + p }))
  const labels = {
    ServiceName: 'svc',
    ServicePort_http: '10080', // non-numeric container port
    ServicePort_80: 'eighty', // non-numeric ServicePort
    ServicePort_81: '70000', // out of range
    ServicePort_82: '10082', // used twice
    ServicePort_83: '10082',
    ServicePort_84: '10084', // fine
    'shoal.port.85': '10085', // contradicted by the other spelling
    ServicePort_85: '10086',
  }
  const r = mapContainer(facts({ labels, bindings }), adv)
  t.same(
    r.spec?.ports.map((p) => p.containerPort),
    [84],
    'only the good port remains',
  )
  t.same(
    r.problems.map((p) => [p.label, p.reason]).sort(),
    [
      ['ServicePort_80', 'bad-service-port'],
      ['ServicePort_81', 'bad-service-port'],
      ['ServicePort_82', 'duplicate-service-port'],
      ['ServicePort_83', 'duplicate-service-port'],
      ['ServicePort_85', 'conflicting-labels'],
      ['ServicePort_http', 'bad-container-port'],
    ].sort(),
  )
  for (const p of r.problems) t.match(p.message, new RegExp(`^container web-1: ${p.label.replace('.', '\\.')}: `))

  const check = mapContainer(facts({ labels: { ServiceName: 's', HealthCheck: 'Ping' } }), adv)
  t.equal(check.spec, undefined)
  t.same(
    check.problems.map((p) => [p.label, p.reason, p.skipped]),
    [['HealthCheck', 'unknown-check-type', 'container']],
  )
  const proxy = mapContainer(facts({ labels: { ServiceName: 's', 'shoal.proxy': 'udp' } }), adv)
  t.equal(proxy.spec, undefined)
  t.same(
    proxy.problems.map((p) => [p.label, p.reason, p.skipped]),
    [['shoal.proxy', 'unknown-proxy-mode', 'container']],
  )
  const name = mapContainer(facts({ labels: { ServiceName: '***' } }), adv)
  t.same(
    name.problems.map((p) => p.reason),
    ['bad-name'],
  )
  // A container that asks for authorization in words Shoal cannot read is not served open.
  for (const [labels, label, says] of [
    [{ 'shoal.authz': 'authz:70000' }, 'shoal.authz', /"authz:70000" is not NAME or NAME:SERVICEPORT/],
    [{ 'shoal.authz': 'authz', 'shoal.authz.timeout': 'fast' }, 'shoal.authz.timeout', /"fast" is not a duration/],
    [{ 'shoal.authz.failure_mode_allow': 'false' }, 'shoal.authz', /is missing while shoal.authz.failure_mode_allow is set/],
  ] as const) {
    const authz = mapContainer(facts({ labels: { ServiceName: 's', ...labels } }), adv)
    t.equal(authz.spec, undefined, `${JSON.stringify(labels)}: not served`)
    t.same(
      authz.problems.map((p) => [p.label, p.reason, p.skipped]),
      [[label, 'bad-authz', 'container']],
    )
    t.match(authz.problems[0]!.message, says)
    t.match(authz.problems[0]!.message, new RegExp(`^container web-1: ${label.replace(/\./g, '\\.')}: .*not served until this is fixed$`))
  }
  const good = mapContainer(facts({ labels: { ServiceName: 's', 'shoal.authz': 'authz', 'shoal.authz.failure_mode_allow': 'true' } }), adv)
  t.same(good.problems, [])
  t.equal(good.spec?.labels['shoal.authz'], 'authz', 'the labels travel with the record')
})

t.test('checks and proxy modes from labels and aliases', async (t) => {
  const a = mapContainer(
    facts({ labels: { ServiceName: 's', HealthCheck: 'HttpGet', HealthCheckArgs: 'http://{{ host }}:{{ tcp 80 }}/', ProxyMode: 'grpc' } }),
    adv,
  )
  t.same(a.spec?.check, { type: 'HttpGet', args: 'http://{{ host }}:{{ tcp 80 }}/' })
  t.equal(a.spec?.proxyMode, 'grpc')
  const b = mapContainer(facts({ labels: { 'shoal.service': 's', 'shoal.check': 'docker', 'shoal.proxy': 'TCP' } }), adv)
  t.same(b.spec?.check, { type: 'Docker' })
  t.equal(b.spec?.proxyMode, 'tcp')
  t.same(b.spec?.labels, { 'shoal.service': 's', 'shoal.check': 'docker', 'shoal.proxy': 'TCP' })
})

t.test('facts from docker inspect output', async (t) => {
  const info = {
    Id: ID,
    Name: '/web-1',
    Image: 'sha256:deadbeef',
    Created: '2026-01-02T03:04:05.123456789Z',
    Config: { Image: 'shoal-busybox:test', Labels: { ServiceName: 'web' } },
    State: { Running: true, Paused: false, Health: { Status: 'starting' } },
    NetworkSettings: {
      Ports: {
        '80/tcp': [
          { HostIp: '0.0.0.0', HostPort: '32769' },
          { HostIp: '::', HostPort: '32768' },
        ],
        '81/tcp': null,
      },
      Networks: {
        bridge: { IPAddress: '10.231.0.2', IPPrefixLen: 24 },
        v6only: { IPAddress: '', GlobalIPv6Address: 'fd00::5', GlobalIPv6PrefixLen: 64 },
        none: { IPAddress: '' },
      },
    },
  } as unknown as ContainerInspectInfo
  const f = factsFromInspect(info)
  t.equal(f.name, 'web-1')
  t.equal(f.image, 'shoal-busybox:test')
  t.equal(f.created, Date.parse('2026-01-02T03:04:05.123Z'))
  t.equal(f.health, 'starting')
  t.ok(f.running)
  t.same(f.bindings, [
    { containerPort: 80, type: 'tcp', hostIp: '0.0.0.0', hostPort: 32769 },
    { containerPort: 80, type: 'tcp', hostIp: '::', hostPort: 32768 },
  ])
  t.same(
    f.networks,
    { bridge: { ip: '10.231.0.2', prefixLen: 24 }, v6only: { ip: 'fd00::5', prefixLen: 64 } },
    'IPv4, else the global IPv6; none without an address',
  )
  const paused = factsFromInspect({ ...info, State: { Running: true, Paused: true } } as unknown as ContainerInspectInfo)
  t.notOk(paused.running, 'a paused container is not serving')
  t.equal(paused.health, 'none')
})

t.test('an address no other host can use is not advertised: a binding or network address with a zone ID (bad-address)', async (t) => {
  const r = mapContainer(
    facts({
      labels: { ServiceName: 's', ServicePort_8080: '18080', ServicePort_9090: '19090' },
      bindings: [
        { containerPort: 8080, type: 'tcp', hostIp: 'fe80::1%eth0', hostPort: 32770 },
        { containerPort: 9090, type: 'tcp', hostIp: '0.0.0.0', hostPort: 32771 },
      ],
      networks: { mynet: { ip: 'fe80::7%br0', prefixLen: 64 } },
    }),
    { advertiseIp: '10.0.0.5', networks: ['mynet'] },
  )
  t.same(r.spec?.ports, [{ type: 'tcp', port: 32771, servicePort: 19090, ip: '10.0.0.5', containerPort: 9090 }], 'the other port stays')
  t.equal(r.spec?.networks, undefined)
  t.same(
    r.problems.map((p) => [p.reason, p.label]),
    [
      ['bad-address', 'network mynet'],
      ['bad-address', 'ServicePort_8080'],
    ],
  )
  t.match(r.problems[1]!.message, /container port 8080 is published on "fe80::1%eth0", which has a zone ID \(%eth0\)/)
})
