// Multi-host harness for the system scenarios: N network namespaces on one private bridge,
// one real `shoal agent` process in each, and the faults the scenarios inject (partitions,
// packet loss, SIGSTOP pauses, kill -9). Everything it creates carries a per-run random
// prefix, is written down before it is made (test/lib/labs.ts) and is removed in teardown, on
// process exit or signal, and by the process's reaper when it was killed (SIGKILL), even when
// a test fails half way. By hand: `node scripts/clean-labs.mjs`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { endpointsOf } from '../lib/ads-watch.js'
import { LabManifest, type LabStep } from '../lib/labs.js'

export { CLI, REPO_ROOT, ensureBuilt } from '../lib/cli.js'
import { CLI, REPO_ROOT, ensureBuilt } from '../lib/cli.js'
import { DEFAULT_PORTS } from '../../src/agent/config.js'
export const GOSSIP_PORT = DEFAULT_PORTS.gossip
export const HTTP_PORT = DEFAULT_PORTS.http
export const XDS_PORT = DEFAULT_PORTS.xds

/** Timing of the `local` profile (docs/architecture.md, "Timing defaults"), used to derive the bounds the scenarios assert. */
export const LOCAL_PROFILE = {
  probeIntervalMs: 200,
  probeTimeoutMs: 100,
  suspicionMult: 3,
  suspicionMaxMult: 6,
  gossipIntervalMs: 50,
  pushPullMs: 5000,
  reconnectMs: 2000,
} as const

/**
 * Upper bound for "every host has marked a crashed member dead" with the local profile:
 * one full probe round to reach the dead node, the longest suspicion (no confirmations),
 * then a few gossip rounds to spread `dead`. Slack for 2 busy cores.
 */
export function failureDetectionBoundMs(n: number): number {
  const p = LOCAL_PROFILE
  const minSusp = p.suspicionMult * Math.max(1, Math.log10(n)) * p.probeIntervalMs
  const maxSusp = p.suspicionMaxMult * minSusp
  return n * p.probeIntervalMs + p.probeTimeoutMs + maxSusp + 10 * p.gossipIntervalMs + 2000
}

// ---------------------------------------------------------------------------------------
// Preconditions

/** Why the netns suites cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `netns needs Linux (this is ${process.platform})`
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'netns needs root (ip netns, iptables)'
  for (const [tool, flag] of [
    ['ip', '-V'],
    ['iptables', '--version'],
  ] as const) {
    const r = spawnSync(tool, [flag], { encoding: 'utf8' })
    if (r.error || r.status !== 0) return `${tool} is not installed (Debian: iproute2, iptables)`
  }
  const probe = spawnSync('iptables', ['-w', '-L', 'FORWARD', '-n'], { encoding: 'utf8' })
  if (probe.status !== 0) return `iptables does not work here: ${(probe.stderr || '').trim()}`
  return undefined
}

/** Does the built CLI have the `agent` subcommand yet? (The agent lands separately.) */
export function agentAvailable(): string | undefined {
  const r = spawnSync(process.execPath, [CLI, 'agent', '--help'], { encoding: 'utf8', timeout: 20_000 })
  if (r.status !== 0)
    return `\`node dist/cli.js agent --help\` failed (exit ${r.status}): ${(r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' | ')}`
  return undefined
}

// ---------------------------------------------------------------------------------------
// Commands

function run(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0 && !allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || r.stdout || '').trim()}`)
  }
  return r.stdout ?? ''
}

function nsRun(ns: string, args: string[], allowFail = false): string {
  return run('ip', ['netns', 'exec', ns, ...args], allowFail)
}

function ipt(ns: string, args: string[], allowFail = false): string {
  return nsRun(ns, ['iptables', '-w', ...args], allowFail)
}

// ---------------------------------------------------------------------------------------

export interface NetnsHost {
  /** 0-based index. */
  index: number
  /** Namespace name, also the agent's node name: `sh<6 hex>-<i>`. */
  ns: string
  ip: string
  /** Host-side veth in the root namespace. */
  veth: string
}

export interface LabOptions {
  hosts: number
  /** Keep the temporary log folder after destroy (for debugging). */
  keepLogs?: boolean
}

function pickSubnet(): string {
  const used = run('ip', ['-4', '-o', 'addr']) + run('ip', ['-4', 'route'])
  for (let i = 0; i < 50; i++) {
    const b = 200 + Math.floor(Math.random() * 50)
    const c = Math.floor(Math.random() * 256)
    const prefix = `10.${b}.${c}`
    if (!used.includes(prefix + '.')) return prefix
  }
  throw new Error('no free 10.x.y.0/24 test subnet')
}

/**
 * A set of namespaces on one bridge. The bridge itself holds `.1`, so the root namespace
 * (the test process) reaches every host's HTTP API directly at `http://<ip>:7777`.
 *
 * @example
 *   const lab = NetnsLab.create({ hosts: 5 })
 *   t.teardown(() => lab.destroy())
 *   const a = lab.startAgent(0, { join: [] })
 *   lab.partition([0, 1], [2, 3, 4])
 */
