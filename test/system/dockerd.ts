// A private Docker engine for system tests: its own socket, data-root, exec-root, pidfile,
// containerd namespace and bridge under a fresh temp folder, a locally imported busybox
// image, and a teardown that removes all of it even when the test failed; the same steps run
// on a signal and, after SIGKILL, in the process's reaper (test/lib/labs.ts).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  copyFileSync,
  writeFileSync,
} from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { connect, createServer, type Socket } from 'node:net'
import { handOutPort } from '../lib/listen.js'
import Dockerode from 'dockerode'
import { Registry } from 'prom-client'
import { DockerSource } from '../../src/docker/source.js'
import { silentLogger } from '../../src/log.js'
import { LabManifest, type LabStep } from '../lib/labs.js'

export const IMAGE = 'shoal-busybox:test'

/** busybox httpd serving /www on `port` in the foreground: what most test containers run. */
export const httpd = (port = 80): string[] => ['httpd', '-f', '-p', String(port), '-h', '/www']
/** A container that only runs (`sleep` as PID 1 ignores SIGTERM: it survives `docker stop` until SIGKILL). */
export const SLEEP = ['sleep', '3600']

/**
 * `docker run` arguments of a container that survives its stop signal (`sleep` as PID 1 has no
 * handler: SIGTERM and SIGHUP do nothing to it) with a stop timeout of 1 s, serving `name` on
 * ServicePort_80 `servicePort`.
 */
export function stubbornArgs(name: string, servicePort: number): string[] {
  return runArgs({
    name,
    options: ['--stop-timeout', '1'],
    labels: { ServiceName: name, ServicePort_80: String(servicePort) },
    publish: ['80'],
    cmd: SLEEP,
  })
}

/**
 * Creates (does not start) a container of IMAGE that runs `sleep 600` as `service` with
 * ServicePort_80 `servicePort`, its port 80 published on a port the engine picks, named
 * `containerName` if given: what the burst test and the Docker benches make by the dozen,
 * through the engine's API.
 */
export function createService(d: Pick<Dockerd, 'docker'>, service: string, servicePort: number, containerName?: string) {
  return d.docker.createContainer({
    Image: IMAGE,
    ...(containerName !== undefined ? { name: containerName } : {}),
    Cmd: ['sleep', '600'],
    Labels: { ServiceName: service, ServicePort_80: String(servicePort) },
    ExposedPorts: { '80/tcp': {} },
    HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '' }] } },
  })
}

export interface RunSpec {
  name: string
  /** `-l KEY=VALUE` each, in this order. */
  labels?: Record<string, string>
  /** `-p` values: `80`, `127.0.0.1:PORT:7000`, ... */
  publish?: string[]
  /** Other `docker run` options (`--stop-timeout 1`, health flags, `--network`, ...). */
  options?: string[]
  /** The command; default httpd(). */
  cmd?: string[]
}

/**
 * The arguments of `docker run -d` of IMAGE for `Dockerd.cli`: the one place tests spell them.
 *
 * @example
 *   await d.cli(runArgs({ name: 'web', labels: { ServiceName: 'web', ServicePort_80: '10080' }, publish: ['80'] }))
 */
export function runArgs(s: RunSpec): string[] {
  return [
    ...['run', '-d', '--name', s.name, ...(s.options ?? [])],
    ...Object.entries(s.labels ?? {}).flatMap(([k, v]) => ['-l', `${k}=${v}`]),
    ...(s.publish ?? []).flatMap((p) => ['-p', p]),
    IMAGE,
    ...(s.cmd ?? httpd()),
  ]
}

export interface Dockerd {
  dir: string
  /** `unix:///…/docker.sock` */
  host: string
  bridge: string
  /** The bridge's gateway address (containers get the rest of its /24). */
  gateway: string
  /** The loopback address ports published without an address bind (`--ip`). */
  defaultIp: string
  docker: Dockerode
  /** Run the docker CLI against this engine; rejects with its stderr on failure. */
  cli(args: string[]): Promise<string>
  /** SIGKILL dockerd (containers live on: it runs with --live-restore). */
  kill(): Promise<void>
  /** Start dockerd again on the same folders and wait until it answers. */
  restart(): Promise<void>
  /** Tear everything down; idempotent. Registered as a teardown already. */
  stop(): Promise<void>
  /** More undo steps for what was made beside the engine, run after it is gone: by stop(), a signal hook or the reaper. */
  addCleanup(...steps: LabStep[]): void
}

interface TestLike {
  skip(...args: any[]): unknown
  teardown(fn: () => unknown): void
}

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

