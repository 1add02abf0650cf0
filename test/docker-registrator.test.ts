// Issue 20, Registrator's conventions: a container described only by Registrator's SERVICE_*
// keys (environment or labels) registers as a Registrator user expects; the precedence of
// Shoal's labels over Sidecar's... over Registrator's labels over its environment is the
// documented one; bad values are dropped alone, with a problem, and the rest registers.
import t from 'tap'
import type { ContainerInspectInfo } from 'dockerode'
import { factsFromInspect, mapContainer, type ContainerFacts } from '../src/docker/labels.js'
import { readRegistrator, registratorEnv } from '../src/docker/registrator.js'
import { fitSpec } from '../src/registry/fit.js'

const ID = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00'
const adv = { advertiseIp: '10.0.0.5' }
const bindings = [
  { containerPort: 8080, type: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 32768 },
  { containerPort: 9090, type: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 32769 },
]

function facts(over: Partial<ContainerFacts>): ContainerFacts {
  return {
    id: ID,
    name: 'web-1',
    image: 'team/web-app:1',
    created: 1,
    labels: {},
    bindings,
    networks: {},
    health: 'none',
    running: true,
    ...over,
  }
}

const acceptance = {
  SERVICE_NAME: 'web',
  SERVICE_TAGS: 'blue,canary',
  SERVICE_8080_IGNORE: 'true',
  SERVICE_9090_SERVICE_PORT: '10090',
  SERVICE_REGION: 'us-east',
}

t.test('acceptance 1: only Registrator environment variables, then the same as labels', async (t) => {
  const info = {
    Id: ID,
    Name: '/web-1',
    Image: 'sha256:x',
    Created: '2026-11-30T00:00:00Z',
    Config: {
      Image: 'team/web-app:1',
      Labels: {},
      Env: ['PATH=/bin', 'DB_PASSWORD=secret', ...Object.entries(acceptance).map(([k, v]) => `${k}=${v}`)],
    },
    State: { Running: true },
    NetworkSettings: {
      Ports: { '8080/tcp': [{ HostIp: '0.0.0.0', HostPort: '32768' }], '9090/tcp': [{ HostIp: '0.0.0.0', HostPort: '32769' }] },
      Networks: {},
    },
  } as unknown as ContainerInspectInfo
  const f = factsFromInspect(info)
  t.same(f.env, acceptance, 'only the SERVICE_* keys of the environment are kept')
  for (const [what, over] of [
    ['environment', { env: acceptance }],
    ['labels', { labels: acceptance }],
  ] as const) {
    const { spec, problems } = mapContainer(facts(over), adv)
    t.same(problems, [], `${what}: no problem`)
    t.equal(spec?.name, 'web', what)
    t.same(
      spec?.ports,
      [{ type: 'tcp', port: 32769, servicePort: 10090, ip: '10.0.0.5', containerPort: 9090 }],
      `${what}: port 8080 ignored`,
    )
    t.same(spec?.tags, ['blue', 'canary'], what)
    t.same(spec?.attributes, { region: 'us-east' }, what)
  }
})

t.test('precedence: Sidecar and Shoal labels > Registrator labels > Registrator environment; per-port over container-wide', async (t) => {
  const env = {
    SERVICE_NAME: 'from-env',
    SERVICE_TAGS: 'env',
    SERVICE_ZONE: 'env',
    SERVICE_TIER: 'env',
    SERVICE_9090_SERVICE_PORT: '10001',
  }
  const regLabels = { SERVICE_NAME: 'from-label', SERVICE_TAGS: 'label', SERVICE_ZONE: 'label', SERVICE_9090_SERVICE_PORT: '10002' }
  const envOnly = mapContainer(facts({ env }), adv).spec
  t.same(
    [envOnly?.name, envOnly?.tags, envOnly?.attributes, envOnly?.ports[0]?.servicePort],
    ['from-env', ['env'], { tier: 'env', zone: 'env' }, 10001],
  )
  const both = mapContainer(facts({ env, labels: regLabels }), adv).spec
  t.same(
    [both?.name, both?.tags, both?.attributes, both?.ports[0]?.servicePort],
    ['from-label', ['label'], { tier: 'env', zone: 'label' }, 10002],
    'a Registrator label wins over the environment, key by key',
  )
  const shoal = mapContainer(
    facts({
      env,
      labels: { ...regLabels, ServiceName: 'sidecar', ServicePort_9090: '10003', 'shoal.tags': 'shoal', 'shoal.attr.zone': 'shoal' },
    }),
    adv,
  ).spec
  t.same(
    [shoal?.name, shoal?.tags, shoal?.attributes, shoal?.ports[0]?.servicePort],
    ['sidecar', ['shoal'], { tier: 'env', zone: 'shoal' }, 10003],
    "Sidecar's and Shoal's labels win",
  )
  const perPort = mapContainer(
    facts({
      env: {
        SERVICE_NAME: 'web',
        SERVICE_TAGS: 'a',
        SERVICE_9090_TAGS: 'b,c',
        SERVICE_9090_SERVICE_PORT: '10090',
        SERVICE_ZONE: 'x',
        SERVICE_9090_ZONE: 'y',
      },
    }),
    adv,
  ).spec
  t.same([perPort?.tags, perPort?.attributes], [['b', 'c'], { zone: 'y' }], 'a per-port key wins for its port')
  const sidecarPortIgnored = mapContainer(
    facts({ labels: { ServiceName: 'web', ServicePort_8080: '10080' }, env: { SERVICE_8080_IGNORE: '1' } }),
    adv,
  ).spec
  t.equal(sidecarPortIgnored?.ports.length, 1, "SERVICE_<port>_IGNORE does not drop a port Sidecar's label asks for")
  t.equal(
    mapContainer(facts({ labels: { ServiceName: 'web' }, env: { SERVICE_IGNORE: 'true' } }), adv).spec,
    undefined,
    'SERVICE_IGNORE leaves the container out',
  )
  t.ok(
    mapContainer(facts({ labels: { ServiceName: 'web', 'shoal.discover': 'true' }, env: { SERVICE_IGNORE: 'true' } }), adv).spec,
    'unless shoal.discover=true asks for it',
  )
  t.equal(
    mapContainer(facts({ env: { SERVICE_IGNORE: '' }, labels: { ServicePort_8080: '1' } }), adv).spec?.name,
    'web-app',
    'an empty SERVICE_IGNORE ignores nothing (as Registrator)',
  )
})

