/**
 * Every failure Shoal names, in one list, and the one error class that carries a code.
 * Callers branch on `code`, never on the message; a misspelt code fails the type check.
 * Messages name the offending input (flag, file and path, label and container, packet
 * source, address) and say what to do.
 *
 * @example
 *   throw new ShoalError('SHOAL_ERR_CONFIG', `--bind: "${v}" is not HOST:PORT`)
 *   if (isShoalError(err, 'SHOAL_ERR_NOT_LOCAL')) answer403(err.message)
 */
export const ErrorCode = {
  // Configuration and start-up: `shoal` prints the message on one line and exits 2.
  /** A flag, environment variable or config value is invalid. */
  config: 'SHOAL_ERR_CONFIG',
  /** A HOST:PORT (or address object) does not parse. */
  address: 'SHOAL_ERR_ADDRESS',
  /** A listener (gossip, xDS, HTTP) cannot bind its address: in use, or not an address of this host. */
  bind: 'SHOAL_ERR_BIND',
  /** A node name is empty, too long or has characters outside [A-Za-z0-9._-]. */
  nodeName: 'SHOAL_ERR_NODE_NAME',
  /** A live node at another address already holds this node name. */
  nameConflict: 'SHOAL_ERR_NAME_CONFLICT',
  /** A gossip key or key ring is invalid (size, encoding, removing the primary). */
  key: 'SHOAL_ERR_KEY',
  /** The Docker endpoint (--docker-host, DOCKER_HOST) is not unix:///path, /path or tcp://host:port. */
  dockerHost: 'SHOAL_ERR_DOCKER_HOST',
  /** The static services file cannot be read or is invalid. */
  static: 'SHOAL_ERR_STATIC',
  /** A web UI file shipped with the package cannot be read. */
  uiAsset: 'SHOAL_ERR_UI_ASSET',
  /** What the xDS server loads with its first client (the descriptors, grpc-js) is missing from the install. */
  xdsAsset: 'SHOAL_ERR_XDS_ASSET',

  // Service identity: the CA tooling and the agent's intermediate.
  /** A file is not the PEM certificate or PKCS#8 EC P-256 key it should be, or a certificate does not parse. */
  pem: 'SHOAL_ERR_PEM',
  /** `shoal ca`: the CA files cannot be made (an existing root left in place, a root that cannot sign). */
  ca: 'SHOAL_ERR_CA',

  // Lifecycle misuse (a bug in the caller).
  /** A part was used before start() (or after stop()). */
  notStarted: 'SHOAL_ERR_NOT_STARTED',
  /** The catalog was asked to write before it knew its boot id. */
  bootId: 'SHOAL_ERR_BOOT_ID',
  /** An operation was aborted through its AbortSignal. */
  aborted: 'SHOAL_ERR_ABORTED',

  // Gossip: the wire envelope, messages and streams.
  /** The packet's wire version is not one this node speaks. */
  version: 'SHOAL_ERR_VERSION',
  /** The packet carries another cluster's label (--cluster). */
  label: 'SHOAL_ERR_LABEL',
  /** Encryption mismatch: no key of the ring opens the packet, or one side has no keys. */
  auth: 'SHOAL_ERR_AUTH',
  /** An unencrypted packet whose CRC32 does not match its content. */
  crc: 'SHOAL_ERR_CRC',
  /** A gossip message does not decode (msgpack, fields, types). */
  decode: 'SHOAL_ERR_DECODE',
  /** A message of a type this release does not know (a newer peer's): skipped and counted, or answered with this code on a stream. */
  unknownType: 'SHOAL_ERR_UNKNOWN_TYPE',
  /** A stream exchange failed: refused, reset, timed out, too large, or the transport stopped. */
  stream: 'SHOAL_ERR_STREAM',
  /** Node metadata is not string values, or is over its size limit. */
  meta: 'SHOAL_ERR_META',
  /** The MTU leaves too little room after the envelope. */
  mtu: 'SHOAL_ERR_MTU',
  /** A broadcast key is not a string of at most 255 bytes. */
  broadcastKey: 'SHOAL_ERR_BROADCAST_KEY',
  /** A request names a member this node does not know. */
  unknownNode: 'SHOAL_ERR_UNKNOWN_NODE',
  /** A stream ping reached a node with another name (an address now used by another node). */
  wrongNode: 'SHOAL_ERR_WRONG_NODE',
  /** A peer has no handler for application requests. */
  noHandler: 'SHOAL_ERR_NO_HANDLER',
  /** A peer's application request handler threw. */
  requestHandler: 'SHOAL_ERR_REQUEST_HANDLER',
  /** A peer refused a push-pull: too many in flight. */
  busy: 'SHOAL_ERR_BUSY',
  /** No seed answered a join. */
  join: 'SHOAL_ERR_JOIN',
  /**
   * A peer answered our stream with a refusal: it could not open it (another cluster label,
   * no common key, encryption on one side only, another wire version). The reason travels
   * in the refusal frame (gossip/wire.ts).
   */
  refused: 'SHOAL_ERR_REFUSED',

  // Registry.
  /** A registry message (record, pull, digest) fails validation. */
  registryWire: 'SHOAL_ERR_REGISTRY_WIRE',
  /** Drain/undrain of an instance id this host does not run and no host runs. */
  unknownInstance: 'SHOAL_ERR_UNKNOWN_INSTANCE',
  /** Drain/undrain of an instance that runs on another host: ask that host's agent. */
  notLocal: 'SHOAL_ERR_NOT_LOCAL',

  // Health checks.
  /** A check's arguments are unusable (URL, host:port, command line). */
  checkArgs: 'SHOAL_ERR_CHECK_ARGS',
  /** A check's template ({{ host }}, {{ tcp N }}, {{ container }}) cannot be expanded. */
  checkTemplate: 'SHOAL_ERR_CHECK_TEMPLATE',

  // HTTP API answers (the `error.code` field of a JSON error body).
  /** Unknown path. */
  notFound: 'SHOAL_ERR_NOT_FOUND',
  /** Malformed request target or percent-encoding. */
  badRequest: 'SHOAL_ERR_BAD_REQUEST',
  /** The method is not allowed on this path (the Allow header lists those that are). */
  methodNotAllowed: 'SHOAL_ERR_METHOD_NOT_ALLOWED',
  /** A service name outside [a-z0-9._-]. */
  badServiceName: 'SHOAL_ERR_BAD_SERVICE_NAME',
  /** No live instance of the service. */
  serviceNotFound: 'SHOAL_ERR_SERVICE_NOT_FOUND',
  /** An instance id outside [A-Za-z0-9._:-]{1,128}. */
  badInstanceId: 'SHOAL_ERR_BAD_INSTANCE_ID',
  /** A drain reason (`?reason=`) over 200 characters. */
  badDrainReason: 'SHOAL_ERR_BAD_DRAIN_REASON',
  /** A mutation without the bearer token --api-token asks for, or with a wrong one. */
  unauthorized: 'SHOAL_ERR_UNAUTHORIZED',
  /** A mutation from a non-loopback caller without a token configured, or cross-origin. */
  forbidden: 'SHOAL_ERR_FORBIDDEN',
  /** The warm start is not done (/readyz). */
  notReady: 'SHOAL_ERR_NOT_READY',
  /** A handler failed; the message says where. */
  internal: 'SHOAL_ERR_INTERNAL',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

const codes = new Set<string>(Object.values(ErrorCode))

/** True when `s` is one of Shoal's codes (for codes that arrive over the wire from a peer). */
export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === 'string' && codes.has(s)
}

/**
 * One error class for Shoal, with a stable `code` from ErrorCode. Add a subclass only where
 * callers branch on a family of codes.
 */
export class ShoalError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ShoalError'
    this.code = code
  }
}

export function isShoalError(err: unknown, code?: ErrorCode): err is ShoalError {
  return err instanceof ShoalError && (code === undefined || err.code === code)
}
