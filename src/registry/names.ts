/**
 * Service names and static instance ids (ARCHITECTURE.md "Names"): names are reduced to
 * `[a-z0-9._-]` so that `name:port`, URLs and `xds:///name:port` stay valid, and a static
 * entry's id is a hash of what identifies it, never a random value that changes on restart.
 */
import { createHash } from 'node:crypto'
import type { ServicePortSpec } from './types.js'

const MAX_NAME = 128

/**
 * Normalises a service name. Something that looks like an image reference (it holds `/`,
 * `:` or `@`) is reduced to its repository's last path segment without tag or digest.
 * Returns '' when nothing usable is left: callers report that as an error.
 *
 * @example
 *   normaliseName('reg/app:1.2')                // 'app'
 *   normaliseName('registry:5000/team/Web App') // 'web-app'
 *   normaliseName('My_Service')                 // 'my_service'
 */
export function normaliseName(s: string): string {
  let n = s.trim()
  if (/[/:@]/.test(n)) {
    n = n.split('@')[0]!
    const segments = n.split('/')
    n = segments[segments.length - 1]!
    n = n.split(':')[0]!
  }
  n = n
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
  return n.slice(0, MAX_NAME).replace(/[-.]+$/g, '')
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
