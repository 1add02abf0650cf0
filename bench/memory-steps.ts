// Where an idle agent's memory goes (README "Memory"): RSS after a full GC at each step of one
// agent's start from a build (`dist/`): bare Node, the agent's modules imported, the xDS types
// loaded, started (`--discovery none --dns off`, `lan`, no `--tls-dir`) and 5 s idle, with the
// peak (VmHWM). Each build runs in a plain `node --expose-gc` of its own (no TypeScript loader:
// it alone costs hundreds of MiB). Give a second build's dist/ to measure it in the same run
// (e.g. main's: `git worktree add /tmp/main main && (cd /tmp/main && npm run build)`).
//   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/memory-steps.ts [OTHER_DIST]
import { spawnSync } from 'node:child_process'
import { cpus, loadavg } from 'node:os'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** One build's steps, as an ES module run with `-e`; argv[1] is the dist/ folder. */
const CHILD = `
import { readFileSync } from 'node:fs'
const dist = process.argv[1]
const mib = (b) => (b / 1048576).toFixed(1) + ' MiB'
const step = (what) => {
  gc()
  gc()
  const m = process.memoryUsage()
  const hwm = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024
  console.log('| ' + [what, mib(m.rss), mib(m.heapUsed), mib(hwm)].join(' | ') + ' |')
}
step('bare Node')
const { Agent } = await import(dist + '/agent/agent.js')
const { parseAgentConfig } = await import(dist + '/agent/config.js')
const { silentLogger } = await import(dist + '/log.js')
step("the agent's modules imported")
;(await import(dist + '/xds/protos.js')).loadXdsProtos()
step('the xDS types loaded')
const flags = ['--node', 'mem', '--cluster', 'mem', '--profile', 'lan', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0']
const a = new Agent(parseAgentConfig([...flags, '--dns', 'off', '--discovery', 'none'], {}), { logger: silentLogger() })
await a.start()
await new Promise((r) => setTimeout(r, 5000))
step('started, 5 s idle')
await a.stop({ leave: false })
`

const dists = [fileURLToPath(new URL('../dist', import.meta.url)), ...process.argv.slice(2).map((d) => resolve(d))]
console.log(
  `${new Date().toISOString()}, ${cpus()[0]?.model} (nproc ${cpus().length}), Node ${process.version}, load ${loadavg()[0]!.toFixed(1)}`,
)
for (const dist of dists) {
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD, dist], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${dist}: ${r.stderr}`)
  console.log(`\n${dist}\n| step | RSS | heap used | peak (VmHWM) |\n|---|---|---|---|\n${r.stdout.trim()}`)
}
