// Issue "Say why", item 9: every shell block of the README runs, or says what outside component
// it needs. The marker is an HTML comment on the line before the block (docs/style.md, "README
// commands"):
//
//   <!-- runnable -->             each command runs, in order, and must exit 0
//   <!-- runnable: background --> started and left running (an agent) while the runnable blocks
//                                 after it run; it must come up (GET /healthz) and keep running
//   <!-- needs: COMPONENT -->     not run here: COMPONENT is one of NEEDS below
//
// A code block with `<!-- file: NAME -->` before it is written to NAME first (an example's static
// file, server and client); the example server's port 50051 becomes a free one in every block.
// An unmarked block fails. Runnable blocks run in `sh -e` at the root of a copy of this built
// checkout (so their builds and files never touch the tree other tests run from), with the
// agent's addresses on free loopback ports through SHOAL_BIND, SHOAL_XDS, SHOAL_HTTP, SHOAL_DNS
// and SHOAL_AGENT (a README command must not name ports itself), no Docker engine, and npm offline.
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { ServicesView } from '../src/http/index.js'
import { until } from './lib/gossip-net.js'
import { unusedPort } from './lib/listen.js'
import { LabManifest } from './lib/labs.js'
import { startTime } from '../scripts/clean-labs.mjs'
import { REPO_ROOT, ensureBuilt } from './lib/cli.js'
import { fileBlocks, NEEDS, shellBlocks, type Block } from './lib/readme.js'

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')
const blocks = shellBlocks(readme)
/** The port the README's example server binds (docs/style.md): each run replaces it with a free one. */
const EXAMPLE_PORT = '50051'

t.test('every shell block of the README is marked runnable or names what it needs', async (t) => {
  t.ok(blocks.length > 10, `${blocks.length} shell blocks`)
  const bad = blocks
    .filter((b) => b.marker === undefined || (b.marker === 'needs' && !NEEDS.includes(b.needs!)))
    .map(
      (b) =>
        `README.md:${b.line}: ${b.marker === undefined ? 'no <!-- runnable --> or <!-- needs: ... --> marker' : `needs "${b.needs}", not one of ${NEEDS.join(', ')}`}`,
    )
  t.same(bad, [])
  t.ok(
    blocks.some((b) => b.marker === 'runnable'),
    'some blocks run',
  )
})

t.test('the marker check itself: unmarked and unknown needs are found', async (t) => {
  const found = shellBlocks('a\n\n```sh\nls\n```\n<!-- needs: a toaster -->\n```sh\nx\n```\n<!-- runnable -->\n\n```bash\ny\n```\n')
  t.same(
    found.map((b) => [b.line, b.marker, b.needs]),
    [
      [3, undefined, undefined],
      [7, 'needs', 'a toaster'],
      [12, 'runnable', undefined],
    ],
  )
})

