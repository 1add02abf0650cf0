// A swarm engine needs port 7946 for its overlay gossip; with anything listening there (a Shoal
// agent on its default --bind 0.0.0.0:7946), `swarm init` still succeeds and overlay tasks fail
// minutes later. startDockerd({ swarm: true }) checks first (swarmPortProblem) and fails at once
// naming the process. Checked here on a free port (7946 itself may be another suite's engine's).
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
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
  t.match(problem, /another port, --bind 0\.0\.0\.0:7947/, 'and what to do with an agent on the default bind')
  await new Promise<void>((r) => tcp.close(() => r()))
  await new Promise<void>((r) => udp.close(() => r()))
  t.equal(swarmPortProblem(undefined, port), undefined, 'nothing once both are closed')
})

t.test(
  'a listener on one loopback address (another private engine) is not a problem: ours binds its own',
  { skip: ss ?? false },
  async (t) => {
    const own = createServer()
    await new Promise<void>((r) => own.listen(0, '127.0.0.77', () => r()))
    t.teardown(() => new Promise<void>((r) => own.close(() => r())))
    const port = (own.address() as { port: number }).port
    t.ok(
      portListeners(port).some((l) => l.includes(`127.0.0.77:${port}`)),
      'ss sees it',
    )
    t.equal(swarmPortProblem(undefined, port), undefined, 'no problem named')
  },
)

const nsWhy = process.getuid?.() !== 0 ? 'needs root' : spawnSync('ip', ['netns', 'list']).status !== 0 ? 'needs ip netns' : (ss ?? false)
t.test('in a network namespace (a swarm node of swarm-two-nodes), the listener there is found', { skip: nsWhy }, async (t) => {
  const ns = `shp${randomBytes(3).toString('hex')}`
  const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' })
  if (add.status !== 0) throw new Error(`ip netns add ${ns}: ${add.stderr}`)
  t.teardown(() => {
    spawnSync('ip', ['netns', 'del', ns])
  })
  t.equal(swarmPortProblem(ns), undefined, 'a new namespace has nothing on 7946 (whatever this one has)')
  // A listener on 7946 inside the namespace only: this machine's port stays free.
  const child = spawn(
    'nsenter',
    [`--net=/run/netns/${ns}`, process.execPath, '-e', "require('net').createServer().listen(7946, '0.0.0.0', () => console.log('up'))"],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  await new Promise<void>((r, j) => {
    child.stdout!.once('data', () => r())
    child.once('exit', (code) => j(new Error(`the listener exited (${code})`)))
  })
  const problem = swarmPortProblem(ns)
  t.match(
    problem,
    new RegExp(`^port 7946 is taken in network namespace ${ns} \\(tcp 0\\.0\\.0\\.0:7946 users:\\(\\("node",pid=${child.pid}`),
  )
  t.match(problem, `nsenter --net=/run/netns/${ns} ss -ltnup`, 'and how to look there')
})
