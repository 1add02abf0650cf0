// The RSS of one agent at scale (issue 17, README "Memory"): `shoal agent` from a build
// (`dist/cli.js`, `--discovery none --dns off`, `lan`) joins 10 peers that each own 1000
// ServicePorts (svc0..svc999, one instance each, so 1000 ServicePorts x 10 instances, 10,000
// records; proxy modes mixed http/tcp/grpc as in bench/xds-push.ts), then serves two xDS clients
// at once: an Envoy-kind ADS client (wildcard CDS and LDS, EDS for every Cluster:
// test/lib/ads-watch.ts) and a real grpc-js-xds channel on xds:///svc0:10000. Once both hold the
// full view, the agent's VmRSS is sampled every second for BENCH_HOLD_S (default 30) seconds;
// reported: the median and the highest sample, and the peak (VmHWM) at the end. The same agent
// with no peers and no clients (idle, alone) runs beside it in each round as the peer in the
// same run. The peers run in this process (real Gossip, Catalog and GossipBridge on loopback
// sockets); the agent is the only process measured.
//
//   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/memory-scale.ts [--rounds 3] [--write]
//
// BENCH_NODE_FLAGS: node flags before the CLI (both agents). --write writes bench/RESULTS-memory-scale.md.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RealClock } from '../src/clock.js'
import { Gossip } from '../src/gossip/gossip.js'
import { NetTransport } from '../src/gossip/transport-net.js'
import { silentLogger } from '../src/log.js'
import { GossipBridge } from '../src/registry/bridge.js'
import { Catalog, type LocalRecord } from '../src/registry/catalog.js'
import { REGISTRY_PROTOCOL } from '../src/registry/wire.js'
import { grpcBootstrap } from '../src/xds/bootstrap.js'
import { AdsWatch } from '../test/lib/ads-watch.js'
import { cliAgent, type CliAgent } from '../test/lib/agent-process.js'
import { benchHarness, pct } from './stats.js'

const SERVICES = 1000
const HOSTS = 10
const HOLD_S = Number(process.env.BENCH_HOLD_S ?? 30)
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)
const args = process.argv.slice(2)
const ROUNDS = Number(args[args.indexOf('--rounds') + 1] ?? 3) || 3
const repo = fileURLToPath(new URL('..', import.meta.url))
const CLI = join(repo, 'dist', 'cli.js')
/** Stops what cliAgent started, should the bench end early. */
const harness = benchHarness()
const logger = silentLogger()
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const mib = (kb: number): string => (kb / 1024).toFixed(1)

/** VmRSS and VmHWM of a process, in kB. */
function memOf(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)![1])
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

async function until(what: string, pred: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(200)
  }
}

function record(h: number, s: number): LocalRecord {
  return {
    id: `h${h}s${s}`,
    name: `svc${s}`,
    image: 'img',
    created: 0,
    ports: [{ type: 'tcp', port: 20000 + s, servicePort: 10000 + s, ip: `10.0.${h}.1` }],
    proxyMode: s % 4 === 0 ? 'grpc' : s % 4 === 1 ? 'tcp' : 'http',
    status: 'alive',
    labels: {},
  }
}

interface Peer {
  gossip: Gossip
  catalog: Catalog
  bridge: GossipBridge
}

async function peers(): Promise<Peer[]> {
  const out: Peer[] = []
  for (let h = 0; h < HOSTS; h++) {
    const clock = new RealClock()
    const gossip = new Gossip(
      { name: `peer-${h}`, cluster: 'scale', profile: 'lan', meta: { reg: String(REGISTRY_PROTOCOL) } },
      { transport: new NetTransport({ bind: { host: '127.0.0.1', port: 0 } }, { logger }), clock, logger },
    )
    const catalog = new Catalog({ cluster: 'scale', self: `peer-${h}`, address: '127.0.0.1:7946' }, { clock, logger })
    catalog.setLocalBoot(gossip.bootId)
    for (let s = 0; s < SERVICES; s++) catalog.upsertLocal(record(h, s))
    const bridge = new GossipBridge({}, { catalog, gossip, logger })
    catalog.start()
    await gossip.start()
    bridge.start()
    if (h > 0) {
      const m = out[0]!.gossip.localMember()
      await gossip.join([`${m.addr}:${m.port}`])
    }
    out.push({ gossip, catalog, bridge })
  }
  return out
}

/** An agent of the built CLI (test/lib/agent-process.ts), stopped by the caller or at the end of the bench. */
function agent(name: string, join: string[]): Promise<CliAgent> {
  const flags = ['--node', name, '--cluster', 'scale', '--profile', 'lan', '--discovery', 'none', '--dns', 'off', '--log-format', 'json']
  return cliAgent(harness, [...flags, ...join], { cli: CLI, nodeFlags: NODE_FLAGS })
}

/** VmRSS every second for HOLD_S seconds, then VmHWM. */
async function hold(pid: number): Promise<{ median: number; max: number; hwm: number }> {
  const xs: number[] = []
  for (let i = 0; i < HOLD_S; i++) {
    xs.push(memOf(pid).rss)
    await sleep(1000)
  }
  return { median: pct(xs, 50), max: Math.max(...xs), hwm: memOf(pid).hwm }
}

