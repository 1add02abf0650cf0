import { readFileSync, statSync } from 'node:fs'
import { isIP } from 'node:net'
import { hostname, networkInterfaces } from 'node:os'
import { advertisedIpProblem, parseHostPort, type HostPort } from '../address.js'
import { ShoalError } from '../errors.js'
import { parseDuration, parseFlags, usage, type FlagTable, type FlagValue } from '../flags.js'
import { TlsMode } from '../identity/names.js'
// types.ts, not index.ts: every CLI command loads this file, and the registry's index loads msgpackr, ajv and prom-client.
import { nodeNameProblem, quoteText } from '../text.js'

/**
 * The agent's configuration, from flags and `SHOAL_<NAME>` environment variables
 * (a flag wins over its variable). Every problem is a ShoalError `SHOAL_ERR_CONFIG`
 * whose message names the flag (or variable) and the bad value.
 *
 * @example
 *   const cfg = parseAgentConfig(['--node', 'a', '--join', '10.0.0.2:7946'], process.env)
 */
export interface AgentConfig {
  node: string
  bind: HostPort
  advertise: HostPort
  join: HostPort[]
  cluster: string
  /** Base64 keys from --key; the first is primary. */
  keys: string[]
  keyFile?: string
  profile: 'lan' | 'local' | 'wan'
  discovery: Array<'docker' | 'static'>
  static?: string
  dockerHost?: string
  /** Docker networks whose container IPs are advertised beside published ports (`--docker-network`). */
  dockerNetworks: string[]
  xds: HostPort
  /** Network interfaces (e.g. docker_gwbridge) whose IPv4 address also serves xDS, at the port of `xds` (`--xds-interfaces`). */
  xdsInterfaces: string[]
  http: HostPort
  envoyBind: string
  apiToken?: string
  /** Most concurrent /api/watch streams (--http-watch-max). Default 256. */
  httpWatchMax?: number
  leaveOnTerminate: boolean
  /** On a leave, how long the host's services are shown draining (reason `agent-leaving`) before the agent leaves; 0: at once. */
  leaveDrainMs: number
  /** Docker: drain a container's instances when it gets its stop signal, not only when it dies. */
  drainOnStop: boolean
  allowExternalChecks: boolean
  logLevel: string
  /** `json` (one object per line) or `pretty` (human-readable lines). */
  logFormat: 'json' | 'pretty'
  /** `--heap`: V8 sized for memory or for speed (HEAP_V8_FLAGS). */
  heap: HeapMode
  /** Warm start: how long a lone agent waits for a push-pull before it reports ready. */
  readyTimeoutMs: number
  /** The DNS interface; absent with `--dns off`. */
  dns?: DnsConfig
  /** Service identity: the folder with the node's intermediate, its key and the root bundle; leaves go to its services/ folder. */
  tlsDir?: string
  /** Whether xDS still serves plain-text resources: off without --tls-dir, else permissive unless set. */
  tlsMode: TlsMode
  /** Lifetime of each service's leaf, ms. */
  tlsLeafTtlMs: number
  /** `--xds-socket`: the Unix socket of the local Envoy's ADS stream, the only way its keys go. */
  xdsSocket?: string
  /** `--inbound-ports`: the port range of the local Envoy's inbound mTLS listeners (with --tls-dir). */
  inboundPorts?: { from: number; to: number }
}

/** The DNS interface's settings (--dns, --dns-domain, --dns-ttl, --dns-recursors). */
export interface DnsConfig {
  bind: HostPort
  /** Lower case, with the trailing dot: `shoal.`. */
  domain: string
  /** TTL of answers and of negative answers, whole seconds. */
  ttlSeconds: number
  /** Where names outside the domain are forwarded (IP literals; port 53 unless given). */
  recursors: HostPort[]
}

export type { HostPort }

