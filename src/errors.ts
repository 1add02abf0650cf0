/**
 * One error class for Shoal, with a stable `code` string. Callers branch on `code`,
 * never on the message. Messages name the offending input (file and line, label and
 * container, packet source, flag).
 *
 * @example
 *   throw new ShoalError('SHOAL_ERR_CONFIG', `--bind: "${v}" is not HOST:PORT`)
 */
export class ShoalError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ShoalError'
    this.code = code
  }
}

export function isShoalError(err: unknown, code?: string): err is ShoalError {
  return err instanceof ShoalError && (code === undefined || err.code === code)
}
