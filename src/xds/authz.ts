/**
 * External authorization on Envoy listeners (README, External authorization): the filters a
 * ServicePort's listener carries before its router (HTTP) or tcp_proxy (TCP) when its service
 * asks for authorization. Pure functions of the group, like resources.ts.
 *
 *  - The request resolves to an authorization service of the same snapshot: Envoy's
 *    `envoy.filters.http.ext_authz` (http, ws, grpc) or `envoy.filters.network.ext_authz`
 *    (tcp) calls `envoy.service.auth.v3.Authorization/Check` on that service's Cluster
 *    (`envoy_grpc`, transport API V3), with the request's timeout and failure_mode_allow.
 *    Envoy's own rules then apply: a Check that fails (no healthy instance, a timeout)
 *    denies the request (403) or closes the connection unless failure_mode_allow.
 *  - It does not resolve (the service is gone, ambiguous, not grpc, or the labels do not
 *    read): the listener fails closed by itself, with an RBAC filter whose rules are present
 *    and empty ("If present and empty, DENY": envoy.extensions.filters.{http,network}.rbac.v3.RBAC),
 *    so it never names a Cluster the snapshot lacks. With failure_mode_allow the listener
 *    carries nothing, as Envoy would let traffic through when the Check cannot be made.
 *
 * Proxyless gRPC clients get none of this: grpc-js-xds 1.14 and gRPC C-core 1.51 implement no
 * ext_authz filter and NACK a Listener with a required HTTP filter they do not know (gRFC A39),
 * so their api listeners are built without it (resources.ts buildApiListener).
 */
import { clusterName, type GroupShape } from './groups.js'
import { ExtUrl, protoDuration } from './protos.js'

/** The gRPC service of an ext_authz filter: Envoy's own gRPC client to the authorization service's Cluster. */
function grpcService(cluster: string, timeoutMs: number): object {
  return { envoy_grpc: { cluster_name: cluster }, timeout: protoDuration(timeoutMs) }
}

/** The Cluster a group's listener calls for authorization, or null. */
export function authzClusterOf(g: GroupShape): string | null {
  const up = g.authz?.upstream
  return up ? clusterName(up.name, up.servicePort) : null
}

/** HTTP filters that go before the router of an Envoy listener's HttpConnectionManager (none when the group asks for nothing). */
export function authzHttpFilters(g: GroupShape): object[] {
  const a = g.authz
  if (!a) return []
  const cluster = authzClusterOf(g)
  if (cluster) {
    return [
      {
        name: 'envoy.filters.http.ext_authz',
        typed_config: {
          '@type': ExtUrl.extAuthzHttp,
          grpc_service: grpcService(cluster, a.timeoutMs),
          transport_api_version: 'V3',
          failure_mode_allow: a.failureModeAllow,
        },
      },
    ]
  }
  if (a.failureModeAllow) return []
  return [{ name: 'envoy.filters.http.rbac', typed_config: { '@type': ExtUrl.rbacHttp, rules: { action: 'ALLOW', policies: {} } } }]
}

/** Network filters that go before tcp_proxy on an Envoy tcp listener (none when the group asks for nothing). */
export function authzNetworkFilters(g: GroupShape): object[] {
  const a = g.authz
  if (!a) return []
  const stat = `shoal_${g.servicePort}`
  const cluster = authzClusterOf(g)
  if (cluster) {
    return [
      {
        name: 'envoy.filters.network.ext_authz',
        typed_config: {
          '@type': ExtUrl.extAuthzNetwork,
          stat_prefix: stat,
          grpc_service: grpcService(cluster, a.timeoutMs),
          transport_api_version: 'V3',
          failure_mode_allow: a.failureModeAllow,
        },
      },
    ]
  }
  if (a.failureModeAllow) return []
  return [
    {
      name: 'envoy.filters.network.rbac',
      typed_config: { '@type': ExtUrl.rbacNetwork, stat_prefix: stat, rules: { action: 'ALLOW', policies: {} } },
    },
  ]
}