/**
 * The V8 flags `shoal agent` sets for itself before its modules load (v8.setFlagsFromString;
 * NODE_OPTIONS refuses them), by `--heap` mode. `lean`: `--optimize-for-size` keeps the young
 * generation at 8 MiB or less instead of letting it grow to 16-32 MiB under work and grows the old
 * generation in smaller steps (idle peak RSS about 59 MiB instead of 71; 1000 ServicePorts x 10
 * with two xDS clients 96 MiB instead of 132); at that size it costs a grpc-js client's push
 * about 2.4 ms at p50 (14.3 instead of 11.9 ms) and an Envoy's cold start 0.26 s, while an
 * Envoy's push and the CPU a change costs stay the same (bench/RESULTS-memory.md, clients apart).
 * `fast`: V8's defaults. TurboFan, the optimising compiler, stays on in both.
 */
export const HEAP_V8_FLAGS = { lean: '--optimize-for-size', fast: '' } as const
export type HeapMode = keyof typeof HEAP_V8_FLAGS

/** The V8 flags for the `--heap` of `argv` (or SHOAL_HEAP); none when the flags do not parse (the agent reports them when it starts). */
export function agentV8Flags(argv: string[], env: NodeJS.ProcessEnv): string {
  try {
    return HEAP_V8_FLAGS[parseAgentConfig(argv, env).heap]
  } catch {
    return ''
  }
}

/** The default ports (docs/architecture.md "Default ports"). */
export const DEFAULT_PORTS = { gossip: 7946, xds: 7776, http: 7777, dns: 8600 } as const

/** This build's version (package.json, two folders up from src/agent/ and from dist/agent/); `unknown` when unreadable. */
export function shoalVersion(): string {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string
  } catch {
    return 'unknown'
  }
}

/**
 * Every flag of `shoal agent`: the one table behind parsing, `shoal agent --help`, the
 * environment variable names and the README's flag table.
 */
