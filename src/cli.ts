#!/usr/bin/env node
/**
 * The `shoal` command: `agent`, the client commands that read an agent's HTTP API, the
 * bootstrap generators and the key tool. Each command has one flag table (src/flags.ts)
 * behind its parsing and its `--help`. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or
 * configuration (and a node name already held by a live node at another address).
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { AGENT_FLAGS, AGENT_USAGE, DEFAULT_PORTS } from './agent/config.js'
import { runAgent } from './agent/run.js'
import { runClientCommand, type ClientCommand } from './cli/client.js'
import { isShoalError, ShoalError } from './errors.js'
import { parseFlags, usage, type FlagTable } from './flags.js'
import { envoyBootstrap, grpcBootstrap } from './xds/index.js'

const CLIENT_FLAGS = {
  agent: {
    type: 'string',
    value: 'URL',
    default: `http://127.0.0.1:${DEFAULT_PORTS.http}`,
    env: 'SHOAL_AGENT',
    help: "the agent's HTTP endpoint (HOST:PORT means http://HOST:PORT)",
  },
  json: { type: 'boolean', env: false, help: 'print the JSON the agent answered instead of a table' },
  token: { type: 'string', value: 'TOKEN', env: 'SHOAL_API_TOKEN', help: "bearer token for drain/undrain (the agent's --api-token)" },
} as const satisfies FlagTable

const BOOTSTRAP_FLAGS = {
  node: { type: 'string', value: 'NAME', default: 'hostname', help: 'node id the client presents to the agent' },
  cluster: { type: 'string', value: 'NAME', default: 'default', help: 'node cluster the client presents' },
  xds: { type: 'string', value: 'HOST:PORT', default: `127.0.0.1:${DEFAULT_PORTS.xds}`, help: "the agent's xDS address (its --xds)" },
  out: { type: 'string', value: 'FILE', env: false, help: 'write the bootstrap to FILE instead of stdout' },
} as const satisfies FlagTable

const ENVOY_BOOTSTRAP_FLAGS = {
  ...BOOTSTRAP_FLAGS,
  admin: {
    type: 'string',
    value: 'HOST:PORT',
    default: '127.0.0.1:9901',
    env: 'SHOAL_ENVOY_ADMIN',
    help: "Envoy's admin listener (its /stats/prometheus); 0.0.0.0:9901 lets Prometheus in another container scrape it",
  },
} as const satisfies FlagTable

interface Command {
  summary: string
  flags: FlagTable
  positional?: string
  /** Runs the command with its arguments (flags parsed by the command itself); resolves to the exit code. */
  run(argv: string[]): Promise<number>
}

function clientCommand(cmd: ClientCommand, summary: string, positional?: string): Command {
  return {
    summary,
    flags: CLIENT_FLAGS,
    positional,
    async run(argv) {
      const f = parseFlags(`shoal ${cmd}`, CLIENT_FLAGS, argv, process.env, { positionals: true })
      if (f.help) return help(cmd)
      const wanted = positional === undefined ? 0 : positional.startsWith('[') ? -1 : 1
      if ((wanted === 0 && f.positionals.length > 0) || (wanted === 1 && f.positionals.length !== 1) || f.positionals.length > 1) {
        throw new ShoalError(
          'SHOAL_ERR_CONFIG',
          `shoal ${cmd}: expected ${positional ?? 'no arguments'}, got ${f.positionals.length ? f.positionals.join(' ') : 'none'}; see \`shoal ${cmd} --help\``,
        )
      }
      const ac = new AbortController()
      process.once('SIGINT', () => ac.abort())
      return runClientCommand(cmd, f.positionals, {
        agent: f.get('agent')?.value ?? CLIENT_FLAGS.agent.default,
        json: f.get('json')?.value === 'true',
        token: f.get('token')?.value,
        out: process.stdout,
        err: process.stderr,
        signal: ac.signal,
      })
    },
  }
}

