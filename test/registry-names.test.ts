import t from 'tap'
import { normaliseName, staticInstanceId } from '../src/registry/names.js'

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
  t.equal(normaliseName('reg/app:1.2'), 'app')
  t.equal(normaliseName('registry.example.com:5000/team/Web-App:latest'), 'web-app')
  t.equal(normaliseName('nginx@sha256:abcdef'), 'nginx')
  t.equal(normaliseName('redis:7'), 'redis')
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
