// `npm run demo` as a user runs it (scripts/demo.mjs over the built dist/), shortened: every
// host answers the grpc-js-xds client, traffic moves off the drained instance and the stopped
// agent, the process exits 0 by itself, and nothing is left behind (no temp files, no
// listening ports).
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureBuilt, REPO_ROOT } from './system/netns.js'

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

t.test('npm run demo: three hosts answer, traffic moves, clean exit', async (t) => {
  const built = ensureBuilt()
  if (built) throw new Error(built)
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-demo-test-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

  const child = spawn(process.execPath, [join(REPO_ROOT, 'scripts', 'demo.mjs')], {
    cwd: REPO_ROOT,
    env: { ...process.env, SHOAL_DEMO_SECONDS: '8', TMPDIR: tmp },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
  clearTimeout(killer)
  t.equal(code, 0, `the demo exits 0 by itself${code === 0 ? '' : `\n${out}\n${err}`}`)

  const uiPorts = [...out.matchAll(/^\s+(node-[abc])\s+UI http:\/\/127\.0\.0\.1:(\d+)\//gm)].map((m) => [m[1], Number(m[2])] as const)
  t.same(
    uiPorts.map(([n]) => n),
    ['node-a', 'node-b', 'node-c'],
    'prints the UI URL of each agent',
  )

  const lines = out.split('\n')
  const answers = lines.map((l) => /answered by (node-[abc])$/.exec(l)?.[1]).filter((x): x is string => !!x)
  t.same([...new Set(answers)].sort(), ['node-a', 'node-b', 'node-c'], `all three hosts answered (${answers.length} calls)`)
  t.ok(answers.length >= 25, 'the client called about every 200 ms')
  t.same(
    lines.filter((l) => /failed:/.test(l)),
    [],
    'no call failed',
  )

  // After "stop node-c" no call reaches node-c; after "drain node-b" and before "undrain", none reaches node-b.
  const idx = (re: RegExp) => lines.findIndex((l) => re.test(l))
  const drain = idx(/--- drain node-b/)
  const stopC = idx(/--- stop node-c/)
  const undrain = idx(/--- undrain node-b/)
  t.ok(drain > 0 && stopC > drain && undrain > stopC, 'drain, stop and undrain happen in that order')
  const who = (from: number, to: number) =>
    new Set(
      lines
        .slice(from, to)
        .map((l) => /answered by (node-[abc])$/.exec(l)?.[1])
        .filter(Boolean),
    )
  // One in-flight pick may still land on the old set right after a change.
  const afterStop = lines.slice(stopC + 2).filter((l) => /answered by node-c$/.test(l))
  t.same(afterStop, [], 'no call reaches node-c after its agent stopped')
  t.notOk(who(drain + 3, undrain).has('node-b'), 'no call reaches node-b while it is drained')
  t.match(out, /answers per phase:/, 'prints a summary per phase')

  t.same(readdirSync(tmp), [], 'no temporary files left behind')
  for (const [node, port] of uiPorts) t.notOk(await listening(port), `${node}'s UI port is closed`)
})