/** Why this machine cannot run the suite, or undefined when it can. */
export function unavailable(): string | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root to run dockerd'
  for (const c of ['dockerd', 'docker', 'busybox', 'ip', 'tar'])
    if (!which(c)) return `needs ${c} (apt packages docker.io, busybox-static, iproute2)`
  const bb = which('busybox')!
  const file = spawnSync('sh', ['-c', `ldd ${bb} 2>&1`], { encoding: 'utf8' }).stdout
  if (!/not a dynamic executable|statically linked/.test(file)) return `${bb} is not static (apt package busybox-static)`
  return undefined
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A TCP port free on every address right now, for `-p PORT:…` bindings on the wildcard. */
export function freePort(): Promise<number> {
  return handOutPort({ host: null })
}

/** Poll `pred` until it holds; rejects after `ms` with `what`. */
export async function waitFor(pred: () => boolean | Promise<boolean>, ms: number, what: string): Promise<number> {
  const t0 = Date.now()
  for (;;) {
    if (await pred()) return Date.now() - t0
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(20)
  }
}

/** A DockerSource of `d` (advertising 127.0.0.1) with its own metrics registry, connected; stopped at `t`'s teardown. */
export async function connectedSource(t: TestLike, d: Dockerd): Promise<{ src: DockerSource; registry: Registry }> {
  const registry = new Registry()
  const src = new DockerSource({ dockerHost: d.host, advertiseIp: '127.0.0.1' }, { logger: silentLogger(), registry })
  t.teardown(() => src.stop())
  src.start()
  await waitFor(() => src.connected(), 10_000, 'connected')
  return { src, registry }
}

/** A local address of `ss` that binds every address of the namespace: 0.0.0.0, *, [::] or [::ffff:0.0.0.0], with any port. */
const WILDCARD_LOCAL = /^(0\.0\.0\.0|\*|\[::\]|\[::ffff:0\.0\.0\.0\]):\d+$/

/** The port a swarm engine's overlay gossip (libnetwork's NetworkDB, memberlist) binds: fixed, not configurable. */
export const SWARM_GOSSIP_PORT = 7946

/**
 * The sockets on `port` (TCP listening, UDP bound) in the network namespace `netns` (a name
 * under /run/netns; default this process's), one `ss -ltnup` line each (`tcp 0.0.0.0:7946
 * users:(("node",pid=123,fd=20))`). Throws when `ss` cannot run.
 */
export function portListeners(port: number, netns?: string): string[] {
  const argv = ['ss', '-H', '-l', '-t', '-u', '-n', '-p']
  const r = netns
    ? spawnSync('nsenter', [`--net=/run/netns/${netns}`, ...argv], { encoding: 'utf8' })
    : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`)
  const out: string[] = []
  for (const line of r.stdout.split('\n')) {
    // Netid State Recv-Q Send-Q Local:Port Peer:Port [Process]
    const f = line.trim().split(/\s+/)
    const local = f[4]
    if (!local || Number(local.slice(local.lastIndexOf(':') + 1)) !== port) continue
    out.push(`${f[0]} ${local} ${f.slice(6).join(' ') || '(process not shown)'}`)
  }
  return out
}

/**
 * Why a swarm engine in `netns` (default this namespace) would lose its overlay networking,
 * or undefined: something already listens on SWARM_GOSSIP_PORT there on every address (a
 * wildcard bind; another engine's own address leaves ours free). dockerd then cannot
 * bind its NetworkDB's memberlist, and `swarm init` still succeeds, so overlay networks and
 * their tasks fail minutes later with no word of the port. A Shoal agent's default `--bind`
 * is 0.0.0.0:7946 (TCP and UDP), which takes the port on every address (a later bind of
 * 127.x.y.z:7946 fails with EADDRINUSE for TCP and UDP alike). `port` is for this check's own test.
 */
export function swarmPortProblem(netns?: string, port = SWARM_GOSSIP_PORT): string | undefined {
  // Only a wildcard bind takes the port on every address. Another private engine holds
  // <its own 127.x address>:7946, which leaves ours free (each engine has its own gateway
  // bridge, see initSwarm); refusing it failed every swarm suite that ran beside another.
  const held = portListeners(port, netns).filter((l) => WILDCARD_LOCAL.test(l.split(' ')[1] ?? ''))
  if (held.length === 0) return undefined
  return (
    `port ${port} is taken${netns ? ` in network namespace ${netns}` : ' on this machine'} (${held.join('; ')}); ` +
    `a swarm engine's overlay gossip needs it, so overlay networks would fail later. Stop that process ` +
    `(\`${netns ? `nsenter --net=/run/netns/${netns} ` : ''}ss -ltnup 'sport = :${port}'\` names it; a Shoal agent started with ` +
    `the default --bind 0.0.0.0:${port}, e.g. by \`npm start\`, takes it: give it another port, --bind 0.0.0.0:7947) and run the test again`
  )
}

