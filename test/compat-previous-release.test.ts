// Issue 12, part 4: old and new agents side by side lose nothing. The previous release (built
// from git, test/lib/previous-release.ts) and this one run as processes in one cluster, as
// during a Swarm rolling update: each lists exactly what the other's agent serves, changes
// flow both ways, an old agent learns the new one's records through a new seed, a restart of
// the new agent costs nothing, and no agent counts a decode error or a rejected record.
import t from 'tap'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cliAgent, freeLoopbackPort, type CliAgent } from './lib/agent-process.js'
import { previousRelease } from './lib/previous-release.js'
import { REGISTRY_PROTOCOL } from '../src/registry/wire.js'

interface HostJson {
  name: string
  bootId: string
  services: Array<{
    id: string
    name: string
    status: string
    labels: Record<string, string>
    ports: unknown
    version: unknown
    tags?: string[]
    attributes?: Record<string, string>
  }>
}

async function state(a: CliAgent): Promise<HostJson[]> {
  const res = await fetch(`${a.http}/api/state.json`, { signal: AbortSignal.timeout(5000) })
  return ((await res.json()) as { hosts: HostJson[] }).hosts
}

/** The live records of `owner` as agent `a` holds them, comparable field for field. */
async function heldOf(a: CliAgent, owner: string): Promise<string[]> {
  const h = (await state(a)).find((x) => x.name === owner)
  return (h?.services ?? [])
    .filter((s) => s.status !== 'tombstone')
    .map((s) => JSON.stringify([s.id, s.name, s.labels, s.ports, s.version]))
    .sort()
}

