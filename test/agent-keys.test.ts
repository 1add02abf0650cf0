// Key rotation through the key file, as an operator does it on every host: add the new key,
// make it primary, remove the old one. Messages keep flowing at every step; a host left
// on the old key alone is cut off at the end.
import t from 'tap'
import { mkdtempSync, writeFileSync, rmSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { liveRecords } from '../src/registry/types.js'
import { loopbackAgentFlags } from './lib/agent-process.js'
import { waitFor } from './lib/wait.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-keys-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const OLD = randomBytes(32).toString('base64')
const NEW = randomBytes(32).toString('base64')

function write(path: string, text: string): void {
  writeFileSync(path + '.tmp', text)
  renameSync(path + '.tmp', path)
}

t.test('rotation through the key file loses nothing', async (t) => {
  const agents: Agent[] = []
  t.teardown(() => Promise.all(agents.map((a) => a.stop({ leave: false }))))
  const keyFiles: string[] = []
  const staticFiles: string[] = []
  const start = async (i: number, keys: string) => {
    keyFiles[i] = join(dir, `keys-${i}`)
    staticFiles[i] = join(dir, `static-${i}.json`)
    write(keyFiles[i]!, keys)
    write(staticFiles[i]!, JSON.stringify({ services: [] }))
    const join_ = i === 0 ? [] : ['--join', `127.0.0.1:${agents[0]!.bound.gossip}`]
    const a = new Agent(
      parseAgentConfig(
        [
          ...loopbackAgentFlags(`k${i}`, { dns: true }),
          '--key-file',
          keyFiles[i]!,
          '--static',
          staticFiles[i]!,
          '--discovery',
          'static',
          ...join_,
        ],
        {},
      ),
      { logger: silentLogger() },
    )
    agents.push(a)
    await a.start()
    return a
  }
  for (let i = 0; i < 3; i++) await start(i, `${OLD}\n`)
  const core = agents.slice(0, 3)
  await waitFor('three alive members', () => agents.every((a) => a.members().filter((m) => m.state === 'alive').length === 3))

  let n = 0
  /** A change on agent i reaches every other agent: the gossip path works under the current keys. */
  const propagate = async (i: number, step: string) => {
    n++
    write(
      staticFiles[i]!,
      JSON.stringify({ services: [{ id: `s${n}`, name: `svc-${n}`, ports: [{ port: 9000 + n, servicePort: 11000 + n }] }] }),
    )
    await waitFor(`svc-${n} everywhere (${step})`, () =>
      core.every((a) => liveRecords(a.view().snapshot()).some((r) => r.name === `svc-${n}`)),
    )
    t.pass(`${step}: a change on k${i} reached every agent`)
  }

  await propagate(0, 'old key')
  // Step 1: add the new key as a second line on every host, one at a time; the file watch reloads.
  for (const f of keyFiles) write(f, `${OLD}\n${NEW}\n`)
  await propagate(1, 'new key added')
  // Only the file watch loaded the new key so far: a host that knows only the new key can join.
  const newcomer = await start(3, `${NEW}\n`)
  await waitFor('a host with only the new key to join', () =>
    core.every((a) => a.members().some((m) => m.name === 'k3' && m.state === 'alive')),
  )
  t.pass('the file watch reloaded the ring: a host with only the new key joined')
  await newcomer.stop({ leave: true })
  // Step 2: make it primary everywhere (mixed primaries in between still decrypt).
  write(keyFiles[0]!, `${NEW}\n${OLD}\n`)
  await propagate(0, 'one host sends with the new key')
  for (const f of keyFiles) write(f, `${NEW}\n${OLD}\n`)
  await propagate(2, 'new key primary')
  // Step 3: remove the old key (on k0 through SIGHUP's path, reloadKeys, as well).
  for (const f of keyFiles.slice(0, 3)) write(f, `${NEW}\n`)
  agents[0]!.reloadKeys()
  await propagate(1, 'old key removed')
  t.same(
    core.map((a) =>
      a
        .members()
        .filter((m) => m.name !== 'k3')
        .map((m) => m.name + ':' + m.state)
        .sort()
        .join(),
    ),
    Array(3).fill('k0:alive,k1:alive,k2:alive'),
    'no member was lost on the way',
  )
  // A host still on the old key alone is cut off.
  const stale = await start(4, `${OLD}\n`)
  await new Promise((r) => setTimeout(r, 1500))
  t.notOk(
    core.some((a) => a.members().some((m) => m.name === 'k4')),
    'a host with only the old key cannot join any more',
  )
  t.equal(stale.members().filter((m) => m.state === 'alive').length, 1, 'and it sees no one')

  // A bad edit keeps the current ring.
  write(keyFiles[2]!, 'not a key\n')
  agents[2]!.reloadKeys()
  await propagate(2, 'bad key file ignored')
})