/**
 * Start a private dockerd for test `t`, or mark `t` skipped (with the reason) and return
 * undefined when this machine cannot run it. With `swarm`, the engine runs without
 * `--live-restore` (which swarm mode refuses); see `initSwarm`. With `netns` (a name under
 * /run/netns, e.g. a NetnsLab host's), dockerd, its bridge, containers and published ports
 * live in that network namespace: one "machine" of a multi-node swarm. (Through nsenter, not
 * `ip netns exec`, which remounts /sys and hides the cgroup mounts dockerd needs.) A swarm
 * engine fails at once when something listens on port 7946 where it runs (swarmPortProblem).
 */
export async function startDockerd(t: TestLike, opts: { swarm?: boolean; netns?: string } = {}): Promise<Dockerd | undefined> {
  const why = unavailable()
  if (why) {
    t.skip(`real Docker engine suite skipped: ${why}`)
    return undefined
  }
  // Fail now, naming the process, rather than when an overlay task times out (swarmPortProblem).
  const portTaken = opts.swarm ? swarmPortProblem(opts.netns) : undefined
  if (portTaken) throw new Error(portTaken)
  const dir = mkdtempSync('/tmp/shd-')
  const tag = randomBytes(3).toString('hex')
  const bridge = `shl${tag}`
  const gateway = `10.${200 + (randomBytes(1)[0]! % 50)}.${randomBytes(1)[0]!}.1`
  const defaultIp = `127.${1 + (randomBytes(1)[0]! % 250)}.${randomBytes(1)[0]!}.${2 + (randomBytes(1)[0]! % 250)}`
  const sock = join(dir, 'docker.sock')
  const host = `unix://${sock}`
  let proc: ChildProcess | undefined
  let stopped = false
  /** Processes of this engine's folder (containerd, shims) seen so far, for their stack dumps. */
  const containerdPids = new Set<string>()
  const notePids = () => {
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) containerdPids.add(pid)
      } catch {
        // the process exited while we looked
      }
    }
  }

  /** `ip` in the engine's network namespace. */
  const ipCmd = (args: string[]) => (opts.netns ? ['ip', '-n', opts.netns, ...args] : ['ip', ...args])
  // Whatever ends this process, these steps undo the engine: its containers, dockerd (its
  // pidfile names it alone), then containerd, shims and docker-proxy (they name our folder),
  // mounts, the bridge, the folder.
  const lab = LabManifest.write(
    `dockerd ${dir}`,
    [
      { run: ['sh', '-c', `ids=$(docker -H ${host} ps -aq) && [ -n "$ids" ] && docker -H ${host} rm -f $ids`] },
      { stop: `--pidfile ${join(dir, 'docker.pid')}`, ms: 15_000 },
      { killNaming: dir },
      { umountUnder: dir },
      { run: ipCmd(['link', 'del', bridge]) },
      { rm: dir },
    ],
    [dir, bridge],
  )

  const cliSync = (args: string[], input?: string) =>
    spawnSync('docker', ['-H', host, ...args], { encoding: 'utf8', input, timeout: 30_000 })
  const cli = (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const c = spawn('docker', ['-H', host, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      c.stdout.on('data', (d) => (out += d))
      c.stderr.on('data', (d) => (err += d))
      c.on('error', reject)
      c.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`docker ${args.join(' ')}: ${err.trim()}`))))
    })

  const launch = async () => {
    const log = openSync(join(dir, 'dockerd.log'), 'a')
    proc = spawn(
      opts.netns ? 'nsenter' : 'dockerd',
      [
        ...(opts.netns ? [`--net=/run/netns/${opts.netns}`, 'dockerd'] : []),
        '--host',
        host,
        '--config-file',
        join(dir, 'daemon.json'),
        '--data-root',
        join(dir, 'data'),
        '--exec-root',
        join(dir, 'exec'),
        '--pidfile',
        join(dir, 'docker.pid'),
        '--containerd-namespace',
        `shoal-${tag}`,
        '--containerd-plugins-namespace',
        `shoal-${tag}-plugins`,
        '--bridge',
        bridge,
        // Ports published without an address bind this daemon's own loopback address, so that
        // two engines allocating host ports from the same range never collide.
        '--ip',
        defaultIp,
        // Published ports go through docker-proxy; no rules in the host's iptables.
        '--iptables=false',
        '--ip-masq=false',
        // Swarm mode refuses to start on an engine with live-restore.
        ...(opts.swarm ? [] : ['--live-restore']),
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', log, log] },
    )
    closeSync(log)
    const exited = new Promise<never>((_r, reject) =>
      proc!.once('exit', (code) =>
        reject(new Error(`dockerd exited (${code}): ${readFileSync(join(dir, 'dockerd.log'), 'utf8').slice(-2000)}`)),
      ),
    )
    exited.catch(() => {})
    await Promise.race([
      waitFor(
        () =>
          docker.ping().then(
            () => true,
            () => false,
          ),
        30_000,
        'dockerd to answer',
      ),
      exited,
    ])
  }

  const docker = new Dockerode({ socketPath: sock })

  const stop = async () => {
    if (stopped) return
    stopped = true
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const ids = cliSync(['ps', '-aq']).stdout?.split('\n').filter(Boolean) ?? []
      if (ids.length) cliSync(['rm', '-f', ...ids])
      notePids()
      proc.kill('SIGTERM')
      const end = Date.now() + 15_000
      while (proc.exitCode === null && proc.signalCode === null && Date.now() < end) await sleep(50)
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    }
    // containerd, shims and docker-proxy started by this dockerd name our folder: the lab's steps kill them, then the rest.
    notePids()
    lab.undo()
    await sleep(100)
    // containerd dumps its goroutines to /tmp/containerd.<pid>.stacks.log when dockerd signals
    // it on shutdown: remove the dumps of ours.
    for (const pid of containerdPids) rmSync(`/tmp/containerd.${pid}.stacks.log`, { force: true })
  }
  t.teardown(stop)

  writeFileSync(join(dir, 'daemon.json'), '{}')
  const ip = ipCmd([]).join(' ')
  const br = spawnSync(
    'sh',
    ['-c', `${ip} link add name ${bridge} type bridge && ${ip} addr add ${gateway}/24 dev ${bridge} && ${ip} link set ${bridge} up`],
    { encoding: 'utf8' },
  )
  if (br.status !== 0) throw new Error(`bridge ${bridge}: ${br.stderr}`)
  await launch()

  // The image: busybox-static and the applets the tests use, nothing else.
  const rootfs = join(dir, 'rootfs')
  for (const d of ['bin', 'tmp', 'www', 'etc']) mkdirSync(join(rootfs, d), { recursive: true })
  copyFileSync(which('busybox')!, join(rootfs, 'bin/busybox'))
  for (const a of ['sh', 'httpd', 'nc', 'sleep', 'test', 'touch', 'rm', 'true', 'false', 'cat', 'echo', 'wget'])
    symlinkSync('busybox', join(rootfs, 'bin', a))
  writeFileSync(join(rootfs, 'www/index.html'), 'ok\n')
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n')
  const imp = spawnSync('sh', ['-c', `tar -C ${rootfs} -c . | docker -H ${host} import -c 'CMD ["/bin/sh"]' - ${IMAGE}`], {
    encoding: 'utf8',
  })
  if (imp.status !== 0) throw new Error(`docker import: ${imp.stderr}`)
  if (!existsSync(sock)) throw new Error('no docker socket')

  return {
    dir,
    host,
    bridge,
    gateway,
    docker,
    cli,
    defaultIp,
    kill: async () => {
      proc?.kill('SIGKILL')
      while (proc && proc.exitCode === null && proc.signalCode === null) await sleep(20)
      // Its containerd goes too (shims and containers live on). Its pidfile would name a
      // dead or zombie process that the next dockerd waits for in vain.
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
          if (cmd.includes(dir) && cmd.includes('containerd.toml')) {
            process.kill(Number(pid), 'SIGKILL')
            containerdPids.add(pid)
          }
        } catch {
          // the process exited while we looked
        }
      }
      rmSync(join(dir, 'exec/containerd/containerd.pid'), { force: true })
    },
    restart: launch,
    stop,
    addCleanup: (...steps) => lab.addSteps(...steps),
  }
}

