/**
 * One record builder for the registry's wire tests: a record of owner `a` with one port, and
 * `over` on top.
 *
 * @example record({ status: 'draining', reason: 'stopping' })
 */
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