export class NetnsLab {
  readonly prefix: string
  readonly bridge: string
  readonly subnet: string
  readonly bridgeIp: string
  readonly hosts: NetnsHost[] = []
  readonly dir: string
  readonly agents = new Map<number, AgentProcess>()
  private readonly others = new Set<ChildProcess>()
  private readonly manifest: LabManifest

  private constructor(opts: LabOptions) {
    this.prefix = 'sh' + randomBytes(3).toString('hex')
    this.bridge = this.prefix + 'br'
    this.subnet = pickSubnet()
    this.bridgeIp = this.subnet + '.1'
    // Written down before anything is made: the undo steps of every namespace, veth, the bridge, its FORWARD rule.
    const steps: LabStep[] = []
    for (let i = 0; i < opts.hosts; i++) {
      const ns = `${this.prefix}-${i}`
      // Processes that someone else started inside the namespace (none expected) die with it.
      steps.push({ netnsKill: ns }, { run: ['ip', 'link', 'del', ns] }, { run: ['ip', 'netns', 'del', ns] })
    }
    steps.push(
      { run: ['ip', 'link', 'del', this.bridge] },
      { run: ['iptables', '-w', '-D', 'FORWARD', '-i', this.bridge, '-o', this.bridge, '-j', 'ACCEPT'] },
    )
    this.manifest = LabManifest.write(`netns lab ${this.prefix}`, steps, [this.prefix])
    this.dir = mkdtempSync(join(tmpdir(), `shoal-netns-${this.prefix}-`))
    if (opts.keepLogs !== true) this.manifest.addSteps({ rm: this.dir })
    this.manifest.onUndo(() => {
      for (const a of this.agents.values()) a.killSync()
      for (const c of this.others) {
        c.kill('SIGCONT')
        c.kill('SIGKILL')
      }
    })
  }

  static create(opts: LabOptions): NetnsLab {
    if (opts.hosts < 1 || opts.hosts > 200) throw new Error(`hosts must be 1..200, got ${opts.hosts}`)
    const lab = new NetnsLab(opts)
    try {
      lab.setup(opts.hosts)
    } catch (err) {
      lab.destroySync()
      throw err
    }
    return lab
  }

  private setup(n: number): void {
    run('ip', ['link', 'add', this.bridge, 'type', 'bridge'])
    run('ip', ['addr', 'add', this.bridgeIp + '/24', 'dev', this.bridge])
    run('ip', ['link', 'set', this.bridge, 'up'])
    // dockerd may have set the FORWARD policy to DROP; bridged frames pass FORWARD when
    // br_netfilter is loaded.
    run('iptables', ['-w', '-I', 'FORWARD', '-i', this.bridge, '-o', this.bridge, '-j', 'ACCEPT'])
    for (let i = 0; i < n; i++) {
      const ns = `${this.prefix}-${i}`
      const veth = ns
      const peer = `${this.prefix}p${i}`
      const ip = `${this.subnet}.${i + 2}`
      run('ip', ['netns', 'add', ns])
      this.hosts.push({ index: i, ns, ip, veth })
      run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', peer])
      run('ip', ['link', 'set', peer, 'netns', ns])
      run('ip', ['link', 'set', veth, 'master', this.bridge])
      run('ip', ['link', 'set', veth, 'up'])
      nsRun(ns, ['ip', 'link', 'set', 'lo', 'up'])
      nsRun(ns, ['ip', 'link', 'set', peer, 'name', 'eth0'])
      nsRun(ns, ['ip', 'addr', 'add', ip + '/24', 'dev', 'eth0'])
      nsRun(ns, ['ip', 'link', 'set', 'eth0', 'up'])
      // Our own chains, so heal() and setLoss(…, 0) flush exactly what we added.
      ipt(ns, ['-N', 'SHOAL_PART'])
      ipt(ns, ['-A', 'INPUT', '-j', 'SHOAL_PART'])
      ipt(ns, ['-A', 'OUTPUT', '-j', 'SHOAL_PART'])
      ipt(ns, ['-N', 'SHOAL_LIN'])
      ipt(ns, ['-A', 'INPUT', '-i', 'eth0', '!', '-s', this.bridgeIp, '-j', 'SHOAL_LIN'])
      ipt(ns, ['-N', 'SHOAL_LOUT'])
      ipt(ns, ['-A', 'OUTPUT', '-o', 'eth0', '!', '-d', this.bridgeIp, '-j', 'SHOAL_LOUT'])
    }
  }

