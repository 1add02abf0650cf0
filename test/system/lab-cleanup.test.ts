// A test process killed in the middle of a lab leaves nothing behind: not on SIGTERM or SIGINT
// (its signal hook undoes the lab), not on SIGKILL, which no handler sees (its reaper, a
// detached process holding a pipe from it, notices the death and runs the lab's manifest).
// Before, a netns lab relied on its own signal hook only and a private dockerd on the test's
// teardown: a killed worker left the engine, its containers, mounts and bridge running.
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { manifests } from '../../scripts/clean-labs.mjs'
import { REPO_ROOT } from '../lib/cli.js'
import { unavailable } from './dockerd.js'
import { netnsUnavailable, sleep } from './netns.js'

// tsx, as the tap files run (ts-node took several seconds per worker start).
const TS_LOADER = 'tsx'

interface Made {
  prefix?: string
  bridge: string
  dir: string
  marker: string
  skip?: string
}

function commandLines(): string[] {
  const out: string[] = []
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      out.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '))
    } catch {
      // exited while we looked
    }
  }
  return out
}

const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' }).stdout ?? ''

/** What of the worker's lab is still on the machine. */
function leftovers(made: Made, pid: number): string[] {
  const out: string[] = []
  const name = made.prefix ?? made.bridge
  if (sh('ip', ['netns', 'list']).includes(name)) out.push(`netns ${name}-*`)
  if (sh('ip', ['-o', 'link']).includes(name)) out.push(`links ${name}*`)
  if (sh('iptables', ['-w', '-S', 'FORWARD']).includes(name)) out.push(`FORWARD rule on ${name}`)
  if (existsSync(made.dir)) out.push(`folder ${made.dir}`)
  if (readFileSync('/proc/self/mountinfo', 'utf8').includes(made.dir)) out.push(`mounts under ${made.dir}`)
  const cmds = commandLines()
  if (cmds.some((c) => c.includes(made.dir))) out.push(`processes naming ${made.dir}`)
  if (cmds.some((c) => c.trim() === `sleep ${made.marker}`)) out.push(`the lab's process (sleep ${made.marker})`)
  if (cmds.some((c) => c.includes(`--reap ${pid}`))) out.push('the reaper')
  if (manifests().some((m) => m.owner === pid)) out.push('its manifest')
  return out
}

async function killMidLab(t: Test, kind: 'netns' | 'dockerd', signal: NodeJS.Signals): Promise<void> {
  const child = spawn(process.execPath, ['--import', TS_LOADER, 'test/system/lab-worker.ts', kind], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve)
    child.once('exit', (code) => reject(new Error(`the worker exited (${code}) before its lab was up`)))
  })
  const made = JSON.parse(line) as Made
  if (made.skip) {
    t.comment(`skipped: ${made.skip}`)
    return
  }
  const pid = child.pid!
  t.ok(leftovers(made, pid).length >= 4, `the lab is up: ${leftovers(made, pid).join(', ')}`)
  child.kill(signal)
  await exited
  // Cleaning a dockerd takes seconds (its containers, then a graceful stop), more on a loaded machine.
  const end = Date.now() + 120_000
  while (leftovers(made, pid).length > 0 && Date.now() < end) await sleep(250)
  t.same(leftovers(made, pid), [], `${signal}: nothing of the ${kind} lab is left`)
}

const netnsWhy = netnsUnavailable()
for (const signal of ['SIGTERM', 'SIGINT', 'SIGKILL'] as const)
  t.test(`a netns lab, its worker killed with ${signal}`, { skip: netnsWhy ?? false }, (t) => killMidLab(t, 'netns', signal))

const dockerWhy = unavailable()
for (const signal of ['SIGTERM', 'SIGKILL'] as const)
  t.test(`a private dockerd with a container, its worker killed with ${signal}`, { skip: dockerWhy ?? false }, (t) =>
    killMidLab(t, 'dockerd', signal),
  )
