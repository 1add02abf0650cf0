/**
 * What a check run finds besides pass or fail: an HTTP status, the start of its output, and
 * an error said the way an operator reads it (`connection refused`, not `connect
 * ECONNREFUSED 10.0.0.5:5432`: the target is named beside it already).
 */
import { maskUnsafe } from '../text.js'
import { CHECK_OUTPUT_BYTES } from './types.js'

/** What one run found. */
export interface Finding {
  httpStatus?: number
  /** At most CHECK_OUTPUT_BYTES of UTF-8 (see `excerpt`). */
  output?: string
}

/** A run that reached its target and did not pass; `message` says why (`HTTP 503`, `exit code 1`). */
export class CheckFailed extends Error {
  constructor(
    message: string,
    readonly finding: Finding = {},
  ) {
    super(message)
    this.name = 'CheckFailed'
  }
}

/** Collects the first CHECK_OUTPUT_BYTES of a stream's bytes and counts the rest. */
export class OutputHead {
  private readonly chunks: Buffer[] = []
  private kept = 0
  total = 0

  add(chunk: Buffer): void {
    this.total += chunk.length
    if (this.kept >= CHECK_OUTPUT_BYTES) return
    const part = chunk.subarray(0, CHECK_OUTPUT_BYTES - this.kept)
    this.chunks.push(part)
    this.kept += part.length
  }

  /** The kept bytes as text (see `excerpt`); undefined when nothing came. */
  text(): string | undefined {
    return this.total === 0 ? undefined : excerpt(Buffer.concat(this.chunks), this.total)
  }
}

/**
 * `head` (the first bytes of an output of `total` bytes) as readable text: UTF-8 without a
 * character cut in half, control and bidi characters other than tab and newline shown as `?`
 * (maskUnsafe: a terminal, log viewer or the UI would act on them), trailing
 * space trimmed, and `… (N bytes)` when the output was longer.
 */
export function excerpt(head: Buffer, total: number): string {
  let end = Math.min(head.length, CHECK_OUTPUT_BYTES)
  if (total > end) {
    // Back off the continuation bytes of a character the cut would split.
    let lead = end - 1
    while (lead > 0 && lead > end - 4 && (head[lead]! & 0xc0) === 0x80) lead--
    const b = head[lead] ?? 0
    const size = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1
    if (lead + size > end) end = lead
  }
  const text = maskUnsafe(head.subarray(0, end).toString('utf8')).trimEnd()
  return total > end ? `${text}… (${total} bytes)` : text
}

/** Node's socket error codes, as an operator says them. */
const PHRASES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connect timed out',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EADDRNOTAVAIL: 'address not available',
  EPIPE: 'connection closed',
  ENOENT: 'command not found',
  EACCES: 'permission denied',
}

/** A check error's text: a known socket error code as a phrase, else the error's own message. */
export function describeError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code !== undefined && PHRASES[code]) return PHRASES[code]
  return err instanceof Error ? err.message : String(err)
}