export const AGENT_FLAGS = {
  node: { type: 'string', value: 'NAME', default: 'hostname', help: 'unique node name ([A-Za-z0-9._-], up to 128)' },
  bind: {
    type: 'string',
    value: 'HOST:PORT',
    default: `0.0.0.0:${DEFAULT_PORTS.gossip}`,
    help: 'gossip UDP+TCP address (one port number for both)',
  },
  advertise: {
    type: 'string',
    value: 'IP[:PORT]',
    default: 'first non-loopback IPv4',
    help: 'address other agents use (an IP without a zone ID, not 0.0.0.0); also the IP of published container ports',
  },
  join: { type: 'string', value: 'HOST:PORT,...', help: 'seeds, retried with jittered backoff until one answers' },
  cluster: { type: 'string', value: 'NAME', default: 'default', help: 'cluster label, checked on every message' },
  key: { type: 'string', value: 'B64[,B64...]', help: 'AES-256-GCM gossip keys (32 bytes, base64); the first is primary' },
  'key-file': { type: 'string', value: 'PATH', help: 'one key per line, re-read on SIGHUP or change (not with --key)' },
  profile: { type: 'string', value: 'lan|local|wan', default: 'lan', help: 'gossip timing profile' },
  discovery: { type: 'string', value: 'LIST', default: 'docker', help: 'docker, static or none (a comma list)' },
  static: { type: 'string', value: 'PATH', help: 'static services file (adds static discovery)' },
  'docker-host': {
    type: 'string',
    value: 'URL',
    default: 'DOCKER_HOST or /var/run/docker.sock',
    help: 'Docker endpoint: unix:///path, /path or tcp://host:port',
  },
  'docker-network': {
    type: 'string',
    value: 'NAME,...',
    help: "also advertise containers' IPs on these Docker networks (Swarm overlays), for xDS clients that declare one",
  },
  xds: { type: 'string', value: 'HOST:PORT', default: `127.0.0.1:${DEFAULT_PORTS.xds}`, help: 'ADS (xDS) server' },
  'xds-interfaces': {
    type: 'string',
    value: 'IFACE,...',
    help: "also serve xDS on these interfaces' IPv4 address, same port (docker_gwbridge: for clients on Swarm overlays)",
  },
  http: { type: 'string', value: 'HOST:PORT', default: `127.0.0.1:${DEFAULT_PORTS.http}`, help: 'HTTP API, metrics and web UI' },
  'envoy-bind': { type: 'string', value: 'IP', default: '127.0.0.1', help: "IP of Envoy's ServicePort listeners" },
  'xds-socket': {
    type: 'string',
    value: 'PATH',
    help: 'also serve ADS on this Unix socket (mode 0600): the local Envoy takes its keys (SDS) only there',
  },
  'inbound-ports': {
    type: 'string',
    value: 'FROM-TO',
    help: "ports of the local Envoy's inbound mTLS listeners, one per local instance and ServicePort (needs --tls-dir)",
  },
  dns: {
    type: 'string',
    value: 'HOST:PORT|off',
    default: `127.0.0.1:${DEFAULT_PORTS.dns}`,
    help: 'DNS server, UDP and TCP: NAME.service.DOMAIN and more (off: none)',
  },
  'dns-domain': { type: 'string', value: 'DOMAIN', default: 'shoal.', help: 'the zone the DNS server answers from the catalog' },
  'dns-ttl': { type: 'string', value: 'DURATION', default: '0s', help: 'TTL of DNS answers and of negative answers (whole seconds)' },
  'dns-recursors': {
    type: 'string',
    value: 'IP[:PORT],...',
    help: 'forward names outside the domain to these DNS servers, in order (else REFUSED)',
  },
  'http-watch-max': {
    type: 'string',
    value: 'N',
    default: '256',
    help: 'most concurrent /api/watch streams; one more is answered 503',
  },
  'api-token': {
    type: 'string',
    value: 'TOKEN',
    help: 'bearer token for drain/undrain: non-empty, no whitespace (without the flag: loopback callers only)',
  },
  'leave-on-terminate': {
    type: 'string',
    value: 'BOOL',
    default: 'true',
    help: 'on SIGTERM/SIGINT leave gracefully (services withdrawn), or just stop',
  },
  'leave-drain': {
    type: 'string',
    value: 'DURATION',
    default: '1s',
    help: "on a graceful leave, show this host's services draining this long first, so other hosts' calls finish (0s: leave at once)",
  },
  'drain-on-stop': {
    type: 'string',
    value: 'BOOL',
    default: 'true',
    help: "drain a container's instances at its stop signal (docker stop, a Swarm task's shutdown), not only when it exits",
  },
  'allow-external-checks': { type: 'boolean', default: 'off', help: 'allow External health checks named in labels (they run commands)' },
  'ready-timeout': {
    type: 'string',
    value: 'DURATION',
    default: '5s; 1s with local',
    help: "warm start: longest wait for the sources' first views and a clean first exchange with a peer",
  },
  'tls-dir': {
    type: 'string',
    value: 'DIR',
    help: 'service identity: DIR holds the node intermediate, its key and the root bundle (`shoal ca intermediate`); leaves go to DIR/services/NAME/',
  },
  'tls-mode': {
    type: 'string',
    value: 'off|permissive|strict',
    default: 'permissive with --tls-dir, else off',
    help: 'whether xDS keeps plain-text resources beside mTLS ones (README, Service identity)',
  },
  'tls-leaf-ttl': {
    type: 'string',
    value: 'DURATION',
    default: '24h',
    help: "lifetime of each local service's leaf (1m to 90d), renewed at two thirds of it",
  },
  heap: {
    type: 'string',
    value: 'lean|fast',
    default: 'lean',
    help: "V8 sized for memory (lean: --optimize-for-size) or V8's defaults (fast: at thousands of ServicePorts, quicker cold starts and gRPC pushes by a few ms, about 35 MiB more RSS)",
  },
  'log-level': { type: 'string', value: 'LEVEL', default: 'info', help: 'trace, debug, info, warn, error, fatal or silent' },
  'log-format': {
    type: 'string',
    value: 'json|pretty',
    default: 'pretty on a terminal, else json',
    help: 'log lines as JSON objects or human-readable text',
  },
} as const satisfies FlagTable
type FlagName = keyof typeof AGENT_FLAGS

/** `shoal agent --help`. */
export const AGENT_USAGE = usage(
  'shoal agent',
  'Run the agent: discover local services, gossip them, serve xDS and the HTTP API.',
  AGENT_FLAGS,
)

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

function configError(where: string, message: string): ShoalError {
  return new ShoalError('SHOAL_ERR_CONFIG', `${where}: ${message}`)
}

