// Issue "Say why", item 11: JSON log lines for machines, human-readable lines for people.
// `--log-format json|pretty` chooses; without it a terminal gets pretty lines and anything else
// JSON. The terminal is a real pseudo-terminal made by util-linux `script`. Built dist/cli.js.
import { spawn, spawnSync } from 'node:child_process'
import t, { type Test } from 'tap'
import { until } from './lib/gossip-net.js'
import { CLI, REPO_ROOT, ensureBuilt, shoal } from './lib/cli.js'

const agentArgs = [
  'agent',
  '--node',
  'logs',
  '--discovery',
  'none',
  '--bind',
  '127.0.0.1:0',
  '--xds',
  '127.0.0.1:0',
  '--http',
  '127.0.0.1:0',
  '--dns',
  'off',
]
const STARTED = /shoal agent started/

/** Runs the agent until it has logged its start, then stops it with SIGTERM; resolves with stdout. */
async function startedLine(t: Test, extra: string[]): Promise<string> {
  const run = shoal([...agentArgs, ...extra])
  t.teardown(() => {
    if (run.child.exitCode === null) run.child.kill('SIGKILL')
  })
  let out = ''
  run.child.stdout!.on('data', (d) => (out += d))
  t.ok(await until(() => STARTED.test(out), 60_000), 'started')
  run.child.kill('SIGTERM')
  const r = await run.done
  t.equal(r.code, 0, 'stopped by SIGTERM, exit 0')
  return r.stdout.split('\n').find((l) => STARTED.test(l)) ?? ''
}

const PRETTY =
  /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: shoal agent started \{"node":"logs","gossip":"127\.0\.0\.1:\d+","ui":"http:\/\/127\.0\.0\.1:\d+\/","xds":"127\.0\.0\.1:\d+"\}$/

t.test('--log-format json: one JSON object per line', async (t) => {
  const line = await startedLine(t, ['--log-format', 'json'])
  const o = JSON.parse(line) as Record<string, unknown>
  t.match(o, { level: 30, msg: 'shoal agent started', node: 'logs', gossip: /^127\.0\.0\.1:\d+$/, ui: /^http:\/\/127\.0\.0\.1:\d+\/$/ })
  t.type(o.time, 'number')
})

t.test('--log-format pretty: time, level, message, then the fields', async (t) => {
  t.match(await startedLine(t, ['--log-format', 'pretty']), PRETTY)
})

t.test('no flag, stdout not a terminal: JSON', async (t) => {
  const line = await startedLine(t, [])
  t.doesNotThrow(() => JSON.parse(line), line)
})

t.test('a bad value: one line naming the flag, exit 2', async (t) => {
  const r = await shoal([...agentArgs, '--log-format', 'xml']).done
  t.equal(r.code, 2)
  t.equal(r.stderr, 'shoal: --log-format: "xml" is not json or pretty\n')
})

const noScript = spawnSync('script', ['--version']).status === 0 ? undefined : 'util-linux `script` is not installed'
t.test('no flag, stdout a terminal: pretty, coloured', { skip: noScript ?? ensureBuilt() ?? false }, async (t) => {
  // `exec` makes node the direct child of script, so the test can stop it by its own pid.
  const command = ['exec', process.execPath, CLI, ...agentArgs].map((a) => `'${a}'`).join(' ')
  const script = spawn('script', ['-q', '-c', command, '/dev/null'], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  script.stdout.on('data', (d) => (out += d))
  const exited = new Promise<void>((r) => script.on('close', () => r()))
  const agentPid = (): number | undefined => {
    const r = spawnSync('pgrep', ['-P', String(script.pid)], { encoding: 'utf8' })
    return Number(r.stdout.trim().split('\n')[0]) || undefined
  }
  t.teardown(async () => {
    const pid = agentPid()
    if (pid) process.kill(pid, 'SIGKILL')
    if (script.exitCode === null) script.kill('SIGKILL')
    await exited
  })
  t.ok(await until(() => STARTED.test(out), 60_000), 'started on a terminal')
  const line = out.split(/\r?\n/).find((l) => STARTED.test(l)) ?? ''
  const esc = (code: number) => `\u001b\\[${code}m`
  t.match(
    line,
    new RegExp(
      `^\\[\\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\] ${esc(32)}INFO${esc(39)}: ${esc(36)}shoal agent started${esc(39)} ${esc(90)}\\{"node":"logs",`,
    ),
    'green level, cyan message, grey fields',
  )
  const pid = agentPid()
  t.ok(pid, "the agent runs as script's child")
  if (pid) process.kill(pid, 'SIGTERM')
  await exited
})
