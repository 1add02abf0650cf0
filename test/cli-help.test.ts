// Issue "Say why", item 3: every subcommand prints its usage with --help and exits 0; `shoal help`
// and `shoal --help` list them all. Through the built dist/cli.js, as a user runs it. A command
// added to the CLI without a row here fails the first test.
import t from 'tap'
import { shoal } from './lib/cli.js'

/** Each command and the first line of its usage. */
const FIRST_LINES: Record<string, string> = {
  agent: 'Usage: shoal agent [flags]',
  members: 'Usage: shoal members [flags]',
  services: 'Usage: shoal services [NAME] [flags]',
  state: 'Usage: shoal state [flags]',
  watch: 'Usage: shoal watch [flags]',
  drain: 'Usage: shoal drain ID [flags]',
  undrain: 'Usage: shoal undrain ID [flags]',
  keyring: 'Usage: shoal keyring list [flags]',
  'envoy-bootstrap': 'Usage: shoal envoy-bootstrap [flags]',
  'grpc-bootstrap': 'Usage: shoal grpc-bootstrap [flags]',
  keygen: 'Usage: shoal keygen [flags]',
  version: 'Usage: shoal version [flags]',
}

/** The command names of an overview (`shoal help`), in order. */
function listed(overview: string): string[] {
  const section = overview.split('Commands:\n')[1]?.split('\n\n')[0] ?? ''
  return section
    .split('\n')
    .map((l) => /^ {2}(\S+)/.exec(l)?.[1])
    .filter((c): c is string => c !== undefined)
}

t.test('`shoal help` and `shoal --help` list every command, exit 0', async (t) => {
  for (const args of [['help'], ['--help'], ['-h']]) {
    const r = await shoal(args).done
    t.equal(r.code, 0, `shoal ${args.join(' ')}: exit 0`)
    t.equal(r.stdout.split('\n')[0], 'Usage: shoal <command> [flags]')
    t.same(listed(r.stdout), Object.keys(FIRST_LINES), `shoal ${args.join(' ')} lists every command`)
    t.equal(r.stderr, '')
  }
})

for (const [cmd, first] of Object.entries(FIRST_LINES)) {
  t.test(`shoal ${cmd} --help: its usage, exit 0`, async (t) => {
    // -h once (the flag parser is shared); `shoal help CMD` for every other command.
    for (const args of [[cmd, '--help'], cmd === 'agent' ? [cmd, '-h'] : ['help', cmd]]) {
      const r = await shoal(args).done
      t.equal(r.code, 0, `shoal ${args.join(' ')}: exit 0`)
      t.equal(r.stdout.split('\n')[0], first)
      t.match(r.stdout, /\n {2}--help, -h +print this help\n/, 'lists its flags')
      t.equal(r.stderr, '', 'nothing on stderr')
    }
  })
}

t.test('an unknown flag points at --help: one line, exit 2', async (t) => {
  const r = await shoal(['members', '--bogus']).done
  t.equal(r.code, 2)
  t.equal(r.stderr, 'shoal members: unknown flag --bogus; see `shoal members --help`\n')
})
