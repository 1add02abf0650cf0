// Key rotation through the key file, as an operator does it on every host: add the new key,
// make it primary, remove the old one. Messages keep flowing at every step; a host left
// on the old key alone is cut off at the end.
import t from 'tap'
import { mkdtempSync, writeFileSync, rmSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Agent, KEY_FILE_RETRY_MS } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { liveRecords } from '../src/registry/types.js'
import { loopbackAgentFlags } from './lib/agent-process.js'
import { waitFor } from './lib/wait.js'
import { capturedLogger } from './lib/log.js'

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

// New user, item 3: `shoal keygen > keys` truncates the file before it writes, and the watch can
// read it empty in between. That read is tried again after a short wait, and only a file still
// bad then is an error, stated with the one key rule the agent starts with.
t.test('a key file read empty mid-write is read again before an error', async (t) => {
  const file = join(dir, 'keys-truncated')
  write(file, `${OLD}\n`)
  const { logger, lines } = capturedLogger('info')
  const a = new Agent(parseAgentConfig([...loopbackAgentFlags('kt'), '--key-file', file, '--discovery', 'none'], {}), { logger })
  t.teardown(() => a.stop({ leave: false }))
  await a.start()
  const reloaded = () => lines.filter((l) => l.msg === 'gossip keys reloaded').length
  const errors = () => lines.filter((l) => l.level >= 50)
  const before = reloaded()
  writeFileSync(file, '') // as `>` leaves it, before the key is written
  a.reloadKeys()
  await new Promise((r) => setTimeout(r, KEY_FILE_RETRY_MS / 4))
  writeFileSync(file, `${NEW}\n${OLD}\n`)
  await waitFor('the second read', () => reloaded() > before)
  t.same(errors(), [], 'no error for a read in the middle of a write')
  await new Promise((r) => setTimeout(r, KEY_FILE_RETRY_MS * 2))
  t.same(errors(), [], 'nor later')

  writeFileSync(file, Buffer.alloc(16).toString('base64') + '\n') // a 16-byte key stays wrong
  a.reloadKeys()
  await waitFor('the error after the retry', () => errors().length > 0)
  t.equal(errors().length, 1, 'one error, after the second read')
  t.match(errors()[0]!.msg, /a gossip key must be 32 bytes in base64 \(`shoal keygen` makes one\)/, 'the rule the agent starts with')
  t.notMatch(errors()[0]!.msg, /16, 24/, 'no other sizes named')
  t.match(errors()[0]!.msg, /temporary file and mv it in place/)
  t.throws(
    () => parseAgentConfig([...loopbackAgentFlags('kt2'), '--key-file', file], {}),
    /a gossip key must be 32 bytes in base64/,
    'at start the same file is refused with the same words',
  )
})
