// A swarm engine needs port 7946 for its overlay gossip; with anything listening there (a Shoal
// agent on its default --bind 0.0.0.0:7946), `swarm init` still succeeds and overlay tasks fail
// minutes later. startDockerd({ swarm: true }) checks first (swarmPortProblem) and fails at once
// naming the process. Checked here on a free port (7946 itself may be another suite's engine's).
import { createSocket } from 'node:dgram'
import { createServer } from 'node:net'
import t from 'tap'
import { portListeners, swarmPortProblem } from './dockerd.js'

const ss = (() => {
  try {
    portListeners(1)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
})()

t.test('a listener on the gossip port is named, with what to do; none once it is closed', { skip: ss ?? false }, async (t) => {
  const tcp = createServer()
  await new Promise<void>((r) => tcp.listen(0, '0.0.0.0', () => r()))
  const port = (tcp.address() as { port: number }).port
  const udp = createSocket('udp4')
  await new Promise<void>((r, j) => {
    udp.once('error', j)
    udp.bind(port, '0.0.0.0', () => r())
  })
  const problem = swarmPortProblem(undefined, port)
  t.match(problem, new RegExp(`^port ${port} is taken on this machine`), 'it says which port')
  t.match(problem, `pid=${process.pid}`, 'it names the process')
  t.match(problem, /tcp 0\.0\.0\.0:\d+ .*udp 0\.0\.0\.0:\d+|udp 0\.0\.0\.0:\d+ .*tcp 0\.0\.0\.0:\d+/, 'both sockets')
  t.match(problem, /--bind 127\.0\.0\.1:PORT/, 'and what to do with an agent on the default bind')
  await new Promise<void>((r) => tcp.close(() => r()))
  await new Promise<void>((r) => udp.close(() => r()))
  t.equal(swarmPortProblem(undefined, port), undefined, 'nothing once both are closed')
})
