import { ShoalError } from '../errors.js'

/** How dockerode reaches the engine. */
export type DockerEndpoint = { socketPath: string } | { host: string; port: number; protocol: 'http' }

/**
 * Parse a Docker endpoint: `unix:///path`, `/path`, `tcp://host:port`; when empty, the
 * `DOCKER_HOST` environment variable, else `/var/run/docker.sock`.
 *
 * @example
 *   parseDockerHost('tcp://127.0.0.1:2375') // { host: '127.0.0.1', port: 2375, protocol: 'http' }
 */
export function parseDockerHost(value?: string, env: NodeJS.ProcessEnv = process.env): DockerEndpoint {
  const v = (value ?? '').trim() || (env.DOCKER_HOST ?? '').trim()
  if (!v) return { socketPath: '/var/run/docker.sock' }
  if (v.startsWith('unix://')) {
    const p = v.slice('unix://'.length)
    if (!p.startsWith('/')) throw new ShoalError('SHOAL_ERR_DOCKER_HOST', `docker host "${v}": unix:// needs an absolute path`)
    return { socketPath: p }
  }
  if (v.startsWith('/')) return { socketPath: v }
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(v)
  if (m) {
    const port = Number(m[2])
    if (port >= 1 && port <= 65535) return { host: m[1]!.replace(/^\[|\]$/g, ''), port, protocol: 'http' }
  }
  throw new ShoalError('SHOAL_ERR_DOCKER_HOST', `docker host "${v}" is not unix:///path, /path or tcp://host:port`)
}
