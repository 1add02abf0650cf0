/**
 * Where an idle agent's memory goes (README "Memory"): RSS after a full GC at each step of one
 * process, for this build and, in the same run, another (BENCH_REF_CLI, e.g. main's built from
 * `git archive`), the two alternating, BENCH_RUNS processes each; medians. Steps, cumulative:
 * bare Node; the agent's modules imported (agent.js, config.js, log.js; after the V8 flags
 * `shoal agent` sets by default, HEAP_V8_FLAGS.lean, when the build has them); an agent started
 * (`--discovery none --dns off`, no `--tls-dir`, `lan`, loopback ports) and idle BENCH_IDLE_S
 * seconds, with its peak (VmHWM); then grpc-js and the xDS types loaded, which an agent does
 * with its first xDS client (an older build holds them from the start). Needs no root.
 *
 * Run:   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/agent-memory.ts
 * Env:   BENCH_CLI=dist/cli.js   BENCH_REF_CLI=<main>/dist/cli.js   BENCH_RUNS=5   BENCH_IDLE_S=5
 *        BENCH_NODE_FLAGS: node flags for every child, e.g. --optimize-for-size (which NODE_OPTIONS refuses)
 */
import { execFileSync, execSync } from 'node:child_process'
import { cpus } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pct } from './stats.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const CLI = process.env.BENCH_CLI ?? join(ROOT, 'dist', 'cli.js')
const REF_CLI = process.env.BENCH_REF_CLI
const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 5)
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)

/** The child: prints one JSON line of MiB figures per step. DIST and IDLE_S come from its environment. */
const CHILD = `
const { readFileSync } = await import('node:fs')
const { join } = await import('node:path')
const D = process.env.DIST
const mib = (b) => Math.round((b / 1048576) * 10) / 10
const step = () => { globalThis.gc(); globalThis.gc(); const m = process.memoryUsage(); return { rss: mib(m.rss), heap: mib(m.heapUsed) } }
const out = { bare: step() }
// The V8 flags \`shoal agent\` sets for itself before its modules load (a build that has them).
const { parseAgentConfig, HEAP_V8_FLAGS } = await import(join(D, 'agent', 'config.js'))
if (HEAP_V8_FLAGS) (await import('node:v8')).setFlagsFromString(HEAP_V8_FLAGS.lean)
const { Agent } = await import(join(D, 'agent', 'agent.js'))
const { silentLogger } = await import(join(D, 'log.js'))
out.modules = step()
const flags = ['--node', 'mem', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', 'off', '--discovery', 'none', '--profile', 'lan']
const agent = new Agent(parseAgentConfig(flags, {}), { logger: silentLogger() })
await agent.start()
await new Promise((r) => setTimeout(r, Number(process.env.IDLE_S) * 1000))
out.started = step()
out.started.peak = mib(Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024)
// What the first xDS client adds (a build that loads them lazily; an older one has them already).
const { loadXdsProtos } = await import(join(D, 'xds', 'protos.js'))
loadXdsProtos()
const { createRequire } = await import('node:module')
createRequire(join(D, 'cli.js'))('@grpc/grpc-js')
out.xdsTypes = step()
await agent.stop({ leave: false })
process.stdout.write(JSON.stringify(out) + '\\n')
process.exit(0)
`

interface Steps {
  bare: { rss: number }
  modules: { rss: number }
  xdsTypes: { rss: number; heap: number }
  started: { rss: number; peak: number }
}

function measure(cli: string): Steps {
  const out = execFileSync(process.execPath, [...NODE_FLAGS, '--expose-gc', '--input-type=module', '-e', CHILD], {
    env: { ...process.env, DIST: dirname(cli), IDLE_S: String(IDLE_S), NODE_OPTIONS: '' },
    encoding: 'utf8',
  })
  return JSON.parse(out.trim().split('\n').pop()!) as Steps
}

const builds: Array<[string, string]> = [['this build', CLI], ...(REF_CLI ? ([['ref', REF_CLI]] as Array<[string, string]>) : [])]
const samples = new Map<string, Steps[]>(builds.map(([n]) => [n, []]))
const loadBefore = execSync('uptime').toString().trim()
for (let i = 0; i < RUNS; i++) for (const [name, cli] of i % 2 ? [...builds].reverse() : builds) samples.get(name)!.push(measure(cli))
const loadAfter = execSync('uptime').toString().trim()

const med = (xs: number[]) => pct(xs, 50)
const col = (name: string, f: (s: Steps) => number) => `${med(samples.get(name)!.map(f))} MiB`
const rows: Array<[string, (s: Steps) => number]> = [
  ['bare Node', (s) => s.bare.rss],
  ["the agent's modules imported", (s) => s.modules.rss],
  [`started, ${IDLE_S} s idle`, (s) => s.started.rss],
  ['  peak (VmHWM)', (s) => s.started.peak],
  ['then grpc-js and the xDS types loaded (what the first xDS client adds)', (s) => s.xdsTypes.rss],
  ['  (heap used)', (s) => s.xdsTypes.heap],
]
const lines = [
  `| step (RSS after a full GC, median of ${RUNS}) | ${builds.map(([n, c]) => `${n} (${c})`).join(' | ')} |`,
  `|---|${builds.map(() => '---|').join('')}`,
  ...rows.map(([label, f]) => `| ${label} | ${builds.map(([n]) => col(n, f)).join(' | ')} |`),
  '',
  `Machine: ${cpus()[0]?.model ?? 'unknown'} (nproc ${cpus().length}), Node ${process.version}${NODE_FLAGS.length ? ` (${NODE_FLAGS.join(' ')})` : ''}. Date: ${new Date().toISOString()}.`,
  `Load before: \`${loadBefore}\`; after: \`${loadAfter}\`.`,
]
console.log(lines.join('\n'))
