#!/usr/bin/env node
/**
 * The `shoal` command: `agent`, the client commands that read an agent's HTTP API, the
 * bootstrap generators, the gossip key tool and the CA tooling (`shoal ca init|intermediate|inspect`). Each command has one flag table (src/flags.ts)
 * behind its parsing and its `--help`. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or
 * configuration (and a node name already held by a live node at another address).
 */
import { randomBytes } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { setFlagsFromString } from 'node:v8'
import { AGENT_FLAGS, AGENT_USAGE, agentV8Flags, DEFAULT_PORTS, shoalVersion } from './agent/config.js'
import { runClientCommand, type ClientCommand } from './cli/client.js'
import { isShoalError, ShoalError } from './errors.js'
import { parseDuration, parseFlags, usage, type FlagTable } from './flags.js'

const CLIENT_FLAGS = {
  agent: {
    type: 'string',
    value: 'URL',
    default: `http://127.0.0.1:${DEFAULT_PORTS.http}`,
    env: 'SHOAL_AGENT',
    help: "the agent's HTTP endpoint (HOST:PORT means http://HOST:PORT)",
  },
  json: { type: 'boolean', env: false, help: 'print the JSON the agent answered instead of a table' },
} as const satisfies FlagTable

/** drain and undrain: the read commands' flags and the token the agent asks of a change. */
const CHANGE_FLAGS = {
  ...CLIENT_FLAGS,
  token: { type: 'string', value: 'TOKEN', env: 'SHOAL_API_TOKEN', help: "bearer token (the agent's --api-token)" },
} as const satisfies FlagTable

/** drain: the change flags and the operator's reason. */
const DRAIN_FLAGS = {
  ...CHANGE_FLAGS,
  reason: {
    type: 'string',
    value: 'TEXT',
    env: false,
    help: "why (e.g. maintenance): the record's detail, at most 200 characters of plain text",
  },
} as const satisfies FlagTable

const BOOTSTRAP_FLAGS = {
  node: { type: 'string', value: 'NAME', default: 'hostname', help: 'node id the client presents to the agent' },
  cluster: { type: 'string', value: 'NAME', default: 'default', help: 'node cluster the client presents' },
  xds: { type: 'string', value: 'HOST:PORT', default: `127.0.0.1:${DEFAULT_PORTS.xds}`, help: "the agent's xDS address (its --xds)" },
  network: {
    type: 'string',
    value: 'NAME',
    default: 'host',
    // Not SHOAL_NETWORK: the Swarm stack's deploy shell sets that for the agents.
    env: false,
    help: "the Docker network the client runs on: it is given instances' IPs there (else their published ports)",
  },
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
  'xds-socket': {
    type: 'string',
    value: 'PATH',
    help: 'reach the agent over its --xds-socket (a pipe address) instead of --xds: the only way Envoy gets its keys (mTLS)',
  },
} as const satisfies FlagTable

const GRPC_BOOTSTRAP_FLAGS = {
  ...BOOTSTRAP_FLAGS,
  service: {
    type: 'string',
    value: 'NAME',
    env: false,
    help: 'the service this process is: node metadata, and the server Listener template an XdsServer needs (gRFC A36)',
  },
  'tls-dir': {
    type: 'string',
    value: 'DIR',
    help: "the agent's --tls-dir: file_watcher certificate providers over DIR/services/NAME/ (needs --service), so the agent serves mTLS",
  },
  refresh: { type: 'string', value: 'DURATION', default: '10s', env: false, help: 'how often the providers read the files again' },
} as const satisfies FlagTable

const CA_INIT_FLAGS = {
  cluster: { type: 'string', value: 'NAME', help: "the agents' --cluster; in lower case it is the SPIFFE trust domain (required)" },
  out: {
    type: 'string',
    value: 'DIR',
    env: false,
    help: 'folder for root.pem and root-key.pem, made with mode 0700 when missing (required)',
  },
  ttl: { type: 'string', value: 'DURATION', default: '3650d', env: false, help: "the root's lifetime" },
  force: { type: 'boolean', env: false, help: 'replace a root already in DIR (every intermediate it signed stops being trusted)' },
} as const satisfies FlagTable