/** The first non-internal IPv4 address, else 127.0.0.1. */
export function detectAdvertiseIp(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return '127.0.0.1'
}

function parseBool(v: FlagValue): boolean {
  const s = v.value.trim().toLowerCase()
  if (s === 'true' || s === '1' || s === 'yes' || s === '') return true
  if (s === 'false' || s === '0' || s === 'no') return false
  throw configError(v.where, `"${v.value}" is not true or false`)
}

function hostPort(v: FlagValue, opts: { defaultPort?: number; ipOnly?: boolean; listener?: boolean; advertised?: boolean }): HostPort {
  return parseHostPort(v.value, v.where, {
    defaultPort: opts.defaultPort,
    allowZero: opts.listener === true,
    ipOnly: opts.ipOnly === true,
    advertised: opts.advertised === true,
    code: 'SHOAL_ERR_CONFIG',
  })
}

/** The one rule for a gossip key, as messages state it (`--key`, `--key-file` at start and at reload). */
export const GOSSIP_KEY_RULE = 'a gossip key must be 32 bytes in base64 (`shoal keygen` makes one)'

/** Keys of a key file: one base64 key per line; blank lines and # comments ignored. */
export function readKeyFile(path: string): string[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw configError(`--key-file ${path}`, `cannot read: ${(err as Error).message}`)
  }
  const keys = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  if (keys.length === 0) throw configError(`--key-file ${path}`, 'holds no key')
  keys.forEach((k, i) => checkKey(k, `--key-file ${path} line ${i + 1}`))
  return keys
}

function checkKey(k: string, where: string): void {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(k) || Buffer.from(k, 'base64').length !== 32) {
    throw configError(where, GOSSIP_KEY_RULE)
  }
}

/**
 * Parses `shoal agent` flags and variables. `--help` is the caller's business (see
 * AGENT_USAGE). Throws SHOAL_ERR_CONFIG naming the flag or variable.
 */