const why = ensureBuilt()
t.test('the runnable blocks run against a built checkout', { skip: why ?? false, timeout: 900_000 }, async (t) => {
  // A copy with the original times, so it is as built as this checkout (npm start and npm run
  // demo build only when a source is newer than dist/).
  const copy = mkdtempSync(join(tmpdir(), 'shoal-readme-'))
  t.teardown(() => rmSync(copy, { recursive: true, force: true }))
  for (const f of [
    'README.md',
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'src',
    'scripts',
    'examples',
    'compose',
    'dist',
  ]) {
    cpSync(join(REPO_ROOT, f), join(copy, f), { recursive: true, preserveTimestamps: true })
  }
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(copy, 'node_modules'))

  const [bind, xds, http, dns] = [await unusedPort(), await unusedPort(), await unusedPort(), await unusedPort()]
  // The files the examples use (<!-- file: NAME -->), and the example server's port made a free one.
  const examplePort = String(await unusedPort())
  const withPort = (text: string): string => text.replaceAll(EXAMPLE_PORT, examplePort)
  const files = fileBlocks(readme)
  t.ok(files.length > 0, `the README gives ${files.map((f) => f.name).join(', ')} as files`)
  for (const f of files) writeFileSync(join(copy, f.name), withPort(f.text))
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SHOAL_')))
  Object.assign(env, {
    SHOAL_NODE: 'readme',
    SHOAL_BIND: `127.0.0.1:${bind}`,
    SHOAL_XDS: `127.0.0.1:${xds}`,
    SHOAL_HTTP: `127.0.0.1:${http}`,
    SHOAL_DNS: `127.0.0.1:${dns}`,
    SHOAL_AGENT: `http://127.0.0.1:${http}`,
    SHOAL_PROFILE: 'local',
    SHOAL_LOG_FORMAT: 'json',
    SHOAL_DEMO_SECONDS: '3',
    DOCKER_HOST: `unix://${join(copy, 'no-docker.sock')}`,
    npm_config_offline: 'true',
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
  })

  let background: { block: Block; child: ChildProcess; exited: Promise<number | null>; out: () => string } | undefined
  let examplesChecked = false
  /** Stops the running background block; with `check`, first checks npm start's examples when it is npm start. */
  const stopBackground = async (check: boolean) => {
    const b = background
    if (check && b && b.child.exitCode === null && b.block.text.startsWith('npm start')) await checkExamples()
    background = undefined
    if (!b || b.child.exitCode !== null) return
    process.kill(-b.child.pid!, 'SIGTERM')
    const done = await Promise.race([b.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 15_000))])
    if (!done) process.kill(-b.child.pid!, 'SIGKILL')
    await b.exited
  }
  t.teardown(() => stopBackground(false))

  // Item 9: whatever the ports, `npm start`'s example services are all healthy (checked before
  // its agent is stopped: later background blocks start agents of their own).
  const services = async (): Promise<ServicesView> =>
    (await fetch(`http://127.0.0.1:${http}/api/services.json`)).json() as Promise<ServicesView>
  const checkExamples = async (): Promise<void> => {
    examplesChecked = true
    const healthy = await until(async () => {
      const s = await services()
      return s.services.length > 0 && s.services.every((x) => x.instances.length > 0 && x.instances.every((i) => i.status === 'alive'))
    }, 60_000)
    const now = await services()
    t.ok(
      healthy,
      `every example service is healthy on non-default ports: ${now.services.map((s) => `${s.name} ${s.instances.map((i) => i.status).join(',')}`).join('; ')}`,
    )
    t.same(now.services.map((s) => s.name).sort(), ['shoal-debug', 'shoal-gossip', 'shoal-xds'])
  }

  /**
   * Starts one block in `sh -e` as its own process group, written down like a lab
   * (test/lib/labs.ts): when tap kills this file at its timeout, the reaper kills the group (an
   * agent a block started would otherwise outlive the suite).
   */
  const startBlock = (b: Block): ChildProcess => {
    const child = spawn('sh', ['-e', '-c', withPort(b.text)], { cwd: copy, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    const lab = LabManifest.write(`README.md:${b.line} (pid ${child.pid})`, [{ killGroup: child.pid!, start: startTime(child.pid!) }], [])
    child.once('close', () => lab.undo())
    return child
  }

  /** Runs one block to its end (at most 5 minutes); resolves with its exit code and output. */
  const runBlock = (b: Block): Promise<{ code: number | null; out: string }> => {
    const child = startBlock(b)
    let out = ''
    child.stdout!.on('data', (d) => (out += d))
    child.stderr!.on('data', (d) => (out += d))
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 300_000)
    return new Promise((resolve) =>
      child.on('close', (code) => {
        clearTimeout(timer)
        resolve({ code, out })
      }),
    )
  }

  // Runnable blocks are independent of each other: those between two background blocks run
  // three at a time (each block's own commands in order), which keeps this file well inside
  // tap's per-file timeout on a loaded machine.
  const runnable = blocks.filter((x) => x.marker === 'runnable' || x.marker === 'background')
  for (let i = 0; i < runnable.length;) {
    const b = runnable[i]!
    if (b.marker === 'background') {
      const where = `README.md:${b.line}`
      await stopBackground(true)
      const child = startBlock(b)
      let out = ''
      child.stdout!.on('data', (d) => (out += d))
      child.stderr!.on('data', (d) => (out += d))
      const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
      background = { block: b, child, exited, out: () => out }
      const up = await until(async () => {
        if (child.exitCode !== null) return true
        return fetch(`http://127.0.0.1:${http}/healthz`).then(
          (r) => r.ok,
          () => false,
        )
      }, 240_000)
      t.ok(up && child.exitCode === null, `${where}: runs in the background and its agent answers /healthz`, { output: out.slice(-3000) })
      i++
      continue
    }
    let end = i
    while (end < runnable.length && runnable[end]!.marker === 'runnable') end++
    const batch = runnable.slice(i, end)
    const results: Array<{ code: number | null; out: string }> = []
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < batch.length) {
        const k = next++
        results[k] = await runBlock(batch[k]!)
      }
    }
    await Promise.all([worker(), worker(), worker()])
    batch.forEach((blk, k) => {
      const { code, out } = results[k]!
      const first = blk.text.split('\n')[0]
      t.equal(
        code,
        0,
        `README.md:${blk.line}: ${first}${blk.text.includes('\n') ? ' ...' : ''}`,
        code === 0 ? {} : { output: out.slice(-3000) },
      )
    })
    if (background) t.equal(background.child.exitCode, null, 'the background agent still runs')
    i = end
  }

  t.ok(background, 'a background block started an agent')
  await stopBackground(true)
  t.ok(examplesChecked, "npm start's example services were checked")
})
