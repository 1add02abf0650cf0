/**
 * xDS security for proxyless gRPC (gRFC A29), as pure builders: the UpstreamTlsContext a
 * Cluster carries, the server Listener a gRPC `XdsServer` asks for (gRFC A36) with its
 * DownstreamTlsContext, and the RBAC HTTP filter of a service's allow-list (gRFC A41).
 *
 * gRPC takes certificates from certificate providers its bootstrap names, never from the
 * control plane (A29, "Certificate Provider Plugin Framework"): resources carry only the
 * provider instance names `shoal-identity` (the service's leaf and key) and `shoal-roots`
 * (the root bundle), which `shoal grpc-bootstrap --service NAME --tls-dir DIR` defines as
 * `file_watcher` providers over the files the agent writes. A client parses these names
 * whether or not it uses xDS credentials, and NACKs a resource naming a provider its bootstrap
 * lacks, so only a client whose node says it has them gets the mTLS form (see `mtlsCapable`).
 */
import { parseHostPort } from '../address.js'
import { isShoalError } from '../errors.js'
import { spiffeIdOf, trustDomainId } from '../identity/names.js'
import { ExtUrl } from './protos.js'
import { nodeMetaString, type ResourceSet, type XdsNode } from './resources.js'

/** The certificate provider instance names resources refer to (the bootstrap defines them). */
export const CertProvider = { identity: 'shoal-identity', roots: 'shoal-roots' } as const

/**
 * Node metadata a bootstrap sets: `shoal.service` (the service whose identity the process
 * holds) and `shoal.certificate_providers` (the instance names its bootstrap defines, comma
 * separated).
 */
export const NodeMeta = { service: 'shoal.service', providers: 'shoal.certificate_providers' } as const

/**
 * gRFC A36 server Listener names: `shoal/server/NAME/%s`, where gRPC puts the address the
 * server binds (`IP:PORT`, IPv6 in brackets) in place of `%s`.
 */
export const SERVER_LISTENER_PREFIX = 'shoal/server/'

/** The `server_listener_resource_name_template` of a service's bootstrap. */
export function serverListenerTemplate(service: string): string {
  return `${SERVER_LISTENER_PREFIX}${service}/%s`
}

/** The service a client says it is (`shoal.service` metadata), if any. */
export function nodeService(node: XdsNode | null | undefined): string | undefined {
  return nodeMetaString(node, NodeMeta.service)
}

/** The client's bootstrap defines both of Shoal's certificate providers (its node metadata says so). */
export function mtlsCapable(node: XdsNode | null | undefined): boolean {
  const names = (nodeMetaString(node, NodeMeta.providers) ?? '').split(',').map((s) => s.trim())
  return names.includes(CertProvider.identity) && names.includes(CertProvider.roots)
}

function tlsTransportSocket(typeUrl: string, context: object): object {
  return { name: 'envoy.transport_sockets.tls', typed_config: { '@type': typeUrl, ...context } }
}

/**
 * The UpstreamTlsContext of a Cluster for gRPC: present our leaf (`shoal-identity`), verify the
 * server's chain against the roots (`shoal-roots`) and its URI SAN against the target's SPIFFE
 * ID (A29 "Server Authorization aka Subject-Alt-Name Checks"; `match_subject_alt_names` is
 * the field both gRPC clients read).
 */
export function grpcUpstreamTls(trustDomain: string, service: string): object {
  return tlsTransportSocket(ExtUrl.upstreamTls, {
    common_tls_context: {
      tls_certificate_provider_instance: { instance_name: CertProvider.identity },
      validation_context: {
        ca_certificate_provider_instance: { instance_name: CertProvider.roots },
        match_subject_alt_names: [{ exact: spiffeIdOf(trustDomain, service) }],
      },
    },
  })
}

/** Every Cluster of the set verifies its target service's SPIFFE ID over mTLS (mutates `set`). */
export function withGrpcUpstreamTls(set: ResourceSet, trustDomain: string, service: string): ResourceSet {
  for (const c of set.clusters.values()) (c as Record<string, unknown>).transport_socket = grpcUpstreamTls(trustDomain, service)
  return set
}

