import { parseArgs } from 'node:util'
import { hostname, networkInterfaces } from 'node:os'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { ShoalError } from '../errors.js'

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
  dockerNetwork?: string
  xds: HostPort
  http: HostPort
  envoyBind: string
  apiToken?: string
  leaveOnTerminate: boolean
  allowExternalChecks: boolean
  logLevel: string
  /** Warm start: how long a lone agent waits for a push-pull before it reports ready. */
  readyTimeoutMs: number
}

export interface HostPort {
  host: string
  port: number
}

/** Flag name -> kind. Booleans accept `--flag`, `--flag true|false`. */
const FLAGS = {
  node: 'string',
  bind: 'string',
  advertise: 'string',
  join: 'string',
  cluster: 'string',
  key: 'string',
  'key-file': 'string',
  profile: 'string',
  discovery: 'string',
  static: 'string',
  'docker-host': 'string',
  'docker-network': 'string',
  xds: 'string',
  http: 'string',
  'envoy-bind': 'string',
  'api-token': 'string',
  'leave-on-terminate': 'string',
  'allow-external-checks': 'boolean',
  'log-level': 'string',
  'ready-timeout': 'string',
} as const
type FlagName = keyof typeof FLAGS

export const AGENT_FLAGS: readonly string[] = Object.keys(FLAGS)

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

function configError(where: string, message: string): ShoalError {
  return new ShoalError('SHOAL_ERR_CONFIG', `${where}: ${message}`)
}

export function envName(flag: string): string {
  return 'SHOAL_' + flag.toUpperCase().replace(/-/g, '_')
}

