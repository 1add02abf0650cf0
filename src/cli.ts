#!/usr/bin/env node
/**
 * The `shoal` command: `agent`, the client commands that read an agent's HTTP API, and the
 * bootstrap generators. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration
 * (and a node name already held by a live node at another address).
 */
import { parseArgs } from 'node:util'
import { writeFileSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { runAgent } from './agent/run.js'
import { runClientCommand } from './cli/client.js'
import { envoyBootstrap, grpcBootstrap } from './xds/index.js'

const USAGE = `Usage: shoal <command> [flags]

Commands:
  agent                 run the agent (flags: shoal agent --help)
  members               list gossip members
  services              list services and their instances
  state                 print the whole catalog
  watch                 follow catalog and membership changes
  drain ID              mark a local instance draining (no new traffic)
  undrain ID            undo drain
  envoy-bootstrap       print an Envoy v3 bootstrap that uses the agent as its xDS server
  grpc-bootstrap        print a grpc-js-xds bootstrap (GRPC_XDS_BOOTSTRAP) for proxyless clients
  version               print the version

Client flags: --agent URL (default http://127.0.0.1:7777, env SHOAL_AGENT), --json, --token TOKEN (env SHOAL_API_TOKEN)
Bootstrap flags: --node NAME (default hostname), --cluster NAME, --xds HOST:PORT (default 127.0.0.1:7776), --out FILE
`

export const AGENT_USAGE = `Usage: shoal agent [flags]   (each flag also read from SHOAL_<FLAG>, dashes as underscores)

  --node NAME                 unique node name (default: hostname)
  --bind HOST:PORT            gossip UDP+TCP address (default 0.0.0.0:7946)
  --advertise IP[:PORT]       address other agents use (default: auto-detected)
  --join HOST:PORT,...        seeds, retried with backoff
  --cluster NAME              cluster label (default: default)
  --key BASE64[,BASE64...]    AES-256-GCM gossip keys, first is primary
  --key-file PATH             one key per line, re-read on SIGHUP or change
  --profile lan|local|wan     gossip timing profile (default: lan)
  --discovery LIST            docker, static, none (default: docker)
  --static PATH               static services file
  --docker-host URL           Docker endpoint (default: DOCKER_HOST or /var/run/docker.sock)
  --docker-network NAME       advertise container IPs on this network (Swarm overlay)
  --xds HOST:PORT             ADS server (default 127.0.0.1:7776)
  --http HOST:PORT            debug endpoint and UI (default 127.0.0.1:7777)
  --envoy-bind IP             IP of Envoy's ServicePort listeners (default 127.0.0.1)
  --api-token TOKEN           bearer token for drain/undrain (default: loopback callers only)
  --leave-on-terminate BOOL   leave gracefully on SIGTERM (default true)
  --allow-external-checks     allow External health checks named in labels
  --ready-timeout DURATION    warm start: longest wait for a first push-pull (default 5s; local 1s)
  --log-level LEVEL           trace, debug, info, warn, error (default info)
`

function version(): string {
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string
  } catch {
    return 'unknown'
  }
}

async function bootstrapCommand(kind: 'envoy' | 'grpc', argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { node: { type: 'string' }, cluster: { type: 'string' }, xds: { type: 'string' }, out: { type: 'string' } },
    strict: true,
  })
  const nodeId = values.node ?? process.env.SHOAL_NODE ?? hostname()
  const xdsAddress = values.xds ?? process.env.SHOAL_XDS ?? '127.0.0.1:7776'
  const doc =
    kind === 'envoy'
      ? envoyBootstrap({ nodeId, cluster: values.cluster ?? process.env.SHOAL_CLUSTER ?? 'default', xdsAddress })
      : grpcBootstrap({ nodeId, xdsAddress })
  const text = JSON.stringify(doc, null, 2) + '\n'
  if (values.out) writeFileSync(values.out, text)
  else process.stdout.write(text)
  return 0
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  switch (cmd) {
    case 'agent':
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(AGENT_USAGE)
        return 0
      }
      return runAgent(rest)
    case 'members':
    case 'services':
    case 'state':
    case 'watch':
    case 'drain':
    case 'undrain': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { agent: { type: 'string' }, json: { type: 'boolean' }, token: { type: 'string' } },
        strict: true,
        allowPositionals: true,
      })
      const ac = new AbortController()
      process.once('SIGINT', () => ac.abort())
      const opts: Parameters<typeof runClientCommand>[2] = {
        agent: values.agent ?? process.env.SHOAL_AGENT ?? 'http://127.0.0.1:7777',
        json: values.json ?? false,
        out: process.stdout,
        signal: ac.signal,
      }
      const token = values.token ?? process.env.SHOAL_API_TOKEN
      if (token !== undefined) opts.token = token
      return runClientCommand(cmd, positionals, opts)
    }
    case 'envoy-bootstrap':
      return bootstrapCommand('envoy', rest)
    case 'grpc-bootstrap':
      return bootstrapCommand('grpc', rest)
    case 'version':
    case '--version':
      process.stdout.write(version() + '\n')
      return 0
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE)
      return cmd === undefined ? 2 : 0
    default:
      process.stderr.write(`shoal: unknown command "${cmd}"\n${USAGE}`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code
  },
  (err: Error) => {
    process.stderr.write(`shoal: ${err.message}\n`)
    process.exitCode = (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? 2 : 1
  },
)