/** A port in 20000-49151 (swarm's data-path port must be below 49152) free for UDP and TCP on every address. */
async function freePortBelow49152(): Promise<number> {
  const { createSocket } = await import('node:dgram')
  for (let i = 0; i < 50; i++) {
    const port = 20_000 + (randomBytes(2).readUInt16BE(0) % 29_000)
    const tcpOk = await new Promise<boolean>((resolve) => {
      const s = createServer()
      s.once('error', () => resolve(false))
      s.listen(port, () => s.close(() => resolve(true)))
    })
    if (!tcpOk) continue
    const udpOk = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4')
      u.once('error', () => resolve(false))
      u.bind(port, () => u.close(() => resolve(true)))
    })
    if (udpOk) return port
  }
  throw new Error('no free port below 49152')
}

export interface Swarm {
  nodeId: string
  /** The node's hostname, what `{{.Node.Hostname}}` expands to. */
  hostname: string
  /** host:port of the swarm's manager API (the engine's own loopback address). */
  listen: string
  /**
   * The host-side device of this engine's `docker_gwbridge` network (`shg<tag>`): what
   * `--xds-interfaces` names for clients on the overlay, where a default engine has the
   * device `docker_gwbridge`.
   */
  gwBridge: string
}

/**
 * Make engine `d` (started with `{ swarm: true }`) a one-node swarm manager, listening on its
 * own loopback address (dockerd also binds `<that address>:7946` for overlay gossip) with a
 * free VXLAN port. Before `swarm init` it makes the engine's `docker_gwbridge` network itself,
 * as Docker documents for customising it, with a device name (`shg<tag>`) and subnet of this
 * engine's own: swarm mode would otherwise create a host-wide device named `docker_gwbridge`,
 * one per machine, and two swarm suites running at once (or one after an engine that died
 * without removing it) would fight over it. Teardown: `swarm leave --force` (services, tasks,
 * overlay networks go with it), the engine, and the device.
 */
