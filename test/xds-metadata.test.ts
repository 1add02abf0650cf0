// Issue 20: an instance's tags and attributes travel to Envoy and gRPC clients as LbEndpoint
// metadata: the full set under filter_metadata.shoal, the tags also under
// filter_metadata["envoy.lb"] (the namespace Envoy's subset load balancer reads). The built
// ClusterLoadAssignment passes the resource checks and survives a protobuf round trip as
// written; an instance without either gets no metadata. (Both real proxyless clients take it in
// test/xds-property.test.ts and test/xds-e2e-grpc.test.ts.)
import t from 'tap'
import { DECODE_OPTIONS, loadXdsProtos, TypeUrl } from '../src/xds/protos.js'
import { validateResource } from '../src/xds/validate.js'
import { buildResources, resourcesOf } from './lib/xds-oracle.js'
import { FixtureCatalog, host, rec } from './lib/xds-fixture.js'

const p = loadXdsProtos()

t.test('tags and attributes as endpoint metadata, valid and decoded as written', async (t) => {
  const tagged = {
    ...rec({ host: 'h1', id: 'a', name: 'web', servicePort: 10002, port: 8080 }),
    tags: ['blue', 'canary'],
    attributes: { region: 'us-east', 'é.x': 'é中😀' } as Record<string, string>,
  }
  const plain = rec({ host: 'h1', id: 'b', name: 'web', servicePort: 10002, port: 8081 })
  const snap = new FixtureCatalog([host('h1', [tagged, plain])]).snapshot()
  for (const kind of ['envoy', 'grpc'] as const) {
    const r = buildResources(snap, kind, { envoyBind: '192.168.255.1' })
    for (const [k, url, name, o] of resourcesOf(r)) t.same(validateResource(p, url, o), [], `${kind} ${k} ${name}`)
    const cla = [...resourcesOf(r)].find(([, url]) => url === TypeUrl.endpoint)![3]
    const packed = p.pack(TypeUrl.endpoint, cla)
    const type = p.typeOf(TypeUrl.endpoint)!
    const decoded = type.toObject(type.decode(packed.value), { ...DECODE_OPTIONS, defaults: false, oneofs: false }) as {
      endpoints: Array<{ lb_endpoints: Array<{ endpoint: { address: { socket_address: { port_value: number } } }; metadata?: unknown }> }>
    }
    const byPort = new Map(decoded.endpoints[0]!.lb_endpoints.map((e) => [e.endpoint.address.socket_address.port_value, e.metadata]))
    const list = (l: string[]) => ({ listValue: { values: l.map((v) => ({ stringValue: v })) } })
    t.same(
      byPort.get(8080),
      {
        filter_metadata: {
          shoal: {
            fields: {
              tags: list(['blue', 'canary']),
              attributes: { structValue: { fields: { region: { stringValue: 'us-east' }, 'é.x': { stringValue: 'é中😀' } } } },
            },
          },
          'envoy.lb': { fields: { tags: list(['blue', 'canary']) } },
        },
      },
      `${kind}: the tagged instance`,
    )
    t.equal(byPort.get(8081), undefined, `${kind}: no metadata on an instance without tags or attributes`)
  }
})
