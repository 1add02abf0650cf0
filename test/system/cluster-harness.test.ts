// The harness itself, without the agent: namespaces reach each other and the root
// namespace, partitions and loss do what they say, SIGSTOP pauses, and destroy leaves
// nothing behind.
import t from 'tap'
import { NetnsLab, httpGetJson, netnsUnavailable, sleep, waitFor } from './netns.js'

const why = netnsUnavailable()

const SERVER = `require('http').createServer((q, r) => r.end(JSON.stringify({ pid: process.pid }))).listen(7777, process.argv[1])`

t.test('netns lab: reachability, partition, loss, pause, cleanup', { skip: why ?? false }, async (t) => {
  const lab = NetnsLab.create({ hosts: 3 })
  t.teardown(() => lab.destroy())
  t.match(lab.bridge, /^sh[0-9a-f]{6}br$/)
  t.ok(lab.bridge.length <= 15, 'bridge name fits IFNAMSIZ')
  const procs = lab.hosts.map((h) => lab.spawnIn(h.index, process.execPath, ['-e', SERVER, h.ip]))
  for (const h of lab.hosts) {
    await waitFor(`server in ${h.ns}`, 5000, async () => (await httpGetJson(`http://${h.ip}:7777/`, 500)).status === 200)
  }
  const curl = (from: number, to: number): boolean => {
    try {
      lab.exec(from, ['curl', '-s', '-m', '0.5', `http://${lab.host(to).ip}:7777/`])
      return true
    } catch {
      return false
    }
  }
  t.ok(curl(0, 1), 'host 0 reaches host 1 over the bridge')
  t.ok(curl(2, 0), 'host 2 reaches host 0')

  lab.partition([0], [1, 2])
  t.notOk(curl(0, 1), 'partitioned: 0 -> 1 dropped')
  t.notOk(curl(2, 0), 'partitioned: 2 -> 0 dropped')
  t.ok(curl(1, 2), 'same side still talks')
  t.equal((await httpGetJson(`http://${lab.host(0).ip}:7777/`)).status, 200, 'root namespace still reaches a partitioned host')
  t.ok(lab.partitionDrops(0) > 0, 'partition counters count drops')
  lab.heal()
  t.ok(curl(0, 1), 'healed: 0 -> 1 again')

  lab.setLoss(0, 0.5, 'out')
  let ok = 0
  for (let k = 0; k < 20; k++) if (curl(0, 1)) ok++
  t.ok(ok < 20, `50% loss fails some requests (${ok}/20 got through)`)
  t.ok(lab.lossDrops(0) > 0, 'loss counters count drops')
  t.equal((await httpGetJson(`http://${lab.host(0).ip}:7777/`)).status, 200, 'test traffic from the bridge is spared')
  lab.setLoss(0, 0)
  t.ok(curl(0, 1), 'loss removed')

  const p = procs[1]!
  p.kill('SIGSTOP')
  await t.rejects(httpGetJson(`http://${lab.host(1).ip}:7777/`, 400), 'a paused process does not answer')
  p.kill('SIGCONT')
  t.equal((await httpGetJson(`http://${lab.host(1).ip}:7777/`)).status, 200, 'resumed process answers')

  await lab.destroy()
  await sleep(100)
  t.same(lab.leftovers(), [], 'destroy removes namespaces, links, the FORWARD rule and the temp dir')
})
