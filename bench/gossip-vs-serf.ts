// Benchmark: Shoal's gossip against HashiCorp Serf (Debian `serf`, default LAN settings),
// N agents on loopback, one system after the other in the same run (2 cores cannot host
// both fairly at once). Needs root for the byte counters (iptables on lo).
//
//   TS_NODE_TRANSPILE_ONLY=1 node --import @isaacs/ts-node-temp-fork-for-pr-2009/import bench/gossip-vs-serf.ts
//
// Environment: BENCH_N=10,25,50  BENCH_SYSTEMS=serf,shoal  BENCH_SETTLE_S=90  BENCH_REST_S=60  BENCH_EVENTS=20
// BENCH_CRASHES=3  BENCH_CLI=dist/cli.js  BENCH_PROFILE=lan (Shoal timing profile)  BENCH_JSON=/path (raw results)
// BENCH_REF_CLI=/path/to/cli.js with system shoal-ref (BENCH_SYSTEMS=shoal-ref,shoal,serf): another build of Shoal
// (for example main's, built from `git archive main`) measured the same way in the same run, before/after in one table.
//
// What is measured (both systems the same way):
// - join: the seed starts alone; then N-1 agents start at once with the seed as their join
//   address. "join" = from the moment the last agent's API answered until every agent lists
//   N alive members ("wall" = from the first spawn of the N-1 to the same point).
// - propagation: one agent originates a change (Serf: `event` RPC, coalescing off; Shoal:
//   a service added to its static file); every other agent reports when it saw it (Serf:
//   the RPC `stream` of user events; Shoal: the /api/watch SSE stream). Samples = (N-1) x events.
// - crash detection: kill -9 one agent (never the seed); every survivor reports when it
//   marks it failed/dead (Serf: `stream` of member-failed; Shoal: /api/watch, with
//   /api/members.json polling as a fallback). Samples = survivors x crashes.
// - bytes at rest: no services, after convergence; iptables counters on lo for every
//   packet to or from the gossip port range (UDP and TCP, IP headers included), over
//   BENCH_REST_S seconds, divided by N and by the seconds: sent bytes per node per second.
//   The window opens BENCH_SETTLE_S after the first spawn: both systems push-pull periodically
//   (30 s, x2 above 32 members) from a random offset, Serf's first one only after offset +
//   period (up to 90 s at N = 50), so a window that opens earlier misses Serf's push-pull
//   and catches Shoal's first ones bunched together; 60 s covers a whole period at N <= 64.
// - CPU at rest: user + system time of every agent process (/proc/PID/stat) over the same rest
//   window, as a percentage of one core, mean over the agents (the load of a shared machine
//   shows in both systems alike: they run one after the other in one invocation).
// - peak RSS: VmHWM of every agent process at the end of its run. BENCH_NODE_FLAGS are passed to
//   node before the CLI (for example the heap flags of the Docker image, README "Memory").
//   BENCH_CRASHES=0 BENCH_EVENTS=0 measures only the idle agents (BENCH_N=2: the issue-17 footprint).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import {
  mkdtempSync,
  rmSync,
  writeFileSync,
  renameSync,
  readFileSync,
  existsSync,
  statSync,
  readdirSync,
  openSync,
  mkdirSync,
} from 'node:fs'
import { tmpdir, cpus, loadavg } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { Packr, UnpackrStream } from 'msgpackr'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const env = process.env
const CLI = env.BENCH_CLI ?? join(ROOT, 'dist', 'cli.js')
const REF_CLI = env.BENCH_REF_CLI
const NS = (env.BENCH_N ?? '10,25,50').split(',').map(Number)
const SYSTEMS = (env.BENCH_SYSTEMS ?? 'serf,shoal').split(',')
const SETTLE_S = Number(env.BENCH_SETTLE_S ?? 90)
const REST_S = Number(env.BENCH_REST_S ?? 60)
const EVENTS = Number(env.BENCH_EVENTS ?? 20)
const CRASHES = Number(env.BENCH_CRASHES ?? 3)
const PROFILE = env.BENCH_PROFILE ?? 'lan'
const JSON_OUT = env.BENCH_JSON
const NODE_FLAGS = (env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const now = (): number => performance.timeOrigin + performance.now()
const log = (...a: unknown[]): void => {
  process.stderr.write(a.map(String).join(' ') + '\n')
}
const dbg = (...a: unknown[]): void => {
  if (env.BENCH_DEBUG) log(...a)
}

// ---------------------------------------------------------------------------------------
// Stats

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

interface Result {
  system: string
  n: number
  joinMs: number
  joinWallMs: number
  propP50: number
  propP99: number
  propSamples: number
  propMissing: number
  crashP50: number
  crashP99: number
  crashSamples: number
  crashMissing: number
  bytesPerNodeS: number
  udpPerNodeS: number
  tcpPerNodeS: number
  rssMeanMiB: number
  rssMaxMiB: number
  /** CPU over the rest window, percent of one core, mean over the agents. */
  cpuPct: number
  note: string
}

// ---------------------------------------------------------------------------------------
// Byte counters: one chain of our own hooked into OUTPUT on lo (every loopback packet
// passes OUTPUT exactly once).

const liveCounters = new Set<ByteCounter>()
const liveDirs = new Set<string>()

class ByteCounter {
  readonly chain = 'SHB' + randomBytes(3).toString('hex')
  private hooked = false
  constructor(
    readonly lo: number,
    readonly hi: number,
  ) {
    liveCounters.add(this)
  }
  private ipt(args: string[], allowFail = false): string {
    const r = spawnSync('iptables', ['-w', ...args], { encoding: 'utf8' })
    if (r.status !== 0 && !allowFail) throw new Error(`iptables ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  install(): void {
    const range = `${this.lo}:${this.hi}`
    this.ipt(['-N', this.chain])
    this.hooked = true
    this.ipt(['-A', this.chain, '-p', 'udp', '--dport', range, '-j', 'RETURN'])
    this.ipt(['-A', this.chain, '-p', 'tcp', '--dport', range, '-j', 'RETURN'])
    this.ipt(['-A', this.chain, '-p', 'tcp', '--sport', range, '-j', 'RETURN'])
    this.ipt(['-I', 'OUTPUT', '-o', 'lo', '-j', this.chain])
  }
  zero(): void {
    this.ipt(['-Z', this.chain])
  }
  read(): { udp: number; tcp: number } {
    const out = this.ipt(['-L', this.chain, '-n', '-v', '-x'])
    let udp = 0,
      tcp = 0
    for (const line of out.split('\n')) {
      const m = /^\s*\d+\s+(\d+)\s+RETURN\s+(\w+)/.exec(line)
      if (!m) continue
      if (m[2] === 'udp' || m[2] === '17') udp += Number(m[1])
      else tcp += Number(m[1])
    }
    return { udp, tcp }
  }
  remove(): void {
    liveCounters.delete(this)
    if (!this.hooked) return
    this.hooked = false
    this.ipt(['-D', 'OUTPUT', '-o', 'lo', '-j', this.chain], true)
    this.ipt(['-F', this.chain], true)
    this.ipt(['-X', this.chain], true)
  }
}

// ---------------------------------------------------------------------------------------
// Serf RPC (msgpack over TCP): handshake, members, event, stream.

const packr = new Packr({ useRecords: false })

class SerfRpc {
  private sock!: Socket
  private seq = 0
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void; body: boolean; hdr?: any }>()
  private readonly streams = new Map<number, (ev: any) => void>()
  private awaitingBody: number | undefined
  constructor(readonly port: number) {}

  async open(): Promise<void> {
    this.sock = connect(this.port, '127.0.0.1')
    await new Promise<void>((res, rej) => {
      this.sock.once('connect', res)
      this.sock.once('error', rej)
    })
    this.sock.on('error', () => {
      /* agent killed: pending calls time out */
    })
    const un = new UnpackrStream({ useRecords: false, mapsAsObjects: true } as any)
    this.sock.pipe(un)
    un.on('data', (obj: any) => this.onObject(obj))
    un.on('error', () => {})
    await this.call('handshake', { Version: 1 }, false)
  }

  private onObject(obj: any): void {
    if (this.awaitingBody !== undefined) {
      const seq = this.awaitingBody
      this.awaitingBody = undefined
      const s = this.streams.get(seq)
      if (s) {
        s(obj)
        return
      }
      const p = this.pending.get(seq)
      if (p) {
        this.pending.delete(seq)
        p.resolve(obj)
      }
      return
    }
    const seq = obj.Seq as number
    const p = this.pending.get(seq)
    if (p) {
      if (obj.Error) {
        this.pending.delete(seq)
        p.reject(new Error(obj.Error))
        return
      }
      if (p.body) {
        this.awaitingBody = seq
        return
      }
      this.pending.delete(seq)
      p.resolve(undefined)
      return
    }
    if (this.streams.has(seq)) this.awaitingBody = seq
  }

  call(command: string, body: unknown, hasResponseBody: boolean, timeoutMs = 10_000): Promise<any> {
    const seq = this.seq++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq)
        reject(new Error(`serf rpc ${command} timed out`))
      }, timeoutMs)
      this.pending.set(seq, {
        resolve: (v) => {
          clearTimeout(timer)
          resolve(v)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
        body: hasResponseBody,
      })
      const parts = [packr.pack({ Command: command, Seq: seq })]
      if (body !== undefined) parts.push(packr.pack(body))
      this.sock.write(Buffer.concat(parts))
    })
  }

  async members(): Promise<Array<{ Name: string; Status: string }>> {
    return (await this.call('members', undefined, true)).Members
  }

  async event(name: string, payload: Buffer): Promise<void> {
    await this.call('event', { Name: name, Payload: payload, Coalesce: false }, false)
  }

  /** Subscribe to events; the first header for the seq is the ack, later ones carry bodies. */
  async stream(type: string, onEvent: (ev: any) => void): Promise<void> {
    const seq = this.seq
    await this.call('stream', { Type: type }, false)
    this.streams.set(seq, onEvent)
  }

  close(): void {
    this.sock?.destroy()
  }
}

// ---------------------------------------------------------------------------------------
// Process helpers

interface Proc {
  name: string
  child: ChildProcess
  exited: Promise<void>
  alive: boolean
}

const allProcs = new Set<Proc>()
function launch(name: string, cmd: string, args: string[], logFile: string): Proc {
  const fd = openSync(logFile, 'a')
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], cwd: ROOT })
  const p: Proc = { name, child, alive: true, exited: Promise.resolve() }
  p.exited = new Promise((r) =>
    child.once('exit', () => {
      p.alive = false
      allProcs.delete(p)
      r()
    }),
  )
  allProcs.add(p)
  return p
}

/** User + system CPU time of a process so far, in clock ticks (USER_HZ, 100 on Linux). */
function cpuTicks(pid: number | undefined): number {
  if (pid === undefined) return NaN
  try {
    // Fields after the command name (which may hold spaces) start at state: utime, stime are the 12th and 13th of those.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(f[11]) + Number(f[12])
  } catch {
    return NaN
  }
}

function vmHwmKiB(pid: number | undefined): number {
  if (pid === undefined) return NaN
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : NaN
  } catch {
    return NaN
  }
}

/** On a signal or a crash: agents killed, our iptables chains removed. */
function killAll(): void {
  for (const p of allProcs) {
    try {
      p.child.kill('SIGKILL')
    } catch {
      /* gone */
    }
  }
  for (const c of [...liveCounters]) c.remove()
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true })
}

// ---------------------------------------------------------------------------------------
// Drivers

interface Driver {
  readonly system: string
  /** Start the seed, then the rest joining it. Returns join timings. */
  start(): Promise<{ joinMs: number; joinWallMs: number }>
  /** One change from node 0; resolves with per-receiver latencies and missing count. */
  propagate(k: number): Promise<{ lat: number[]; missing: number }>
  crash(victim: number): Promise<{ lat: number[]; missing: number }>
  pids(): Array<number | undefined>
  stop(): Promise<void>
  /** After the changes: what the agents counted of how changes spread (Shoal: its registry notice metrics, summed). */
  spreadNote?(): Promise<string>
}

class SerfDriver implements Driver {
  readonly system = 'serf'
  private procs: Proc[] = []
  private rpcs: SerfRpc[] = []
  private readonly seen: Array<Map<string, number>> = []
  constructor(
    readonly n: number,
    readonly basePort: number,
    readonly dir: string,
  ) {}
  private gossip(i: number): number {
    return this.basePort + i
  }
  private rpcPort(i: number): number {
    return this.basePort + 100 + i
  }
  private spawnOne(i: number): Proc {
    const args = [
      'agent',
      '-node',
      `serf-${i}`,
      '-bind',
      `127.0.0.1:${this.gossip(i)}`,
      '-rpc-addr',
      `127.0.0.1:${this.rpcPort(i)}`,
      '-log-level',
      'warn',
    ]
    if (i > 0) args.push('-join', `127.0.0.1:${this.gossip(0)}`)
    return launch(`serf-${i}`, 'serf', args, join(this.dir, `serf-${i}.log`))
  }
  private async openRpc(i: number): Promise<SerfRpc> {
    for (;;) {
      const r = new SerfRpc(this.rpcPort(i))
      try {
        await r.open()
        return r
      } catch {
        r.close()
        await sleep(20)
      }
    }
  }
  private async alive(i: number): Promise<number> {
    const ms = await this.rpcs[i]!.members()
    return ms.filter((m) => m.Status === 'alive').length
  }
  async start(): Promise<{ joinMs: number; joinWallMs: number }> {
    this.procs[0] = this.spawnOne(0)
    this.rpcs[0] = await this.openRpc(0)
    const t0 = now()
    for (let i = 1; i < this.n; i++) this.procs[i] = this.spawnOne(i)
    const opened = await Promise.all(Array.from({ length: this.n - 1 }, (_, k) => this.openRpc(k + 1)))
    opened.forEach((r, k) => {
      this.rpcs[k + 1] = r
    })
    const tUp = now()
    for (;;) {
      const counts = await Promise.all(this.rpcs.map((_, i) => this.alive(i)))
      if (counts.every((c) => c === this.n)) break
      await sleep(50)
    }
    const tConv = now()
    for (let i = 0; i < this.n; i++) {
      const m = new Map<string, number>()
      this.seen[i] = m
      await this.rpcs[i]!.stream('user:bench,member-failed', (ev) => {
        const t = now()
        if (ev.Event === 'user') m.set('ev:' + Buffer.from(ev.Payload).toString(), t)
        else if (ev.Event === 'member-failed') for (const mem of ev.Members ?? []) m.set('failed:' + mem.Name, t)
      })
    }
    return { joinMs: tConv - tUp, joinWallMs: tConv - t0 }
  }
  async propagate(k: number): Promise<{ lat: number[]; missing: number }> {
    const key = `ev:${k}`
    const t0 = now()
    await this.rpcs[0]!.event('bench', Buffer.from(String(k)))
    return collect(this.seen, key, t0, [0], this.procs, 10_000)
  }
  async crash(victim: number): Promise<{ lat: number[]; missing: number }> {
    const t0 = now()
    this.procs[victim]!.child.kill('SIGKILL')
    this.rpcs[victim]!.close()
    await this.procs[victim]!.exited
    return collect(this.seen, `failed:serf-${victim}`, t0, [victim], this.procs, 90_000)
  }
  pids(): Array<number | undefined> {
    return this.procs.map((p) => p.child.pid)
  }
  async stop(): Promise<void> {
    for (const r of this.rpcs) r.close()
    for (const p of this.procs) if (p.alive) p.child.kill('SIGKILL')
    await Promise.all(this.procs.map((p) => p.exited))
  }
}

/** Wait until every live node except `skip` has `key`, or the timeout. */
async function collect(
  seen: Array<Map<string, number>>,
  key: string,
  t0: number,
  skip: number[],
  procs: Proc[],
  timeoutMs: number,
): Promise<{ lat: number[]; missing: number }> {
  const targets = seen.map((_, i) => i).filter((i) => !skip.includes(i) && procs[i]!.alive)
  const deadline = now() + timeoutMs
  while (now() < deadline && !targets.every((i) => seen[i]!.has(key))) await sleep(5)
  const lat = targets.filter((i) => seen[i]!.has(key)).map((i) => seen[i]!.get(key)! - t0)
  return { lat, missing: targets.length - lat.length }
}

/**
 * Shoal agents on 127.0.0.1 with distinct ports. Observation through /api/watch (SSE):
 * any event whose data mentions the service id marks "change seen"; any event mentioning
 * the victim's node name together with "dead" marks "crash seen". /api/members.json is
 * polled as well for the crash (a fallback in case the stream's shape differs).
 */
class ShoalDriver implements Driver {
  private procs: Proc[] = []
  private readonly seen: Array<Map<string, number>> = []
  private readonly aborts: AbortController[] = []
  private watchedIds: string[] = []
  private victims: string[] = []
  private pollTimer: NodeJS.Timeout | undefined
  constructor(
    readonly n: number,
    readonly basePort: number,
    readonly dir: string,
    /** 'shoal' (BENCH_CLI) or 'shoal-ref' (BENCH_REF_CLI). */
    readonly system = 'shoal',
    private readonly cli = CLI,
  ) {}
  private gossip(i: number): number {
    return this.basePort + i
  }
  private http(i: number): number {
    return this.basePort + 100 + i
  }
  private xds(i: number): number {
    return this.basePort + 200 + i
  }
  // One folder per agent: the static source watches its file's folder.
  private staticFile(i: number): string {
    const d = join(this.dir, `shoal-${i}`)
    mkdirSync(d, { recursive: true })
    return join(d, 'static.json')
  }
  private writeStatic(i: number, services: unknown[]): void {
    writeFileSync(this.staticFile(i) + '.tmp', JSON.stringify({ services }))
    renameSync(this.staticFile(i) + '.tmp', this.staticFile(i))
  }
  private spawnOne(i: number): Proc {
    this.writeStatic(i, [])
    const args = [
      this.cli,
      'agent',
      '--node',
      `shoal-${i}`,
      '--bind',
      `127.0.0.1:${this.gossip(i)}`,
      '--advertise',
      `127.0.0.1:${this.gossip(i)}`,
      '--profile',
      PROFILE,
      '--discovery',
      'static',
      '--static',
      this.staticFile(i),
      '--http',
      `127.0.0.1:${this.http(i)}`,
      '--xds',
      `127.0.0.1:${this.xds(i)}`,
      '--dns',
      'off',
      '--cluster',
      'bench',
      '--log-level',
      'warn',
    ]
    if (i > 0) args.push('--join', `127.0.0.1:${this.gossip(0)}`)
    return launch(`shoal-${i}`, process.execPath, [...NODE_FLAGS, ...args], join(this.dir, `shoal-${i}.log`))
  }
  async spreadNote(): Promise<string> {
    const sums = new Map<string, number>()
    for (let i = 0; i < this.n; i++) {
      if (!this.procs[i]?.alive) continue
      const res = await fetch(`http://127.0.0.1:${this.http(i)}/metrics`, { signal: AbortSignal.timeout(3000) }).catch(() => undefined)
      const text = res ? await res.text() : ''
      for (const m of text.matchAll(/^(shoal_registry_notice\w*\{[^}]*\}) (\d+)$/gm)) sums.set(m[1]!, (sums.get(m[1]!) ?? 0) + Number(m[2]))
    }
    return (
      [...sums].map(([k, v]) => `${k.replace('shoal_registry_', '')} ${v}`).join(', ') || 'no notice metrics (a release without notices)'
    )
  }
  private async get(i: number, path: string): Promise<any> {
    const res = await fetch(`http://127.0.0.1:${this.http(i)}${path}`, { signal: AbortSignal.timeout(3000) })
    return res.json()
  }
  private async up(i: number): Promise<void> {
    const deadline = now() + 120_000
    for (;;) {
      const p = this.procs[i]!
      if (!p.alive)
        throw new Error(
          `shoal-${i} exited (${p.child.exitCode ?? p.child.signalCode}): ${readFileSync(join(this.dir, `shoal-${i}.log`), 'utf8').slice(-600)}`,
        )
      if (now() > deadline) throw new Error(`shoal-${i} HTTP API not answering after 120 s`)
      try {
        await this.get(i, '/api/members.json')
        return
      } catch (err) {
        dbg(`shoal-${i}: ${(err as Error).message}`)
        await sleep(50)
      }
    }
  }
  private async aliveCount(i: number): Promise<number> {
    const b = await this.get(i, '/api/members.json')
    const list: any[] = Array.isArray(b) ? b : b.members
    return list.filter((m) => (m.state ?? m.status) === 'alive').length
  }
  private watch(i: number): void {
    const m = this.seen[i]!
    const ac = new AbortController()
    this.aborts.push(ac)
    void (async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${this.http(i)}/api/watch`, { signal: ac.signal })
        const dec = new TextDecoder()
        let buf = ''
        for await (const chunk of res.body as any) {
          const t = now()
          buf += dec.decode(chunk, { stream: true })
          let idx
          while ((idx = buf.indexOf('\n\n')) >= 0) {
            const ev = buf.slice(0, idx)
            buf = buf.slice(idx + 2)
            for (const id of this.watchedIds) if (!m.has('svc:' + id) && ev.includes(`"${id}"`)) m.set('svc:' + id, t)
            for (const v of this.victims) if (!m.has('failed:' + v) && ev.includes(`"${v}"`) && ev.includes('dead')) m.set('failed:' + v, t)
          }
        }
      } catch {
        /* aborted or agent gone */
      }
    })()
  }
  async start(): Promise<{ joinMs: number; joinWallMs: number }> {
    this.procs[0] = this.spawnOne(0)
    await this.up(0)
    const t0 = now()
    for (let i = 1; i < this.n; i++) this.procs[i] = this.spawnOne(i)
    await Promise.all(Array.from({ length: this.n - 1 }, (_, k) => this.up(k + 1)))
    const tUp = now()
    dbg('shoal: all APIs up')
    for (;;) {
      const counts = await Promise.all(this.procs.map((_, i) => this.aliveCount(i).catch(() => 0)))
      dbg('shoal: alive counts ' + counts.join(','))
      if (counts.every((c) => c === this.n)) break
      await sleep(100)
    }
    const tConv = now()
    for (let i = 0; i < this.n; i++) {
      this.seen[i] = new Map()
      this.watch(i)
    }
    await sleep(500)
    return { joinMs: tConv - tUp, joinWallMs: tConv - t0 }
  }
  async propagate(k: number): Promise<{ lat: number[]; missing: number }> {
    const id = `bench-${k}`
    this.watchedIds.push(id)
    const t0 = now()
    this.writeStatic(0, [{ id, name: 'bench', ports: [{ port: 20000 + k, servicePort: 30000 + k }] }])
    return collect(this.seen, 'svc:' + id, t0, [0], this.procs, 15_000)
  }
  async crash(victim: number): Promise<{ lat: number[]; missing: number }> {
    const name = `shoal-${victim}`
    this.victims.push(name)
    const t0 = now()
    this.procs[victim]!.child.kill('SIGKILL')
    await this.procs[victim]!.exited
    // Fallback observation by polling, 4 times a second per agent.
    const poll = async (): Promise<void> => {
      await Promise.all(
        this.procs.map(async (p, i) => {
          if (!p.alive || this.seen[i]!.has('failed:' + name)) return
          try {
            const b = await this.get(i, '/api/members.json')
            const list: any[] = Array.isArray(b) ? b : b.members
            if (list.some((mm) => mm.name === name && (mm.state ?? mm.status) === 'dead')) this.seen[i]!.set('failed:' + name, now())
          } catch {
            /* busy */
          }
        }),
      )
    }
    let stopPoll = false
    void (async () => {
      while (!stopPoll) {
        await poll()
        await sleep(250)
      }
    })()
    try {
      return await collect(this.seen, 'failed:' + name, t0, [victim], this.procs, 90_000)
    } finally {
      stopPoll = true
    }
  }
  pids(): Array<number | undefined> {
    return this.procs.map((p) => p.child.pid)
  }
  async stop(): Promise<void> {
    if (this.pollTimer) clearInterval(this.pollTimer)
    for (const a of this.aborts) a.abort()
    for (const p of this.procs) if (p.alive) p.child.kill('SIGKILL')
    await Promise.all(this.procs.map((p) => p.exited))
  }
}

// ---------------------------------------------------------------------------------------

async function runOne(system: string, n: number): Promise<Result> {
  // Below the ephemeral range (32768+), random so two runs do not collide.
  const base = 20000 + Math.floor(Math.random() * 40) * 300
  const dir = mkdtempSync(join(tmpdir(), `shoal-bench-${system}-${n}-`))
  liveDirs.add(dir)
  if (system === 'shoal-ref' && !REF_CLI) throw new Error('system shoal-ref needs BENCH_REF_CLI (the cli.js of the build to compare)')
  const driver: Driver =
    system === 'serf'
      ? new SerfDriver(n, base, dir)
      : system === 'shoal-ref'
        ? new ShoalDriver(n, base, dir, system, REF_CLI)
        : new ShoalDriver(n, base, dir)
  const counter = new ByteCounter(base, base + n - 1)
  // The machine may be shared: the 1-minute load average says how fair the run was.
  let note = `load ${loadavg()[0]!.toFixed(1)} at start`
  try {
    counter.install()
    log(`[${system} n=${n}] starting (ports ${base}..)`)
    const j = await driver.start()
    log(`[${system} n=${n}] converged: join ${j.joinMs.toFixed(0)} ms (wall ${j.joinWallMs.toFixed(0)} ms)`)
    // Let join traffic settle and every agent reach its periodic push-pull before the window.
    await sleep(Math.max(5000, SETTLE_S * 1000 - j.joinWallMs))
    counter.zero()
    const ticks0 = driver.pids().map(cpuTicks)
    await sleep(REST_S * 1000)
    const b = counter.read()
    const cpus = driver.pids().map((p, i) => ((cpuTicks(p) - ticks0[i]!) / 100 / REST_S) * 100)
    const cpuPct = cpus.reduce((a, x) => a + x, 0) / cpus.length
    const bytesPerNodeS = (b.udp + b.tcp) / n / REST_S
    const udpPerNodeS = b.udp / n / REST_S
    const tcpPerNodeS = b.tcp / n / REST_S
    log(
      `[${system} n=${n}] at rest: ${bytesPerNodeS.toFixed(0)} B/node/s (udp ${b.udp}, tcp ${b.tcp} over ${REST_S}s), CPU ${cpuPct.toFixed(2)} % of a core`,
    )
    const prop: number[] = []
    let propMissing = 0
    for (let k = 0; k < EVENTS; k++) {
      const r = await driver.propagate(k)
      prop.push(...r.lat)
      propMissing += r.missing
      await sleep(500)
    }
    log(`[${system} n=${n}] propagation p50 ${pct(prop, 50).toFixed(0)} p99 ${pct(prop, 99).toFixed(0)} ms (missing ${propMissing})`)
    if (EVENTS > 0 && driver.spreadNote) note += `; after the changes: ${await driver.spreadNote()}`
    const crash: number[] = []
    let crashMissing = 0
    for (let c = 0; c < CRASHES; c++) {
      const r = await driver.crash(n - 1 - c)
      crash.push(...r.lat)
      crashMissing += r.missing
      log(`[${system} n=${n}] crash ${c}: p50 ${pct(r.lat, 50).toFixed(0)} max ${Math.max(...r.lat).toFixed(0)} ms (missing ${r.missing})`)
      await sleep(1000)
    }
    const rss = driver
      .pids()
      .map(vmHwmKiB)
      .filter((x) => Number.isFinite(x))
    // Victims are gone; their VmHWM cannot be read any more, the survivors' can.
    const mean = rss.reduce((a, x) => a + x, 0) / Math.max(1, rss.length) / 1024
    const max = Math.max(...rss) / 1024
    note += `, ${loadavg()[0]!.toFixed(1)} at end`
    return {
      system,
      n,
      ...j,
      propP50: pct(prop, 50),
      propP99: pct(prop, 99),
      propSamples: prop.length,
      propMissing,
      crashP50: pct(crash, 50),
      crashP99: pct(crash, 99),
      crashSamples: crash.length,
      crashMissing,
      bytesPerNodeS,
      udpPerNodeS,
      tcpPerNodeS,
      rssMeanMiB: mean,
      rssMaxMiB: max,
      cpuPct,
      note,
    }
  } catch (err) {
    note += '; FAILED: ' + (err as Error).message
    log(`[${system} n=${n}] FAILED: ${note}`)
    return {
      system,
      n,
      joinMs: NaN,
      joinWallMs: NaN,
      propP50: NaN,
      propP99: NaN,
      propSamples: 0,
      propMissing: 0,
      crashP50: NaN,
      crashP99: NaN,
      crashSamples: 0,
      crashMissing: 0,
      bytesPerNodeS: NaN,
      udpPerNodeS: NaN,
      tcpPerNodeS: NaN,
      rssMeanMiB: NaN,
      rssMaxMiB: NaN,
      cpuPct: NaN,
      note,
    }
  } finally {
    await driver.stop()
    counter.remove()
    rmSync(dir, { recursive: true, force: true })
    liveDirs.delete(dir)
  }
}

function fmt(x: number, d = 0): string {
  return Number.isFinite(x) ? x.toFixed(d) : '-'
}
function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : '-'
}

function table(results: Result[]): string {
  const rows: string[] = []
  rows.push(
    '| N | system | join ms (wall) | change p50 / p99 ms | crash detect p50 / p99 ms | bytes/node/s at rest (udp + tcp) | CPU at rest, % of a core | peak RSS MiB mean (max) |',
  )
  rows.push('|---|---|---|---|---|---|---|---|')
  for (const r of results) {
    rows.push(
      `| ${r.n} | ${r.system} | ${fmt(r.joinMs)} (${fmt(r.joinWallMs)}) | ${fmt(r.propP50)} / ${fmt(r.propP99)}${r.propMissing ? ` (${r.propMissing} missed)` : ''} | ${fmt(r.crashP50)} / ${fmt(r.crashP99)}${r.crashMissing ? ` (${r.crashMissing} missed)` : ''} | ${fmt(r.bytesPerNodeS)} (${fmt(r.udpPerNodeS)} + ${fmt(r.tcpPerNodeS)}) | ${fmt(r.cpuPct, 2)} | ${fmt(r.rssMeanMiB, 1)} (${fmt(r.rssMaxMiB, 1)}) |`,
    )
  }
  const ratios = (of: string, to: string): string => {
    const out = ['| N | join | change p99 | crash p99 | bytes at rest | CPU at rest | peak RSS |', '|---|---|---|---|---|---|---|']
    for (const n of NS) {
      const s = results.find((r) => r.system === to && r.n === n)
      const h = results.find((r) => r.system === of && r.n === n)
      if (!s || !h) continue
      out.push(
        `| ${n} | ${ratio(h.joinMs, s.joinMs)} | ${ratio(h.propP99, s.propP99)} | ${ratio(h.crashP99, s.crashP99)} | ${ratio(h.bytesPerNodeS, s.bytesPerNodeS)} | ${ratio(h.cpuPct, s.cpuPct)} | ${ratio(h.rssMeanMiB, s.rssMeanMiB)} |`,
      )
    }
    return out.join('\n')
  }
  let text = rows.join('\n') + '\n\nShoal / Serf ratios (below 1 = Shoal better):\n\n' + ratios('shoal', 'serf')
  if (results.some((r) => r.system === 'shoal-ref'))
    text += `\n\nShoal / shoal-ref (${REF_CLI}) ratios (below 1 = this build better):\n\n` + ratios('shoal', 'shoal-ref')
  return text
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (iptables byte counters on lo)')
  if (SYSTEMS.includes('serf') && spawnSync('serf', ['version']).status !== 0)
    throw new Error('serf is not installed (apt-get install serf)')
  if (SYSTEMS.includes('shoal') && !env.BENCH_CLI) {
    const newest = (d: string): number =>
      readdirSync(d, { withFileTypes: true }).reduce(
        (m, e) => Math.max(m, e.isDirectory() ? newest(join(d, e.name)) : statSync(join(d, e.name)).mtimeMs),
        0,
      )
    if (!existsSync(CLI) || statSync(CLI).mtimeMs < newest(join(ROOT, 'src'))) {
      log('building dist/ ...')
      spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
        cwd: ROOT,
        stdio: 'inherit',
      })
      if (existsSync(join(ROOT, 'scripts', 'copy-assets.mjs')))
        spawnSync(process.execPath, [join(ROOT, 'scripts', 'copy-assets.mjs')], { cwd: ROOT, stdio: 'inherit' })
    }
  }
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      killAll()
      process.exit(130)
    })
  const results: Result[] = []
  for (const n of NS) for (const s of SYSTEMS) results.push(await runOne(s, n))
  const serfVersion = spawnSync('serf', ['version'], { encoding: 'utf8' }).stdout.split('\n')[0]
  const machine = `${cpus().length} x ${cpus()[0]?.model ?? '?'} (nproc ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()}), Linux ${spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim()}, Node ${process.version}, ${serfVersion}`
  const out = `${table(results)}\n\nMachine: ${machine}. Date: ${new Date().toISOString()}. Shoal profile: ${PROFILE}; settle ${SETTLE_S} s from the first spawn, rest window ${REST_S} s; ${EVENTS} changes; ${CRASHES} crashes per N.\n`
  process.stdout.write(out)
  for (const r of results) process.stdout.write(`note: ${r.system} n=${r.n}: ${r.note}\n`)
  if (JSON_OUT)
    writeFileSync(JSON_OUT, JSON.stringify({ machine, date: new Date().toISOString(), profile: PROFILE, results }, null, 1) + '\n')
}

main().catch((err) => {
  killAll()
  log(err.stack ?? String(err))
  process.exit(1)
})