  host(i: number): NetnsHost {
    const h = this.hosts[i]
    if (!h) throw new Error(`no host ${i} (lab has ${this.hosts.length})`)
    return h
  }

  /** Run a command inside host i's namespace; returns stdout, throws on failure. */
  exec(i: number, args: string[]): string {
    return nsRun(this.host(i).ns, args)
  }

  /** Drop every packet between the two groups (both directions, in every namespace). */
  partition(groupA: number[], groupB: number[]): void {
    const cut = (from: number[], to: number[]): void => {
      for (const a of from) {
        const ns = this.host(a).ns
        for (const b of to) {
          const ip = this.host(b).ip
          ipt(ns, ['-A', 'SHOAL_PART', '-s', ip, '-j', 'DROP'])
          ipt(ns, ['-A', 'SHOAL_PART', '-d', ip, '-j', 'DROP'])
        }
      }
    }
    cut(groupA, groupB)
    cut(groupB, groupA)
  }

  /** Remove every partition rule. */
  heal(): void {
    for (const h of this.hosts) ipt(h.ns, ['-F', 'SHOAL_PART'])
  }

  /**
   * Random loss with probability p on host i's traffic to and from other hosts (the test's
   * own HTTP polling from the bridge address is spared, so it does not measure its own
   * retransmits). `dir` 'out' drops outbound packets only: applied on every host, each
   * packet between two hosts then crosses exactly one loss rule (p end to end); 'both'
   * also drops inbound (1 - (1-p)^2 end to end when every host has it). p = 0 removes it.
   */
  setLoss(i: number, p: number, dir: 'in' | 'out' | 'both' = 'both'): void {
    if (!(p >= 0 && p < 1)) throw new Error(`loss probability must be in [0, 1), got ${p}`)
    const ns = this.host(i).ns
    ipt(ns, ['-F', 'SHOAL_LIN'])
    ipt(ns, ['-F', 'SHOAL_LOUT'])
    if (p === 0) return
    const rule = ['-m', 'statistic', '--mode', 'random', '--probability', p.toFixed(4), '-j', 'DROP']
    if (dir !== 'out') ipt(ns, ['-A', 'SHOAL_LIN', ...rule])
    if (dir !== 'in') ipt(ns, ['-A', 'SHOAL_LOUT', ...rule])
  }

  /** Packets host i's loss rules dropped so far (to show the loss was real). */
  lossDrops(i: number): number {
    let sum = 0
    for (const chain of ['SHOAL_LIN', 'SHOAL_LOUT']) {
      const out = ipt(this.host(i).ns, ['-L', chain, '-n', '-v', '-x'], true)
      for (const line of out.split('\n')) {
        const m = /^\s*(\d+)\s+\d+\s+DROP/.exec(line)
        if (m) sum += Number(m[1])
      }
    }
    return sum
  }

  /** Packets host i's partition rules dropped so far. */
  partitionDrops(i: number): number {
    const out = ipt(this.host(i).ns, ['-L', 'SHOAL_PART', '-n', '-v', '-x'], true)
    let sum = 0
    for (const line of out.split('\n')) {
      const m = /^\s*(\d+)\s+\d+\s+DROP/.exec(line)
      if (m) sum += Number(m[1])
    }
    return sum
  }

  /** Start host i's agent. Node name = namespace name; gossip, HTTP and xDS on the host's IP. */
  startAgent(i: number, opts: AgentOptions = {}): AgentProcess {
    const old = this.agents.get(i)
    if (old && old.running) throw new Error(`agent ${i} is already running`)
    const a = new AgentProcess(this, this.host(i), opts, old ? old.starts + 1 : 1)
    this.agents.set(i, a)
    a.spawn()
    return a
  }

  /** Any other process inside host i's namespace (killed on destroy). */
  spawnIn(i: number, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.host(i).ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.others.add(child)
    child.once('exit', () => this.others.delete(child))
    return child
  }

  agent(i: number): AgentProcess {
    const a = this.agents.get(i)
    if (!a) throw new Error(`no agent started on host ${i}`)
    return a
  }

  /** Synchronous and idempotent: processes, namespaces, veths, bridge, iptables rule, temp dir (the manifest's steps). */
  destroySync(): void {
    this.manifest.undo()
  }

  /** For t.teardown: gives agents a moment to exit on SIGKILL, then removes everything. */
  async destroy(): Promise<void> {
    this.destroySync()
    await Promise.all([...this.agents.values()].map((a) => a.exited))
  }

