/**
 * Contracts of the health checks. The Docker source feeds container health in through
 * `DockerHealthFeed`, so that `health/` needs no dockerode.
 */

export const CheckType = {
  HttpGet: 'HttpGet',
  Tcp: 'Tcp',
  External: 'External',
  Docker: 'Docker',
  AlwaysSuccessful: 'AlwaysSuccessful',
} as const
export type CheckType = (typeof CheckType)[keyof typeof CheckType]

/**
 * A health check of one instance, as written in labels or the static file.
 *
 * @example
 *   { type: 'HttpGet', args: 'http://{{ host }}:{{ tcp 8080 }}/health' }
 */
export interface CheckSpec {
  type: CheckType
  /** URL (HttpGet), host:port (Tcp), command line (External); templates allowed. */
  args?: string
  intervalMs?: number
  timeoutMs?: number
  rise?: number
  fall?: number
}

/**
 * One port of the checked instance, as check templates see it: `port` is where it is
 * reachable, `containerPort` the port inside its container (`{{ tcp N }}` looks N up there).
 * The registry's ServicePortSpec has this shape.
 */
export interface CheckPort {
  port: number
  containerPort?: number
}

/**
 * What a check's templates may refer to (the instance's address, container and ports), and
 * what its log lines and metrics name it by (its service and where it came from).
 */
export interface CheckContext {
  host: string
  containerId?: string
  ports: CheckPort[]
  /** The instance's service name: the `service` label of the check metrics and its log lines. */
  service?: string
  /** Where the instance came from, for log lines: `container web (3f2a9c1b0d4e)`, `/etc/shoal/static.json services[2]`. */
  origin?: string
  /**
   * The container's own address and ports on a network the agent is attached to, when `host`
   * and `ports` are its host bindings. A Tcp check also connects here: docker-proxy in front
   * of a loopback host binding accepts while nothing listens in the container and closes only
   * once its own connect is refused, which a loaded machine may delay past the hold
   * (TCP_HOLD_MS); the container's address refuses at once.
   */
  behind?: { host: string; ports: CheckPort[] }
}

/**
 * The result a check scheduler reports for an instance: `starting` until the first result of
 * its check (not served: a new instance takes traffic only once its check passed), `unknown`
 * without a check (served).
 */
export type CheckStatus = 'alive' | 'unhealthy' | 'unknown' | 'starting'

/**
 * How one run of a check ended: `pass`, `fail` (the target answered wrong or not at all),
 * `timeout` (no whole answer within the check's timeout), `error` (the check itself is wrong:
 * bad args or template), `refused` (External checks are off), `unknown` (a Docker check whose
 * container has no health yet), `unchecked` (a Docker check of a container without a
 * HEALTHCHECK). `unknown` leaves the status as it is; `unchecked` makes it `unknown`; `refused`
 * makes it `unhealthy` (fails closed: the service asked to be checked).
 */
export type CheckOutcome = 'pass' | 'fail' | 'timeout' | 'unknown' | 'refused' | 'error' | 'unchecked'
export const CHECK_OUTCOMES: readonly CheckOutcome[] = ['pass', 'fail', 'timeout', 'unknown', 'refused', 'error', 'unchecked']

/** The most of a check's output (an HttpGet body, an External command's stdout and stderr) kept in its result. */
export const CHECK_OUTPUT_BYTES = 512

/**
 * The last run of an instance's check, as the owner's API shows it (`check` of an instance in
 * `/api/services/{name}.json`) and its status-change log line names it.
 *
 * @example
 *   { type: 'Tcp', target: '10.0.0.5:5432', outcome: 'fail', passed: false, error: 'connection refused',
 *     at: 1717000000000, durationMs: 0.4, passes: 0, fails: 3 }
 */
export interface CheckResult {
  type: CheckType
  /** What was checked, templates filled in: the URL (HttpGet), host:port (Tcp), command line (External), container id (Docker); '' for AlwaysSuccessful. */
  target: string
  outcome: CheckOutcome
  passed: boolean
  /** Why it did not pass: `connection refused`, `HTTP 503`, `exit code 1`, `timed out after 2000 ms`, ... */
  error?: string
  /** HttpGet: the answer's status code, when one arrived. */
  httpStatus?: number
  /** The start of the answer body (HttpGet) or of stdout and stderr (External): at most CHECK_OUTPUT_BYTES of UTF-8, cut with `…`. */
  output?: string
  /** When the run ended, epoch ms. */
  at: number
  /** How long the run took, ms. */
  durationMs: number
  /** Runs in a row that passed (0 after a failure), and that failed (0 after a pass), this one included. */
  passes: number
  fails: number
}

/** Container health as Docker reports it (HEALTHCHECK); undefined when the container has none. */
export type DockerHealth = 'healthy' | 'unhealthy' | 'starting' | 'none'

/** Fed by the Docker source; read by the `Docker` check type. */
export interface DockerHealthFeed {
  health(containerId: string): DockerHealth | undefined
  /** Called with a container id whenever its health changes. Returns an unsubscribe. */
  subscribe(listener: (containerId: string) => void): () => void
}
