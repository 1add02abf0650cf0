// Issue "Say why", item 7: `shoal keygen` makes the keys and `shoal keyring list` shows which key
// each member seals with, by fingerprint: the README's rotation recipe, step by step, on three
// real agents on loopback, read through the built CLI as a user would.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { keyFingerprint } from '../src/gossip/index.js'
import type { KeysView } from '../src/http/index.js'
import { silentLogger } from '../src/log.js'
import { until } from './lib/gossip-net.js'
import { shoal } from './lib/cli.js'
import { LOOPBACK_AGENT_FLAGS } from './lib/agent-process.js'

async function keygen(): Promise<string> {
  const r = await shoal(['keygen']).done
  if (r.code !== 0 || !/^[A-Za-z0-9+/]{43}=\n$/.test(r.stdout)) throw new Error(`keygen: ${r.code} ${r.stdout}${r.stderr}`)
  return r.stdout.trim()
}

t.test('rotation: add, promote, remove; keyring list says when each step has reached every member', async (t) => {
  const [OLD, NEW] = [await keygen(), await keygen()] as [string, string]
  t.not(OLD, NEW, 'keygen makes a new key each time')
  const fp = (k: string) => keyFingerprint(Buffer.from(k, 'base64'))
  const dir = mkdtempSync(join(tmpdir(), 'shoal-keyring-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const files = ['a', 'b', 'c'].map((n) => join(dir, `${n}.keys`))
  const writeAll = (lines: string[]) => files.forEach((f) => writeFileSync(f, lines.join('\n') + '\n'))
  writeAll([OLD])

  const agents: Agent[] = []
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    const flags = ['--node', name, ...LOOPBACK_AGENT_FLAGS]
    const join = i === 0 ? [] : ['--join', `127.0.0.1:${agents[0]!.bound.gossip}`]
    const a = new Agent(parseAgentConfig([...flags, '--discovery', 'none', '--key-file', files[i]!, ...join], {}), {
      logger: silentLogger(),
    })
    t.teardown(() => a.stop({ leave: false }))
    await a.start()
    agents.push(a)
  }
  const url = `http://127.0.0.1:${agents[0]!.bound.http}`
  const keys = async (): Promise<KeysView> => (await fetch(`${url}/api/keys.json`)).json() as Promise<KeysView>
  const used = async () => Object.fromEntries((await keys()).keys.map((k) => [k.fingerprint, k.members.length]))
  const list = async () => {
    const r = await shoal(['keyring', 'list', '--agent', url]).done
    t.equal(r.code, 0)
    return r.stdout
  }
  const reload = () => agents.forEach((a) => a.reloadKeys())

  t.ok(await until(async () => (await used())[fp(OLD)] === 3, 30_000), 'every member heard from with the old key')
  t.equal(
    await list(),
    ['KEY (SHA-256)     PRIMARY  USED BY  MEMBERS', `${fp(OLD)}  yes      3 of 3   a,b,c`, ''].join('\n'),
    'one key, used by all',
  )

  writeAll([OLD, NEW])
  reload()
  t.equal(
    await list(),
    ['KEY (SHA-256)     PRIMARY  USED BY  MEMBERS', `${fp(OLD)}  yes      3 of 3   a,b,c`, `${fp(NEW)}  no       0 of 3   -`, ''].join(
      '\n',
    ),
    'step 1: the new key installed, nobody seals with it yet',
  )

  writeAll([NEW, OLD])
  reload()
  t.ok(await until(async () => (await used())[fp(NEW)] === 3, 30_000), 'step 2 reached every member')
  t.equal(
    await list(),
    ['KEY (SHA-256)     PRIMARY  USED BY  MEMBERS', `${fp(NEW)}  yes      3 of 3   a,b,c`, `${fp(OLD)}  no       0 of 3   -`, ''].join(
      '\n',
    ),
    'step 2: everyone seals with the new key; the old one can go',
  )

  writeAll([NEW])
  reload()
  t.equal(await list(), ['KEY (SHA-256)     PRIMARY  USED BY  MEMBERS', `${fp(NEW)}  yes      3 of 3   a,b,c`, ''].join('\n'))
  t.notOk(JSON.stringify(await keys()).includes(NEW), 'the API never shows a key, only its fingerprint')
  t.same(
    agents.map((a) => a.members().filter((m) => m.state === 'alive').length),
    [3, 3, 3],
    'no member lost on the way',
  )
})

t.test('an agent without keys says gossip is not encrypted', async (t) => {
  const a = new Agent(
    parseAgentConfig(
      ['--node', 'x', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--discovery', 'none', '--dns', 'off'],
      {},
    ),
    { logger: silentLogger() },
  )
  t.teardown(() => a.stop({ leave: false }))
  await a.start()
  const r = await shoal(['keyring', 'list', '--agent', `127.0.0.1:${a.bound.http}`]).done
  t.equal(r.code, 0)
  t.equal(r.stdout, 'gossip on x is not encrypted (no --key or --key-file)\n')
  const bad = await shoal(['keyring', 'lsit', '--agent', `127.0.0.1:${a.bound.http}`]).done
  t.equal(bad.code, 1)
  t.equal(bad.stderr, 'shoal: usage: shoal keyring list (got "lsit")\n')
})
