/**
 * The static source on virtual time (issue 22, point 11): its reload debounce, its poll (the
 * fallback for changes fs.watch does not see) and the `created` stamps of new entries run on
 * the injected clock. Real time passes too (the file is real, read through real I/O), but no
 * reload happens until the virtual clock says so, whatever the machine's load.
 */
import t, { type Test } from 'tap'
import { linkSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../src/clock.js'
import { silentLogger } from '../src/log.js'
import { StaticSource } from '../src/registry/static.js'

const START_WALL = 1_700_000_000_000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const file = (names: string[]) =>
  JSON.stringify({ services: names.map((name, i) => ({ name, ports: [{ port: 8080 + i, servicePort: 10080 + i }] })) })
const names = (src: StaticSource) => src.services().map((s) => s.name)

/** Real time for the file's I/O to finish, while the virtual clock stands still. */
async function realWait(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) return false
    await sleep(20)
  }
  return true
}

async function started(t: Test, pollMs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-static-vt-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'static.json')
  writeFileSync(path, file(['web']))
  const clock = new VirtualClock({ startWall: START_WALL })
  const src = new StaticSource({ path, advertiseIp: '127.0.0.1', pollMs }, { logger: silentLogger(), clock })
  t.teardown(() => src.stop())
  await src.start()
  return { dir, path, clock, src }
}

t.test('a change seen by fs.watch is reloaded 50 ms later on the clock, not before', async (t) => {
  const { path, clock, src } = await started(t, 3_600_000)
  t.same(names(src), ['web'])
  t.equal(src.services()[0]!.created, START_WALL, 'created: the clock’s wall time when the entry was first seen')
  writeFileSync(path + '.tmp', file(['web', 'api']))
  renameSync(path + '.tmp', path)
  // fs.watch's notice arrives within milliseconds; on real timers the reload would follow 50 ms later.
  t.notOk(await realWait(() => names(src).length > 1, 1000), 'one real second later: not reloaded, the clock stood still')
  await clock.advance(49)
  t.notOk(await realWait(() => names(src).length > 1, 300), 'nor 49 virtual ms later')
  await clock.advance(1)
  t.ok(await realWait(() => names(src).length > 1, 10_000), 'reloaded once 50 virtual ms passed')
  t.same(names(src), ['web', 'api'])
  const api = src.services().find((s) => s.name === 'api')!
  t.equal(api.created, START_WALL + 50, 'the new entry is stamped with the clock’s wall time')
  t.equal(src.services().find((s) => s.name === 'web')!.created, START_WALL, 'the old one keeps its stamp')
})

t.test('a change fs.watch misses is found by the poll, every pollMs on the clock', async (t) => {
  const pollMs = 60_000
  const { path, clock, src } = await started(t, pollMs)
  // A write through a hard link in another folder: the folder watch hears nothing (inotify
  // reports a child's events through the name it was reached by), as on file systems fs.watch misses.
  const other = mkdtempSync(join(tmpdir(), 'shoal-static-vt-link-'))
  t.teardown(() => rmSync(other, { recursive: true, force: true }))
  const alias = join(other, 'alias.json')
  linkSync(path, alias)
  const poll = async (want: number, what: string) => {
    await clock.advance(pollMs - 100)
    t.notOk(await realWait(() => names(src).length === want, 500), `${what}: not before the poll is due`)
    // The poll's stat and the read are real I/O: let them finish between small steps of the clock.
    const end = Date.now() + 10_000
    while (names(src).length !== want && Date.now() < end) {
      await clock.advance(10)
      await sleep(20)
    }
    t.equal(names(src).length, want, `${what}: reloaded by the poll`)
  }
  writeFileSync(alias, file(['web', 'api']))
  await poll(2, 'first change')
  writeFileSync(alias, file(['web', 'api', 'db']))
  await poll(3, 'second change, one poll period later')
  t.same(names(src), ['web', 'api', 'db'])
  await src.stop()
  t.equal(clock.pending(), 0, 'stop() leaves no timer on the clock')
})
