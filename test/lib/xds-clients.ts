/**
 * The real proxyless xDS clients Shoal is tested against, each in its own child process (one
 * process holds one XdsClient in both implementations), driven over a JSON line protocol:
 *  - `grpc-js`: @grpc/grpc-js-xds (test/lib/xds-client-js.mjs, run by this Node);
 *  - `c-core`: gRPC C-core through Debian's python3-grpcio (test/lib/xds-client-ccore.py, run
 *    by /usr/bin/python3). It shares no code with grpc-js-xds.
 * The harness records which backend answered each call and every NACK the client logged, so a
 * scenario asserts both what a caller sees and that the client rejected nothing.
 *
 * @example
 *   const client = await startXdsClient(t, 'c-core', { nodeId: 'e2e', xdsAddress: `127.0.0.1:${port}` })
 *   await client.until('xds:///echo:10001', (w) => w === 'A', 20, 20_000)
 *   t.same(client.nacks, [])
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { grpcBootstrap, type GrpcBootstrapOptions } from '../../src/xds/bootstrap.js'
import type { XdsDebugInfo } from '../../src/xds/index.js'
import { assertLocalRoute } from './route.js'

export type XdsClientKind = 'grpc-js' | 'c-core'
export const XDS_CLIENT_KINDS: readonly XdsClientKind[] = ['grpc-js', 'c-core']

const HERE = dirname(fileURLToPath(import.meta.url))
export const PYTHON = '/usr/bin/python3'
/** SHOAL_XDS_CLIENT_LOGS=DIR keeps every client's full log in DIR (for debugging a failure). */
const LOG_DIR = process.env.SHOAL_XDS_CLIENT_LOGS
/** SHOAL_XDS_CLIENT_TRACE=T,U adds tracers to every client's GRPC_TRACE (grpc-js: subchannel,round_robin,...; with SHOAL_XDS_CLIENT_LOGS). */
const EXTRA_TRACE = process.env.SHOAL_XDS_CLIENT_TRACE ? `,${process.env.SHOAL_XDS_CLIENT_TRACE}` : ''

/** Why a client kind cannot run here, or null when it can (C-core needs Debian's python3-grpcio). */
export function xdsClientMissing(kind: XdsClientKind): string | null {
  if (kind === 'grpc-js') return null
  const r = spawnSync(PYTHON, ['-c', 'import grpc; print(grpc.__version__)'], { encoding: 'utf8' })
  if (r.status === 0) return null
  return `gRPC C-core client needs ${PYTHON} with Debian's python3-grpcio (apt-get install python3-grpcio; npm test installs it as root): ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`
}

/** One call's outcome: the backend id that answered, or the status code and message. */
export type CallResult = { ok: true; who: string } | { ok: false; code: string; error: string }

/** One call of a load (startLoad): when it started and ended (epoch ms), and its outcome. */
export type LoadCall = { at: number; end: number } & CallResult

/** A client's bootstrap options (`network`: the Docker network it declares, node metadata `shoal.network`) and how to run it. */
export interface XdsClientOptions extends GrpcBootstrapOptions {
  /**
   * Run the client in the network namespace of this process (a container's State.Pid, through
   * nsenter): it then connects from inside that container's networks, as a client running in
   * the container would. The xDS address is checked with assertLocalRoute from there.
   */
  netnsPid?: number
  /** Extra environment for the client process. */
  env?: Record<string, string>
  /** `xds`: xDS channel credentials (gRFC A29: the mTLS the Clusters configure); default plain credentials. */
  creds?: 'xds' | 'insecure'
  /** The bootstrap document itself, instead of one made from the options (a file of another PKI). */
  bootstrap?: object
}

export class XdsTestClient {
  /** NACKs the client logged: `type: reason`. */
  readonly nacks: string[] = []
  /**
   * Clusters the client was told do not exist before it was told their Listener does not
   * (C-core: "CDS resource for X does not exist -- reporting TRANSIENT_FAILURE"; grpc-js-xds:
   * "EDS.cancelWatch(X): CDS resource does not exist"): break before make. Shoal names a
   * Cluster like its Listener (`name:port`; the bare-name Listener `name` too).
   */
  readonly clustersLostFirst: string[] = []
  /** Listeners the client was told do not exist. */
  readonly listenersLost = new Set<string>()
  /** C-core resolver (pointer) -> its Listener name. */
  private readonly resolvers = new Map<string, string>()
  /** Every call made, in order. */
  readonly calls: Array<{ target: string; result: CallResult }> = []
  /** Client log lines matching `keep` patterns (see watchLog), in order. */
  readonly logLines: string[] = []
  private readonly keep: RegExp[] = []
  private nextId = 1
  private readonly pending = new Map<number, (v: Record<string, unknown>) => void>()
  private readonly started: Promise<void>
  private exited = false
  private stderrTail = ''

