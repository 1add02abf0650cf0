import t from 'tap'
import { envoyBootstrap, grpcBootstrap } from '../src/xds/bootstrap.js'
import { loadEnvoyProtos } from '../scripts/xds-descriptors.js'
import { xdsProtosOf } from '../src/xds/protos.js'
import { validateResource } from '../src/xds/validate.js'

t.test('envoy bootstrap passes the Bootstrap proto rules', async (t) => {
  const b = envoyBootstrap({ nodeId: 'n1', cluster: 'default', xdsAddress: '127.0.0.1:7776' }) as any
  t.same(b.node, { id: 'n1', cluster: 'default' })
  t.same(b.admin.address.socket_address, { address: '127.0.0.1', port_value: 9901 })
  t.equal(b.dynamic_resources.ads_config.api_type, 'GRPC')
  // The JSON form spells durations as "1s"; the checker works on the proto object form. The agent
  // never serves a Bootstrap, so its type is not among the descriptors: checked against the protos.
  const obj = JSON.parse(JSON.stringify(b).replace('"1s"', '{"seconds":1}'))
  t.same(validateResource(xdsProtosOf(loadEnvoyProtos()), 'type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap', obj), [])
  t.throws(() => envoyBootstrap({ nodeId: 'n', cluster: 'c', xdsAddress: 'nope' }), { code: 'SHOAL_ERR_ADDRESS' })
})

t.test('envoy bootstrap with --xds-socket: the ADS cluster is a pipe address', async (t) => {
  const b = envoyBootstrap({ nodeId: 'n1', cluster: 'default', xdsAddress: '127.0.0.1:7776', xdsSocket: '/run/shoal/ads.sock' }) as any
  const ep = b.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint
  t.same(ep.address, { pipe: { path: '/run/shoal/ads.sock' } })
  const obj = JSON.parse(JSON.stringify(b).replace('"1s"', '{"seconds":1}'))
  t.same(validateResource(xdsProtosOf(loadEnvoyProtos()), 'type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap', obj), [])
  t.throws(() => envoyBootstrap({ nodeId: 'n', cluster: 'c', xdsAddress: '127.0.0.1:7776', xdsSocket: 'ads.sock' }), {
    code: 'SHOAL_ERR_CONFIG',
    message: /--xds-socket: "ads.sock" is not an absolute path/,
  })
})

t.test('grpc bootstrap', async (t) => {
  const b = grpcBootstrap({ nodeId: 'app', xdsAddress: '127.0.0.1:7776' }) as any
  t.same(b.xds_servers, [{ server_uri: '127.0.0.1:7776', channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }])
  t.equal(b.node.id, 'app')
})

t.test('--network is node metadata beside --service, --tls-dir and --xds-socket, never in place of them', async (t) => {
  const g = grpcBootstrap({
    nodeId: 'web-1',
    xdsAddress: '127.0.0.1:7776',
    service: 'web',
    tlsDir: '/etc/shoal/tls',
    network: 'apps',
  }) as any
  t.same(g.node.metadata, {
    'shoal.network': 'apps',
    'shoal.service': 'web',
    'shoal.certificate_providers': 'shoal-identity,shoal-roots',
  })
  t.same((grpcBootstrap({ nodeId: 'app', xdsAddress: '127.0.0.1:7776', network: 'apps' }) as any).node.metadata, {
    'shoal.network': 'apps',
  })
  t.notOk('metadata' in (grpcBootstrap({ nodeId: 'app', xdsAddress: '127.0.0.1:7776', network: 'host' }) as any).node, 'host: none')
  const e = envoyBootstrap({
    nodeId: 'n1',
    cluster: 'c',
    xdsAddress: '127.0.0.1:7776',
    xdsSocket: '/run/shoal/ads.sock',
    network: 'apps',
  }) as any
  t.same(e.node, { id: 'n1', cluster: 'c', metadata: { 'shoal.network': 'apps' } })
  t.throws(() => grpcBootstrap({ nodeId: 'app', xdsAddress: '127.0.0.1:7776', service: 'web', network: 'n'.repeat(300) }), {
    code: 'SHOAL_ERR_CONFIG',
    message: /--network: .* is 300 characters, at most 256/,
  })
})
