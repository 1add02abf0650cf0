// compose/envoy-bootstrap.json is what `shoal envoy-bootstrap` prints, minus the node: the
// swarm stack's Envoy takes its node id and cluster from --service-node/--service-cluster,
// since one config serves every node. Regenerate it with:
//   node dist/cli.js envoy-bootstrap --node x --cluster swarm --xds 127.0.0.1:7776 | jq 'del(.node)' > compose/envoy-bootstrap.json
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { envoyBootstrap } from '../src/xds/bootstrap.js'
import { shoalSync } from './lib/cli.js'

const top = fileURLToPath(new URL('../', import.meta.url))
const committed = JSON.parse(readFileSync(`${top}compose/envoy-bootstrap.json`, 'utf8')) as Record<string, any>
const stack = readFileSync(`${top}compose/swarm-stack.yml`, 'utf8')

t.test('the committed bootstrap = `shoal envoy-bootstrap` output without its node', async (t) => {
  // The real command, as built.
  const r = shoalSync(['envoy-bootstrap', '--node', 'some-node', '--cluster', 'swarm', '--xds', '127.0.0.1:7776'])
  t.equal(r.status, 0, `exit 0 ${r.stderr}`.trim())
  const generated = JSON.parse(r.stdout) as Record<string, any>
  t.same(generated.node, { id: 'some-node', cluster: 'swarm' }, 'the command names the node')
  delete generated.node
  t.same(committed, generated, 'compose/envoy-bootstrap.json matches, node removed')
  t.notOk('node' in committed, 'no node in the committed file')
})

t.test('the bootstrap points where the stack puts the agent', async (t) => {
  const { node: _node, ...rest } = envoyBootstrap({ nodeId: 'x', cluster: 'swarm', xdsAddress: '127.0.0.1:7776' }) as Record<string, any>
  t.same(committed, rest)
  const ep = committed.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
  t.match(
    stack,
    new RegExp(`SHOAL_XDS: \\$\\{SHOAL_XDS:-${ep.address.replace(/\./g, '\\.')}:${ep.port_value}\\}`),
    "the stack's default SHOAL_XDS is the address in the bootstrap",
  )
  t.match(stack, /file: \.\/envoy-bootstrap\.json/, 'the stack ships this file as the Envoy config')
  t.match(stack, /--service-node \\"\$\$NODE\\"/, 'Envoy gets its node id from --service-node')
})
