import t from 'tap'
import { imageName, normaliseName, staticInstanceId } from '../src/registry/names.js'
import { mapContainer } from '../src/docker/labels.js'
import { parseStaticServices } from '../src/registry/static.js'

t.test('names are reduced to [a-z0-9._-]', async (t) => {
  t.equal(normaliseName('web'), 'web')
  t.equal(normaliseName('My Service'), 'my-service')
  t.equal(normaliseName('API_v2.internal'), 'api_v2.internal')
  t.equal(normaliseName('  --weird!!name--  '), 'weird-name')
  t.equal(normaliseName('ünïcode'), 'n-code')
  t.equal(normaliseName('!!!'), '', 'nothing usable left: empty, the caller reports it')
  t.match(normaliseName('x'.repeat(300)), /^x{128}$/)
})

t.test('an image reference falls back to its repository name', async (t) => {
  t.equal(imageName('reg/app:1.2'), 'app')
  t.equal(imageName('registry.example.com:5000/team/Web-App:latest'), 'web-app')
  t.equal(imageName('nginx@sha256:abcdef'), 'nginx')
  t.equal(imageName('redis:7'), 'redis')
})

t.test('a Docker label and a static entry with the same name give the same service name', async (t) => {
  const names = [
    'team/web',
    'web:1',
    'a--b',
    'My Service',
    'x'.repeat(140),
    'API_v2.internal',
    '--edge--',
    'reg/app:1.2',
    'ünïcode',
    'a..b',
  ]
  for (const raw of names) {
    const fromLabel = mapContainer(
      {
        id: 'c'.repeat(64),
        name: 'c',
        image: 'img',
        created: 0,
        labels: { ServiceName: raw, ServicePort_80: '10080' },
        bindings: [{ containerPort: 80, type: 'tcp', hostIp: '', hostPort: 32768 }],
        networks: {},
        health: 'none',
        running: true,
      },
      { advertiseIp: '10.0.0.5' },
    ).spec?.name
    const fromStatic = parseStaticServices(
      JSON.stringify({ services: [{ name: raw, ports: [{ port: 8080, servicePort: 10080 }] }] }),
      's.json',
      '10.0.0.5',
    )[0]?.name
    t.equal(fromLabel, fromStatic, `${JSON.stringify(raw)}: label and static agree`)
    t.equal(fromLabel, normaliseName(raw))
  }
  t.equal(normaliseName('team/web'), 'team-web')
  t.equal(normaliseName('web:1'), 'web-1')
  t.equal(normaliseName('a--b'), 'a-b')
})

t.test('static instance ids are stable 12-hex hashes of name and ports', async (t) => {
  const ports = [
    { type: 'tcp' as const, port: 8080, servicePort: 10080 },
    { type: 'udp' as const, port: 53, servicePort: 10053 },
  ]
  const id = staticInstanceId('web', ports)
  t.match(id, /^[0-9a-f]{12}$/)
  t.equal(staticInstanceId('web', [...ports].reverse()), id, 'port order does not matter')
  t.equal(staticInstanceId('Web', ports), id, 'the name is normalised first')
  t.not(staticInstanceId('web', [ports[0]!]), id, 'other ports, other id')
  t.not(staticInstanceId('api', ports), id, 'other name, other id')
})