const CA_INTERMEDIATE_FLAGS = {
  node: { type: 'string', value: 'NAME', help: "the node's --node, named in the certificate (required)" },
  ca: { type: 'string', value: 'ROOT_DIR', env: false, help: 'folder with root.pem and root-key.pem from `shoal ca init` (required)' },
  out: {
    type: 'string',
    value: 'DIR',
    env: false,
    help: "the node's --tls-dir: intermediate.pem, intermediate-key.pem, bundle.pem, replaced atomically (required)",
  },
  ttl: { type: 'string', value: 'DURATION', default: '30d', env: false, help: "the intermediate's lifetime (cut to the root's end)" },
  'name-constraint': {
    type: 'boolean',
    env: false,
    help: 'limit the intermediate to SPIFFE IDs of the trust domain (a URI name constraint: many TLS stacks reject those)',
  },
} as const satisfies FlagTable

const CA_INSPECT_FLAGS = {
  bundle: {
    type: 'string',
    value: 'FILE',
    env: false,
    help: 'roots to follow the chain to (a bundle.pem); exit 1 when it does not reach one',
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
  // Only the commands that change something take --token: the others never send it.
  const flags: FlagTable = cmd === 'drain' ? DRAIN_FLAGS : cmd === 'undrain' ? CHANGE_FLAGS : CLIENT_FLAGS
  return {
    summary,
    flags,
    positional,
    async run(argv) {
      const f = parseFlags(`shoal ${cmd}`, flags, argv, process.env, { positionals: true })
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
        token: 'token' in flags ? f.get('token')?.value : undefined,
        reason: 'reason' in flags ? f.get('reason')?.value : undefined,
        out: process.stdout,
        err: process.stderr,
        signal: ac.signal,
      })
    },
  }
}

function bootstrapCommand(kind: 'envoy' | 'grpc'): Command {
  const table: FlagTable = kind === 'envoy' ? ENVOY_BOOTSTRAP_FLAGS : GRPC_BOOTSTRAP_FLAGS
  const name = `${kind}-bootstrap`
  return {
    summary:
      kind === 'envoy'
        ? 'Print an Envoy v3 bootstrap that takes listeners, clusters and endpoints from the agent over ADS.'
        : 'Print a gRPC xDS bootstrap (GRPC_XDS_BOOTSTRAP) for proxyless clients dialing xds:///NAME and XdsServers (--service, --tls-dir for mTLS).',
    flags: table,
    async run(argv) {
      const f = parseFlags(`shoal ${name}`, table, argv, process.env)
      if (f.help) return help(name)
      const nodeId = f.get('node')?.value ?? hostname()
      const xdsAddress = f.get('xds')?.value ?? BOOTSTRAP_FLAGS.xds.default
      const cluster = f.get('cluster')?.value ?? 'default'
      // Loaded here, not at the top: `shoal members` or `--help` need not load the xDS protos.
      const { envoyBootstrap, grpcBootstrap } = await import('./xds/index.js')
      const network = f.get('network')?.value
      const doc =
        kind === 'envoy'
          ? envoyBootstrap({
              nodeId,
              cluster,
              xdsAddress,
              adminAddress: f.get('admin')?.value ?? ENVOY_BOOTSTRAP_FLAGS.admin.default,
              xdsSocket: f.get('xds-socket')?.value,
              network,
            })
          : grpcBootstrap({
              nodeId,
              xdsAddress,
              service: f.get('service')?.value,
              tlsDir: f.get('tls-dir')?.value,
              refreshSeconds: refreshSeconds(f.get('refresh')),
              network,
            })
      const tlsDir = kind === 'grpc' ? f.get('tls-dir') : undefined
      // The client reads the directory when it runs, so a missing one is a warning, not a refusal.
      if (tlsDir !== undefined && !existsSync(tlsDir.value))
        process.stderr.write(
          `shoal: warning: ${tlsDir.where} ${tlsDir.value} does not exist; the client reads its certificates from there when it runs: give the agent's --tls-dir as the client sees it\n`,
        )
      const text = JSON.stringify(doc, null, 2) + '\n'
      const out = f.get('out')?.value
      if (out) writeFileSync(out, text)
      else process.stdout.write(text)
      return 0
    },
  }
}