async function waitFor(what: string, pred: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await pred().catch(() => false)) return
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Every agent holds exactly what each owner in `owners` serves (the owner's own view is the truth). */
async function converged(agents: CliAgent[], owners: Array<[name: string, agent: CliAgent, count: number]>): Promise<boolean> {
  for (const [name, owner, count] of owners) {
    const truth = await heldOf(owner, name)
    if (truth.length !== count) return false
    for (const a of agents) if ((await heldOf(a, name)).join('\n') !== truth.join('\n')) return false
  }
  return true
}

async function metric(a: CliAgent, re: RegExp): Promise<string[]> {
  const text = await (await fetch(`${a.http}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  return text.split('\n').filter((l) => re.test(l))
}

t.test('the previous release and this one in one cluster: records flow both ways, nothing lost', async (t) => {
  const oldCli = previousRelease(t)
  if (!oldCli) return
  const dir = mkdtempSync(join(tmpdir(), 'shoal-compat-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const write = (name: string, services: unknown[]): string => {
    const path = join(dir, `${name}.json`)
    writeFileSync(path + '.tmp', JSON.stringify({ services }))
    renameSync(path + '.tmp', path)
    return path
  }
  const svc = (id: string, port: number, labels: Record<string, string> = {}) => ({
    id,
    name: id,
    ports: [{ port, servicePort: port + 10_000 }],
    labels,
  })
  const common = ['--profile', 'local', '--cluster', 'compat', '--discovery', 'static']
  const oldFile = write('old', [svc('old-web', 8001, { team: 'a', note: 'n'.repeat(1000) }), svc('old-api', 8002)])
  const newFile = write('new', [svc('new-web', 8003, { team: 'b', blob: 'b'.repeat(3000) }), svc('new-api', 8004)])

  const old1 = await cliAgent(t, ['--node', 'old-1', ...common, '--static', oldFile], { cli: oldCli })
  const newPort = await freeLoopbackPort()
  const newArgs = ['--node', 'new', '--bind', `127.0.0.1:${newPort}`, ...common, '--static', newFile, '--join', old1.gossip]
  let nu = await cliAgent(t, [...newArgs, '--leave-on-terminate', 'false'])
  const owners = (n: number): Array<[string, CliAgent, number]> => [
    ['old-1', old1, n],
    ['new', nu, n],
  ]
  await waitFor('both agents to hold both owners', () => converged([old1, nu], owners(2)))
  t.pass('the old agent holds exactly what the new one serves, and the other way round')
  const onOld = (await state(old1)).find((h) => h.name === 'new')!.services.find((s) => s.id === 'new-web')!
  t.ok(onOld.labels.blob!.length <= 1024, 'the new owner fitted its record to limits the old decoder takes')

  write('old', [svc('old-web', 8001, { team: 'a' }), svc('old-api', 8002), svc('old-extra', 8005)])
  // Tags and attributes (issue 20): held back from the old agents, which take 13 record fields only.
  const tagged = { ...svc('new-web', 8003, { team: 'b' }), tags: ['blue'], attributes: { region: 'x' } }
  write('new', [tagged, svc('new-api', 8004), svc('new-extra', 8006)])
  await waitFor('changes both ways', () => converged([old1, nu], owners(3)))
  t.pass('changes flow both ways')

  // Another old agent joins through the new one: it learns everything from a new agent's answers.
  const old2 = await cliAgent(t, ['--node', 'old-2', ...common, '--static', write('old2', [svc('old2-web', 8007)]), '--join', nu.gossip], {
    cli: oldCli,
  })
  const all = (): Array<[string, CliAgent, number]> => [...owners(3), ['old-2', old2, 1]]
  await waitFor('an old agent joining through a new seed to hold everything', () => converged([old1, nu, old2], all()))
  t.pass('an old agent learns through a new seed')

  // The new agent restarts without leaving (a rolling update's step): nothing is lost.
  await nu.stop('SIGTERM')
  nu = await cliAgent(t, [...newArgs, '--leave-on-terminate', 'false'])
  await waitFor('everything held again after the new agent restarted', () => converged([old1, nu, old2], all()))
  t.pass('the new agent restarted and every agent holds everything again')

  const members = (
    (await (await fetch(`${nu.http}/api/members.json`)).json()) as { members: Array<{ name: string; meta: Record<string, string> }> }
  ).members
  t.notOk(members.find((m) => m.name === 'old-1')?.meta.proto, 'the old release advertises no protocol (1)')
  t.match(
    members.find((m) => m.name === 'new')?.meta,
    { proto: '2', reg: String(REGISTRY_PROTOCOL) },
    'the new one advertises its protocols',
  )
  for (const a of [old1, old2, nu]) {
    t.same(await metric(a, /^shoal_gossip_decode_errors_total [1-9]/), [], 'no gossip decode error')
  }
  t.same(await metric(nu, /^shoal_registry_records_rejected_total\{.*\} [1-9]/), [], 'no record rejected by the new agent')
  t.same(await metric(nu, /^shoal_(gossip|registry)_unknown_total\{.*\} [1-9]/), [], 'nothing unknown: the old release sends nothing new')

  // A second new agent joins while old ones are up: it gets new-web in the 13-field form. Once
  // the last old agent is gone, the owner writes it again whole, and every new agent has its tags.
  const nu2 = await cliAgent(t, ['--node', 'new-2', ...common, '--static', write('new2', []), '--join', nu.gossip])
  await waitFor('the second new agent to hold everything', () => converged([nu2], all()))
  const tagsOn = async (a: CliAgent) => (await state(a)).find((h) => h.name === 'new')?.services.find((s) => s.id === 'new-web')
  t.notOk((await tagsOn(old1))?.tags, 'the old agent holds new-web without tags (it took the record)')
  t.notOk((await tagsOn(nu2))?.tags, 'so does the second new agent meanwhile')
  await old1.stop('SIGTERM')
  await old2.stop('SIGTERM')
  await waitFor('new-web whole on the second new agent', async () => JSON.stringify((await tagsOn(nu2))?.tags) === '["blue"]')
  t.same((await tagsOn(nu2))?.attributes, { region: 'x' }, 'tags and attributes once no old agent is left')
})
