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

/** What a check's templates may refer to: the instance's address, container and ports. */
export interface CheckContext {
  host: string
  containerId?: string
  ports: CheckPort[]
}

/**
 * The result a check scheduler reports for an instance: `starting` until the first result of
 * its check (not served: a new instance takes traffic only once its check passed), `unknown`
 * without a check (served).
 */
export type CheckStatus = 'alive' | 'unhealthy' | 'unknown' | 'starting'

/** Container health as Docker reports it (HEALTHCHECK); undefined when the container has none. */
export type DockerHealth = 'healthy' | 'unhealthy' | 'starting' | 'none'

/** Fed by the Docker source; read by the `Docker` check type. */
export interface DockerHealthFeed {
  health(containerId: string): DockerHealth | undefined
  /** Called with a container id whenever its health changes. Returns an unsubscribe. */
  subscribe(listener: (containerId: string) => void): () => void
}
