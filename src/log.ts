import { pino, type DestinationStream, type Logger } from 'pino'

export type { Logger }

/** The agent's one logger; components take `logger.child({ component })`. */
export function createLogger(level = 'info', destination?: NodeJS.WritableStream): Logger {
  return destination ? pino({ level }, destination as DestinationStream) : pino({ level })
}

/** A logger that drops everything: for tests and benches that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
