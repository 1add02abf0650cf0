/**
 * Rolling restarts under load, with drain-on-stop and without it, in one run (issue 14).
 * Needs root and the apt packages docker.io + busybox-static (the private dockerd of the
 * system tests, test/system/dockerd.ts).
 *
 * Run:   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/docker-roll.ts
 * Env:   BENCH_ROUNDS=5   times each of the 3 replicas is replaced per roll
 *        BENCH_ROLLS=docker,swarm   which rolls to run (the results file is written only when both ran, or BENCH_OUT is set)
 *        BENCH_OUT=bench/RESULTS-roll.md   (empty: write nothing)
 *        BENCH_CASES=abrupt-idempotent   only these cases (a comma list of ON_TERM or ON_TERM-idempotent: linger,
 *                                        refuse, abrupt, abrupt-idempotent); default all
 *
 * Each roll is test/system/roll.ts on a fresh private dockerd: 3 replicas of a gRPC echo
 * server in containers (each call takes 20 ms), two agents (lan), a grpc-js-xds client on
 * host-b calling at 200 calls/s; every replica replaced BENCH_ROUNDS times (docker stop, docker
 * run). The replicas' behaviour on SIGTERM: linger (serve 1 s more, then exit), refuse (stop
 * accepting at once, exit when the calls in flight are done), abrupt (exit at once; with and
 * without shoal.idempotent=true). Each is rolled with host-a's --drain-on-stop true and false.
 *
 * The Swarm rolls (issue 14, acceptance 3) are test/system/roll.ts's swarmRoll on a fresh
 * one-node swarm: 3 tasks on an overlay, published in host mode; the grpc-js-xds client in a
 * container on the overlay, on host-b through docker_gwbridge, at 200 calls/s; SWARM_ROLL_STEPS
 * (`service update --force` stop-first and start-first twice each, `service scale` 1 and 3).
 */
import { execSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { startDockerd } from '../test/system/dockerd.js'
import { rollingRestart, swarmRoll, SWARM_ROLL_STEPS, type OnTerm, type RollResult } from '../test/system/roll.js'
import { benchHarness, machineSection, pct } from './stats.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const ROLLS = new Set((process.env.BENCH_ROLLS ?? 'docker,swarm').split(',').map((x) => x.trim()))
const OUT =
  process.env.BENCH_OUT ?? (ROLLS.has('docker') && ROLLS.has('swarm') ? new URL('./RESULTS-roll.md', import.meta.url).pathname : '')

interface Case {
  onTerm: OnTerm
  idempotent: boolean
  what: string
}
const CASES: Case[] = [
  { onTerm: 'linger', idempotent: false, what: 'serves 1 s after SIGTERM, then exits' },
  { onTerm: 'refuse', idempotent: false, what: 'refuses new connections at SIGTERM, exits when its calls are done' },
  { onTerm: 'abrupt', idempotent: false, what: 'exits at SIGTERM with calls in flight' },
  { onTerm: 'abrupt', idempotent: true, what: 'the same, labelled `shoal.idempotent=true`' },
]

const SWARM_CASES: Case[] = CASES.slice(0, 2)

/** The name BENCH_CASES selects a case by: its on-SIGTERM behaviour, `-idempotent` when labelled so. */
const caseName = (c: Case): string => `${c.onTerm}${c.idempotent ? '-idempotent' : ''}`
const ONLY = process.env.BENCH_CASES ? new Set(process.env.BENCH_CASES.split(',').map((x) => x.trim())) : undefined
if (ONLY) {
  const unknown = [...ONLY].filter((n) => !CASES.some((c) => caseName(c) === n))
  if (unknown.length) throw new Error(`BENCH_CASES: ${unknown.join(', ')} not one of ${CASES.map(caseName).join(', ')}`)
}

/** One roll with its own engine (a one-node swarm for `swarm`), agents and client, all stopped before it returns. */
async function roll(c: Case, drainOnStop: boolean, kind: 'docker' | 'swarm'): Promise<RollResult | string> {
  const harness = benchHarness()
  try {
    const d = await startDockerd(harness, { swarm: kind === 'swarm' })
    if (!d) return harness.skipped ?? 'no dockerd'
    const o = { onTerm: c.onTerm, idempotent: c.idempotent, drainOnStop }
    return kind === 'swarm' ? await swarmRoll(harness, d, o) : await rollingRestart(harness, d, { ...o, rounds: ROUNDS })
  } finally {
    await harness.close()
  }
}

const fmt = (x: number) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : '-')

