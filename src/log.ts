import { createRequire } from 'node:module'
import { pino, type DestinationStream, type Logger } from 'pino'

export type { Logger }

const require = createRequire(import.meta.url)

export interface LoggerOptions {
  /** pino level: trace, debug, info, warn, error, fatal, silent. Default info. */
  level?: string
  /** `json`: one JSON object per line (for machines); `pretty`: human-readable lines (pino-pretty). Default json. */
  format?: 'json' | 'pretty'
  /** Where lines go; default stdout. */
  destination?: NodeJS.WritableStream
}

/**
 * The agent's one logger; components take `logger.child({ component })`. Pretty output is
 * formatted in-process (pino-pretty as a stream, loaded only when asked for), so no worker
 * thread is started.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info'
  if (opts.format === 'pretty') {
    const pretty = require('pino-pretty') as (o: object) => DestinationStream
    const out = opts.destination ?? process.stdout
    const colorize = (out as NodeJS.WriteStream).isTTY === true
    return pino(
      { level },
      pretty({ destination: out, colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true, sync: true }),
    )
  }
  return opts.destination ? pino({ level }, opts.destination as DestinationStream) : pino({ level })
}

/**
 * A warning or error an operator acts on, in three parts (issue 16: "what went wrong, which
 * input, what to do"). Every warn and error line of the agent goes through `logProblem`;
 * test/log-problems.test.ts fails on any other `.warn(` or `.error(` call in src/ and on a
 * problem with an empty part.
 */
export interface Problem {
  /** What went wrong, best naming the input in place: `Docker engine at unix:///run/docker.sock lost (ECONNRESET)`. */
  what: string
  /** Which input: what the operator looks up or edits (a file and entry, flag, container, peer address, instance id). Logged as the `input` field. */
  input: string
  /** What to do about it, or what Shoal does meanwhile and when to act: `reconnecting; its services are kept for 30 s`. */
  fix: string
}

/** The `fix` of a problem that is a fault in Shoal itself (a listener that threw), not in what it was given. */
export const INTERNAL_FAULT = 'a fault in Shoal, not in its input: report it with this line; the agent carries on'

/** The line of a problem: `WHAT; FIX`, with ` (INPUT)` after WHAT when WHAT does not name it. */
export function problemMessage(p: Problem): string {
  const what = p.what.includes(p.input) ? p.what : `${p.what} (${p.input})`
  return `${what}; ${p.fix}`
}

/**
 * Logs a problem at `warn` or `error`: the fields, `input`, and `problemMessage(p)` as the message.
 *
 * @example
 *   logProblem(log, 'warn', { what: `cannot watch the key file (${err.message})`, input: file, fix: 'SIGHUP still reloads it' }, { err })
 */
export function logProblem(log: Logger, level: 'warn' | 'error', p: Problem, fields: Record<string, unknown> = {}): void {
  log[level]({ ...fields, input: p.input }, problemMessage(p))
}

/** A logger that drops everything: for tests and benches that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

/**
 * Rate limit for warnings about traffic anyone can send (rejected packets, forged notices,
 * abusive streams): at most one line per key every `windowMs` (default 60 s), and the next
 * line says how many were held back. At most `maxKeys` keys (default 1024) are remembered,
 * least recently logged forgotten first, so a flood of forged senders cannot grow it.
 *
 * @example
 *   const limit = new LogLimiter({}, { clock })
 *   const held = limit.admit(`${host}|oversize`)
 *   if (held !== undefined) logProblem(log, 'warn', { what, input: host, fix: `... ${LogLimiter.suffix(held)}` })
 */
export class LogLimiter {
  private readonly seen = new Map<string, { at: number; suppressed: number }>()
  private readonly windowMs: number
  private readonly maxKeys: number

  constructor(
    opts: { windowMs?: number; maxKeys?: number },
    private readonly components: { clock: { now(): number } },
  ) {
    this.windowMs = opts.windowMs ?? 60_000
    this.maxKeys = opts.maxKeys ?? 1024
  }

  /** Undefined when `key` was logged less than windowMs ago (counted); else the number held back since its last line. */
  admit(key: string): number | undefined {
    const now = this.components.clock.now()
    const entry = this.seen.get(key)
    if (entry && now - entry.at < this.windowMs) {
      entry.suppressed++
      return undefined
    }
    this.seen.delete(key)
    this.seen.set(key, { at: now, suppressed: 0 })
    if (this.seen.size > this.maxKeys) this.seen.delete(this.seen.keys().next().value!)
    return entry?.suppressed ?? 0
  }

  /** Keys remembered now (at most maxKeys). */
  get size(): number {
    return this.seen.size
  }

  /** The tail of a line: ` (N more from there since the last line)`, or '' for none. */
  static suffix(suppressed: number): string {
    return suppressed > 0 ? ` (${suppressed} more from there since the last line)` : ''
  }
}
