// Issue "Say why", item 3: every subcommand prints its usage with --help and exits 0; `shoal help`
// and `shoal --help` list them all. Through the built dist/cli.js, as a user runs it. A command
// added to the CLI without a row here fails the first test.
import t from 'tap'
import { shoal } from './lib/cli.js'
import { unusedPort } from './lib/listen.js'

/** Each row of `shoal help` (command and its arguments), and the first line of that command's usage. */
const ROWS: Array<[row: string, command: string, first: string]> = [
  ['agent', 'agent', 'Usage: shoal agent [flags]'],
  ['members', 'members', 'Usage: shoal members [flags]'],
  ['services [NAME]', 'services', 'Usage: shoal services [NAME] [flags]'],
  ['state', 'state', 'Usage: shoal state [flags]'],
  ['watch', 'watch', 'Usage: shoal watch [flags]'],
  ['drain ID', 'drain', 'Usage: shoal drain ID [flags]'],
  ['undrain ID', 'undrain', 'Usage: shoal undrain ID [flags]'],
  ['keyring list', 'keyring', 'Usage: shoal keyring list [flags]'],
  ['envoy-bootstrap', 'envoy-bootstrap', 'Usage: shoal envoy-bootstrap [flags]'],
  ['grpc-bootstrap', 'grpc-bootstrap', 'Usage: shoal grpc-bootstrap [flags]'],
  ['ca init', 'ca init', 'Usage: shoal ca init [flags]'],
  ['ca intermediate', 'ca intermediate', 'Usage: shoal ca intermediate [flags]'],
  ['ca inspect FILE', 'ca inspect', 'Usage: shoal ca inspect FILE [flags]'],
  ['keygen', 'keygen', 'Usage: shoal keygen [flags]'],
  ['version', 'version', 'Usage: shoal version [flags]'],
]

/** The rows of an overview (`shoal help`): each command with its arguments, in order. */
function listed(overview: string): string[] {
  const section = overview.split('Commands:\n')[1]?.split('\n\n')[0] ?? ''
  return section
    .split('\n')
    .map((l) => /^ {2}(\S+(?: \S+)*?) {2,}/.exec(l)?.[1])
    .filter((c): c is string => c !== undefined)
}

t.test('`shoal help` and `shoal --help` list every command, exit 0', async (t) => {
  for (const args of [['help'], ['--help'], ['-h']]) {
    const r = await shoal(args).done
    t.equal(r.code, 0, `shoal ${args.join(' ')}: exit 0`)
    t.equal(r.stdout.split('\n')[0], 'Usage: shoal <command> [flags]')
    t.same(
      listed(r.stdout),
      ROWS.map(([row]) => row),
      `shoal ${args.join(' ')} lists every command`,
    )
    t.equal(r.stderr, '')
  }
})

/** Runs every argv through the CLI, four at a time (each is a node start). */
async function runAll(argvs: string[][]): Promise<Array<Awaited<ReturnType<typeof shoal>['done']>>> {
  const out: Array<Awaited<ReturnType<typeof shoal>['done']>> = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < argvs.length) {
      const i = next++
      out[i] = await shoal(argvs[i]!).done
    }
  }
  await Promise.all([worker(), worker(), worker(), worker()])
  return out
}

t.test('every command: --help and `shoal help CMD` print its usage, exit 0', async (t) => {
  // -h once (the flag parser is shared); `shoal help CMD` for every other command.
  const cases = ROWS.flatMap(([, cmd, first]) => {
    const words = cmd.split(' ')
    return [[...words, '--help'], cmd === 'agent' ? [cmd, '-h'] : ['help', ...words]].map((args) => ({ args, first }))
  })
  const results = await runAll(cases.map((c) => c.args))
  cases.forEach(({ args, first }, i) => {
    const r = results[i]!
    const what = `shoal ${args.join(' ')}`
    t.equal(r.code, 0, `${what}: exit 0`)
    t.equal(r.stdout.split('\n')[0], first, `${what}: ${first}`)
    t.match(r.stdout, /\n {2}--help, -h +print this help\n/, `${what}: lists its flags`)
    t.equal(r.stderr, '', `${what}: nothing on stderr`)
  })
})