/** The DownstreamTlsContext of a gRPC server: our leaf, and a client certificate required and checked against the roots. */
export function grpcDownstreamTls(): object {
  return tlsTransportSocket(ExtUrl.downstreamTls, {
    common_tls_context: {
      tls_certificate_provider_instance: { instance_name: CertProvider.identity },
      validation_context: { ca_certificate_provider_instance: { instance_name: CertProvider.roots } },
    },
    require_client_certificate: { value: true },
  })
}

/**
 * Who may call a service: the SPIFFE IDs of the services in its allow-list, or, with no
 * list, any caller holding a certificate of the trust domain. A caller without a
 * certificate (plain text) matches neither.
 */
export interface CallerPolicy {
  trustDomain: string
  /** Service names; undefined: any service of the trust domain. */
  allow?: readonly string[]
}

/**
 * The RBAC HTTP filter of a policy (an ALLOW action: a call no principal matches is refused
 * with PERMISSION_DENIED; gRFC A41). Principals are `authenticated.principal_name`, which
 * gRPC matches against the peer certificate's URI SANs: exact IDs for an allow-list, the
 * trust domain's prefix otherwise.
 */
export function rbacFilter(p: CallerPolicy): object {
  const principals =
    p.allow === undefined
      ? [{ authenticated: { principal_name: { prefix: `${trustDomainId(p.trustDomain)}/` } } }]
      : p.allow.map((s) => ({ authenticated: { principal_name: { exact: spiffeIdOf(p.trustDomain, s) } } }))
  // An empty list allows no caller: an ALLOW action with no policy matches nothing.
  const policies = principals.length ? { 'shoal.callers': { permissions: [{ any: true }], principals } } : {}
  return { name: 'envoy.filters.http.rbac', typed_config: { '@type': ExtUrl.rbacHttp, rules: { action: 'ALLOW', policies } } }
}

/** The parts of a server Listener name. */
export interface ServerListenerName {
  service: string
  host: string
  port: number
}

/**
 * Reads a server Listener name (`shoal/server/NAME/IP:PORT`). Returns null for a name of
 * another kind, a reason (a string) for one of ours that is malformed.
 */
export function parseServerListenerName(name: string): ServerListenerName | string | null {
  if (!name.startsWith(SERVER_LISTENER_PREFIX)) return null
  const rest = name.slice(SERVER_LISTENER_PREFIX.length)
  const slash = rest.indexOf('/')
  const service = slash < 0 ? '' : rest.slice(0, slash)
  if (!/^[a-z0-9._-]{1,128}$/.test(service)) return `"${name}": no service name (shoal/server/NAME/IP:PORT, NAME in [a-z0-9._-])`
  try {
    const { host, port } = parseHostPort(rest.slice(slash + 1), `"${name}"`, { ipOnly: true })
    return { service, host, port }
  } catch (err) {
    if (isShoalError(err, 'SHOAL_ERR_ADDRESS')) return `${err.message} (gRPC servers bind IP:PORT)`
    throw err
  }
}

/** What a server Listener is made of. */
export interface ServerListenerSpec extends ServerListenerName {
  name: string
  /** The server gets the DownstreamTlsContext (its bootstrap has Shoal's providers). */
  mtls: boolean
  /** Who may call; undefined: no RBAC filter (any caller the transport lets in). */
  callers?: CallerPolicy
}

/**
 * The Listener a gRPC XdsServer binding `host:port` asks for (gRFC A36): its address, one
 * filter chain with an HttpConnectionManager whose one route is a non-forwarding action
 * (a server routes nothing), the RBAC filter when callers are restricted, and the
 * DownstreamTlsContext for an mTLS server.
 */
export function buildServerListener(s: ServerListenerSpec): object {
  const httpFilters: object[] = []
  if (s.callers) httpFilters.push(rbacFilter(s.callers))
  httpFilters.push({ name: 'envoy.filters.http.router', typed_config: { '@type': ExtUrl.router } })
  const chain: Record<string, unknown> = {
    filters: [
      {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': ExtUrl.hcm,
          stat_prefix: `shoal_server_${s.service}`,
          route_config: {
            name: s.name,
            virtual_hosts: [{ name: s.service, domains: ['*'], routes: [{ match: { prefix: '/' }, non_forwarding_action: {} }] }],
          },
          http_filters: httpFilters,
        },
      },
    ],
  }
  if (s.mtls) chain.transport_socket = grpcDownstreamTls()
  return { name: s.name, address: { socket_address: { address: s.host, port_value: s.port } }, filter_chains: [chain] }
}