t.test('names: SERVICE_ID is an attribute, one agreed per-port name names the service, another name skips its port', async (t) => {
  const one = mapContainer(facts({ env: { SERVICE_9090_NAME: 'api', SERVICE_9090_SERVICE_PORT: '10090', SERVICE_ID: 'web-a' } }), adv)
  t.same([one.spec?.name, one.spec?.id, one.spec?.attributes], ['api', ID.slice(0, 12), { id: 'web-a' }])
  const two = mapContainer(
    facts({
      env: { SERVICE_NAME: 'web', SERVICE_8080_SERVICE_PORT: '10080', SERVICE_9090_NAME: 'metrics', SERVICE_9090_SERVICE_PORT: '10090' },
    }),
    adv,
  )
  t.same(
    two.spec?.ports.map((p) => p.servicePort),
    [10080],
  )
  t.same(
    two.problems.map((p) => [p.label, p.reason, p.skipped]),
    [['env SERVICE_9090_NAME', 'port-name', 'port']],
  )
  t.match(
    two.problems[0]!.message,
    /container web-1: env SERVICE_9090_NAME: container port 9090 is named "metrics" but the container's service is "web"/,
  )
})

t.test('bad values: each dropped alone with a problem naming it; the rest of the container registers', async (t) => {
  const thousand = Array.from({ length: 1000 }, (_, i) => `t${i}`).join(',')
  const { spec, problems } = mapContainer(
    facts({
      env: {
        SERVICE_NAME: 'web',
        SERVICE_TAGS: thousand,
        SERVICE_BIG: 'x'.repeat(600),
        SERVICE_OK: 'fine',
        SERVICE_8080_SERVICE_PORT: 'ten',
        SERVICE_99999_TAGS: 'x',
        SERVICE_SERVICE_PORT: '10000',
        SERVICE_9090_SERVICE_PORT: '10090',
      },
    }),
    adv,
  )
  t.same(problems.map((p) => [p.label, p.reason]).sort(), [
    ['env SERVICE_8080_SERVICE_PORT', 'bad-service-port'],
    ['env SERVICE_99999_TAGS', 'bad-registrator-key'],
    ['env SERVICE_SERVICE_PORT', 'bad-registrator-key'],
  ])
  t.same(
    spec?.ports.map((p) => p.servicePort),
    [10090],
  )
  const fit = fitSpec(spec!, 'node-a')
  t.equal(fit.spec?.tags?.length, 32, 'a thousand tags: the first 32 kept')
  t.same(fit.spec?.attributes, { ok: 'fine' }, 'the attribute over 512 characters dropped, the other kept')
  t.same(fit.problems.map((p) => p.limit).sort(), ['attributeValue', 'tags'])
  const empty = mapContainer(facts({ env: { SERVICE_NAME: '!!!', SERVICE_9090_SERVICE_PORT: '10090' } }), adv)
  t.same(
    empty.problems.map((p) => [p.label, p.reason]),
    [['env SERVICE_NAME', 'bad-name']],
    'a name that normalises to nothing is named',
  )
})

t.test('the reader: keys after SERVICE_ in lower case, a label over env for one key, nothing else of the environment', async (t) => {
  t.same(registratorEnv(['A=1', 'SERVICE_X=a=b', 'SERVICE_Y', 'service_z=no']), { SERVICE_X: 'a=b', SERVICE_Y: '' })
  const v = readRegistrator({ SERVICE_Region: 'label', team: 'x' }, { SERVICE_REGION: 'env' })
  t.same(
    [...v.attributes].map(([k, s]) => [k, s.value, s.from]),
    [['region', 'label', 'label SERVICE_Region']],
  )
})
