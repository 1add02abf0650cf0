// Issue "Say why", item 4: a listener that cannot bind stops `shoal agent` with one line naming
// the flag and the address, exit 2, and nothing else on stderr (no stack, no grpc-js line), for
// each of --bind (TCP or UDP taken), --xds and --http, and no log line before it claiming a
// listener runs (the agent says where it listens once, in "shoal agent started", when all are
// bound). Through the built dist/cli.js.
import { createSocket } from 'node:dgram'
import { createServer } from 'node:net'
import t, { type Test } from 'tap'
import { shoal } from './lib/cli.js'

/** A TCP port held by this test until its teardown. */
async function busyTcp(t: Test): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => s.close(() => r())))
  return (s.address() as { port: number }).port
}

/** A UDP port held by this test until its teardown (its TCP twin is free). */
async function busyUdp(t: Test): Promise<number> {
  const s = createSocket('udp4')
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => s.close(() => r())))
  return s.address().port
}

const others = (flag: string): string[] => [
  ...['--bind', '--xds', '--http'].filter((f) => f !== flag).flatMap((f) => [f, '127.0.0.1:0']),
  '--dns',
  'off',
]

for (const [flag, busy] of [
  ['--bind', busyTcp],
  ['--bind', busyUdp],
  ['--xds', busyTcp],
  ['--http', busyTcp],
] as const) {
  t.test(`${flag} on a busy ${busy === busyUdp ? 'UDP' : 'TCP'} port: one line naming ${flag}, exit 2`, async (t) => {
    const port = await busy(t)
    const r = await shoal([
      'agent',
      '--node',
      'busy',
      '--discovery',
      'none',
      ...others(flag),
      flag,
      `127.0.0.1:${port}`,
      '--log-format',
      'json',
    ]).done
    t.equal(r.code, 2)
    t.equal(
      r.stderr,
      `shoal: ${flag}: cannot listen on 127.0.0.1:${port}: the address is already in use (another agent on this host? give each its own ${flag})\n`,
    )
    t.notMatch(r.stdout, /"level":50|stack|Error:/, 'no error line or stack in the log either')
    t.notMatch(
      r.stdout,
      /listening|"level":30,[^\n]*"msg":"[^"]*(bound|started)/,
      'no line claims a listener runs: the agent never started',
    )
  })
}