function bootstrapCommand(kind: 'envoy' | 'grpc'): Command {
  const table: FlagTable = kind === 'envoy' ? ENVOY_BOOTSTRAP_FLAGS : BOOTSTRAP_FLAGS
  const name = `${kind}-bootstrap`
  return {
    summary:
      kind === 'envoy'
        ? 'Print an Envoy v3 bootstrap that takes listeners, clusters and endpoints from the agent over ADS.'
        : 'Print a gRPC xDS bootstrap (GRPC_XDS_BOOTSTRAP) for proxyless clients dialing xds:///NAME.',
    flags: table,
    async run(argv) {
      const f = parseFlags(`shoal ${name}`, table, argv, process.env)
      if (f.help) return help(name)
      const nodeId = f.get('node')?.value ?? hostname()
      const xdsAddress = f.get('xds')?.value ?? BOOTSTRAP_FLAGS.xds.default
      const cluster = f.get('cluster')?.value ?? 'default'
      const doc =
        kind === 'envoy'
          ? envoyBootstrap({ nodeId, cluster, xdsAddress, adminAddress: f.get('admin')?.value ?? ENVOY_BOOTSTRAP_FLAGS.admin.default })
          : grpcBootstrap({ nodeId, xdsAddress })
      const text = JSON.stringify(doc, null, 2) + '\n'
      const out = f.get('out')?.value
      if (out) writeFileSync(out, text)
      else process.stdout.write(text)
      return 0
    },
  }
}

const COMMANDS: Record<string, Command> = {
  agent: {
    summary: 'Run the agent: discover local services, gossip them, serve xDS and the HTTP API.',
    flags: AGENT_FLAGS,
    async run(argv) {
      if (argv.includes('--help') || argv.includes('-h')) return help('agent')
      return runAgent(argv)
    },
  },
  members: clientCommand('members', 'List the gossip members the agent knows, with their state.'),
  services: clientCommand('services', 'List services and their instances across the cluster (one service with NAME).', '[NAME]'),
  state: clientCommand('state', 'Print the whole catalog as the agent holds it.'),
  watch: clientCommand('watch', 'Follow catalog and membership changes (Ctrl-C ends).'),
  drain: clientCommand('drain', 'Mark an instance of this agent draining: listed, but no new traffic.', 'ID'),
  undrain: clientCommand('undrain', 'Take an instance out of draining.', 'ID'),
  'envoy-bootstrap': bootstrapCommand('envoy'),
  'grpc-bootstrap': bootstrapCommand('grpc'),
  keygen: {
    summary: 'Print a new gossip key (32 random bytes in base64) for --key or a --key-file line.',
    flags: {},
    async run(argv) {
      const f = parseFlags('shoal keygen', {}, argv)
      if (f.help) return help('keygen')
      process.stdout.write(randomBytes(32).toString('base64') + '\n')
      return 0
    },
  },
  version: {
    summary: 'Print the version.',
    flags: {},
    async run(argv) {
      const f = parseFlags('shoal version', {}, argv)
      if (f.help) return help('version')
      process.stdout.write(version() + '\n')
      return 0
    },
  },
}

/** `shoal help`: the commands, one line each. */
export function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length + (COMMANDS[c]!.positional?.length ?? 0))) + 4
  const lines = Object.entries(COMMANDS).map(
    ([name, c]) => `  ${(name + (c.positional ? ' ' + c.positional : '')).padEnd(width)}${c.summary}`,
  )
  return `Usage: shoal <command> [flags]\n\nCommands:\n${lines.join('\n')}\n\n\`shoal <command> --help\` (or \`shoal help <command>\`) prints a command's flags.\n`
}

function usageOf(name: string): string {
  if (name === 'agent') return AGENT_USAGE
  const c = COMMANDS[name]!
  return usage(`shoal ${name}`, c.summary, c.flags, c.positional)
}

function help(name: string): number {
  process.stdout.write(usageOf(name))
  return 0
}

function version(): string {
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string
  } catch {
    return 'unknown'
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  if (cmd === undefined) {
    process.stderr.write(overview())
    return 2
  }
  if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
    const topic = rest[0]
    if (topic !== undefined && COMMANDS[topic]) return help(topic)
    process.stdout.write(overview())
    return topic === undefined ? 0 : 2
  }
  if (cmd === '--version') return COMMANDS.version!.run([])
  const command = COMMANDS[cmd]
  if (!command) {
    process.stderr.write(`shoal: unknown command "${cmd}"; \`shoal help\` lists them\n`)
    return 2
  }
  return command.run(rest)
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code
  },
  (err: unknown) => {
    // Usage and configuration errors are one line and exit 2; anything else is a failure (1).
    if (isShoalError(err)) {
      process.stderr.write(`${err.message.startsWith('shoal ') ? '' : 'shoal: '}${err.message}\n`)
      process.exitCode = err.code === 'SHOAL_ERR_CONFIG' || err.code === 'SHOAL_ERR_ADDRESS' ? 2 : 1
      return
    }
    process.stderr.write(`shoal: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exitCode = 1
  },
)
