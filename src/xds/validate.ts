/**
 * Shoal's resource checker, standing in for Envoy's own validation (no Envoy binary runs
 * here): the protoc-gen-validate rules of the protos (pgv.ts) plus the constraints real
 * clients apply beyond them (docs/tooling.md, checked against grpc-js-xds 1.14 and gRPC C-core
 * 1.51):
 *  - an HttpConnectionManager has http filters, each with a typed_config, the router last;
 *  - a ClusterLoadAssignment's localities are distinct and each has a load_balancing_weight
 *    (gRPC drops a locality without one); it never lists one address twice (both gRPC
 *    clients NACK it: C-core "duplicate endpoint address", grpc-js-xds "address is a
 *    duplicate of another address");
 *  - endpoint and listener addresses are IP literals;
 *  - an EDS Cluster has an eds_config;
 *  - outlier detection with success-rate ejection spells out its minimum hosts, request
 *    volume and stdev factor (grpc-js 1.14 throws on an empty candidate list otherwise).
 */
import { isIP } from 'node:net'
import { advertisedIpProblem, canonicalIp } from '../address.js'
import { walkPgv } from './pgv.js'
import { ExtUrl, type XdsProtos } from './protos.js'
import type { Problem } from '../log.js'

type Obj = Record<string, unknown>

/** A repeated field's entries; anything else is no entries here (the PGV walker reports the wrong type). */
function list(v: unknown): Obj[] {
  return Array.isArray(v) ? (v as Obj[]) : []
}

/** Validate one resource (or extension config) object; returns readable problems (`path: message`), empty when valid. */
export function validateResource(protos: XdsProtos, typeUrl: string, obj: unknown): string[] {
  return walkPgv(protos, typeUrl, obj, shoalConstraints)
}

/** Shoal's constraints beyond PGV, per message type. */
function shoalConstraints(fullName: string, o: Obj, path: string, err: (path: string, msg: string) => void): void {
  switch (fullName) {
    case '.envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager': {
      const filters = list(o.http_filters)
      if (filters.length === 0) err(path, 'http_filters is empty (the router filter must be last)')
      filters.forEach((f, i) => {
        if (!f || !f.typed_config) err(`${path}.http_filters[${i}]`, 'http filter without typed_config (grpc-js-xds rejects the Listener)')
      })
      const last = filters[filters.length - 1]
      const lastType = (last?.typed_config as Obj | undefined)?.['@type'] ?? (last?.typed_config as Obj | undefined)?.type_url
      if (filters.length && lastType !== ExtUrl.router) err(path, 'the last http filter is not the router')
      break
    }
    case '.envoy.config.endpoint.v3.ClusterLoadAssignment': {
      const seen = new Set<string>()
      for (const [i, l] of list(o.endpoints).entries()) {
        const key = JSON.stringify(l?.locality ?? {})
        if (seen.has(key)) err(`${path}.endpoints[${i}]`, `locality ${key} appears twice`)
        seen.add(key)
        if (!l?.load_balancing_weight) err(`${path}.endpoints[${i}]`, 'locality without load_balancing_weight (gRPC drops it silently)')
      }
      // One address once: both gRPC clients NACK the whole assignment otherwise (groups.ts endpointFilter).
      const addresses = new Map<string, string>()
      for (const [i, l] of list(o.endpoints).entries()) {
        for (const [j, e] of list(l?.lb_endpoints).entries()) {
          const sa = ((e?.endpoint as Obj | undefined)?.address as Obj | undefined)?.socket_address as Obj | undefined
          if (!sa) continue
          const ip = String(sa.address ?? '')
          const port = String(sa.port_value ?? 0)
          const key = `${canonicalIp(ip) ?? ip}|${port}`
          const where = `${path}.endpoints[${i}].lb_endpoints[${j}]`
          const first = addresses.get(key)
          if (first) err(where, `address ${ip} port ${port} is listed twice (first at ${first}); both gRPC clients NACK the assignment`)
          else addresses.set(key, where)
        }
      }
      break
    }
    case '.envoy.config.endpoint.v3.Endpoint':
    case '.envoy.config.listener.v3.Listener': {
      const sa = (o.address as Obj | undefined)?.socket_address as Obj | undefined
      const at = String(sa?.address ?? '')
      // An endpoint is an advertised instance address (address.ts, the rule the endpoint filter applies); a listener binds one of this host's.
      const bad = fullName === '.envoy.config.endpoint.v3.Endpoint' ? advertisedIpProblem(at) : undefined
      const problem =
        bad !== undefined
          ? `is not an IP literal an instance may be advertised at: it ${bad}`
          : isIP(at) === 0
            ? 'is not an IP literal'
            : undefined
      if (sa && problem !== undefined) err(`${path}.address`, `"${at}" ${problem}`)
      if (fullName === '.envoy.config.listener.v3.Listener' && !o.address && !o.api_listener)
        err(path, 'listener has neither address nor api_listener')
      break
    }
    case '.envoy.config.cluster.v3.Cluster': {
      if (o.type === 'EDS' && !(o.eds_cluster_config as Obj | undefined)?.eds_config)
        err(path, 'EDS cluster without eds_cluster_config.eds_config')
      const od = o.outlier_detection as Obj | undefined
      const srOff = (od?.enforcing_success_rate as Obj | undefined)?.value === 0
      if (od && !srOff && (!od.success_rate_minimum_hosts || !od.success_rate_request_volume || !od.success_rate_stdev_factor)) {
        err(
          `${path}.outlier_detection`,
          'success-rate ejection without explicit success_rate_minimum_hosts/request_volume/stdev_factor (grpc-js throws every interval)',
        )
      }
      break
    }
  }
}

/**
 * An xDS resource Shoal built that fails validation (a fault in Shoal or in a record it was
 * given): not served, the client keeps its previous one.
 */
export function invalidResource(type: string, name: string, errors: string[]): Problem {
  return {
    what: `invalid xDS resource ${type} ${name} not served (${errors.join('; ')})`,
    input: name,
    fix: 'the client keeps its previous resource; look at the records of that service (shoal services NAME), and report the line if they are sound',
  }
}