  constructor(
    readonly kind: XdsClientKind,
    private readonly child: ChildProcess,
  ) {
    let ready: () => void
    let failed: (e: Error) => void
    this.started = new Promise((res, rej) => {
      ready = res
      failed = rej
    })
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let msg: Record<string, unknown>
      try {
        msg = JSON.parse(text) as Record<string, unknown>
      } catch {
        return
      }
      if (msg.ready) return ready()
      const id = Number(msg.id)
      const done = this.pending.get(id)
      this.pending.delete(id)
      done?.(msg)
    })
    createInterface({ input: child.stderr! }).on('line', (text) => this.onLog(text))
    child.once('exit', (code, signal) => {
      this.exited = true
      failed(new Error(`${kind} client exited (${code ?? signal}) before it was ready: ${this.stderrTail}`))
      for (const done of this.pending.values()) done({ ok: false, code: 'CLIENT_EXITED', error: `${kind} client exited` })
      this.pending.clear()
    })
  }

  ready(): Promise<void> {
    return this.started
  }

  /** Keep client log lines matching `re` in logLines (for ordering assertions). */
  watchLog(re: RegExp): void {
    this.keep.push(re)
  }

  private onLog(text: string): void {
    if (LOG_DIR) appendFileSync(join(LOG_DIR, `${this.kind}-${this.child.pid}.log`), text + '\n')
    this.stderrTail = (this.stderrTail + '\n' + text).slice(-2000)
    // C-core: "[xds_client 0x..] xds server ...: ADS response invalid for resource type T version V, will NACK: nonce=N status=S"
    const cc = /ADS response invalid for resource type (\S+) version \S*, will NACK: nonce=\S+ status=(.*)$/.exec(text)
    if (cc) this.nacks.push(`${cc[1]}: ${cc[2]}`)
    // grpc-js-xds: "Sending discovery request: {... "type_url": T, ... "error_detail": {"code": 14, "message": M}}"
    if (text.includes('Sending discovery request') && /"error_detail": \{/.test(text)) {
      const type = /"type_url": "([^"]*)"/.exec(text)?.[1] ?? '?'
      const msg = /"error_detail": \{[^}]*"message": "((?:[^"\\]|\\.)*)"/.exec(text)?.[1] ?? text
      this.nacks.push(`${type}: ${msg}`)
    }
    const started = /\[xds_resolver (\S+)\] Started with lds_resource_name (\S+?)\.?$/.exec(text)
    if (started) this.resolvers.set(started[1]!, started[2]!)
    const ccListener = /\[xds_resolver (\S+)\] LDS\/RDS resource does not exist/.exec(text)
    if (ccListener && this.resolvers.has(ccListener[1]!)) this.listenersLost.add(this.resolvers.get(ccListener[1]!)!)
    const jsListener = /\[(\S+)\] Resolution error: LDS resource does not exist/.exec(text)
    if (jsListener) this.listenersLost.add(jsListener[1]!)
    const lost = /CDS resource for (\S+) does not exist/.exec(text) ?? /EDS\.cancelWatch\(([^)]*)\): CDS resource does not exist/.exec(text)
    if (lost) {
      const cluster = lost[1]!
      if (!this.listenersLost.has(cluster) && !this.listenersLost.has(cluster.replace(/:\d+$/, ''))) this.clustersLostFirst.push(cluster)
    }
    for (const re of this.keep) if (re.test(text)) this.logLines.push(text)
  }

  private request(req: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.exited) return Promise.resolve({ ok: false, code: 'CLIENT_EXITED', error: `${this.kind} client exited` })
    const id = this.nextId++
    return new Promise((resolve) => {
      this.pending.set(id, resolve)
      this.child.stdin!.write(JSON.stringify({ ...req, id }) + '\n')
    })
  }

  /** One call to `target` on a new channel, closed after it (a new connection: a new TLS handshake); never throws. */
  fresh(target: string, timeoutMs = 3000): Promise<CallResult> {
    return this.call(target, timeoutMs, 'fresh')
  }

  /** One call to `target`; never throws. */
  async call(target: string, timeoutMs = 3000, op: 'call' | 'fresh' = 'call'): Promise<CallResult> {
    const r = await this.request({ op, target, timeoutMs })
    const result: CallResult = r.ok ? { ok: true, who: String(r.who) } : { ok: false, code: String(r.code), error: String(r.error ?? '') }
    this.calls.push({ target, result })
    return result
  }

  /** `n` calls in a row, each timed inside the client process (ms); `fresh`: each on a new channel. Throws on a failed call. */
  async time(target: string, n: number, fresh = false): Promise<number[]> {
    const r = await this.request({ op: 'time', target, n, fresh })
    if (!r.ok) throw new Error(`${this.kind}: a timed call to ${target} failed: ${String(r.code)} ${String(r.error)}`)
    return r.ms as number[]
  }

  /** `n` calls to `target` at once (so a call volume does not depend on the machine's speed); answers counted per backend id (failures as `!CODE`). */
  async burst(target: string, n: number, timeoutMs = 3000): Promise<Record<string, number>> {
    const r = await this.request({ op: 'burst', target, n, timeoutMs })
    const out: Record<string, number> = {}
    for (const x of (r.results ?? []) as Array<{ ok: boolean; who?: string; code?: string }>) {
      const key = x.ok ? String(x.who) : `!${x.code}`
      out[key] = (out[key] ?? 0) + 1
    }
    return out
  }

  /**
   * Start calling `target` at `rate` calls/s in the background (grpc-js client only), until
   * stopLoad. Each call has its own deadline (`timeoutMs`), so a slow one never holds the rate.
   * The default is 10 s, not an idle machine's 3 s: beside stress-ng and a second swarm engine a
   * 110 calls to two running tasks ran past 3 s (swarm-roll, b4bd1b6). A call routed to
   * a task that is gone still fails: at once (refused, reset) or at this deadline.
   */
  async startLoad(target: string, rate: number, timeoutMs = 10_000): Promise<void> {
    if (this.kind !== 'grpc-js') throw new Error('startLoad: only the grpc-js client implements load')
    await this.request({ op: 'load-start', target, rate, timeoutMs })
  }

  /** Stop the load and wait for its calls in flight: every call, with its start and end (epoch ms). */
  async stopLoad(): Promise<LoadCall[]> {
    const r = await this.request({ op: 'load-stop' })
    if (!r.ok) throw new Error(`stopLoad: ${String(r.error)}`)
    return r.results as LoadCall[]
  }

  /** Open channels to `targets` and start resolving them (the client subscribes their Listeners). */
  async watch(targets: string[]): Promise<void> {
    await this.request({ op: 'watch', targets })
  }

  /** `n` calls in a row; answers counted per backend id (failures as `!CODE`). */
  async counts(target: string, n: number): Promise<Record<string, number>> {
    const out: Record<string, number> = {}
    for (let i = 0; i < n; i++) {
      const r = await this.call(target)
      const key = r.ok ? r.who : `!${r.code}`
      out[key] = (out[key] ?? 0) + 1
    }
    return out
  }

  /** Call until `pred` holds for `window` answers in a row: the ms it took, or null after the ceiling. */
  async until(target: string, pred: (who: string) => boolean, window: number, ceilingMs: number): Promise<number | null> {
    const start = Date.now()
    let run = 0
    while (Date.now() - start < ceilingMs) {
      const r = await this.call(target)
      const who = r.ok ? r.who : ''
      run = pred(who) ? run + 1 : 0
      if (run >= window) return Date.now() - start
      if (!r.ok) await new Promise((res) => setTimeout(res, 50))
    }
    return null
  }

  async close(): Promise<void> {
    if (this.exited) return
    const gone = new Promise<void>((res) => this.child.once('exit', () => res()))
    this.child.stdin!.end(JSON.stringify({ op: 'exit' }) + '\n')
    const kill = setTimeout(() => this.child.kill('SIGKILL'), 3000)
    await gone
    clearTimeout(kill)
  }
}

