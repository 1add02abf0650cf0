// A real agent's gossip port refuses the 8 MiB frame of the report before authentication,
// warns naming the peer, and exports the count on /metrics (the agent wires NetTransport.stats()).
import t from 'tap'
import net from 'node:net'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { until } from './lib/gossip-net.js'
import { capturedLogger } from './lib/log.js'

t.test('an oversize gossip stream: closed, warned with the peer, counted on /metrics', async (t) => {
  const { logger, lines } = capturedLogger('info')
  const flags = ['--node', 'a1', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0']
  const cfg = parseAgentConfig([...flags, '--profile', 'local', '--discovery', 'none', '--dns', 'off'], {})
  const agent = new Agent(cfg, { logger })
  t.teardown(() => agent.stop({ leave: false }))
  await agent.start()

  const s = net.connect(agent.bound.gossip, '127.0.0.1')
  t.teardown(() => s.destroy())
  s.on('error', () => undefined)
  const closed = new Promise<void>((r) => s.once('close', () => r()))
  const head = Buffer.alloc(4)
  head.writeUInt32BE(8 * 1024 * 1024)
  s.write(Buffer.concat([head, Buffer.alloc(64 * 1024)]))
  await closed

  const res = await fetch(`http://127.0.0.1:${agent.bound.http}/metrics`)
  const text = await res.text()
  t.match(text, /^shoal_gossip_streams_refused_total\{reason="oversize"\} 1$/m)
  t.match(text, /^shoal_gossip_oversize_frames_total 1$/m)
  t.match(text, /^shoal_gossip_incoming_streams 0$/m)
  t.ok(await until(() => lines.some((l) => l.level === 40 && /gossip stream from 127\.0\.0\.1:\d+ closed \(oversize\)/.test(l.msg)), 5000))
})
