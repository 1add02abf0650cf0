/**
 * mTLS between Envoy sidecars, as pure builders (README, mTLS between Envoy sidecars):
 *
 * - Secrets (SDS, Envoy's `envoy.extensions.transport_sockets.tls.v3.Secret`) on the same ADS
 *   stream: `shoal/svc/NAME` (a local service's leaf chain and key), `shoal/node/NODE` (the
 *   node's own leaf and key, which the host's Envoy shows on its outbound connections: it
 *   serves every local service, so it cannot show one of theirs), `shoal/roots` (the root
 *   bundle as a validation context). Resources name them; a renewal changes only the Secret.
 * - An inbound Listener per local instance and ServicePort (`shoal/inbound/ID:SERVICEPORT`,
 *   on the address the record's label `shoal.inbound` publishes): TLS terminated with the
 *   service's Secret, a client certificate required and checked against the roots, Envoy's
 *   network RBAC filter for who may call, then tcp_proxy to a STATIC Cluster
 *   (`shoal/local/ID:SERVICEPORT`) of the instance's own address. `permissive` adds a plain-text
 *   filter chain beside the TLS one (the TLS inspector tells them apart).
 * - A ServicePort's Cluster gets a transport socket match `shoal-mtls` (Envoy's
 *   `transport_socket_matches`): endpoints of other hosts that publish an inbound address are
 *   reached there over mTLS, verifying the target's SPIFFE ID; this host's own instances are
 *   reached directly. With `strict`, other hosts' endpoints without one are left out.
 */
import { nodeSpiffeIdOf, spiffeIdOf, trustDomainId } from '../identity/names.js'
import type { EndpointGroup, Instance } from './groups.js'
import { ExtUrl, protoDuration } from './protos.js'
import type { ResourceSet } from './resources.js'

/** Secret names (README, mTLS between Envoy sidecars). */
export const SecretName = {
  roots: 'shoal/roots',
  service: (name: string) => `shoal/svc/${name}`,
  node: (node: string) => `shoal/node/${node}`,
} as const

/** A Secret of that name holds a private key: it goes only over the agent's Unix socket. */
export function isKeySecretName(name: string): boolean {
  return name.startsWith('shoal/svc/') || name.startsWith('shoal/node/')
}

/** The transport socket match name and the endpoint metadata that selects it. */
export const MTLS_MATCH = 'shoal-mtls'
const MATCH_KEY = 'shoal.mtls'
/**
 * `{ "shoal.mtls": true }` as a google.protobuf.Struct in the form protobufjs packs: common
 * protos keep their camelCase field names (`boolValue`) whatever keepCase says.
 */
const MATCH_STRUCT = { fields: { [MATCH_KEY]: { boolValue: true } } }

function sds(name: string): object {
  return { name, sds_config: { ads: {}, resource_api_version: 'V3' } }
}

/** A Secret with a certificate chain and its key (PEM). */
export function tlsCertificateSecret(name: string, certChainPem: string, keyPem: string): object {
  return { name, tls_certificate: { certificate_chain: { inline_string: certChainPem }, private_key: { inline_string: keyPem } } }
}

/** The Secret of the roots a peer's chain must reach. */
export function rootsSecret(bundlePem: string): object {
  return { name: SecretName.roots, validation_context: { trusted_ca: { inline_string: bundlePem } } }
}

/**
 * Envoy's UpstreamTlsContext toward `service`: show the node's leaf, accept only a chain to
 * the roots whose URI SAN is the service's SPIFFE ID (`match_typed_subject_alt_names`).
 */
export function envoyUpstreamTls(trustDomain: string, node: string, service: string): object {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': ExtUrl.upstreamTls,
      common_tls_context: {
        tls_certificate_sds_secret_configs: [sds(SecretName.node(node))],
        combined_validation_context: {
          default_validation_context: {
            match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: spiffeIdOf(trustDomain, service) } }],
          },
          validation_context_sds_secret_config: sds(SecretName.roots),
        },
      },
    },
  }
}

/** An lb_endpoint as resources.ts builds it. */
interface LbEndpoint {
  endpoint: { address: { socket_address: { address: string; port_value: number } } }
  health_status?: string
  metadata?: { filter_metadata?: Record<string, unknown> }
}

export interface EnvoyMtlsOptions {
  trustDomain: string
  /** This agent's node: its instances are reached directly, and it shows this node's leaf. */
  node: string
  strict: boolean
}

/**
 * The mTLS form of a ServicePort group for Envoy (mutates `set`): the Cluster's transport socket
 * match, and the assignment's endpoints of other hosts moved to their inbound addresses with the
 * metadata that selects it (left out without one under `strict`).
 */
