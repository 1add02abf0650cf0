/**
 * Record builders for the registry's tests: `record` a record of owner `a` as peers hold it,
 * `localRecord` one an owner writes into its catalog.
 *
 * @example record({ status: 'draining', reason: 'stopping' })
 */
import type { LocalRecord } from '../../src/registry/catalog.js'
import type { ServiceRecord } from '../../src/registry/types.js'

export function record(over: Partial<ServiceRecord> = {}): ServiceRecord {
  return {
    id: 'r',
    name: 'web',
    image: 'i',
    created: 1,
    host: 'a',
    bootId: 'b',
    ports: [{ type: 'tcp', port: 1, servicePort: 2, ip: '10.0.0.1' }],
    proxyMode: 'http',
    status: 'alive',
    version: [1, 0],
    updated: 1,
    labels: {},
    ...over,
  }
}

export interface LocalRecordOptions {
  /** Default `web`. */
  name?: string
  /** Default `web:1`. */
  image?: string
  /** The instance's port (its service port is 10080). Default 8080. */
  port?: number
  /** Default 10.0.0.1. */
  ip?: string
  status?: LocalRecord['status']
  labels?: Record<string, string>
}

/**
 * A record an owner writes (Catalog.setLocal): instance `id` of `web` with one TCP port, alive.
 *
 * @example localRecord('web-1', { port: 8081, status: 'draining' })
 */
export function localRecord(id: string, o: LocalRecordOptions = {}): LocalRecord {
  return {
    id,
    name: o.name ?? 'web',
    image: o.image ?? 'web:1',
    created: 1,
    ports: [{ type: 'tcp', port: o.port ?? 8080, servicePort: 10080, ip: o.ip ?? '10.0.0.1' }],
    proxyMode: 'http',
    status: o.status ?? 'alive',
    labels: o.labels ?? {},
  }
}