export function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv = process.env, opts: { isTTY?: boolean } = {}): AgentConfig {
  const flags = parseFlags('shoal agent', AGENT_FLAGS, argv, env)
  const get = (flag: FlagName): FlagValue | undefined => flags.get(flag)
  const str = (flag: FlagName, dflt: string): string => get(flag)?.value ?? dflt

  const node = str('node', hostname())
  const nodeProblem = nodeNameProblem(node)
  if (nodeProblem !== undefined) throw configError(get('node')?.where ?? '--node', `${quoteText(node)} ${nodeProblem}`)
  const bindIn = get('bind')
  const bind = bindIn
    ? hostPort(bindIn, { defaultPort: DEFAULT_PORTS.gossip, ipOnly: true, listener: true })
    : { host: '0.0.0.0', port: DEFAULT_PORTS.gossip }

  const advIn = get('advertise')
  let advertise: HostPort
  if (advIn) {
    advertise = hostPort(advIn, { defaultPort: bind.port, ipOnly: true, listener: true, advertised: true })
  } else {
    const ip = bind.host === '0.0.0.0' || bind.host === '::' ? detectAdvertiseIp() : bind.host
    // The advertise address defaults to a specific --bind host, which may bind (a link-local IPv6 with its zone) but not be given to others.
    const bad = advertisedIpProblem(ip)
    if (bad !== undefined)
      throw configError(
        bindIn?.where ?? '--bind',
        `"${ip}" is where the agent binds, but others cannot be told to reach it there: it ${bad}; give --advertise`,
      )
    advertise = { host: ip, port: bind.port }
  }

  const joinIn = get('join')
  const join = joinIn
    ? joinIn.value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .map((s) => hostPort({ value: s, where: joinIn.where }, { defaultPort: DEFAULT_PORTS.gossip }))
    : []

  const cluster = str('cluster', 'default')
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(cluster)) {
    throw configError(get('cluster')?.where ?? '--cluster', `"${cluster}" is not a valid cluster name (1-64 characters of [A-Za-z0-9._-])`)
  }

  const keyIn = get('key')
  const keyFile = get('key-file')?.value
  if (keyIn && keyFile !== undefined) {
    throw configError(
      `${keyIn.where} and ${get('key-file')!.where}`,
      'give the keys one way: --key (fixed) or --key-file (re-read on change), not both',
    )
  }
  const keys = keyIn
    ? keyIn.value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : []
  keys.forEach((k, i) => checkKey(k, `${keyIn!.where} (key ${i + 1})`))
  if (keyFile !== undefined) readKeyFile(keyFile)

  const profile = str('profile', 'lan')
  if (profile !== 'lan' && profile !== 'local' && profile !== 'wan') {
    throw configError(get('profile')!.where, `"${profile}" is not lan, local or wan`)
  }

  const discIn = get('discovery')
  const discovery: Array<'docker' | 'static'> = []
  const named = (discIn?.value ?? 'docker')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const d of named) {
    if (d !== 'docker' && d !== 'static' && d !== 'none') throw configError(discIn!.where, `"${d}" is not docker, static or none`)
    if (d === 'none' && named.length > 1)
      throw configError(discIn!.where, `"none" cannot be combined with other sources (got "${discIn!.value}")`)
    if (d !== 'none' && !discovery.includes(d)) discovery.push(d)
  }
  const staticIn = get('static')
  if (staticIn && !discovery.includes('static')) {
    // Without --discovery, --static adds static discovery to the default; a list that leaves
    // static out (none, docker) contradicts it.
    if (discIn)
      throw configError(
        `${staticIn.where} with ${discIn.where} ${discIn.value}`,
        `the discovery list leaves out static; add it (--discovery ${discovery.concat('static').join(',')}) or drop ${staticIn.where}`,
      )
    discovery.push('static')
  }
  if (discovery.includes('static') && staticIn === undefined) {
    throw configError(discIn?.where ?? '--discovery', 'static discovery needs --static PATH')
  }
  const dockerNetIn = get('docker-network')
  const dockerNetworks = list(dockerNetIn)
  if (dockerNetworks.length > 0 && !discovery.includes('docker'))
    throw configError(dockerNetIn!.where, 'only applies to Docker discovery, which is off (--discovery without docker)')
  for (const n of dockerNetworks) {
    // Docker's own rule for network names; `host` and `none` have no container IPs to advertise.
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(n) || n === 'host' || n === 'none')
      throw configError(
        dockerNetIn!.where,
        `"${n}" is not a Docker network whose container IPs can be advertised (a name of [A-Za-z0-9_.-], up to 128, not host or none)`,
      )
  }
  const dockerHostIn = get('docker-host')
  if (dockerHostIn && dockerHostIn.where.startsWith('--') && !discovery.includes('docker')) {
    throw configError(dockerHostIn.where, 'only applies to Docker discovery, which is off (--discovery without docker)')
  }

  const xdsIn = get('xds')
  const xds = xdsIn ? hostPort(xdsIn, { listener: true }) : { host: '127.0.0.1', port: DEFAULT_PORTS.xds }
  const xdsIfIn = get('xds-interfaces')
  const xdsInterfaces = list(xdsIfIn)
  for (const n of xdsInterfaces) {
    // Linux interface names: up to 15 bytes, no slash or whitespace.
    if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(n))
      throw configError(xdsIfIn!.where, `"${n}" is not a network interface name (ip link shows them)`)
  }
  const httpIn = get('http')
  const http = httpIn ? hostPort(httpIn, { listener: true }) : { host: '127.0.0.1', port: DEFAULT_PORTS.http }

  const envoyBind = str('envoy-bind', '127.0.0.1')
  if (isIP(envoyBind) === 0) throw configError(get('envoy-bind')!.where, `"${envoyBind}" is not an IP address`)

  const lot = get('leave-on-terminate')
  const leaveOnTerminate = lot ? parseBool(lot) : true
  const ld = get('leave-drain')
  const leaveDrainMs = ld ? parseDuration(ld) : 1000
  if (leaveDrainMs > 60_000) throw configError(ld!.where, `"${ld!.value}" is over 1m: a leave that long holds up a stop`)
  const dos = get('drain-on-stop')
  const drainOnStop = dos ? parseBool(dos) : true
  if (dos && dos.where.startsWith('--') && !discovery.includes('docker'))
    throw configError(dos.where, 'only applies to Docker discovery, which is off (--discovery without docker)')
  const aec = get('allow-external-checks')
  const allowExternalChecks = aec ? parseBool(aec) : false

  const logLevel = str('log-level', 'info')
  if (!LOG_LEVELS.includes(logLevel)) throw configError(get('log-level')!.where, `"${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`)
  const lf = get('log-format')
  const logFormat = lf ? lf.value : (opts.isTTY ?? process.stdout.isTTY) ? 'pretty' : 'json'
  if (logFormat !== 'json' && logFormat !== 'pretty') throw configError(lf!.where, `"${lf!.value}" is not json or pretty`)

  const heapIn = get('heap')
  const heap = (heapIn?.value ?? 'lean') as HeapMode
  if (!Object.hasOwn(HEAP_V8_FLAGS, heap)) throw configError(heapIn!.where, `"${heapIn!.value}" is not lean or fast`)

  const rt = get('ready-timeout')
  const readyTimeoutMs = rt ? parseDuration(rt) : profile === 'local' ? 1000 : 5000
  const dns = parseDns(get)

  const tlsDirIn = get('tls-dir')
  if (tlsDirIn !== undefined) {
    let isDir = false
    try {
      isDir = statSync(tlsDirIn.value).isDirectory()
    } catch {
      /* missing: said below */
    }
    if (!isDir) {
      throw configError(
        tlsDirIn.where,
        `"${tlsDirIn.value}" is not a directory: make it and write the node's intermediate there with \`shoal ca intermediate --out ${tlsDirIn.value}\``,
      )
    }
  }
  const modeIn = get('tls-mode')
  const tlsMode = (modeIn?.value ?? (tlsDirIn ? 'permissive' : 'off')) as TlsMode
  if (!Object.values(TlsMode).includes(tlsMode)) throw configError(modeIn!.where, `"${modeIn!.value}" is not off, permissive or strict`)
  if (tlsMode !== 'off' && tlsDirIn === undefined) {
    throw configError(modeIn!.where, `${tlsMode} needs identities: add --tls-dir DIR (\`shoal ca intermediate\` writes one)`)
  }
  const ttlIn = get('tls-leaf-ttl')
  const tlsLeafTtlMs = ttlIn ? parseDuration(ttlIn) : 24 * 3_600_000
  if (ttlIn && tlsDirIn === undefined) throw configError(ttlIn.where, 'only applies with --tls-dir')
  if (tlsLeafTtlMs < 60_000 || tlsLeafTtlMs > 90 * 86_400_000) throw configError(ttlIn!.where, `"${ttlIn!.value}" is outside 1m to 90d`)

  const socketIn = get('xds-socket')
  if (socketIn !== undefined && !socketIn.value.startsWith('/'))
    throw configError(socketIn.where, `"${socketIn.value}" is not an absolute path (the Unix socket Envoy's bootstrap names)`)
  const inboundIn = get('inbound-ports')
  let inboundPorts: { from: number; to: number } | undefined
  if (inboundIn !== undefined) {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(inboundIn.value.trim())
    const from = Number(m?.[1])
    const to = Number(m?.[2])
    if (!m || from < 1 || to > 65535 || from > to)
      throw configError(inboundIn.where, `"${inboundIn.value}" is not a port range FROM-TO (1-65535)`)
    if (tlsMode === 'off') throw configError(inboundIn.where, 'inbound mTLS listeners need --tls-dir (and --tls-mode permissive or strict)')
    inboundPorts = { from, to }
  }

  const cfg: AgentConfig = {
    node,
    bind,
    advertise,
    join,
    cluster,
    keys,
    profile,
    discovery,
    dockerNetworks,
    xds,
    xdsInterfaces,
    http,
    envoyBind,
    leaveOnTerminate,
    leaveDrainMs,
    drainOnStop,
    allowExternalChecks,
    logLevel,
    logFormat,
    heap,
    readyTimeoutMs,
    tlsMode,
    tlsLeafTtlMs,
  }
  if (tlsDirIn !== undefined) cfg.tlsDir = tlsDirIn.value
  if (socketIn !== undefined) cfg.xdsSocket = socketIn.value
  if (inboundPorts !== undefined) cfg.inboundPorts = inboundPorts
  if (keyFile !== undefined) cfg.keyFile = keyFile
  if (staticIn !== undefined) cfg.static = staticIn.value
  if (dockerHostIn !== undefined) cfg.dockerHost = dockerHostIn.value
  const tokIn = get('api-token')
  if (tokIn !== undefined) cfg.apiToken = apiToken(tokIn.where, tokIn.value)
  const watchMaxIn = get('http-watch-max')
  if (watchMaxIn !== undefined) {
    const n = Number(watchMaxIn.value.trim())
    if (!/^\d{1,6}$/.test(watchMaxIn.value.trim()) || n < 1)
      throw configError(watchMaxIn.where, `"${watchMaxIn.value}" is not a whole number of streams from 1 to 999999`)
    cfg.httpWatchMax = n
  }
  if (dns !== undefined) cfg.dns = dns
  return cfg
}