/** Parse `HOST:PORT` (IPv6 as `[::1]:7946`); `defaultPort` allows a bare host. */
export function parseHostPort(value: string, where: string, defaultPort?: number): HostPort {
  const v = value.trim()
  let host: string
  let portText: string | undefined
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(v)
  if (bracket) {
    host = bracket[1]!
    portText = bracket[2]
  } else {
    const idx = v.lastIndexOf(':')
    if (idx >= 0 && v.indexOf(':') === idx) {
      host = v.slice(0, idx)
      portText = v.slice(idx + 1)
    } else if (idx < 0) {
      host = v
    } else {
      throw configError(where, `"${value}" is not HOST:PORT (write IPv6 as [addr]:port)`)
    }
  }
  if (host === '' || !/^[A-Za-z0-9._:-]+$/.test(host)) throw configError(where, `"${value}" has no valid host`)
  let port: number
  if (portText === undefined || portText === '') {
    if (defaultPort === undefined) throw configError(where, `"${value}" has no port (HOST:PORT)`)
    port = defaultPort
  } else {
    if (!/^\d+$/.test(portText)) throw configError(where, `"${value}" has a non-numeric port`)
    port = Number(portText)
    if (port > 65535) throw configError(where, `"${value}" has a port out of range 0-65535`)
  }
  return { host, port }
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`
}

/** The first non-internal IPv4 address, else 127.0.0.1. */
export function detectAdvertiseIp(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return '127.0.0.1'
}

function parseBool(value: string, where: string): boolean {
  const v = value.trim().toLowerCase()
  if (v === 'true' || v === '1' || v === 'yes' || v === '') return true
  if (v === 'false' || v === '0' || v === 'no') return false
  throw configError(where, `"${value}" is not true or false`)
}

function parseDuration(value: string, where: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim())
  if (!m) throw configError(where, `"${value}" is not a duration like 500ms, 10s or 1m`)
  const n = Number(m[1])
  return Math.round(m[2] === 'm' ? n * 60_000 : m[2] === 'ms' ? n : n * 1000)
}

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
    throw configError(where, 'a gossip key must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)')
  }
}

export function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(Object.entries(FLAGS).map(([k, type]) => [k, { type }])) as Record<
        string,
        { type: 'string' | 'boolean' }
      >,
      strict: true,
      allowPositionals: false,
    })
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_CONFIG', (err as Error).message.split('\n')[0]!)
  }
  const values = parsed.values as Record<string, string | boolean | undefined>
  /** The value of a flag, else its variable; `where` names which one for errors. */
  const get = (flag: FlagName): { value: string; where: string } | undefined => {
    const v = values[flag]
    if (v !== undefined) return { value: typeof v === 'boolean' ? String(v) : v, where: `--${flag}` }
    const e = env[envName(flag)]
    if (e !== undefined && e !== '') return { value: e, where: envName(flag) }
    return undefined
  }
  const str = (flag: FlagName, dflt: string): string => get(flag)?.value ?? dflt

  const node = str('node', hostname())
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(node)) {
    throw configError(get('node')?.where ?? '--node', `"${node}" is not a valid node name ([A-Za-z0-9._-], up to 128)`)
  }
  const bindIn = get('bind')
  const bind = bindIn ? parseHostPort(bindIn.value, bindIn.where, 7946) : { host: '0.0.0.0', port: 7946 }
  if (isIP(bind.host) === 0) throw configError(bindIn?.where ?? '--bind', `"${bind.host}" is not an IP address`)

  const advIn = get('advertise')
  let advertise: HostPort
  if (advIn) {
    advertise = parseHostPort(advIn.value, advIn.where, bind.port)
    if (isIP(advertise.host) === 0) throw configError(advIn.where, `"${advertise.host}" is not an IP address`)
  } else {
    const ip = bind.host === '0.0.0.0' || bind.host === '::' ? detectAdvertiseIp() : bind.host
    advertise = { host: ip, port: bind.port }
  }

  const joinIn = get('join')
  const join = joinIn
    ? joinIn.value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .map((s) => parseHostPort(s, joinIn.where, 7946))
    : []

  const cluster = str('cluster', 'default')
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(cluster)) throw configError(get('cluster')!.where, `"${cluster}" is not a valid cluster name`)

  const keyIn = get('key')
  const keys = keyIn
    ? keyIn.value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : []
  keys.forEach((k, i) => checkKey(k, `${keyIn!.where} (key ${i + 1})`))
  const keyFile = get('key-file')?.value
  if (keyFile !== undefined) readKeyFile(keyFile)

  const profile = str('profile', 'lan')
  if (profile !== 'lan' && profile !== 'local' && profile !== 'wan') {
    throw configError(get('profile')!.where, `"${profile}" is not lan, local or wan`)
  }

  const discIn = get('discovery')
  const discovery: Array<'docker' | 'static'> = []
  for (const d of (discIn?.value ?? 'docker')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (d === 'none') continue
    if (d !== 'docker' && d !== 'static') throw configError(discIn!.where, `"${d}" is not docker, static or none`)
    if (!discovery.includes(d)) discovery.push(d)
  }
  const staticPath = get('static')?.value
  if (staticPath !== undefined && !discovery.includes('static')) discovery.push('static')
  if (discovery.includes('static') && staticPath === undefined) {
    throw configError(discIn?.where ?? '--discovery', 'static discovery needs --static PATH')
  }

  const xdsIn = get('xds')
  const xds = xdsIn ? parseHostPort(xdsIn.value, xdsIn.where) : { host: '127.0.0.1', port: 7776 }
  const httpIn = get('http')
  const http = httpIn ? parseHostPort(httpIn.value, httpIn.where) : { host: '127.0.0.1', port: 7777 }

  const envoyBind = str('envoy-bind', '127.0.0.1')
  if (isIP(envoyBind) === 0) throw configError(get('envoy-bind')!.where, `"${envoyBind}" is not an IP address`)

  const lot = get('leave-on-terminate')
  const leaveOnTerminate = lot ? parseBool(lot.value, lot.where) : true
  const aec = get('allow-external-checks')
  const allowExternalChecks = aec ? parseBool(aec.value, aec.where) : false

  const logLevel = str('log-level', 'info')
  if (!LOG_LEVELS.includes(logLevel)) throw configError(get('log-level')!.where, `"${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`)

  const rt = get('ready-timeout')
  const readyTimeoutMs = rt ? parseDuration(rt.value, rt.where) : profile === 'local' ? 1000 : 5000

  const cfg: AgentConfig = {
    node,
    bind,
    advertise,
    join,
    cluster,
    keys,
    profile,
    discovery,
    xds,
    http,
    envoyBind,
    leaveOnTerminate,
    allowExternalChecks,
    logLevel,
    readyTimeoutMs,
  }
  if (keyFile !== undefined) cfg.keyFile = keyFile
  if (staticPath !== undefined) cfg.static = staticPath
  const dh = get('docker-host')?.value
  if (dh !== undefined) cfg.dockerHost = dh
  const dn = get('docker-network')?.value
  if (dn !== undefined) cfg.dockerNetwork = dn
  const tok = get('api-token')?.value
  if (tok !== undefined) cfg.apiToken = tok
  return cfg
}
