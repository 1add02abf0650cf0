// A detached process group written down as a lab ({ killGroup }, scripts/clean-labs.mjs) goes
// when its test process is killed by a signal that skips teardowns, and what is left of the group
// after its leader exited goes too (test/readme-commands.test.ts runs each README block this way:
// an agent a block started outlived the suite when tap killed the file at its timeout).
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { waitFor } from './lib/wait.js'

const labs = fileURLToPath(new URL('./lib/labs.ts', import.meta.url))
const clean = fileURLToPath(new URL('../scripts/clean-labs.mjs', import.meta.url))

/** The pids of every live process in group `pgid` (from /proc). */
function groupMembers(pgid: number): number[] {
  const pids: number[] = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') pids.push(Number(d))
    } catch {
      // gone
    }
  }
  return pids
}

/**
 * A test process that starts `sh -c SCRIPT` as its own group, writes it down as a lab, prints
 * the group id, and waits; `undoOnClose` undoes the lab when the shell exits, as readme-commands does.
 */
async function testProcess(t: Test, script: string, undoOnClose: boolean) {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `import { spawn } from 'node:child_process'
const { LabManifest } = await import(${JSON.stringify(labs)})
const { startTime } = await import(${JSON.stringify(clean)})
const sh = spawn('sh', ['-c', ${JSON.stringify(script)}], { stdio: 'ignore', detached: true })
const lab = LabManifest.write('group ' + sh.pid, [{ killGroup: sh.pid, start: startTime(sh.pid) }], [])
${undoOnClose ? "sh.once('close', () => lab.undo())" : ''}
process.stdout.write(sh.pid + '\\n')
setInterval(() => {}, 1000)`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  t.teardown(() => child.kill('SIGKILL'))
  const pgid = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())))
    child.once('exit', (code) => reject(new Error(`the test process exited (${code}) before its group started`)))
  })
  t.teardown(() => {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {
      // gone
    }
  })
  return { child, pgid }
}

t.test('SIGTERM to the test process: its detached process group is killed', async (t) => {
  const { child, pgid } = await testProcess(t, 'sleep 300 & sleep 300; wait', false)
  await waitFor('both sleeps', () => groupMembers(pgid).length >= 3, 30_000)
  t.ok(groupMembers(pgid).length >= 3, `the group runs: sh and two sleeps (${groupMembers(pgid).join(', ')})`)
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
  const gone = await waitFor('the group to go', () => groupMembers(pgid).length === 0, 60_000).then(
    () => true,
    () => false,
  )
  t.ok(gone, `the whole group is gone once its test process is (left: ${groupMembers(pgid).join(', ') || 'none'})`)
})

t.test('a group whose leader exited: the lab kills what it left running', async (t) => {
  // The shell exits at once and leaves its sleep in the group, as a README block that starts a
  // process in the background would.
  const { pgid } = await testProcess(t, 'sleep 300 >/dev/null 2>&1 &', true)
  const gone = await waitFor(
    'the leader and the sleep to go',
    () => !existsSync(`/proc/${pgid}`) && groupMembers(pgid).length === 0,
    60_000,
  ).then(
    () => true,
    () => false,
  )
  t.ok(gone, `the leader exited and the lab's undo killed the sleep it left (left: ${groupMembers(pgid).join(', ') || 'none'})`)
})
