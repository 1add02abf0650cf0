import { cpus } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

/** The value after `name` (e.g. `--records`) on this process's command line; undefined when absent. */
export function option(name: string): string | undefined {
  const args = process.argv.slice(2)
  const k = args.indexOf(name)
  return k >= 0 ? args[k + 1] : undefined
}

/**
 * The simulator's and the registry's modules from the source tree at `srcRoot` (this checkout,
 * or another one's, to compare two builds in one run with the same bench code). Loaded by path
 * through the TypeScript loader the bench runs under; untyped, as another checkout's may differ.
 */
export async function registryModules(srcRoot: string): Promise<Record<string, any>> {
  const mod = (p: string): Promise<Record<string, any>> => import(pathToFileURL(join(srcRoot, 'src', p)).href)
  const [clock, gossip, sim, log, bridge, catalog, hlc, wire] = await Promise.all(
    [
      'clock.ts',
      'gossip/gossip.ts',
      'gossip/transport-sim.ts',
      'log.ts',
      'registry/bridge.ts',
      'registry/catalog.ts',
      'registry/hlc.ts',
      'registry/wire.ts',
    ].map(mod),
  )
  return { ...clock, ...gossip, ...sim, ...log, ...bridge, ...catalog, ...hlc, ...wire }
}

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
