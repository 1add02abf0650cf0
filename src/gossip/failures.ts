/**
 * Why a join through a seed failed, in the terms of JoinFailureReason: read from the error a
 * push-pull with the seed rejected with (a refusal frame, an answer this node cannot open,
 * a transport error with its errno, or an error message from the seed).
 */
import { ShoalError } from '../errors.js'
import { JoinFailureReason, RejectReason } from './types.js'
import { WireError } from './wire.js'

/** What a refusal of each reason means, said of the seed. */
export const REFUSAL_TEXT: Record<RejectReason, string> = {
  label: 'its cluster label differs from ours',
  key: 'no key of its ring opens our messages',
  plain: 'it requires encryption and our messages are plain',
  encrypted: 'it has no keys and our messages are encrypted',
  version: 'it speaks another wire version',
  malformed: 'it could not decode our message',
}

const ERRNO_REASON: Record<string, JoinFailureReason> = {
  ECONNREFUSED: JoinFailureReason.refused,
  ENOTFOUND: JoinFailureReason.unresolvable,
  EAI_AGAIN: JoinFailureReason.unresolvable,
  EAI_FAIL: JoinFailureReason.unresolvable,
  EAI_NONAME: JoinFailureReason.unresolvable,
  ETIMEDOUT: JoinFailureReason.timeout,
  ECLOSED: JoinFailureReason.closed,
}

/**
 * True for a stream request that failed because the peer's host refused the connection
 * (ECONNREFUSED: a TCP reset, nothing listens on that port), the evidence a probe reports
 * (docs/gossip.md, "Refusal evidence"). A timeout, an unreachable network or a refusal frame
 * from a running peer is not.
 */
export function isConnectionRefused(err: unknown): boolean {
  return (
    err instanceof ShoalError &&
    err.code === 'SHOAL_ERR_STREAM' &&
    (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED'
  )
}

/** The reason of a failed push-pull with a seed. */
export function joinFailureReason(err: unknown): JoinFailureReason {
  if (err instanceof WireError) return err.reason
  if (!(err instanceof ShoalError)) return JoinFailureReason.error
  switch (err.code) {
    case 'SHOAL_ERR_STREAM': {
      const code = (err.cause as NodeJS.ErrnoException | undefined)?.code
      return (code !== undefined ? ERRNO_REASON[code] : undefined) ?? JoinFailureReason.unreachable
    }
    case 'SHOAL_ERR_BUSY':
      return JoinFailureReason.busy
    case 'SHOAL_ERR_AUTH':
      return RejectReason.key
    case 'SHOAL_ERR_LABEL':
      return RejectReason.label
    case 'SHOAL_ERR_VERSION':
      return RejectReason.version
    case 'SHOAL_ERR_DECODE':
      return RejectReason.malformed
    default:
      return JoinFailureReason.error
  }
}

/** A transport failure whose cause carries the errno (see Transport.request): a socket error, or a code such as ETIMEDOUT. */
export function streamError(message: string, cause?: Error | string): ShoalError {
  if (cause === undefined) return new ShoalError('SHOAL_ERR_STREAM', message)
  const c = typeof cause === 'string' ? Object.assign(new Error(message), { code: cause }) : cause
  return new ShoalError('SHOAL_ERR_STREAM', message, { cause: c })
}
