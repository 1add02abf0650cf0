import { cpus } from 'node:os'

/** Nearest-rank percentile (p in 0..100) of a sample; NaN when empty. */
export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN
}

/**
 * The two hooks the test/system harnesses (startDockerd, dockerAgents, ...) take from a tap
 * test, for a bench: `teardown` collects what `close()` stops (last first); `skipped` holds
 * the reason a harness gave for not running.
 */
export function benchHarness() {
  const teardowns: Array<() => unknown> = []
  const h = {
    skipped: undefined as string | undefined,
    skip: (why: string) => {
      h.skipped = why
    },
    teardown: (f: () => unknown) => {
      teardowns.push(f)
    },
    close: async () => {
      for (const f of teardowns.splice(0).reverse()) await f()
    },
  }
  return h
}

/** The "Machine" section of a RESULTS file: date, CPU, Node, the load averages (`uptime`) before and after the run. */
export function machineSection(loadBefore: string, loadAfter: string): string[] {
  return [
    '## Machine',
    '',
    `- date: ${new Date().toISOString()}`,
    `- CPU: ${cpus()[0]?.model ?? 'unknown'}, nproc ${cpus().length}; Node ${process.version}`,
    `- load before: \`${loadBefore}\``,
    `- load after: \`${loadAfter}\``,
  ]
}
