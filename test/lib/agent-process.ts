/**
 * `shoal agent` as its own process on loopback, from a built tree (dist/cli.js): started,
 * its addresses read from its "shoal agent started" log line, stopped or killed at the test's
 * teardown even when the test failed.
 *
 * @example
 *   const a = await cliAgent(t, ['--node', 'a', '--discovery', 'static', '--static', file])
 *   await fetch(`${a.http}/api/services.json`)
 *   await a.stop('SIGTERM')
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { handOutPort } from './listen.js'
import type { Test } from 'tap'
import { startTime } from '../../scripts/clean-labs.mjs'
import { CLI, ensureBuilt } from './cli.js'
import { LabManifest } from './labs.js'

export interface LoopbackAgentOptions {
  /** Serve DNS on a free loopback port; default off. */
  dns?: boolean
  /** Default `local`. */
  profile?: 'local' | 'lan' | 'wan'
}

function loopbackFlags(o: LoopbackAgentOptions): string[] {
  return [
    ...['--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0'],
    ...['--profile', o.profile ?? 'local', '--dns', o.dns === true ? '127.0.0.1:0' : 'off'],
  ]
}

/**
 * An agent on loopback with free ports, the local profile and no DNS: the flags most tests
 * start from (add `--node`, `--discovery`, ... after them).
 */
export const LOOPBACK_AGENT_FLAGS: readonly string[] = loopbackFlags({})

/**
 * The flags of an agent named `node` on loopback: free ports for gossip, HTTP and xDS, DNS off
 * or on a free port, the local profile unless told otherwise. Add `--discovery`, `--cluster`, ...
 *
 * @example
 *   parseAgentConfig([...loopbackAgentFlags('a', { dns: true }), '--discovery', 'none'], {})
 */
export function loopbackAgentFlags(node: string, opts: LoopbackAgentOptions = {}): string[] {
  return ['--node', node, ...loopbackFlags(opts)]
}

export interface CliAgent {
  readonly proc: ChildProcess
  readonly pid: number
  /** host:port of its gossip socket. */
  readonly gossip: string
  /** http://host:port of its HTTP endpoint. */
  readonly http: string
  /** host:port of its xDS server. */
  readonly xds: string
  /** Every JSON log line so far. */
  readonly lines: Array<Record<string, unknown>>
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  readonly exited: Promise<number | string>
  /** Sends `signal` (default SIGTERM) and waits for the exit; SIGKILL after `ms`. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number | string>
}

export interface CliAgentOptions {
  /** The built CLI to run; default this tree's dist/cli.js (built first when older than src/). */
  cli?: string
  /** Longest wait for the "shoal agent started" line. Default 30 s. */
  startMs?: number
  env?: NodeJS.ProcessEnv
  /** node flags before the CLI, e.g. --optimize-for-size (which NODE_OPTIONS refuses). */
  nodeFlags?: string[]
}

/**
 * Starts `node <cli> agent <args> --log-level info` and resolves once it logged that it
 * started (rejects with its output when it exits first). Loopback defaults for `--bind`, `--dns`,
 * `--http` and `--xds` (port 0) unless `args` names them.
 */
export async function cliAgent(t: Pick<Test, 'teardown'>, args: string[], opts: CliAgentOptions = {}): Promise<CliAgent> {
  if (opts.cli === undefined) {
    const why = ensureBuilt()
    if (why) throw new Error(`no built CLI: ${why}`)
  }
  const defaults: string[] = []
  for (const [flag, v] of [
    ['--bind', '127.0.0.1:0'],
    ['--http', '127.0.0.1:0'],
    ['--xds', '127.0.0.1:0'],
    ['--dns', '127.0.0.1:0'],
  ] as const)
    if (!args.includes(flag)) defaults.push(flag, v)
  const proc = spawn(process.execPath, [...(opts.nodeFlags ?? []), opts.cli ?? CLI, 'agent', ...defaults, ...args, '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '', ...opts.env },
  })
  const lines: Array<Record<string, unknown>> = []
  let output = ''
  const exited = new Promise<number | string>((res) => proc.once('exit', (code, sig) => res(code ?? sig ?? -1)))
  // Written down like a lab, so that the agent goes when this test process dies however it dies
  // (a suite killed with SIGTERM skips teardowns; the reaper of test/lib/labs.ts does not).
  const lab = LabManifest.write(`shoal agent pid ${proc.pid}`, [{ killPid: proc.pid!, start: startTime(proc.pid!) }], [])
  void exited.then(() => lab.undo())
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL')
      await exited
    }
  })
  let buf = ''
  const started = new Promise<Record<string, unknown>>((res, rej) => {
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString()
      output = (output + d.toString()).slice(-4000)
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        try {
          const o = JSON.parse(l) as Record<string, unknown>
          lines.push(o)
          if (o.msg === 'shoal agent started') res(o)
        } catch {
          // not JSON: kept in `output` for the error message
        }
      }
    })
    proc.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)))
    void exited.then((code) => rej(new Error(`shoal agent exited (${code}) before it started:\n${output}`)))
    const timer = setTimeout(
      () => rej(new Error(`shoal agent did not start within ${opts.startMs ?? 30_000} ms:\n${output}`)),
      opts.startMs ?? 30_000,
    )
    timer.unref()
  })
  const line = await started
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', ms = 10_000): Promise<number | string> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
    const timer = setTimeout(() => proc.kill('SIGKILL'), ms)
    timer.unref()
    const code = await exited
    clearTimeout(timer)
    return code
  }
  return {
    proc,
    pid: proc.pid!,
    gossip: String(line.gossip),
    http: String(line.ui).replace(/\/$/, ''),
    xds: String(line.xds),
    lines,
    exited,
    stop,
  }
}

/** A port free on 127.0.0.1 for both TCP and UDP right now (gossip binds one number for both): listen.ts handOutPort. */
export function freeLoopbackPort(): Promise<number> {
  return handOutPort({ udp: true })
}
