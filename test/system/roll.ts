/**
 * A rolling restart under load on a private dockerd, as the issue 14 suites and the roll
 * benchmark run it: replicas of a gRPC echo server in containers (test/lib/echo-server.mjs,
 * node and the checkout's node_modules mounted read-only into the imported busybox image),
 * discovered by host-a (`--docker-network bridge`: the containers' bridge addresses, on this
 * machine) with a Tcp check; a grpc-js-xds client that declares the bridge network (issue 13:
 * a client on the host network is sent host bindings only) on host-b's xDS calling them at `rate`
 * calls/s; each replica replaced in turn, `rounds` times: `docker stop` the old one, `docker
 * run` a new one, wait until host-b serves it and one more second, go on.
 *
 * @example
 *   const r = await rollingRestart(t, d, { onTerm: 'linger', rounds: 5 })
 *   t.equal(r.failed, 0)
 */
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { takesTraffic } from '../../src/registry/types.js'
import { startXdsClient, type LoadCall } from '../lib/xds-clients.js'
import { dockerAgents, dockerEvents, StatusLog } from './docker-agents.js'
import { IMAGE, waitFor, type Dockerd } from './dockerd.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const TARGET = 'xds:///echo:10001'

/** What a replica does on SIGTERM (test/lib/echo-server.mjs). */
export type OnTerm = 'linger' | 'refuse' | 'abrupt'

export interface RollOptions {
  onTerm: OnTerm
  /** Times every replica is replaced. */
  rounds: number
  /** 3. */
  replicas?: number
  /** Calls per second (200). */
  rate?: number
  /** Label the replicas `shoal.idempotent=true` (false). */
  idempotent?: boolean
  /** host-a's `--drain-on-stop` (true). */
  drainOnStop?: boolean
}

export interface RollResult {
  calls: number
  failed: number
  /** Failed calls per gRPC status name. */
  failures: Record<string, number>
  /** Per replaced replica: ms from its SIGTERM (Docker's kill event) to host-b no longer routing it (draining, or gone). */
  sigtermToOut: number[]
  /** Per new replica: ms from its first passing check (alive on host-a) to the end of the first call it answered. */
  checkToFirstCall: number[]
  /** New replicas that answered no call at all. */
  neverCalled: string[]
  /** Wall time of the roll under load (ms). */
  durationMs: number
  /** The calls that failed, and each replica's start and Docker kill event (epoch ms), for a failure's story. */
  failedCalls: LoadCall[]
  replicas: Array<{ id: string; ran: number; kill?: number }>
}

interface TestLike {
  teardown(fn: () => unknown): void
}

