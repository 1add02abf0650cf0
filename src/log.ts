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
