// Loaded into every Node process of a test run by `SHOAL_CPU_REPORT=FILE npm test`
// (scripts/test.mjs adds it to NODE_OPTIONS): at exit, appends one JSON line to FILE with the
// process' argv and its CPU seconds, its own and its reaped children's (/proc/self/stat
// utime+stime and cutime+cstime, proc(5)), so a test file's line holds the agents, dockerd and
// clients it started and waited for. Processes that clear NODE_OPTIONS are counted in their
// parent's children; containers' processes (children of containerd) are not counted.
import { appendFileSync, readFileSync } from 'node:fs'

const out = process.env.SHOAL_CPU_REPORT
/** Clock ticks per second (sysconf(_SC_CLK_TCK)): 100 on Linux. */
const TICK = 100

/**
 * CPU seconds of this process from /proc/self/stat (proc(5)): `own` (utime+stime) and
 * `children` (cutime+cstime: its reaped children, theirs included).
 */
export function cpuSeconds() {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  // Fields after "(comm) ": state is field 3, so utime (14) is at 11, stime 12, cutime 13, cstime 14.
  const f = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number)
  return { own: (f[11] + f[12]) / TICK, children: (f[13] + f[14]) / TICK }
}

if (out) {
  process.on('exit', () => {
    try {
      appendFileSync(out, JSON.stringify({ argv: process.argv.slice(1), ...cpuSeconds() }) + '\n')
    } catch {
      // A measurement aid: never change how a process exits.
    }
  })
}