  /** Leftovers of this lab (for the cleanup test): namespaces, links, FORWARD rule. */
  leftovers(): string[] {
    const out: string[] = []
    const nss = run('ip', ['netns', 'list'], true)
    for (const h of this.hosts) if (nss.split('\n').some((l) => l.split(' ')[0] === h.ns)) out.push('netns ' + h.ns)
    const links = run('ip', ['-o', 'link'], true)
    if (links.includes(this.prefix)) out.push('link with prefix ' + this.prefix)
    const fwd = run('iptables', ['-w', '-S', 'FORWARD'], true)
    if (fwd.includes(this.bridge)) out.push('FORWARD rule for ' + this.bridge)
    if (existsSync(this.dir)) out.push('dir ' + this.dir)
    return out
  }
}

// ---------------------------------------------------------------------------------------

export interface StaticService {
  id: string
  name: string
  ports: Array<{ port: number; servicePort: number }>
}

export interface AgentOptions {
  /** Host indexes to join (their gossip address). */
  join?: number[]
  /** Base64 gossip keys; the first is primary. */
  key?: string
  cluster?: string
  profile?: 'local' | 'lan' | 'wan'
  /** Services in this host's static file. */
  services?: StaticService[]
  logLevel?: string
  extraArgs?: string[]
}

/**
 * One agent process in a namespace. `ip netns exec` execs into node, so `pid` is node
 * itself and SIGSTOP/SIGKILL hit the agent, not a wrapper.
 */
export class AgentProcess {
  readonly url: string
  readonly staticFile: string
  readonly logFile: string
  private child: ChildProcess | undefined
  running = false
  exitCode: number | null = null
  exitSignal: string | null = null
  exited: Promise<void> = Promise.resolve()

  constructor(
    readonly lab: NetnsLab,
    readonly host: NetnsHost,
    readonly opts: AgentOptions,
    readonly starts: number,
  ) {
    this.url = `http://${host.ip}:${HTTP_PORT}`
    this.staticFile = join(lab.dir, `${host.ns}.static.json`)
    this.logFile = join(lab.dir, `${host.ns}.log`)
    if (!existsSync(this.staticFile) || opts.services) this.writeServices(opts.services ?? [])
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  get name(): string {
    return this.host.ns
  }

  args(): string[] {
    const h = this.host
    const o = this.opts
    const a = [
      CLI,
      'agent',
      '--node',
      h.ns,
      '--bind',
      `${h.ip}:${GOSSIP_PORT}`,
      '--advertise',
      `${h.ip}:${GOSSIP_PORT}`,
      '--profile',
      o.profile ?? 'local',
      '--discovery',
      'static',
      '--static',
      this.staticFile,
      '--http',
      `${h.ip}:${HTTP_PORT}`,
      '--xds',
      `${h.ip}:${XDS_PORT}`,
      '--cluster',
      o.cluster ?? this.lab.prefix,
      '--log-level',
      o.logLevel ?? 'warn',
    ]
    if (o.join && o.join.length > 0) a.push('--join', o.join.map((j) => `${this.lab.host(j).ip}:${GOSSIP_PORT}`).join(','))
    if (o.key) a.push('--key', o.key)
    if (o.extraArgs) a.push(...o.extraArgs)
    return a
  }

  spawn(): void {
    const fd = openSync(this.logFile, 'a')
    writeFileSync(fd, `\n=== start #${this.starts} ${new Date().toISOString()} node ${this.args().slice(1).join(' ')}\n`)
    const child = spawn('ip', ['netns', 'exec', this.host.ns, process.execPath, ...this.args()], {
      stdio: ['ignore', fd, fd],
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_OPTIONS: '' },
    })
    closeSync(fd)
    this.child = child
    this.running = true
    this.exitCode = null
    this.exitSignal = null
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.running = false
        this.exitCode = code
        this.exitSignal = signal
        resolve()
      })
      child.once('error', () => {
        this.running = false
        resolve()
      })
    })
  }

  /** Rewrite the static file (the agent re-reads it on change). */
  writeServices(services: StaticService[]): void {
    // Write-then-rename so the agent never reads half a file.
    const tmp = this.staticFile + '.tmp'
    writeFileSync(tmp, JSON.stringify({ services }, null, 2))
    spawnSync('mv', ['-f', tmp, this.staticFile])
  }

  signal(sig: NodeJS.Signals): void {
    if (this.child?.pid === undefined || !this.running) throw new Error(`agent ${this.name} is not running`)
    process.kill(this.child.pid, sig)
  }

  pause(): void {
    this.signal('SIGSTOP')
  }
  resume(): void {
    this.signal('SIGCONT')
  }

  /** kill -9 and wait for the exit. */
  async kill9(): Promise<void> {
    if (!this.running) return
    try {
      process.kill(this.child!.pid!, 'SIGCONT')
    } catch {
      /* gone */
    }
    this.signal('SIGKILL')
    await this.exited
  }

  /** SIGTERM (graceful stop), SIGKILL after a timeout. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (!this.running) return
    this.signal('SIGTERM')
    const t = setTimeout(() => this.killSync(), timeoutMs)
    t.unref()
    await this.exited
    clearTimeout(t)
  }

  killSync(): void {
    const pid = this.child?.pid
    if (pid === undefined || !this.running) return
    try {
      process.kill(pid, 'SIGCONT')
    } catch {
      /* gone */
    }
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      /* gone */
    }
  }

  /** Start the same host's agent again with the same options (a new process, a new boot). */
  restart(overrides: AgentOptions = {}): AgentProcess {
    if (this.running) throw new Error(`agent ${this.name} still running; kill it first`)
    return this.lab.startAgent(this.host.index, { ...this.opts, ...overrides })
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n')
    } catch {
      return '(no log)'
    }
  }

  async get(path: string, timeoutMs = 2000): Promise<{ status: number; body: unknown }> {
    return httpGetJson(this.url + path, timeoutMs)
  }

  async members(timeoutMs = 2000): Promise<Member[]> {
    return normalizeMembers((await this.get('/api/members.json', timeoutMs)).body)
  }

  async services(timeoutMs = 2000): Promise<Instance[]> {
    return normalizeServices((await this.get('/api/services.json', timeoutMs)).body)
  }

  async ready(timeoutMs = 1000): Promise<boolean> {
    try {
      return (await this.get('/readyz', timeoutMs)).status === 200
    } catch {
      return false
    }
  }
}

