/**
 * Service names and static instance ids (docs/architecture.md "Names"): names are reduced to
 * `[a-z0-9._-]` so that `name:port`, URLs and `xds:///name:port` stay valid, and a static
 * entry's id is a hash of what identifies it, never a random value that changes on restart.
 */
import { createHash } from 'node:crypto'
import { RecordLimits } from './limits.js'
import type { ServicePortSpec } from './types.js'

const MAX_NAME = RecordLimits.name.build

/**
 * The one name rule (docs/architecture.md "Names"), for every source (a label, a static
 * entry, a Swarm service name): lower case, every run of characters outside [a-z0-9._-] and
 * every run of dashes becomes one `-`, dashes and dots are trimmed at both ends, and the
 * result is cut to 128 characters. Returns '' when nothing usable is left: callers report
 * that as an error naming the input.
 *
 * @example
 *   normaliseName('My Service')  // 'my-service'
 *   normaliseName('team/web')    // 'team-web'
 *   normaliseName('web:1')       // 'web-1'
 */
export function normaliseName(s: string): string {
  const n = s
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
  return n.slice(0, MAX_NAME).replace(/[-.]+$/g, '')
}

/**
 * The service name an image reference stands for when nothing names the service: the
 * repository's last path segment without registry, tag or digest, then normaliseName.
 *
 * @example
 *   imageName('registry:5000/team/Web App:1.2') // 'web-app'
 *   imageName('nginx@sha256:abc')               // 'nginx'
 */
export function imageName(ref: string): string {
  let n = ref.trim().split('@')[0]!
  n = n.slice(n.lastIndexOf('/') + 1)
  const colon = n.indexOf(':')
  if (colon >= 0) n = n.slice(0, colon)
  return normaliseName(n)
}

/**
 * A stable 12-hex-digit instance id for a static entry without an `id`: a hash of its
 * normalised name and its ports (type, port, servicePort; order does not matter). The IP
 * is left out so that a changed advertise address does not make a new instance.
 *
 * @example
 *   staticInstanceId('web', [{ type: 'tcp', port: 8080, servicePort: 10080, ip: '127.0.0.1' }]) // e.g. '3f1c0a9b2d4e'
 */
export function staticInstanceId(name: string, ports: readonly Pick<ServicePortSpec, 'type' | 'port' | 'servicePort'>[]): string {
  const parts = ports.map((p) => `${p.type}/${p.port}/${p.servicePort}`).sort()
  return createHash('sha256')
    .update(`${normaliseName(name)}|${parts.join(',')}`)
    .digest('hex')
    .slice(0, 12)
}