/** A grpc-js-xds channel on xds:///svc0:10000, kept until the process is killed. */
const GRPC_CLIENT = `
import * as grpc from '@grpc/grpc-js'
import * as xds from '@grpc/grpc-js-xds'
xds.register()
new grpc.Client('xds:///svc0:10000', grpc.credentials.createInsecure()).getChannel().getConnectivityState(true)
setInterval(() => undefined, 60_000)
`

interface Round {
  idle: { median: number; max: number; hwm: number }
  scale: { median: number; max: number; hwm: number }
  /** ms from the agent's start until both clients held the full view. */
  readyMs: number
  /** The agent's heap used (nodejs_heap_size_used_bytes) at the end of the hold, MiB. */
  heapMb: number
}

async function round(ps: Peer[]): Promise<Round> {
  const alone = await agent('alone', [])
  const idle = await hold(alone.proc.pid!)
  await alone.stop()

  const seed = ps[0]!.gossip.localMember()
  const t0 = Date.now()
  const a = await agent('measured', ['--join', `${seed.addr}:${seed.port}`])
  let envoy: AdsWatch | undefined
  let grpcClient: ChildProcess | undefined
  try {
    envoy = new AdsWatch(a.xds, { listeners: true, retryMs: 500 })
    // grpc-js-xds reads its bootstrap once per process: a process of its own per round.
    grpcClient = spawn(process.execPath, ['--input-type=module', '-e', GRPC_CLIENT], {
      cwd: repo,
      stdio: ['ignore', 'ignore', process.env.BENCH_DEBUG ? 'inherit' : 'ignore'],
      env: { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(grpcBootstrap({ nodeId: 'scale-grpc', xdsAddress: a.xds })) },
    })
    const full = (): boolean => envoy!.view.size === SERVICES && [...envoy!.view.values()].every((eps) => eps.length === HOSTS)
    await until('the Envoy-kind client holds 1000 Clusters x 10 endpoints', full, 300_000)
    await until(
      'the gRPC client is up to date',
      async () => {
        const d = (await (await fetch(`${a.http}/debug/xds`)).json()) as {
          clients: { clients: Array<{ nodeId: string; types: Array<{ upToDate: boolean }> }> }
        }
        const g = d.clients.clients.find((c) => c.nodeId === 'scale-grpc')
        return g !== undefined && g.types.length >= 2 && g.types.every((x) => x.upToDate)
      },
      120_000,
    )
    const readyMs = Date.now() - t0
    const scale = await hold(a.proc.pid!)
    const metrics = await (await fetch(`${a.http}/metrics`)).text()
    const heap = Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1] ?? NaN)
    return { idle, scale, readyMs, heapMb: heap / 1048576 }
  } finally {
    grpcClient?.kill('SIGKILL')
    envoy?.close()
    await a.stop()
  }
}

const load0 = loadavg()[0]!
const started = new Date().toISOString()
const ps = await peers()
const rounds: Round[] = []
try {
  for (let i = 0; i < ROUNDS; i++) {
    const r = await round(ps)
    rounds.push(r)
    process.stderr.write(
      `round ${i + 1}: alone RSS ${mib(r.idle.median)} MiB (peak ${mib(r.idle.hwm)}); 1000 x 10 with both clients RSS ${mib(r.scale.median)} MiB ` +
        `(max ${mib(r.scale.max)}, peak ${mib(r.scale.hwm)}), heap ${r.heapMb.toFixed(1)} MiB, ready in ${r.readyMs} ms\n`,
    )
  }
} finally {
  await harness.close()
  for (const p of ps) {
    p.bridge.stop()
    p.catalog.stop()
    await p.gossip.stop()
  }
}
const med = (f: (r: Round) => number): number => pct(rounds.map(f), 50)
const table = [
  `| agent | RSS, median of samples | highest sample | peak (VmHWM) | heap used |`,
  `|---|---|---|---|---|`,
  `| alone, idle (no peers, no clients) | ${mib(med((r) => r.idle.median))} MiB | ${mib(med((r) => r.idle.max))} MiB | ${mib(med((r) => r.idle.hwm))} MiB | |`,
  `| 1000 ServicePorts x 10 instances, Envoy-kind and gRPC clients | ${mib(med((r) => r.scale.median))} MiB | ${mib(med((r) => r.scale.max))} MiB | ${mib(med((r) => r.scale.hwm))} MiB | ${med((r) => r.heapMb).toFixed(1)} MiB |`,
].join('\n')
const head = `${started}, ${cpus()[0]?.model} (nproc ${cpus().length}), Node ${process.version}, load ${load0.toFixed(1)}-${loadavg()[0]!.toFixed(1)}, ${ROUNDS} rounds (medians over rounds), ${HOLD_S} s hold, node flags: ${NODE_FLAGS.join(' ') || 'none'}`
console.log(`${head}\n\n${table}\n\nready (agent start until both clients held the full view), median: ${med((r) => r.readyMs)} ms`)
if (args.includes('--write')) {
  writeFileSync(
    join(repo, 'bench', 'RESULTS-memory-scale.md'),
    `# One agent at 1000 ServicePorts x 10 instances: RSS\n\n\`bench/memory-scale.ts\` (method in its header). ${head}.\n\n${table}\n\nGoal (issue 17): at most 110 MiB at this size with both client kinds connected.\n`,
  )
}
process.exit(0)
