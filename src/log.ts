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
 *   if (held !== undefined) log.warn(`... ${LogLimiter.suffix(held)}`)
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
