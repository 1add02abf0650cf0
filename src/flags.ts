/**
 * Command-line flags from one table per command: the table drives parsing (node:util
 * parseArgs), the environment variable of each flag (`SHOAL_<FLAG>`, upper case, dashes as
 * underscores; a flag wins over its variable), and the usage text, so help cannot drift
 * from the parser.
 *
 * @example
 *   const FLAGS = { node: { type: 'string', value: 'NAME', default: 'hostname', help: 'unique node name' } } satisfies FlagTable
 *   const parsed = parseFlags('shoal agent', FLAGS, process.argv.slice(3), process.env)
 *   if (parsed.help) process.stdout.write(usage('shoal agent', 'run the agent', FLAGS))
 *   parsed.get('node') // { value: 'web-1', where: '--node' } or { value: 'x', where: 'SHOAL_NODE' } or undefined
 */
import { parseArgs } from 'node:util'
import { ShoalError } from './errors.js'

/** One flag. */
export interface FlagSpec {
  /** A `boolean` flag takes no value (`--allow-external-checks`); a `string` flag takes one. */
  type: 'string' | 'boolean'
  /** The value's placeholder in the usage text (`HOST:PORT`, `NAME`). */
  value?: string
  /** The default as the usage text shows it; omit when there is none. */
  default?: string
  /** One line: what the flag does. */
  help: string
  /** Read `SHOAL_<FLAG>` when the flag is absent (default true), or the variable named here, or none (false). */
  env?: boolean | string
}

export type FlagTable = Record<string, FlagSpec>

/** A flag's value and where it came from (`--node` or `SHOAL_NODE`), for error messages. */
export interface FlagValue {
  value: string
  where: string
}

export interface ParsedFlags<T extends FlagTable> {
  /** `--help` or `-h` was given: print the usage and exit 0. */
  help: boolean
  positionals: string[]
  /** The value of a flag, else of its variable, else undefined. Booleans read 'true'/'false'. */
  get(flag: keyof T & string): FlagValue | undefined
}

/** `node` -> `SHOAL_NODE`, `key-file` -> `SHOAL_KEY_FILE`. */
export function envName(flag: string): string {
  return 'SHOAL_' + flag.toUpperCase().replace(/-/g, '_')
}

/** The environment variable a flag reads, or undefined when it reads none. */
export function variableOf(flag: string, spec: FlagSpec): string | undefined {
  if (spec.env === false) return undefined
  return typeof spec.env === 'string' ? spec.env : envName(flag)
}

/**
 * Parses `argv` against `table`. Throws SHOAL_ERR_CONFIG naming the unknown flag or the
 * missing value, and the command's `--help`.
 */
export function parseFlags<T extends FlagTable>(
  command: string,
  table: T,
  argv: string[],
  env: NodeJS.ProcessEnv = {},
  opts: { positionals?: boolean } = {},
): ParsedFlags<T> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } }
  for (const [name, spec] of Object.entries(table)) options[name] = { type: spec.type }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: opts.positionals === true })
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_CONFIG', `${command}: ${explain(err as Error & { code?: string })}; see \`${command} --help\``)
  }
  const values = parsed.values as Record<string, string | boolean | undefined>
  return {
    help: values.help === true,
    positionals: parsed.positionals,
    get(flag) {
      const v = values[flag]
      if (v !== undefined) return { value: typeof v === 'boolean' ? String(v) : v, where: `--${flag}` }
      const name = variableOf(flag, table[flag]!)
      if (name === undefined) return undefined
      const e = env[name]
      if (e !== undefined && e !== '') return { value: e, where: name }
      return undefined
    },
  }
}

function explain(err: Error & { code?: string }): string {
  const msg = err.message.split('\n')[0]!
  const flag = /'(-[^']*)'/.exec(msg)?.[1]
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) return `unknown flag ${flag.split(' ')[0]}`
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && flag) return `${flag.split(' ')[0]} needs a value`
  if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument ${/'([^']*)'/.exec(msg)?.[1] ?? ''}`.trim()
  return msg
}

/**
 * The usage text of a command: its synopsis, one line per flag with its default, and the
 * environment variable rule when the flags read variables.
 */
export function usage(command: string, summary: string, table: FlagTable, positional = ''): string {
  const generic = Object.entries(table).some(([n, f]) => variableOf(n, f) === envName(n))
  const rows = Object.entries(table).map(([name, f]) => {
    const v = variableOf(name, f)
    const envNote = v === undefined ? (generic ? 'no env' : '') : v !== envName(name) ? `env ${v}` : ''
    const notes = [f.default ? `default: ${f.default}` : '', envNote].filter(Boolean)
    return [`--${name}${f.value ? ' ' + f.value : ''}`, f.help + (notes.length ? ` (${notes.join('; ')})` : '')]
  })
  rows.push(['--help, -h', 'print this help'])
  const width = Math.max(...rows.map((r) => r[0]!.length)) + 2
  const noted = Object.entries(table).some(([n, f]) => variableOf(n, f) !== envName(n))
  // The rule names what a reader sees: with no flag noted, every flag reads its SHOAL_ variable.
  const env = !generic
    ? ''
    : noted
      ? '\nA flag is also read from SHOAL_<FLAG> (upper case, dashes as underscores) unless its line says "env OTHER" or "no env"; a flag wins over its variable, and an empty variable counts as unset.\n'
      : '\nEvery flag is also read from SHOAL_<FLAG> (upper case, dashes as underscores); a flag wins over its variable, and an empty variable counts as unset.\n'
  const synopsis = `${command}${positional ? ' ' + positional : ''} [flags]`
  return `Usage: ${synopsis}\n\n${summary}\n\n${rows.map(([a, b]) => `  ${a!.padEnd(width)}${b}`).join('\n')}\n${env}`
}

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/**
 * A duration flag value in milliseconds: a number with a unit, `500ms`, `10s`, `1m`, `24h`,
 * `30d`. Throws SHOAL_ERR_CONFIG naming `v.where` (a bare number gets a hint to add a unit).
 *
 * @example
 *   parseDuration({ value: '30d', where: '--ttl' }) // 2_592_000_000
 */
export function parseDuration(v: FlagValue): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(v.value.trim())
  if (!m) {
    const hint = /^\d+(\.\d+)?$/.test(v.value.trim()) ? ` (add a unit: ${v.value.trim()}s)` : ''
    throw new ShoalError('SHOAL_ERR_CONFIG', `${v.where}: "${v.value}" is not a duration like 500ms, 10s, 1m, 24h or 30d${hint}`)
  }
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2] as keyof typeof DURATION_UNITS])
}

/** The flags as a Markdown table (flag, meaning, default), as the README shows them. */
export function markdownTable(table: FlagTable): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|')
  const rows = Object.entries(table).map(([name, f]) => {
    const v = variableOf(name, f)
    const env = v === undefined ? '' : v === envName(name) ? '' : ` (env \`${v}\`)`
    return `| \`--${name}${f.value ? ' ' + esc(f.value) : ''}\` | ${esc(f.help)}${env} | ${f.default ? esc(f.default) : 'none'} |`
  })
  return ['| flag | meaning | default |', '|---|---|---|', ...rows].join('\n')
}
