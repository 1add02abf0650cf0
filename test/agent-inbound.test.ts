// The agent's inbound mTLS ports (--inbound-ports, src/agent/inbound.ts): each local instance
// and tcp ServicePort gets a port of the range, stable while it is listed, published in the
// record label shoal.inbound; a source cannot set that label (removed, logged, counted); a full
// range leaves an instance without one (logged, counted) until a port of a gone instance frees.
import t from 'tap'
import { Registry } from 'prom-client'
import { InboundPorts } from '../src/agent/inbound.js'
import type { LocalServiceSpec } from '../src/registry/types.js'
import { parseInboundLabel } from '../src/xds/index.js'
import { capturedLogger } from './lib/log.js'

function spec(id: string, servicePorts: number[], labels: Record<string, string> = {}): LocalServiceSpec {
  return {
    id,
    name: id.split('-')[0]!,
    image: '',
    created: 0,
    ports: [
      ...servicePorts.map((sp, i) => ({ ip: '10.0.0.5', port: 9000 + i, servicePort: sp, type: 'tcp' as const })),
      { ip: '10.0.0.5', port: 5353, servicePort: 10053, type: 'udp' as const },
    ],
    proxyMode: 'tcp',
    labels,
    source: 'static',
    origin: `static.json ${id}`,
  }
}

async function problems(registry: Registry): Promise<Record<string, number>> {
  const m = await registry.getSingleMetric('shoal_inbound_port_problems_total')!.get()
  return Object.fromEntries(m.values.map((v) => [String(v.labels.reason), v.value]))
}

t.test('ports from the range, stable, published as shoal.inbound; tcp ports only', async (t) => {
  const { logger } = capturedLogger('warn')
  const p = new InboundPorts({ from: 15000, to: 15009 }, '10.0.0.5', logger)
  const [a, b] = p.decorate('static', [spec('a-1', [10010, 10011]), spec('b-1', [10020])])
  t.equal(a!.labels['shoal.inbound'], '10010=10.0.0.5:15000,10011=10.0.0.5:15001')
  t.same([...parseInboundLabel(b!.labels['shoal.inbound'])], [[10020, { ip: '10.0.0.5', port: 15002 }]])
  const again = p.decorate('static', [spec('b-1', [10020]), spec('a-1', [10010, 10011])])
  t.equal(again[0]!.labels['shoal.inbound'], '10020=10.0.0.5:15002', 'a port stays with its instance')
  t.equal(again[1]!.labels['shoal.inbound'], '10010=10.0.0.5:15000,10011=10.0.0.5:15001')
})

t.test('a source that sets shoal.inbound has it replaced, with one warning and a count', async (t) => {
  const { logger, lines } = capturedLogger('warn')
  const registry = new Registry()
  const p = new InboundPorts({ from: 15000, to: 15000 }, '10.0.0.5', logger, registry)
  for (let i = 0; i < 3; i++) {
    const [x] = p.decorate('docker', [spec('a-1', [10010], { 'shoal.inbound': '10010=6.6.6.6:443' })])
    t.equal(x!.labels['shoal.inbound'], '10010=10.0.0.5:15000', "the agent's value, not the source's")
  }
  const warns = lines.filter((l) => /is set by the agent/.test(l.msg))
  t.equal(warns.length, 1, 'one warning, not one per report')
  t.match(warns[0], { id: 'a-1', source: 'docker', origin: 'static.json a-1', value: '10010=6.6.6.6:443' })
  t.same(await problems(registry), { source_label: 1 })
  const none = new InboundPorts(undefined, '10.0.0.5', logger)
  t.notOk(
    'shoal.inbound' in none.decorate('docker', [spec('a-1', [10010], { 'shoal.inbound': 'x' })])[0]!.labels,
    'without a range it is just removed',
  )
})

t.test('a full range: the instance has no inbound address (warned, counted) until a gone instance frees one', async (t) => {
  const { logger, lines } = capturedLogger('warn')
  const registry = new Registry()
  const p = new InboundPorts({ from: 15000, to: 15001 }, '10.0.0.5', logger, registry)
  p.decorate('static', [spec('a-1', [10010]), spec('b-1', [10020])])
  const [, , c] = p.decorate('static', [spec('a-1', [10010]), spec('b-1', [10020]), spec('c-1', [10030])])
  t.notOk(c!.labels['shoal.inbound'], 'no port left for c')
  t.ok(
    lines.some((l) => /no inbound port left/.test(l.msg) && l.key === 'c-1|10030'),
    'a warning names the instance',
  )
  t.same(await problems(registry), { range_full: 1 })
  const after = p.decorate('static', [spec('b-1', [10020]), spec('c-1', [10030])])
  t.equal(after[0]!.labels['shoal.inbound'], '10020=10.0.0.5:15001', 'b keeps its port')
  t.equal(after[1]!.labels['shoal.inbound'], '10030=10.0.0.5:15000', 'c takes the port a left')
})