/** `--refresh` in whole seconds (a gRPC Duration), at least 1. */
function refreshSeconds(v: { value: string; where: string } | undefined): number | undefined {
  if (v === undefined) return undefined
  const ms = parseDuration(v)
  if (ms < 1000 || ms % 1000 !== 0)
    throw new ShoalError('SHOAL_ERR_CONFIG', `${v.where}: "${v.value}" is not a whole number of seconds, 1s or more`)
  return ms / 1000
}

/** A required flag's value, else SHOAL_ERR_CONFIG naming it. */
function required(command: string, flag: string, v: { value: string } | undefined): string {
  if (v === undefined || v.value === '')
    throw new ShoalError('SHOAL_ERR_CONFIG', `${command}: --${flag} is required; see \`${command} --help\``)
  return v.value
}

const CA_COMMANDS = {
  'ca init': {
    summary: 'Make a root CA for a cluster (EC P-256, long-lived); its key belongs offline.',
    flags: CA_INIT_FLAGS,
    async run(argv) {
      const f = parseFlags('shoal ca init', CA_INIT_FLAGS, argv, process.env)
      if (f.help) return help('ca init')
      const { initCa } = await import('./identity/index.js')
      const ttl = f.get('ttl')
      const r = await initCa({
        cluster: required('shoal ca init', 'cluster', f.get('cluster')),
        outDir: required('shoal ca init', 'out', f.get('out')),
        ttlMs: ttl ? parseDuration(ttl) : undefined,
        force: f.get('force')?.value === 'true',
      })
      process.stdout.write(
        `trust domain ${r.trustDomain}: root valid until ${r.root.notAfter.toISOString()}\n` +
          `wrote ${r.certFile}: the root certificate, every node's bundle (\`shoal ca intermediate\` copies it)\n` +
          `wrote ${r.keyFile}: the root key; it only signs intermediates: move it off this machine and bring it back to sign\n`,
      )
      return 0
    },
  },
  'ca intermediate': {
    summary: "Sign a node's intermediate CA (path length 0) into its --tls-dir, with its key and the root bundle.",
    flags: CA_INTERMEDIATE_FLAGS,
    async run(argv) {
      const cmd = 'shoal ca intermediate'
      const f = parseFlags(cmd, CA_INTERMEDIATE_FLAGS, argv, process.env)
      if (f.help) return help('ca intermediate')
      const { makeIntermediate } = await import('./identity/index.js')
      const ttl = f.get('ttl')
      const r = await makeIntermediate({
        node: required(cmd, 'node', f.get('node')),
        caDir: required(cmd, 'ca', f.get('ca')),
        outDir: required(cmd, 'out', f.get('out')),
        ttlMs: ttl ? parseDuration(ttl) : undefined,
        nameConstraint: f.get('name-constraint')?.value === 'true',
      })
      const cut = r.cutToRoot ? " (cut to the root's end: make a new root soon)" : ''
      process.stdout.write(
        `${r.intermediate.subject}, trust domain ${r.trustDomain}: valid until ${r.intermediate.notAfter.toISOString()}${cut}\n` +
          `wrote ${r.keyFile}, ${r.certFile} and ${r.bundleFile}; a running agent with this --tls-dir picks them up\n`,
      )
      return 0
    },
  },
  'ca inspect': {
    summary: 'Describe a chain in words: subjects, SPIFFE IDs, validity, who signed whom.',
    flags: CA_INSPECT_FLAGS,
    positional: 'FILE',
    async run(argv) {
      const f = parseFlags('shoal ca inspect', CA_INSPECT_FLAGS, argv, process.env, { positionals: true })
      if (f.help) return help('ca inspect')
      const [file, ...extra] = f.positionals
      if (file === undefined || extra.length > 0) {
        throw new ShoalError(
          'SHOAL_ERR_CONFIG',
          'shoal ca inspect: expected one FILE (a PEM certificate or chain); see `shoal ca inspect --help`',
        )
      }
      const { inspectChain } = await import('./identity/index.js')
      const r = await inspectChain(file, { bundleFile: f.get('bundle')?.value })
      process.stdout.write(r.text)
      return r.ok ? 0 : 1
    },
  },
} satisfies Record<string, Command>