/**
 * Start a client of `kind` with a bootstrap naming `xdsAddress`, stopped at teardown.
 * Traces: grpc-js `GRPC_TRACE=xds_client,xds_resolver`; C-core `xds_client,xds_resolver,cds_lb` at debug.
 */
export async function startXdsClient(t: Pick<Test, 'teardown'>, kind: XdsClientKind, o: XdsClientOptions): Promise<XdsTestClient> {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(o.bootstrap ?? grpcBootstrap(o)),
    SHOAL_TEST_CREDS: o.creds ?? 'insecure',
    NODE_OPTIONS: '',
  }
  let netns: string[] = []
  if (o.netnsPid !== undefined) {
    assertLocalRoute(new URL(`http://${o.xdsAddress}`).hostname.replace(/^\[(.*)\]$/, '$1'), { netnsPid: o.netnsPid })
    netns = [`--net=/proc/${o.netnsPid}/ns/net`]
  }
  // Through nsenter when asked: the same program, in the container's network namespace.
  const run = (cmd: string, args: string[]): ChildProcess =>
    spawn(netns.length ? 'nsenter' : cmd, netns.length ? [...netns, cmd, ...args] : args, {
      env: { ...env, ...o.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
  let child: ChildProcess
  if (kind === 'grpc-js') {
    env.GRPC_TRACE = `xds_client,xds_resolver${EXTRA_TRACE}`
    env.GRPC_VERBOSITY = 'DEBUG'
    child = run(process.execPath, [join(HERE, 'xds-client-js.mjs')])
  } else {
    env.GRPC_TRACE = `xds_client,xds_resolver,cds_lb${EXTRA_TRACE}`
    env.GRPC_VERBOSITY = 'debug'
    // With the synchronous API nothing polls the XdsClient's channel between calls but the
    // backup poller (5 s by default): xDS updates would be read seconds late.
    env.GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS = '20'
    env.PYTHONUNBUFFERED = '1'
    child = run(PYTHON, [join(HERE, 'xds-client-ccore.py')])
  }
  const client = new XdsTestClient(kind, child)
  t.teardown(() => client.close())
  await client.ready()
  return client
}

/** Assert an `until` result, with the time it took in the message. */
export function within(t: Pick<Test, 'ok'>, ms: number | null, what: string): void {
  t.ok(ms !== null, `${what} (${ms === null ? 'timed out' : `${ms} ms`})`)
}

/** Zero NACKs: in the client's own log and in the xDS server's per-client view (`XdsServer.debugInfo()`, `/debug/xds`). */
export function noNacks(t: Pick<Test, 'same'>, client: XdsTestClient, dbg: Pick<XdsDebugInfo, 'clients' | 'invalid'>): void {
  t.same(client.nacks, [], `${client.kind} logged no NACK`)
  t.same(
    dbg.clients.flatMap((c) => c.types.filter((x) => x.nackedVersion !== null).map((x) => `${x.type}: ${x.nackError}`)),
    [],
    'the server saw no NACK',
  )
  t.same(dbg.invalid, [], 'every resource served was valid')
}

/**
 * A proxyless gRPC server (grpc-js-xds `XdsServer`, test/lib/xds-server-js.mjs) in its own
 * process, configured by the agent named in its bootstrap; it answers each call `ID|PEER`
 * (PEER: the caller's SPIFFE ID over mTLS, '' over plain text). Stopped at teardown.
 */
export class XdsTestServer {
  /** Serving-state changes and errors the server printed, in order. */
  readonly events: Array<Record<string, unknown>> = []
  readonly log: string[] = []
  private exited = false

  constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      try {
        this.events.push(JSON.parse(text) as Record<string, unknown>)
      } catch {
        /* not ours */
      }
    })
    createInterface({ input: child.stderr! }).on('line', (text) => {
      if (LOG_DIR) appendFileSync(join(LOG_DIR, `server-${this.child.pid}.log`), text + '\n')
      this.log.push(text)
      if (this.log.length > 2000) this.log.shift()
    })
    child.once('exit', () => (this.exited = true))
  }

  /** Serving: its Listener arrived and its port listens. */
  get serving(): boolean {
    return this.events.some((e) => e.serving === true)
  }

  async close(): Promise<void> {
    if (this.exited) return
    const gone = new Promise<void>((res) => this.child.once('exit', () => res()))
    this.child.stdin!.end()
    const kill = setTimeout(() => this.child.kill('SIGKILL'), 3000)
    await gone
    clearTimeout(kill)
  }
}

/**
 * Start an XdsServer with id `id` binding `address` (IP:PORT; gRPC servers take no port 0),
 * its bootstrap made from `o` (`service` needed), RBAC enabled (GRPC_XDS_EXPERIMENTAL_RBAC).
 * `plain`: insecure server credentials, which ignore the Listener's TLS.
 */
export function startXdsServer(
  t: Pick<Test, 'teardown'>,
  id: string,
  address: string,
  o: GrpcBootstrapOptions & { plain?: boolean; env?: Record<string, string> },
): XdsTestServer {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(grpcBootstrap(o)),
    GRPC_XDS_EXPERIMENTAL_RBAC: 'true',
    GRPC_TRACE: 'xds_client,xds_server',
    GRPC_VERBOSITY: 'DEBUG',
    NODE_OPTIONS: '',
    ...o.env,
  }
  const args = [join(HERE, 'xds-server-js.mjs'), id, address, ...(o.plain ? ['plain'] : [])]
  const server = new XdsTestServer(spawn(process.execPath, args, { env, stdio: ['pipe', 'pipe', 'pipe'] }))
  t.teardown(() => server.close())
  return server
}
