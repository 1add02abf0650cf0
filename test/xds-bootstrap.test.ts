import t from 'tap'
import { envoyBootstrap, grpcBootstrap } from '../src/xds/bootstrap.js'
import { loadXdsProtos } from '../src/xds/protos.js'
import { validateResource } from '../src/xds/validate.js'

t.test('envoy bootstrap passes the Bootstrap proto rules', async (t) => {
  const b = envoyBootstrap({ nodeId: 'n1', cluster: 'default', xdsAddress: '127.0.0.1:7776' }) as any
  t.same(b.node, { id: 'n1', cluster: 'default' })
  t.same(b.admin.address.socket_address, { address: '127.0.0.1', port_value: 9901 })
  t.equal(b.dynamic_resources.ads_config.api_type, 'GRPC')
  // The JSON form spells durations as "1s"; the checker works on the proto object form.
  const obj = JSON.parse(JSON.stringify(b).replace('"1s"', '{"seconds":1}'))
  t.same(validateResource(loadXdsProtos(), 'type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap', obj), [])
  t.throws(() => envoyBootstrap({ nodeId: 'n', cluster: 'c', xdsAddress: 'nope' }), { code: 'SHOAL_ERR_ADDRESS' })
})

t.test('envoy bootstrap with --xds-socket: the ADS cluster is a pipe address', async (t) => {
  const b = envoyBootstrap({ nodeId: 'n1', cluster: 'default', xdsAddress: '127.0.0.1:7776', xdsSocket: '/run/shoal/ads.sock' }) as any
  const ep = b.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint
  t.same(ep.address, { pipe: { path: '/run/shoal/ads.sock' } })
  const obj = JSON.parse(JSON.stringify(b).replace('"1s"', '{"seconds":1}'))
  t.same(validateResource(loadXdsProtos(), 'type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap', obj), [])
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
