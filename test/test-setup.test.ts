// test/lib/test-setup.mjs (a .taprc node-arg): a process a test starts runs without tap's
// processinfo hook, as a user's would (it cost 0.35 s of CPU per start, and it grew the young
// generation of every agent the --heap test measured); other NODE_OPTIONS entries are kept.
import t from 'tap'
import { spawnSync } from 'node:child_process'

t.test("a test's child starts without tap's processinfo hook", async (t) => {
  const r = spawnSync(process.execPath, ['-e', 'console.log(JSON.stringify([process.env.NODE_OPTIONS ?? "", process.execArgv]))'], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-http-header-size=20000`.trim() },
  })
  t.equal(r.status, 0, r.stderr)
  const [nodeOptions, execArgv] = JSON.parse(r.stdout) as [string, string[]]
  t.notMatch(nodeOptions, /processinfo/, `NODE_OPTIONS: ${nodeOptions}`)
  t.notMatch(execArgv.join(' '), /processinfo/)
  t.match(nodeOptions, /--max-http-header-size=20000/, 'other options kept')
})
