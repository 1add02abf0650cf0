/**
 * A logger whose JSON lines a test can read: what an operator would see in the agent's log.
 *
 * @example
 *   const { logger, lines } = capturedLogger('warn')
 *   lines.filter((l) => l.level === 40)
 */
import { Writable } from 'node:stream'
import { createLogger, type Logger } from '../../src/log.js'

export interface LogLine {
  level: number
  msg: string
  [field: string]: unknown
}

export function capturedLogger(level = 'info'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as LogLine)
      cb()
    },
  })
  return { logger: createLogger({ level, format: 'json', destination: sink }), lines }
}