/** Run one rolling restart; everything it starts is stopped at `t`'s teardown. */
export async function rollingRestart(t: TestLike, d: Dockerd, o: RollOptions): Promise<RollResult> {
  const replicas = o.replicas ?? 3
  const events = await dockerEvents(t, d.docker)
  const extraA = ['--docker-network', 'bridge', ...(o.drainOnStop === false ? ['--drain-on-stop', 'false'] : [])]
  const h = await dockerAgents(t, d, { extraA })
  const logA = new StatusLog(h.a)
  const logB = new StatusLog(h.b)
  t.teardown(() => {
    logA.stop()
    logB.stop()
  })

  let n = 0
  const ran: Array<{ full: string; id: string; ran: number }> = []
  const run = async (): Promise<{ name: string; full: string; id: string }> => {
    const name = `echo-${++n}`
    const at = Date.now()
    const full = await d.cli([
      'run',
      '-d',
      '--name',
      name,
      // node and its shared libraries (ldd: /lib/x86_64-linux-gnu, /lib64's loader) and the checkout's modules.
      '-v',
      `${process.execPath}:/usr/bin/node:ro`,
      '-v',
      '/usr/lib:/lib:ro',
      '-v',
      '/usr/lib64:/lib64:ro',
      '-v',
      `${join(ROOT, 'node_modules')}:/app/node_modules:ro`,
      '-v',
      `${join(ROOT, 'test/lib/echo-server.mjs')}:/app/lib/echo-server.mjs:ro`,
      '-e',
      `ECHO_ON_TERM=${o.onTerm}`,
      '-l',
      'ServiceName=echo',
      '-l',
      'ServicePort_50051=10001',
      '-l',
      'ProxyMode=grpc',
      '-l',
      'HealthCheck=Tcp',
      '-l',
      'HealthCheckArgs={{ host }}:50051',
      ...(o.idempotent ? ['-l', 'shoal.idempotent=true'] : []),
      IMAGE,
      '/usr/bin/node',
      '/app/lib/echo-server.mjs',
      '50051',
    ])
    ran.push({ full, id: full.slice(0, 12), ran: at })
    return { name, full, id: full.slice(0, 12) }
  }
  const servedOnB = (id: string) => waitFor(() => logB.serving(id), 60_000, `host-b to serve replica ${id}`)

  const current: Array<{ name: string; full: string; id: string }> = []
  for (let k = 0; k < replicas; k++) current.push(await run())
  for (const r of current) await servedOnB(r.id)

  // The replicas publish no port: the client declares the bridge network (node metadata
  // shoal.network, README "Addresses per client") to be sent their bridge IPs, which this host reaches.
  const client = await startXdsClient(t, 'grpc-js', { nodeId: 'roll', xdsAddress: `127.0.0.1:${h.b.bound.xds}`, network: 'bridge' })
  const seen = new Set<string>()
  const all = await client.until(
    TARGET,
    (w) => {
      if (w) seen.add(w)
      return current.every((r) => seen.has(r.id))
    },
    1,
    60_000,
  )
  if (all === null) throw new Error(`the client never reached every replica (answered: ${[...seen].join(', ') || 'none'})`)

  const started = Date.now()
  await client.startLoad(TARGET, o.rate ?? 200)
  const stopped: Array<{ full: string; id: string }> = []
  const fresh: string[] = []
  let results: LoadCall[]
  try {
    for (let round = 0; round < o.rounds; round++) {
      for (let k = 0; k < replicas; k++) {
        const old = current[k]!
        await d.cli(['stop', old.name])
        stopped.push(old)
        await d.cli(['rm', old.name])
        const next = await run()
        current[k] = next
        fresh.push(next.id)
        await servedOnB(next.id)
        await new Promise((r) => setTimeout(r, 1000))
      }
    }
  } finally {
    results = await client.stopLoad()
  }
  const durationMs = Date.now() - started

  const failures: Record<string, number> = {}
  for (const c of results) if (!c.ok) failures[c.code] = (failures[c.code] ?? 0) + 1
  const sigtermToOut = stopped.flatMap((s) => {
    const kill = events.at(s.full, 'kill')
    const out = kill === undefined ? undefined : logB.first(s.id, (x) => x.status === 'gone' || !takesTraffic(x.status), kill)
    return kill !== undefined && out ? [out.at - kill] : []
  })
  const checkToFirstCall: number[] = []
  const neverCalled: string[] = []
  for (const id of fresh) {
    const alive = logA.first(id, (x) => x.status === 'alive')
    const first = results.filter((c) => c.ok && c.who === id).reduce((m, c) => Math.min(m, c.end), Infinity)
    if (!alive || first === Infinity) neverCalled.push(id)
    else checkToFirstCall.push(first - alive.at)
  }
  return {
    calls: results.length,
    failed: results.filter((c) => !c.ok).length,
    failures,
    sigtermToOut,
    checkToFirstCall,
    neverCalled,
    durationMs,
    failedCalls: results.filter((c) => !c.ok),
    replicas: ran.map((r) => ({ id: r.id, ran: r.ran, kill: events.at(r.full, 'kill') })),
  }
}