const COMMANDS: Record<string, Command> = {
  agent: {
    summary: 'Run the agent: discover local services, gossip them, serve xDS and the HTTP API.',
    flags: AGENT_FLAGS,
    async run(argv) {
      if (argv.includes('--help') || argv.includes('-h')) return help('agent')
      // V8 sized for memory unless --heap fast (README "Memory"), set before the agent's modules
      // load: NODE_OPTIONS refuses these flags.
      const v8Flags = agentV8Flags(argv, process.env)
      if (v8Flags) setFlagsFromString(v8Flags)
      // The agent (gRPC, the xDS protos, dockerode) loads only for `shoal agent`: every other
      // command starts in a fraction of the time.
      const { runAgent } = await import('./agent/run.js')
      return runAgent(argv)
    },
  },
  members: clientCommand('members', 'List the gossip members the agent knows, with their state.'),
  services: clientCommand('services', 'List services and their instances across the cluster (one service with NAME).', '[NAME]'),
  state: clientCommand('state', 'Print the whole catalog as the agent holds it.'),
  watch: clientCommand('watch', 'Follow catalog and membership changes (Ctrl-C ends).'),
  drain: clientCommand('drain', 'Mark an instance of this agent draining: listed, but no new traffic.', 'ID'),
  undrain: clientCommand('undrain', 'Take an instance out of draining.', 'ID'),
  keyring: clientCommand(
    'keyring',
    "List the agent's gossip keys by fingerprint and how many members seal their messages with each (for key rotation).",
    'list',
  ),
  'envoy-bootstrap': bootstrapCommand('envoy'),
  'grpc-bootstrap': bootstrapCommand('grpc'),
  ...CA_COMMANDS,
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

/** `shoal help`: the commands (or those of one group), one line each. */
export function overview(names: string[] = Object.keys(COMMANDS)): string {
  const width = Math.max(...names.map((c) => c.length + (COMMANDS[c]!.positional?.length ?? 0))) + 4
  const lines = names
    .map((name) => [name, COMMANDS[name]!] as const)
    .map(([name, c]) => `  ${(name + (c.positional ? ' ' + c.positional : '')).padEnd(width)}${c.summary}`)
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
  return shoalVersion()
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  if (cmd === undefined) {
    process.stderr.write(overview())
    return 2
  }
  if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
    const topic = rest.length > 0 ? rest.join(' ') : undefined
    if (topic !== undefined && COMMANDS[topic]) return help(topic)
    // `shoal help ca`: a group's commands, as `shoal ca --help` lists them.
    const group = topic === undefined ? [] : Object.keys(COMMANDS).filter((c) => c.startsWith(topic + ' '))
    process.stdout.write(group.length > 0 ? overview(group) : overview())
    return topic === undefined || group.length > 0 ? 0 : 2
  }
  if (cmd === '--version') return COMMANDS.version!.run([])
  // Two-word commands (`shoal ca init`): the group alone, or with --help, lists its commands.
  const group = Object.keys(COMMANDS).filter((c) => c.startsWith(cmd + ' '))
  if (group.length > 0) {
    const sub = rest[0]
    if (sub !== undefined && COMMANDS[`${cmd} ${sub}`]) return COMMANDS[`${cmd} ${sub}`]!.run(rest.slice(1))
    const asked = sub === '--help' || sub === '-h'
    const out = asked ? process.stdout : process.stderr
    if (sub !== undefined && !asked) out.write(`shoal: unknown command "${cmd} ${sub}"\n`)
    out.write(overview(group))
    return asked ? 0 : 2
  }
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