t.test('a group of commands (shoal ca): --help and help list its commands, exit 0', async (t) => {
  for (const args of [
    ['ca', '--help'],
    ['help', 'ca'],
  ]) {
    const r = await shoal(args).done
    t.equal(r.code, 0, `shoal ${args.join(' ')}: exit 0`)
    t.same(
      listed(r.stdout),
      ROWS.map(([row]) => row).filter((row) => row.startsWith('ca ')),
    )
  }
})

t.test('an unknown flag points at --help: one line, exit 2', async (t) => {
  const r = await shoal(['members', '--bogus']).done
  t.equal(r.code, 2)
  t.equal(r.stderr, 'shoal members: unknown flag --bogus; see `shoal members --help`\n')
})

t.test('--token is offered, and taken, only by the commands that send it (drain, undrain)', async (t) => {
  const [services, drain, withToken] = await runAll([
    ['services', '--help'],
    ['drain', '--help'],
    ['services', '--token', 'x'],
  ])
  t.notMatch(services!.stdout, /--token/, 'shoal services --help does not list --token')
  t.match(drain!.stdout, /\n {2}--token TOKEN +bearer token/, 'shoal drain --help does')
  t.match(drain!.stdout, /\n {2}--reason TEXT +why/, 'and --reason')
  t.equal(withToken!.code, 2, 'shoal services --token is an unknown flag')
  t.match(withToken!.stderr, /--token/)
  // And the commands without it still run (an agent that refuses: a connection error, no crash).
  const refused = await unusedPort()
  const [members] = await runAll([['members', '--agent', `127.0.0.1:${refused}`]])
  t.notMatch(members!.stderr, /TypeError/, 'shoal members runs without a --token flag')
  t.match(members!.stderr, new RegExp(`127\\.0\\.0\\.1:${refused}`), 'and names the agent it could not reach')
})

// New user, item 5: the variable rule under the flags describes the rows above it; a footer
// that points at "env" notes when no row has one sends the reader looking for nothing.
t.test('the usage footer states the variable rule the rows show', async (t) => {
  const { usage } = await import('../src/flags.js')
  const plain = usage('x', 's', { a: { type: 'string', help: 'a' }, 'b-c': { type: 'string', help: 'b', value: 'N' } })
  t.match(plain, /\nEvery flag is also read from SHOAL_<FLAG>/, 'no row has a note: every flag reads its variable')
  t.notMatch(plain, /env/, 'and no row carries a note')
  const mixed = usage('x', 's', {
    a: { type: 'string', help: 'a' },
    b: { type: 'string', help: 'b', env: 'OTHER_B' },
    c: { type: 'string', help: 'c', env: false },
  })
  t.match(mixed, /--b +b \(env OTHER_B\)/, 'a row reading another variable says which')
  t.match(mixed, /--c +c \(no env\)/, 'a row reading none says so')
  t.match(mixed, /unless its line says "env OTHER" or "no env"/)
  t.equal(usage('x', 's', { c: { type: 'string', help: 'c', env: false } }).includes('SHOAL_'), false, 'no flag reads a variable: no rule')
  const agent = (await shoal(['agent', '--help']).done).stdout
  t.match(agent, /\nEvery flag is also read from SHOAL_<FLAG>/, '`shoal agent --help`: every flag, as README says')
  // New user: `SHOAL_HEAP=` started a lean agent without a word while `--heap=` is an error;
  // that an empty variable counts as unset (parseFlags) is now said where the rule is.
  for (const text of [agent, plain, mixed]) t.match(text, /a flag wins over its variable, and an empty variable counts as unset\./)
})

// New user, item 6: a --tls-dir that does not exist was taken silently; the client reads it
// only when it runs, so the bootstrap is still printed, with a warning on stderr.
t.test('grpc-bootstrap with a missing --tls-dir warns, still prints the bootstrap', async (t) => {
  const missing = `/tmp/shoal-no-such-tls-dir-${process.pid}`
  const r = await shoal(['grpc-bootstrap', '--service', 'web', '--tls-dir', missing]).done
  t.equal(r.code, 0)
  t.match(r.stderr, new RegExp(`warning: --tls-dir ${missing} does not exist; `))
  t.match(JSON.parse(r.stdout), { certificate_providers: {} }, 'the bootstrap is printed')
  const present = await shoal(['grpc-bootstrap', '--service', 'web', '--tls-dir', '/tmp']).done
  t.equal(present.stderr, '', 'an existing directory: no warning')
})
