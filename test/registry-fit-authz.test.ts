// The record limits (issue 12) never strip a service's authorization request: when a spec has
// more labels than a record may carry, the owner drops the largest first, and a small
// `shoal.authz` among many smaller labels would go, leaving a service that asked for
// authorization served open everywhere. The labels Shoal reads from a peer's record are kept.
import t from 'tap'
import { mapContainer } from '../src/docker/labels.js'
import { fitSpec } from '../src/registry/fit.js'
import { RecordLimits } from '../src/registry/limits.js'
import { GroupIndex, resolveGroup } from '../src/xds/groups.js'
import { buildGroupResources } from '../src/xds/resources.js'
import { builtListenerFilters, deniesAll } from './lib/xds-authz.js'

t.test('labels over the limits are dropped, never the authorization request', async (t) => {
  const many: Record<string, string> = {}
  // More labels than a record may carry, each smaller than the authorization labels.
  for (let i = 0; i < RecordLimits.labels.build + 20; i++) many[`l${i}`] = 'x'
  const labels = {
    ...many,
    ServiceName: 'web',
    'shoal.port.80': '10080',
    'shoal.authz': 'authz',
    'shoal.authz.failure_mode_allow': 'false',
  }
  const mapped = mapContainer(
    {
      id: 'a'.repeat(64),
      name: 'web-1',
      image: 'web:1',
      created: 0,
      labels,
      bindings: [{ containerPort: 80, type: 'tcp', hostIp: '0.0.0.0', hostPort: 32768 }],
      networks: {},
      health: 'none',
      running: true,
    },
    { advertiseIp: '10.0.0.5' },
  )
  const { spec, problems } = fitSpec(mapped.spec!, 'node-a')
  t.match(
    problems.map((p) => p.limit),
    ['labels'],
    'labels were dropped to fit',
  )
  t.equal(spec!.labels['shoal.authz'], 'authz', 'shoal.authz is kept')
  t.equal(spec!.labels['shoal.authz.failure_mode_allow'], 'false', 'its options are kept')
  t.ok(Object.keys(spec!.labels).length <= RecordLimits.labels.build, 'the labels fit')

  // What the xDS server of every host makes of the record: a protected listener.
  const record = { ...spec!, host: 'node-a', bootId: 'b', status: 'alive' as const, version: [1, 0] as const, updated: 0 }
  const index = new GroupIndex()
  index.update({
    cluster: 'c',
    seq: 1,
    hosts: [{ name: 'node-a', address: '10.0.0.5:7946', state: 'alive', bootId: 'b', services: [record] }],
  })
  const listener = buildGroupResources(resolveGroup(index.groups.get(10080)!, null).group, 'envoy', {
    envoyBind: '127.0.0.1',
  }).listeners.get('web:10080')!
  t.ok(deniesAll(builtListenerFilters(listener)), 'the listener fails closed (no authorization service here), it is not open')
})

t.test('the allow-list and the inbound address are kept too (every host reads them to serve the record)', async (t) => {
  const labels: Record<string, string> = {}
  for (let i = 0; i < RecordLimits.labels.build + 20; i++) labels[`l${i}`] = 'x'
  labels['shoal.allow'] = 'checkout,billing'
  labels['shoal.inbound'] = '10080=10.0.0.5:15000'
  const { spec, problems } = fitSpec(
    {
      id: 'web-1',
      name: 'web',
      image: 'web:1',
      created: 0,
      ports: [{ ip: '10.0.0.5', port: 8080, servicePort: 10080, type: 'tcp' }],
      proxyMode: 'http',
      labels,
      source: 'static',
    },
    'node-a',
  )
  t.match(
    problems.map((p) => p.limit),
    ['labels'],
    'labels were dropped to fit',
  )
  t.equal(spec!.labels['shoal.allow'], 'checkout,billing', 'shoal.allow is kept (dropped, the service would be open to every caller)')
  t.equal(spec!.labels['shoal.inbound'], '10080=10.0.0.5:15000', 'shoal.inbound is kept')
  t.ok(Object.keys(spec!.labels).length <= RecordLimits.labels.build, 'the labels fit')
})