// ---------------------------------------------------------------------------------------
// HTTP and JSON shapes

export async function httpGetJson(url: string, timeoutMs = 2000): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body }
}

export interface Member {
  name: string
  address: string
  status: string
  incarnation: number
}

/** /api/members.json: an array, or `{ members: [...] }`. */
export function normalizeMembers(body: unknown): Member[] {
  const list = Array.isArray(body) ? body : (body as { members?: unknown } | null)?.members
  if (!Array.isArray(list)) throw new Error(`/api/members.json: unexpected shape ${JSON.stringify(body).slice(0, 200)}`)
  return list.map((m: any) => ({
    name: String(m.name),
    address: String(m.address ?? m.addr ?? ''),
    status: String(m.status ?? m.state ?? ''),
    incarnation: Number(m.incarnation ?? 0),
  }))
}

export interface Instance {
  service: string
  id: string
  /** Owning host (node name) when the JSON carries it. */
  host: string
  status: string
}

/**
 * /api/services.json, "services grouped by name, with instances": accepts an array of
 * `{name, instances}` or `{services: [...]}` or an object keyed by service name, and
 * instances with `id` and an owner under `host`, `node` or `owner`.
 */
export function normalizeServices(body: unknown): Instance[] {
  let groups: Array<{ name: string; instances: unknown }> = []
  const root: any = body
  const list = Array.isArray(root) ? root : root?.services
  if (Array.isArray(list)) {
    groups = list.map((g: any) => ({ name: String(g.name ?? g.service ?? ''), instances: g.instances ?? g.services ?? [] }))
  } else if (list && typeof list === 'object') {
    groups = Object.entries(list).map(([name, g]: [string, any]) => ({ name, instances: Array.isArray(g) ? g : (g?.instances ?? []) }))
  } else {
    throw new Error(`/api/services.json: unexpected shape ${JSON.stringify(body).slice(0, 200)}`)
  }
  const out: Instance[] = []
  for (const g of groups) {
    const insts = Array.isArray(g.instances) ? g.instances : Object.values(g.instances as object)
    for (const i of insts as any[]) {
      out.push({
        service: String(i.name ?? i.service ?? g.name),
        id: String(i.id ?? i.instanceId ?? ''),
        host: String(i.host ?? i.node ?? i.owner ?? i.hostname ?? ''),
        status: String(i.status ?? ''),
      })
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------
// Waiting

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/**
 * Poll `check` until it returns a truthy value or the time runs out. Errors from `check`
 * (an agent not answering yet) count as "not yet". Returns the value and the elapsed ms,
 * or throws with the last reason.
 */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined | false>,
  intervalMs = 100,
): Promise<{ value: T; ms: number }> {
  const start = Date.now()
  let last = ''
  for (;;) {
    try {
      const v = await check()
      if (v) return { value: v, ms: Date.now() - start }
      last = 'condition false'
    } catch (err) {
      last = (err as Error).message
    }
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`)
    await sleep(intervalMs)
  }
}

/** A static service entry with a deterministic id per host. */
export function svc(name: string, hostIndex: number, servicePort: number, port = 8080): StaticService {
  return { id: `${name}-${hostIndex}`, name, ports: [{ port, servicePort }] }
}

/** Random 32-byte gossip key, base64. */
export function newKey(): string {
  return randomBytes(32).toString('base64')
}

// ---------------------------------------------------------------------------------------
// xDS view: what a fresh Envoy would be told by host i's ADS server (wildcard CDS, then EDS
// for every cluster), as cluster name -> sorted "ip:port" endpoints.

export async function xdsView(address: string, timeoutMs = 5000): Promise<Record<string, string[]>> {
  const grpc = await import('@grpc/grpc-js')
  const { loadXdsProtos, TypeUrl, DECODE_OPTIONS } = await import('../../src/xds/protos.js')
  const protos = loadXdsProtos()
  const Client = grpc.makeGenericClientConstructor(protos.adsService, 'AggregatedDiscoveryService')
  const client = new Client(address, grpc.credentials.createInsecure()) as any
  const call = client.StreamAggregatedResources()
  const cla = protos.typeOf(TypeUrl.endpoint)!
  const cluster = protos.typeOf(TypeUrl.cluster)!
  const node = { id: `system-test-probe-${randomBytes(3).toString('hex')}`, cluster: 'system-test', user_agent_name: 'envoy' }
  try {
    return await new Promise<Record<string, string[]>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`xDS ${address}: no complete answer within ${timeoutMs} ms`)), timeoutMs)
      const view: Record<string, string[]> = {}
      let clusters: string[] | undefined
      call.on('error', (err: Error) => {
        clearTimeout(timer)
        reject(err)
      })
      call.on('data', (res: any) => {
        call.write({
          node,
          type_url: res.type_url,
          version_info: res.version_info,
          response_nonce: res.nonce,
          resource_names: res.type_url === TypeUrl.endpoint ? clusters : [],
        })
        if (res.type_url === TypeUrl.cluster && clusters === undefined) {
          clusters = (res.resources as any[])
            .map((a) => String((cluster.toObject(cluster.decode(a.value), DECODE_OPTIONS) as any).name))
            .sort()
          if (clusters.length === 0) {
            clearTimeout(timer)
            resolve(view)
            return
          }
          call.write({ node, type_url: TypeUrl.endpoint, resource_names: clusters })
        } else if (res.type_url === TypeUrl.endpoint && clusters) {
          for (const a of res.resources as any[]) {
            const [name, eps] = endpointsOf(cla, a.value, DECODE_OPTIONS)
            view[name] = eps
          }
          if (clusters.every((c) => c in view)) {
            clearTimeout(timer)
            resolve(view)
          }
        }
      })
      call.write({ node, type_url: TypeUrl.cluster, resource_names: [] })
    })
  } finally {
    call.cancel()
    client.close()
  }
}

// ---------------------------------------------------------------------------------------
// Cluster helpers the scenarios share

/** Why a scenario cannot run here (netns, build, agent), or undefined. */
export function systemUnavailable(): string | undefined {
  return netnsUnavailable() ?? ensureBuilt() ?? agentAvailable()
}

interface TapLike {
  teardown(fn: () => unknown): void
  passing(): boolean
  comment(...args: unknown[]): void
}

/**
 * A lab with one agent per host: host 0 founds the cluster, the others join it (and host
 * 1 as a second seed); only hosts below `startCount` get an agent. Resolves once every agent is ready and lists every host alive.
 * Teardown prints each agent's log tail when the test failed, then removes everything.
 */
export async function startCluster(
  t: TapLike,
  n: number,
  perHost: (i: number) => AgentOptions = () => ({}),
  startCount = n,
): Promise<NetnsLab> {
  const lab = NetnsLab.create({ hosts: n })
  t.teardown(async () => {
    if (!t.passing()) {
      for (const a of lab.agents.values())
        t.comment(`--- log tail of ${a.name} (${a.host.ip}, exit ${a.exitCode ?? a.exitSignal ?? 'running'}):\n${a.logTail(40)}`)
    }
    await lab.destroy()
  })
  for (let i = 0; i < startCount; i++) {
    const seeds = i === 0 ? [] : i === 1 ? [0] : [0, 1]
    lab.startAgent(i, { join: seeds, ...perHost(i) })
  }
  const names = lab.hosts.slice(0, startCount).map((h) => h.ns)
  // Ceilings, not expectations: a cluster is ready in a second or two on an idle machine, but
  // five node processes starting at once on a loaded 2-core machine took over 30 s.
  await waitFor(
    'every agent ready',
    120_000,
    async () => (await Promise.all([...lab.agents.values()].map((a) => a.ready()))).every(Boolean),
    200,
  )
  await waitFor(
    'every agent lists every host alive',
    120_000,
    async () => {
      for (const a of lab.agents.values()) if (!sameAlive(await a.members(), names)) return false
      return true
    },
    200,
  )
  return lab
}

/**
 * The scenarios' common start: `n` hosts each serving `web` (instance `web-<i>`, service port
 * 10001), every agent ready and listing every instance. `keys` are those instances as
 * `service/id@host`, `all` the host indexes.
 */
export async function webCluster(
  t: TapLike,
  n: number,
  profile?: AgentOptions['profile'],
): Promise<{ lab: NetnsLab; all: number[]; keys: string[] }> {
  const services = (i: number) => [svc('web', i, 10001, 8080)]
  const lab = await startCluster(t, n, (i) => ({ services: services(i), ...(profile ? { profile } : {}) }))
  const all = lab.hosts.map((h) => h.index)
  const keys = all.flatMap((i) => services(i).map((s) => keyOf(lab, i, s)))
  // Start-up is not what the scenarios measure: a loaded machine may take well over 15 s.
  await waitForInstances(lab, all, keys, 90_000, 'initial convergence')
  return { lab, all, keys }
}

/** True when exactly `names` are alive in `members` (others may be dead or left). */
export function sameAlive(members: Member[], names: string[]): boolean {
  const alive = members
    .filter((m) => m.status === 'alive')
    .map((m) => m.name)
    .sort()
  return JSON.stringify(alive) === JSON.stringify([...names].sort())
}

/** `service/id@host` keys of the live instances an agent lists, sorted. */
export function instanceKeys(list: Instance[]): string[] {
  return list.map((i) => `${i.service}/${i.id}@${i.host}`).sort()
}

/**
 * Wait until each agent in `on` lists exactly the instances in `expected` (as
 * `service/id@host`); returns the elapsed ms.
 */
export async function waitForInstances(
  lab: NetnsLab,
  on: number[],
  expected: string[],
  timeoutMs: number,
  what = 'instances',
): Promise<number> {
  const want = JSON.stringify([...expected].sort())
  const r = await waitFor(
    what,
    timeoutMs,
    async () => {
      for (const i of on) {
        const got = instanceKeys(await lab.agent(i).services())
        if (JSON.stringify(got) !== want) throw new Error(`${lab.host(i).ns} lists ${JSON.stringify(got)}, want ${want}`)
      }
      return true
    },
    100,
  )
  return r.ms
}

/** `service/id@host` for a static service on host i. */
export function keyOf(lab: NetnsLab, i: number, s: StaticService): string {
  return `${s.name}/${s.id}@${lab.host(i).ns}`
}

/** Soak duration for scenarios 4 and 6: SHOAL_SOAK_SECONDS, default 120 s (the 2 minutes). */
export function soakMs(): number {
  const v = Number(process.env.SHOAL_SOAK_SECONDS ?? 120)
  return (Number.isFinite(v) && v > 0 ? v : 120) * 1000
}

export interface DeadSighting {
  observer: string
  member: string
  state: string
  at: number
  via: 'watch' | 'poll'
}

/**
 * Watches every agent for members declared dead (or left): the /api/watch stream's
 * `member` events as they happen, plus /api/members.json polls (a sighting the stream
 * might miss while reconnecting). Observers listed in `skip()` are not polled (a paused
 * agent cannot answer).
 *
 * @example
 *   const w = new MemberWatch(lab, () => paused ? [2] : [])
 *   w.start(); …; await w.stop(); t.same(w.sightings, [])
 */
export class MemberWatch {
  readonly sightings: DeadSighting[] = []
  private readonly aborts: AbortController[] = []
  private timer: NodeJS.Timeout | undefined
  private polling = false
  private stopped = false

  constructor(
    readonly lab: NetnsLab,
    readonly skip: () => number[] = () => [],
    readonly states: string[] = ['dead', 'left'],
  ) {}

  start(): void {
    for (const a of this.lab.agents.values()) this.stream(a)
    this.timer = setInterval(() => void this.poll(), 250)
  }

  private note(observer: string, member: string, state: string, via: 'watch' | 'poll'): void {
    if (!this.states.includes(state)) return
    const last = this.sightings.findLast((s) => s.observer === observer && s.member === member)
    if (last && last.state === state && Date.now() - last.at < 5000) return
    this.sightings.push({ observer, member, state, at: Date.now(), via })
  }

  private stream(a: AgentProcess): void {
    const ac = new AbortController()
    this.aborts.push(ac)
    void (async () => {
      while (!this.stopped) {
        try {
          const res = await fetch(a.url + '/api/watch', { signal: ac.signal })
          const dec = new TextDecoder()
          let buf = ''
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            buf += dec.decode(chunk, { stream: true })
            let idx
            while ((idx = buf.indexOf('\n\n')) >= 0) {
              const frame = buf.slice(0, idx)
              buf = buf.slice(idx + 2)
              const ev = /^event: (.*)$/m.exec(frame)?.[1]
              const data = /^data: (.*)$/m.exec(frame)?.[1]
              if (ev !== 'member' || !data) continue
              try {
                const d = JSON.parse(data)
                const m = d.member ?? d
                this.note(a.name, String(m.name), String(m.state ?? m.status ?? d.event), 'watch')
              } catch {
                /* not JSON */
              }
            }
          }
        } catch {
          /* agent paused, restarting or stopped */
        }
        if (!this.stopped) await sleep(300)
      }
    })()
  }

  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return
    this.polling = true
    try {
      const skip = this.skip()
      await Promise.all(
        [...this.lab.agents.values()]
          .filter((a) => a.running && !skip.includes(a.host.index))
          .map(async (a) => {
            try {
              for (const m of await a.members(1000)) this.note(a.name, m.name, m.status, 'poll')
            } catch {
              /* slow answer: the stream still covers it */
            }
          }),
      )
    } finally {
      this.polling = false
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    for (const ac of this.aborts) ac.abort()
    while (this.polling) await sleep(20)
  }
}

/** Timing profile for scenarios 4 and 6: SHOAL_SOAK_PROFILE, default `lan`. */
export function soakProfile(): 'lan' | 'local' | 'wan' {
  const v = process.env.SHOAL_SOAK_PROFILE ?? 'lan'
  return v === 'local' || v === 'wan' ? v : 'lan'
}

/**
 * A standing ADS subscription, the way a long-lived client holds one: wildcard CDS, EDS for
 * every cluster, every response ACKed; `view` follows the pushes (cluster -> "ip:port" list).
 *
 * @example
 *   const w = await XdsWatch.open('10.1.2.3:7776'); …; w.view['web:10001']; w.close()
 */
export class XdsWatch {
  view: Record<string, string[]> = {}
  clusters: string[] = []
  error: Error | undefined
  private call: any
  private client: any

  static async open(address: string, timeoutMs = 5000): Promise<XdsWatch> {
    const w = new XdsWatch()
    await w.connect(address)
    await waitFor(
      `xDS watch on ${address} filled`,
      timeoutMs,
      async () => {
        if (w.error) throw w.error
        return w.clusters.length > 0 && w.clusters.every((c) => c in w.view)
      },
      50,
    )
    return w
  }

  private async connect(address: string): Promise<void> {
    const grpc = await import('@grpc/grpc-js')
    const { loadXdsProtos, TypeUrl, DECODE_OPTIONS } = await import('../../src/xds/protos.js')
    const protos = loadXdsProtos()
    const Client = grpc.makeGenericClientConstructor(protos.adsService, 'AggregatedDiscoveryService')
    this.client = new Client(address, grpc.credentials.createInsecure())
    const call = this.client.StreamAggregatedResources()
    this.call = call
    const cla = protos.typeOf(TypeUrl.endpoint)!
    const cluster = protos.typeOf(TypeUrl.cluster)!
    const node = { id: `system-test-watch-${randomBytes(3).toString('hex')}`, cluster: 'system-test', user_agent_name: 'envoy' }
    call.on('error', (err: Error) => {
      this.error = err
    })
    call.on('data', (res: any) => {
      if (res.type_url === TypeUrl.cluster) {
        const names = (res.resources as any[])
          .map((a) => String((cluster.toObject(cluster.decode(a.value), DECODE_OPTIONS) as any).name))
          .sort()
        call.write({ node, type_url: res.type_url, version_info: res.version_info, response_nonce: res.nonce, resource_names: [] })
        for (const c of Object.keys(this.view)) if (!names.includes(c)) delete this.view[c]
        const changed = JSON.stringify(names) !== JSON.stringify(this.clusters)
        this.clusters = names
        if (changed) call.write({ node, type_url: TypeUrl.endpoint, resource_names: names })
      } else if (res.type_url === TypeUrl.endpoint) {
        for (const a of res.resources as any[]) {
          const [name, eps] = endpointsOf(cla, a.value, DECODE_OPTIONS)
          this.view[name] = eps
        }
        call.write({
          node,
          type_url: res.type_url,
          version_info: res.version_info,
          response_nonce: res.nonce,
          resource_names: this.clusters,
        })
      } else {
        call.write({ node, type_url: res.type_url, version_info: res.version_info, response_nonce: res.nonce, resource_names: [] })
      }
    })
    call.write({ node, type_url: TypeUrl.cluster, resource_names: [] })
  }

  endpoints(): string[] {
    return Object.values(this.view).flat()
  }

  close(): void {
    try {
      this.call?.cancel()
    } catch {
      /* closed */
    }
    try {
      this.client?.close()
    } catch {
      /* closed */
    }
  }
}
