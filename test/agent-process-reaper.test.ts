// A CLI agent a test started goes away when that test process is killed, even by a signal that
// skips its teardowns (the suite stopped with SIGTERM): test/lib/agent-process.ts writes each one
// down like a lab, and the lab reaper kills it (by pid, checked against its start time).
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { waitFor } from './lib/wait.js'

const lib = fileURLToPath(new URL('./lib/agent-process.ts', import.meta.url))
// tsx, as the tap files run.
const loader = 'tsx'

t.test('SIGTERM to the test process: its CLI agent is stopped too', async (t) => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      loader,
      '--input-type=module',
      '-e',
      `const { cliAgent } = await import(${JSON.stringify(lib)})
const a = await cliAgent({ teardown() {} }, ['--node', 'orphan', '--discovery', 'none', '--dns', 'off'])
process.stdout.write(a.pid + '\\n')
setInterval(() => {}, 1000)`,
    ],
    // Without npm_command: under npm an agent leaves when its parent goes (run.ts watchLauncher),
    // which would hide the reaper; an old release's agent (the compat test's) does not.
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, npm_command: '' } },
  )
  let agent = 0
  t.teardown(() => {
    child.kill('SIGKILL')
    if (agent && existsSync(`/proc/${agent}`)) process.kill(agent, 'SIGKILL')
  })
  agent = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())))
    child.once('exit', (code) => reject(new Error(`the test process exited (${code}) before its agent started`)))
  })
  t.ok(agent > 0 && existsSync(`/proc/${agent}`), `the agent runs (pid ${agent})`)
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
  const gone = await waitFor('the agent to go', () => !existsSync(`/proc/${agent}`), 60_000).then(
    () => true,
    () => false,
  )
  t.ok(gone, 'the agent is gone once its test process is')
})