/**
 * The --api-token value: callers send it as `Authorization: Bearer TOKEN` (RFC 6750: one
 * run of non-space characters), so an empty token (which would silently mean "loopback
 * only") or one holding whitespace (which no header could match) is a configuration error.
 */
function apiToken(where: string, value: string): string {
  if (value === '')
    throw configError(
      where,
      'is empty; give a token of non-space characters (`openssl rand -hex 32`), or leave the flag out for loopback-only drain',
    )
  if (/\s/.test(value))
    throw configError(where, 'holds whitespace, which no "Authorization: Bearer TOKEN" header can carry; use a token without spaces')
  return value
}

/** A comma list flag's items, trimmed, empty ones left out (an empty value, as a stack's unset variable gives, is none). */
function list(v: FlagValue | undefined): string[] {
  return v
    ? v.value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : []
}

/** One DNS label (RFC 1123 section 2.1: letters, digits and inner dashes, 1-63). */
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

function parseDns(get: (flag: FlagName) => FlagValue | undefined): DnsConfig | undefined {
  const dnsIn = get('dns')
  const off = dnsIn !== undefined && dnsIn.value.trim().toLowerCase() === 'off'
  if (off) {
    for (const f of ['dns-domain', 'dns-ttl', 'dns-recursors'] as const) {
      const v = get(f)
      if (v) throw configError(v.where, `only applies to the DNS interface, which is off (${dnsIn.where} off)`)
    }
    return undefined
  }
  const bind = dnsIn ? hostPort(dnsIn, { listener: true }) : { host: '127.0.0.1', port: DEFAULT_PORTS.dns }

  const domIn = get('dns-domain')
  const domain = (domIn?.value ?? 'shoal.').trim().toLowerCase().replace(/\.$/, '')
  // Room is left in front of the domain for ID.NAME.instance names (253 bytes in all, RFC 1035).
  if (domain.length > 100 || !domain.split('.').every((l) => DNS_LABEL.test(l))) {
    throw configError(
      domIn!.where,
      `"${domIn!.value}" is not a DNS domain (labels of letters, digits and inner dashes, up to 100 characters, e.g. shoal. or svc.example.)`,
    )
  }

  const ttlIn = get('dns-ttl')
  let ttlSeconds = 0
  if (ttlIn) {
    const ms = parseDuration(ttlIn)
    // RFC 2181 section 8: a TTL is a whole number of seconds below 2^31.
    if (ms % 1000 !== 0 || ms / 1000 > 2_147_483_647)
      throw configError(ttlIn.where, `"${ttlIn.value}" is not a whole number of seconds (DNS TTLs are seconds, RFC 2181)`)
    ttlSeconds = ms / 1000
  }

  const recIn = get('dns-recursors')
  const recursors = recIn
    ? recIn.value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .map((s) => hostPort({ value: s, where: recIn.where }, { defaultPort: 53, ipOnly: true }))
    : []
  for (const r of recursors) {
    if (r.host === bind.host && r.port === bind.port)
      throw configError(recIn!.where, `${r.host}:${r.port} is this agent's own --dns address; forwarding to it would loop`)
  }
  return { bind, domain: `${domain}.`, ttlSeconds, recursors }
}