export async function initSwarm(t: TestLike, d: Dockerd): Promise<Swarm> {
  const gwBridge = `shg${d.bridge.slice(3)}`
  // Beside the engine's own bridge (10.200-249.x.0/24): 10.150-199.x.0/24, unique while the bridges' are.
  const [, a, b] = /^10\.(\d+)\.(\d+)\.1$/.exec(d.gateway) ?? []
  if (a === undefined || b === undefined) throw new Error(`initSwarm: unexpected gateway ${d.gateway}`)
  const subnet = `10.${Number(a) - 50}.${b}.0/24`
  t.teardown(async () => {
    await d.cli(['swarm', 'leave', '--force']).catch(() => undefined)
    await d.stop()
  })
  // Made in the host's namespace; it goes when the engine does, however the test ends.
  d.addCleanup({ run: ['ip', 'link', 'del', gwBridge] })
  await d.cli([
    'network',
    'create',
    '--driver',
    'bridge',
    '--subnet',
    subnet,
    '--opt',
    `com.docker.network.bridge.name=${gwBridge}`,
    '--opt',
    'com.docker.network.bridge.enable_icc=false',
    '--opt',
    'com.docker.network.bridge.enable_ip_masquerade=false',
    'docker_gwbridge',
  ])
  const listen = `${d.defaultIp}:${await freePortBelow49152()}`
  await d.cli([
    'swarm',
    'init',
    '--advertise-addr',
    listen,
    '--listen-addr',
    listen,
    '--data-path-port',
    String(await freePortBelow49152()),
  ])
  const nodeId = await d.cli(['info', '--format', '{{.Swarm.NodeID}}'])
  const hostname = await d.cli(['node', 'inspect', 'self', '--format', '{{.Description.Hostname}}'])
  return { nodeId, hostname, listen, gwBridge }
}

export interface SlowEngine {
  /** `unix://…` of the proxy, for `--docker-host`. */
  host: string
  /** The next `GET …/containers/json` waits `ms` before it reaches the engine. */
  delayNextList(ms: number): void
  /** How many container lists were delayed so far. */
  delayed(): number
}

/**
 * A slower engine: a proxy on a socket of its own in front of engine `d`'s, passing bytes
 * both ways, that holds back the next container list when told to. Closed at teardown.
 */
export async function slowEngine(t: TestLike, d: Dockerd): Promise<SlowEngine> {
  const path = join(d.dir, 'slow.sock')
  const upstream = d.host.replace(/^unix:\/\//, '')
  let pending = 0
  let count = 0
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const engine = connect(upstream)
    sockets.add(client).add(engine)
    const close = () => {
      client.destroy()
      engine.destroy()
    }
    client.on('close', () => sockets.delete(client) && close())
    engine.on('close', () => sockets.delete(engine) && close())
    client.on('error', close)
    engine.on('error', close)
    engine.pipe(client)
    let queue = Promise.resolve()
    client.on('data', (chunk: Buffer) => {
      const hold = pending > 0 && /^GET \S*\/containers\/json/m.test(chunk.toString('latin1'))
      const ms = hold ? pending : 0
      if (hold) {
        pending = 0
        count++
      }
      queue = queue.then(() => (ms > 0 ? sleep(ms) : undefined)).then(() => void engine.write(chunk))
    })
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  )
  return { host: `unix://${path}`, delayNextList: (ms) => (pending = ms), delayed: () => count }
}
