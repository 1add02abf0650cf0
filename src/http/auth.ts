/**
 * Who may call the mutating routes (drain, undrain): the bearer of the API token when one
 * is configured, else only callers on this machine's loopback.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'

/** The outcome of an authorisation check: allowed, or the HTTP status and error to answer. */
export type AuthResult = { ok: true } | { ok: false; status: 400 | 401 | 403; code: string; message: string }

/** 127.0.0.0/8, ::1, and IPv4-mapped 127.x (`::ffff:127.0.0.1`). */
export function isLoopbackAddress(addr: string | undefined): boolean {
  if (!addr) return false
  let a = addr.trim().toLowerCase()
  if (a.startsWith('::ffff:')) a = a.slice(7)
  if (isIP(a) === 4) return a.split('.')[0] === '127'
  if (isIP(a) === 6) return expandsToLoopback6(a)
  return false
}

function expandsToLoopback6(a: string): boolean {
  // Expand "::" so that only 0:0:0:0:0:0:0:1 counts, however it is written.
  const [head, tail] = a.includes('::') ? (a.split('::') as [string, string]) : [a, undefined]
  const h = head ? head.split(':') : []
  const t = tail !== undefined && tail !== '' ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  if (groups.length !== 8) return false
  return groups.every((g, i) => (i < 7 ? parseInt(g || '0', 16) === 0 : parseInt(g, 16) === 1))
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** Compares in constant time (hashing first makes the lengths equal). */
export function tokenMatches(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected))
}

/**
 * A browser page from another origin can send a simple POST to a loopback port; refusing
 * requests whose Origin is not this agent's own host closes that hole.
 */
function crossOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin
  if (origin === undefined) return false
  try {
    return new URL(origin).host !== (req.headers.host ?? '')
  } catch {
    return true
  }
}

/**
 * @example
 *   const r = authorizeMutation(req, { apiToken, clientAddress: req.socket.remoteAddress })
 *   if (!r.ok) return sendError(res, r.status, r.code, r.message)
 */
export function authorizeMutation(req: IncomingMessage, opts: { apiToken?: string; clientAddress: string | undefined }): AuthResult {
  // Node keeps the first of repeated Authorization headers and drops the rest; which one a
  // proxy or client meant is unknowable, so two are refused rather than one silently chosen.
  const given = req.headersDistinct.authorization ?? []
  if (given.length > 1)
    return {
      ok: false,
      status: 400,
      code: 'SHOAL_ERR_BAD_REQUEST',
      message: `${given.length} Authorization headers; send exactly one "Authorization: Bearer TOKEN"`,
    }
  if (opts.apiToken !== undefined && opts.apiToken !== '') {
    const h = req.headers.authorization ?? ''
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h)
    if (!m)
      return {
        ok: false,
        status: 401,
        code: 'SHOAL_ERR_UNAUTHORIZED',
        message: 'missing "Authorization: Bearer TOKEN" header (the agent runs with --api-token)',
      }
    if (!tokenMatches(m[1]!, opts.apiToken))
      return { ok: false, status: 401, code: 'SHOAL_ERR_UNAUTHORIZED', message: 'the bearer token does not match --api-token' }
    return { ok: true }
  }
  if (!isLoopbackAddress(opts.clientAddress)) {
    return {
      ok: false,
      status: 403,
      code: 'SHOAL_ERR_FORBIDDEN',
      message: `caller ${opts.clientAddress ?? '(unknown)'} is not on loopback; without --api-token only local callers may drain or undrain`,
    }
  }
  if (crossOrigin(req)) {
    return { ok: false, status: 403, code: 'SHOAL_ERR_FORBIDDEN', message: `cross-origin request from ${req.headers.origin} refused` }
  }
  return { ok: true }
}
