/**
 * Bootstrap documents that point a client at the agent's ADS server
 * (`shoal envoy-bootstrap`, `shoal grpc-bootstrap`).
 */
import { parseHostPort } from '../address.js'
import { ShoalError } from '../errors.js'
import { RecordLimits } from '../registry/index.js'

/** An address a bootstrap names; `flag` (the CLI flag that sets it) in errors. */
function checkAddress(address: string, flag = '--xds'): { host: string; port: number } {
  return parseHostPort(address, flag)
}

/**
 * An Envoy v3 bootstrap: node id and cluster, LDS and CDS over ADS (gRPC) from the agent,
 * and the admin listener (default 127.0.0.1:9901; Prometheus scrapes its /stats/prometheus).
 * Throws SHOAL_ERR_ADDRESS naming `--xds` or `--admin`.
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
}): object {
  const { host, port } = checkAddress(o.xdsAddress)
  const admin = checkAddress(o.adminAddress ?? '127.0.0.1:9901', '--admin')
  const ads = { ads: {}, resource_api_version: 'V3' }
  return {
    node: { id: o.nodeId, cluster: o.cluster, ...networkMetadata(o.network) },
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
                lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }],
              },
            ],
          },
        },
      ],
    },
  }
}

/**
 * The bootstrap JSON for proxyless gRPC clients (gRFC A27: a file named by GRPC_XDS_BOOTSTRAP,
 * or the text in GRPC_XDS_BOOTSTRAP_CONFIG), read by grpc-js-xds and gRPC C-core alike.
 *
 * @example
 *   process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(grpcBootstrap({ nodeId: 'app-1', xdsAddress: '127.0.0.1:7776' }))
 */
export function grpcBootstrap(o: { nodeId: string; xdsAddress: string; network?: string }): object {
  checkAddress(o.xdsAddress)
  return {
    xds_servers: [{ server_uri: o.xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: o.nodeId, locality: {}, ...networkMetadata(o.network) },
  }
}

/**
 * The node metadata that names the client's Docker network (`shoal.network`, read by the
 * agent's resources.ts clientNetworkOf): the agent then gives it the instances' IPs on that
 * network, and host bindings for the others. None for a client on a host's network.
 */
function networkMetadata(network: string | undefined): { metadata?: Record<string, string> } {
  if (network === undefined || network === '' || network === 'host') return {}
  if (network.length > RecordLimits.networkName.accept)
    throw new ShoalError(
      'SHOAL_ERR_CONFIG',
      `--network: "${network.slice(0, 40)}…" is ${network.length} characters, at most ${RecordLimits.networkName.accept}`,
    )
  return { metadata: { 'shoal.network': network } }
}