async function main() {
  const loadBefore = execSync('uptime').toString().trim()
  const rows: Record<'docker' | 'swarm', string[]> = { docker: [], swarm: [] }
  /** Swarm tasks that failed to start during a roll, one line each. */
  const taskNotes: string[] = []
  // The Swarm rolls first: a swarm engine waits for any other on this machine (docker_gwbridge).
  for (const [kind, cases] of [
    ['swarm', SWARM_CASES],
    ['docker', CASES],
  ] as const) {
    if (!ROLLS.has(kind)) continue
    for (const c of cases.filter((x) => !ONLY || ONLY.has(caseName(x)))) {
      for (const drainOnStop of [true, false]) {
        const r = await roll(c, drainOnStop, kind)
        if (typeof r === 'string') {
          console.log(`skipped: ${r}`)
          process.exitCode = 2
          return
        }
        const failures = Object.entries(r.failures)
          .map(([k, v]) => `${v} ${k}`)
          .join(', ')
        const row = `| ${c.onTerm}: ${c.what} | ${drainOnStop ? 'on' : 'off'} | ${r.calls} | **${r.failed}**${failures ? ` (${failures})` : ''} | ${fmt(pct(r.sigtermToOut, 50))} / ${fmt(pct(r.sigtermToOut, 99))} | ${fmt(pct(r.checkToFirstCall, 50))} / ${fmt(pct(r.checkToFirstCall, 99))} |`
        console.log(`${kind} ${row}`)
        const taskErrors = 'taskErrors' in r && Array.isArray(r.taskErrors) ? (r.taskErrors as string[]) : []
        if (taskErrors.length) console.log(`  tasks failed or rejected: ${taskErrors.join('; ')}`)
        for (const e of taskErrors)
          taskNotes.push(
            `- ${c.onTerm}, drain-on-stop ${drainOnStop ? 'on' : 'off'}: a task failed to start: ${e.replace(/^.*?(Error starting)/, '$1')}`,
          )
        rows[kind].push(row)
      }
    }
  }
  const loadAfter = execSync('uptime').toString().trim()
  const dockerVersion = execSync('dockerd --version').toString().trim()
  const table = (rows: string[]) =>
    [
      `| replica on SIGTERM | drain-on-stop | calls | failed | SIGTERM -> out of host-b's routing, p50 / p99 (ms) | first passing check -> first call, p50 / p99 (ms) |`,
      '|---|---|---|---|---|---|',
      ...rows,
    ].join('\n')
  const steps = SWARM_ROLL_STEPS.map((x) => ('update' in x ? `update --force --update-order ${x.update}` : `scale echo=${x.scale}`)).join(
    ', ',
  )
  if (!OUT) return
  writeFileSync(
    OUT,
    [
      '# Rolling restarts under load: measured',
      '',
      '`bench/docker-roll.ts` (run as root: `node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/docker-roll.ts`).',
      `Each roll on a fresh private dockerd (${dockerVersion}): 3 replicas of a gRPC echo server in containers (each call takes`,
      '20 ms), two real agents in one Node process (`--profile lan`; host-a discovers the containers on the `bridge` network with',
      'a Tcp check, host-b `--discovery none`), a grpc-js-xds 1.14 client on host-b calling `xds:///echo:10001` at 200 calls/s;',
      `every replica replaced ${ROUNDS} times, one at a time: \`docker stop\` the old one, \`docker run\` a new one, wait until host-b`,
      'serves it, then 1 s. "Out of host-b\'s routing": host-b\'s catalog shows the instance draining or gone, measured from',
      'Docker\'s `kill` event. "First call": the end of the first call the new replica answered, from its first passing check',
      'on host-a. Drain-on-stop on and off are measured in the same run.',
      '',
      table(rows.docker),
      '',
      '## Swarm',
      '',
      `Each roll on a fresh one-node swarm (the same engine): a service \`echo\` of 3 tasks of the same echo server on an attachable`,
      'overlay, published in host mode without a fixed port (`--publish mode=host,target=50051`), host-a discovering them with',
      '`--docker-network` the overlay and a Tcp check on the host binding, host-b also serving xDS on `docker_gwbridge`',
      '(`--xds-interfaces`). The grpc-js-xds client runs in the network namespace of a container attached to the overlay, reaches',
      `host-b at docker_gwbridge's address, declares the overlay and calls the tasks' overlay IPs at 200 calls/s through: ${steps}`,
      '(each with `--detach=false`, then until host-b routes exactly the running tasks, then 1 s): 12 tasks replaced, 2 scaled',
      'away, 2 added.',
      '',
      table(rows.swarm),
      '',
      ...(taskNotes.length ? [...taskNotes, ''] : []),
      ...machineSection(loadBefore, loadAfter),
      '',
      '## Reading',
      '',
      "- With drain-on-stop the stopping replica leaves host-b's routing a few ms after Docker's kill event (the event, one",
      '  gossip broadcast, no wait for the process); without it, when Docker reports the process dead.',
      '- Failed calls are what the caller saw, after its client retried what its route allows: UNAVAILABLE only for',
      '  `shoal.idempotent=true`, plus gRPC transparent retries of calls that never reached a server application (README,',
      '  Retries). Each call has a 3 s deadline.',
      '- Both agents and the bench share one event loop, and the 2 cores with dockerd, containerd, the replicas and whatever',
      '  else ran (see load): tails are upper bounds.',
      "- Swarm: a task's first passing check is its Tcp check on the host binding, through docker-proxy (the private engine",
      "  runs without iptables). Before the check held its connection (src/health/check-tcp.ts), docker-proxy's accept passed it",
      '  while the echo server was still starting, and "first passing check -> first call" was about 1.1 s (p50 1062 ms, p99',
      '  1210 ms with drain-on-stop, the same roll at load 17). Tasks Swarm failed to start (docker-proxy could not bind the',
      "  host port Docker's allocator picked: another process on this machine held it) are listed under the roll; they are",
      '  never served, and the roll goes on (`--update-failure-action continue`).',
      '',
    ].join('\n'),
  )
  console.log(`wrote ${OUT}`)
}

main().then(
  // Everything was stopped; a handle a library leaves behind must not keep the bench alive.
  () => process.exit(),
  (e) => {
    console.error(e)
    process.exit(1)
  },
)
