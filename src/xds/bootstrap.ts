/**
 * Bootstrap documents that point a client at the agent's ADS server
 * (`shoal envoy-bootstrap`, `shoal grpc-bootstrap`).
 */
import { parseHostPort } from '../address.js'
import { ShoalError } from '../errors.js'
import { RecordLimits } from '../registry/index.js'
import { leafPaths } from '../identity/names.js'
import { CertProvider, NodeMeta, serverListenerTemplate } from './tls.js'

/** An address a bootstrap names; `flag` (the CLI flag that sets it) in errors. */
function checkAddress(address: string, flag = '--xds'): { host: string; port: number } {
  return parseHostPort(address, flag)
}

/**
 * An Envoy v3 bootstrap: node id and cluster, LDS and CDS over ADS (gRPC) from the agent,
 * and the admin listener (default 127.0.0.1:9901; Prometheus scrapes its /stats/prometheus).
 * With `xdsSocket` Envoy reaches the agent over that Unix socket (a `pipe` address) instead of
 * TCP: the only way the agent sends it keys (SDS; README, mTLS between Envoy sidecars).
 * Throws SHOAL_ERR_ADDRESS naming `--xds` or `--admin`, SHOAL_ERR_CONFIG naming `--xds-socket`.
 *
 * @example
 *   JSON.stringify(envoyBootstrap({ nodeId: 'web-1', cluster: 'default', xdsAddress: '127.0.0.1:7776', adminAddress: '0.0.0.0:9901' }))
 */
export function envoyBootstrap(o: {
  nodeId: string
  cluster: string
  xdsAddress: string
  adminAddress?: string
  network?: string
  xdsSocket?: string
}): object {
  const { host, port } = checkAddress(o.xdsAddress)
  if (o.xdsSocket !== undefined && !o.xdsSocket.startsWith('/'))
    throw new ShoalError('SHOAL_ERR_CONFIG', `--xds-socket: "${o.xdsSocket}" is not an absolute path (the agent's --xds-socket)`)
  const address = o.xdsSocket !== undefined ? { pipe: { path: o.xdsSocket } } : { socket_address: { address: host, port_value: port } }
  const admin = checkAddress(o.adminAddress ?? '127.0.0.1:9901', '--admin')
  const ads = { ads: {}, resource_api_version: 'V3' }
  return {
    node: { id: o.nodeId, cluster: o.cluster, ...withMetadata(networkMetadata(o.network)) },
    admin: { address: { socket_address: { address: admin.host, port_value: admin.port } } },
    dynamic_resources: {
      ads_config: {
        api_type: 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: 'shoal_xds' } }],
        set_node_on_first_message_only: true,
      },
      lds_config: ads,
      cds_config: ads,
    },
    static_resources: {
      clusters: [
        {
          name: 'shoal_xds',
          type: 'STATIC',
          connect_timeout: '1s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: {
            cluster_name: 'shoal_xds',
            endpoints: [
              {
                load_balancing_weight: { value: 1 },
                lb_endpoints: [{ endpoint: { address } }],
              },
            ],
          },
        },
      ],
    },
  }
}

/** What a gRPC bootstrap says. */
export interface GrpcBootstrapOptions {
  nodeId: string
  xdsAddress: string
  /**
   * The service this process is (a normalised name): its node says so (`shoal.service`), and it
   * gets the gRFC A36 server Listener template `shoal/server/NAME/%s`, so an `XdsServer` can run.
   */
  service?: string
  /**
   * The agent's `--tls-dir`: certificate providers `shoal-identity` (the service's leaf and key)
   * and `shoal-roots` (the root bundle), `file_watcher` plugins over the files the agent writes
   * to DIR/services/NAME/ (gRFC A29), and node metadata naming them, so the agent serves this
   * process mTLS resources. Needs `service`.
   */
  tlsDir?: string
  /** How often the providers read the files again, in seconds (default 10). */
  refreshSeconds?: number
  /** The Docker network the process runs on (`--network`; absent, '' or `host`: a host's network). */
  network?: string
}

/**
 * The bootstrap JSON for a proxyless gRPC process, grpc-js-xds or C-core (the file named by
 * GRPC_XDS_BOOTSTRAP, or the text in GRPC_XDS_BOOTSTRAP_CONFIG; gRFC A27, A29, A36). Throws
 * SHOAL_ERR_ADDRESS naming `--xds`, or SHOAL_ERR_CONFIG naming `--service`, `--tls-dir` or
 * `--network`.
 *
 * @example
 *   process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(grpcBootstrap({ nodeId: 'app-1', xdsAddress: '127.0.0.1:7776' }))
 *   grpcBootstrap({ nodeId: 'web-1', xdsAddress: '127.0.0.1:7776', service: 'web', tlsDir: '/etc/shoal/tls' })
 *   // + certificate_providers, server_listener_resource_name_template 'shoal/server/web/%s'
 */
export function grpcBootstrap(o: GrpcBootstrapOptions): object {
  checkAddress(o.xdsAddress)
  const doc: Record<string, unknown> = {
    xds_servers: [{ server_uri: o.xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: o.nodeId, locality: {}, ...withMetadata(networkMetadata(o.network)) },
  }
  if (o.service === undefined) {
    if (o.tlsDir !== undefined) throw new ShoalError('SHOAL_ERR_CONFIG', "--tls-dir: needs --service NAME (the identity is a service's)")
    return doc
  }
  if (!/^[a-z0-9._-]{1,128}$/.test(o.service)) {
    throw new ShoalError(
      'SHOAL_ERR_CONFIG',
      `--service: "${o.service}" is not a service name as the agent writes it ([a-z0-9._-], up to 128; names are lower-cased)`,
    )
  }
  const metadata: Record<string, string> = { ...networkMetadata(o.network), [NodeMeta.service]: o.service }
  doc.server_listener_resource_name_template = serverListenerTemplate(o.service)
  if (o.tlsDir !== undefined) {
    const files = leafPaths(o.tlsDir, o.service)
    const refresh_interval = `${o.refreshSeconds ?? 10}s`
    doc.certificate_providers = {
      [CertProvider.identity]: {
        plugin_name: 'file_watcher',
        config: { certificate_file: files.cert, private_key_file: files.key, refresh_interval },
      },
      [CertProvider.roots]: { plugin_name: 'file_watcher', config: { ca_certificate_file: files.bundle, refresh_interval } },
    }
    metadata[NodeMeta.providers] = `${CertProvider.identity},${CertProvider.roots}`
  }
  ;(doc.node as Record<string, unknown>).metadata = metadata
  return doc
}

/**
 * The node metadata that names the client's Docker network (`shoal.network`, read by the
 * agent's resources.ts clientNetworkOf): the agent then gives it the instances' IPs on that
 * network, and host bindings for the others. None for a client on a host's network.
 */
function networkMetadata(network: string | undefined): Record<string, string> {
  if (network === undefined || network === '' || network === 'host') return {}
  if (network.length > RecordLimits.networkName.accept)
    throw new ShoalError(
      'SHOAL_ERR_CONFIG',
      `--network: "${network.slice(0, 40)}…" is ${network.length} characters, at most ${RecordLimits.networkName.accept}`,
    )
  return { 'shoal.network': network }
}

/** A node's `metadata` field, left out when there is none. */
function withMetadata(metadata: Record<string, string>): { metadata?: Record<string, string> } {
  return Object.keys(metadata).length > 0 ? { metadata } : {}
}
