/**
 * External authorization asked for by a service (README, External authorization): which
 * authorization service Envoy must call before letting a request or connection through to
 * it, and how. A record carries the request as labels, so it crosses gossip like any other
 * label and every source (Docker labels, the static file's `authz` field) spells it one way.
 * The labels are read here, once, by every consumer: the sources refuse a bad spelling, and
 * the xDS server fails closed on one that arrives from a peer.
 */
import { parseDuration } from '../flags.js'
import { normaliseName } from './names.js'

/** The labels of an authorization request. */
export const AuthzLabel = {
  /** `NAME` or `NAME:SERVICEPORT`: the gRPC `envoy.service.auth.v3.Authorization` service to call. */
  service: 'shoal.authz',
  /** `true` or `false` (default): let traffic through when the authorization service cannot be reached or is not in the registry. */
  failureModeAllow: 'shoal.authz.failure_mode_allow',
  /** A duration (`250ms`, `1s`; default 200ms, Envoy's): how long one Check may take. */
  timeout: 'shoal.authz.timeout',
} as const

/** Envoy's default timeout of an ext_authz gRPC call (ext_authz filter docs: "Default is 200ms"). */
export const AUTHZ_DEFAULT_TIMEOUT_MS = 200
/** The longest Check timeout accepted: every protected request waits up to this long. */
export const AUTHZ_MAX_TIMEOUT_MS = 60_000

/** A valid authorization request. */
export interface AuthzSpec {
  /** The authorization service's name, normalised like every service name. */
  service: string
  /** Its ServicePort when the label names one; else the service must have exactly one. */
  servicePort?: number
  failureModeAllow: boolean
  /** Timeout of one Check call, ms (1 to AUTHZ_MAX_TIMEOUT_MS). */
  timeoutMs: number
}

/** What a record's labels ask for: nothing, a valid request, or a request that cannot be read. */
export type AuthzRequest =
  | { kind: 'none' }
  | { kind: 'spec'; spec: AuthzSpec }
  /** `target`: the `shoal.authz` value as written ('' when absent). */
  | { kind: 'invalid'; label: string; problem: string; target: string }

const NONE: AuthzRequest = { kind: 'none' }

/**
 * Reads the authorization labels of a record or spec. Any `shoal.authz*` label means the
 * service asks for authorization, so options without `shoal.authz` are a problem too (the
 * caller fails closed rather than leave the service open). Problems name the label, the
 * value and what to write instead.
 *
 * @example
 *   authzOf({ 'shoal.authz': 'authz:10100', 'shoal.authz.timeout': '250ms' })
 *   // { kind: 'spec', spec: { service: 'authz', servicePort: 10100, failureModeAllow: false, timeoutMs: 250 } }
 *   authzOf({ 'shoal.authz.timeout': '1s' })
 *   // { kind: 'invalid', label: 'shoal.authz', problem: '... is missing ...' }
 */
export function authzOf(labels: Readonly<Record<string, string>>): AuthzRequest {
  const target = labels[AuthzLabel.service]
  const allow = labels[AuthzLabel.failureModeAllow]
  const timeout = labels[AuthzLabel.timeout]
  if (target === undefined && allow === undefined && timeout === undefined) return NONE
  const invalid = (label: string, problem: string): AuthzRequest => ({ kind: 'invalid', label, problem, target: target ?? '' })
  if (target === undefined)
    return invalid(
      AuthzLabel.service,
      `is missing while ${allow !== undefined ? AuthzLabel.failureModeAllow : AuthzLabel.timeout} is set; name the authorization service (shoal.authz=NAME or NAME:SERVICEPORT)`,
    )
  const m = /^([^:]*)(?::(\d{1,5}))?$/.exec(target.trim())
  const service = m ? normaliseName(m[1]!) : ''
  const port = m?.[2] === undefined ? undefined : Number(m[2])
  if (!m || !service || (port !== undefined && (port < 1 || port > 65535)))
    return invalid(AuthzLabel.service, `"${target}" is not NAME or NAME:SERVICEPORT (a service name, a ServicePort 1-65535)`)
  let failureModeAllow = false
  if (allow !== undefined) {
    const v = allow.trim().toLowerCase()
    if (v !== 'true' && v !== 'false') return invalid(AuthzLabel.failureModeAllow, `"${allow}" is not true or false`)
    failureModeAllow = v === 'true'
  }
  let timeoutMs = AUTHZ_DEFAULT_TIMEOUT_MS
  if (timeout !== undefined) {
    try {
      timeoutMs = parseDuration({ value: timeout, where: AuthzLabel.timeout })
    } catch (err) {
      return invalid(AuthzLabel.timeout, (err as Error).message.replace(`${AuthzLabel.timeout}: `, ''))
    }
    if (timeoutMs < 1 || timeoutMs > AUTHZ_MAX_TIMEOUT_MS) return invalid(AuthzLabel.timeout, `"${timeout}" is outside 1ms to 60s`)
  }
  const spec: AuthzSpec = { service, failureModeAllow, timeoutMs }
  if (port !== undefined) spec.servicePort = port
  return { kind: 'spec', spec }
}

/**
 * The labels that spell `spec` (what the static file's `authz` field becomes), the timeout
 * written in ms.
 *
 * @example
 *   authzLabels({ service: 'authz', failureModeAllow: false, timeoutMs: 200 }) // { 'shoal.authz': 'authz', ... }
 */
export function authzLabels(spec: AuthzSpec): Record<string, string> {
  return {
    [AuthzLabel.service]: spec.servicePort === undefined ? spec.service : `${spec.service}:${spec.servicePort}`,
    [AuthzLabel.failureModeAllow]: String(spec.failureModeAllow),
    [AuthzLabel.timeout]: `${spec.timeoutMs}ms`,
  }
}