export function withEnvoyMtls(set: ResourceSet, g: EndpointGroup, o: EnvoyMtlsOptions): ResourceSet {
  for (const c of set.clusters.values()) {
    ;(c as Record<string, unknown>).transport_socket_matches = [
      { name: MTLS_MATCH, match: MATCH_STRUCT, transport_socket: envoyUpstreamTls(o.trustDomain, o.node, g.name) },
    ]
  }
  const byAddress = new Map<string, Instance>()
  for (const i of g.instances) byAddress.set(`${i.ip}|${i.port}`, i)
  for (const cla of set.endpoints.values()) {
    const localities = (cla as { endpoints: Array<{ load_balancing_weight: { value: number }; lb_endpoints: LbEndpoint[] }> }).endpoints
    for (const l of localities) {
      l.lb_endpoints = l.lb_endpoints.flatMap((e) => {
        const sa = e.endpoint.address.socket_address
        const i = byAddress.get(`${sa.address}|${sa.port_value}`)
        if (!i || i.host === o.node) return [e]
        if (!i.inbound) return o.strict ? [] : [e]
        return [
          {
            ...e,
            endpoint: { address: { socket_address: { address: i.inbound.ip, port_value: i.inbound.port } } },
            // Beside what the endpoint carries (its tags and attributes: resources.ts).
            metadata: { filter_metadata: { ...e.metadata?.filter_metadata, 'envoy.transport_socket_match': MATCH_STRUCT } },
          },
        ]
      })
      const routable = l.lb_endpoints.filter((e) => e.health_status !== 'DRAINING').length
      l.load_balancing_weight = { value: Math.max(1, routable) }
    }
    ;(cla as { endpoints: unknown[] }).endpoints = localities.filter((l) => l.lb_endpoints.length > 0)
  }
  return set
}

/** Who may call an inbound listener: the node identities of hosts that run an allowed service, or any node of the trust domain. */
export interface InboundCallers {
  trustDomain: string
  /** Node names whose Envoys may call; undefined: any caller of the trust domain. */
  nodes?: readonly string[]
}

/** Envoy's network RBAC filter (an ALLOW action; no policy: nobody). */
export function networkRbac(statPrefix: string, c: InboundCallers): object {
  const principals =
    c.nodes === undefined
      ? [{ authenticated: { principal_name: { prefix: `${trustDomainId(c.trustDomain)}/` } } }]
      : c.nodes.map((n) => ({ authenticated: { principal_name: { exact: nodeSpiffeIdOf(c.trustDomain, n) } } }))
  const policies = principals.length ? { 'shoal.callers': { permissions: [{ any: true }], principals } } : {}
  return {
    name: 'envoy.filters.network.rbac',
    typed_config: { '@type': ExtUrl.rbacNetwork, stat_prefix: statPrefix, rules: { action: 'ALLOW', policies } },
  }
}

/** One local instance's inbound listener and the Cluster it forwards to. */
export interface InboundSpec {
  id: string
  service: string
  servicePort: number
  /** Where the instance listens on this host. */
  target: { ip: string; port: number }
  /** Where the inbound listener binds (the record's `shoal.inbound`). */
  inbound: { ip: string; port: number }
  /** A plain-text filter chain beside the TLS one (`permissive`). */
  plainToo: boolean
  /** Who may call; undefined: no RBAC filter (TLS already requires a certificate of the roots). */
  callers?: InboundCallers
  connectTimeoutMs?: number
}

export function inboundName(id: string, servicePort: number): string {
  return `shoal/inbound/${id}:${servicePort}`
}

export function localClusterName(id: string, servicePort: number): string {
  return `shoal/local/${id}:${servicePort}`
}

/** The STATIC Cluster of one local instance (where its inbound listener forwards). */
export function localCluster(s: InboundSpec): object {
  const name = localClusterName(s.id, s.servicePort)
  return {
    name,
    type: 'STATIC',
    connect_timeout: protoDuration(s.connectTimeoutMs ?? 1000),
    load_assignment: {
      cluster_name: name,
      endpoints: [
        {
          locality: { zone: 'local' },
          load_balancing_weight: { value: 1 },
          lb_endpoints: [{ endpoint: { address: { socket_address: { address: s.target.ip, port_value: s.target.port } } } }],
        },
      ],
    },
  }
}

/** The inbound Listener of one local instance (see the file header). */
export function inboundListener(s: InboundSpec): object {
  const name = inboundName(s.id, s.servicePort)
  const stat = `shoal_inbound_${s.servicePort}`
  const filters = (): object[] => [
    ...(s.callers ? [networkRbac(stat, s.callers)] : []),
    {
      name: 'envoy.filters.network.tcp_proxy',
      typed_config: { '@type': ExtUrl.tcpProxy, stat_prefix: stat, cluster: localClusterName(s.id, s.servicePort) },
    },
  ]
  const tls: Record<string, unknown> = {
    filters: filters(),
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': ExtUrl.downstreamTls,
        common_tls_context: {
          tls_certificate_sds_secret_configs: [sds(SecretName.service(s.service))],
          validation_context_sds_secret_config: sds(SecretName.roots),
        },
        require_client_certificate: { value: true },
      },
    },
  }
  const listener: Record<string, unknown> = {
    name,
    address: { socket_address: { address: s.inbound.ip, port_value: s.inbound.port } },
    filter_chains: [tls],
  }
  if (s.plainToo) {
    tls.filter_chain_match = { transport_protocol: 'tls' }
    listener.filter_chains = [tls, { filter_chain_match: { transport_protocol: 'raw_buffer' }, filters: filters() }]
    listener.listener_filters = [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': ExtUrl.tlsInspector } }]
  }
  return listener
}

/** The SDS names a Listener or Cluster object refers to (for the "every Secret named is served" rule). */
export function sdsNamesIn(obj: unknown): string[] {
  const out: string[] = []
  const walk = (v: unknown, key: string): void => {
    if (Array.isArray(v)) for (const x of v) walk(x, key)
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>
      if ((key === 'tls_certificate_sds_secret_configs' || key === 'validation_context_sds_secret_config') && typeof o.name === 'string')
        out.push(o.name)
      for (const [k, x] of Object.entries(o)) walk(x, k)
    }
  }
  walk(obj, '')
  return out
}
