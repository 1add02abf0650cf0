/**
 * Reading the authorization filters of served Listeners back, for the external authorization
 * tests: the filters of a decoded Listener (HCM http filters, or network filters) with each
 * typed_config decoded by its own type, and a record that asks for authorization.
 *
 * @example
 *   const f = listenerFilters(decodedListener)   // [{ name: 'envoy.filters.http.ext_authz', type: '...ExtAuthz', config: {...} }, ...]
 */
import { DECODE_OPTIONS, ExtUrl, loadXdsProtos, TypeUrl, type PackedAny } from '../../src/xds/protos.js'
import type { ServedResource } from '../../src/xds/snapshot.js'
import type { ServiceRecord } from '../../src/registry/types.js'

export interface DecodedFilter {
  name: string
  type: string
  config: Record<string, any>
}

function decodeAny(any: { type_url: string; value: Uint8Array }): Record<string, any> {
  const T = loadXdsProtos().typeOf(any.type_url)
  if (!T) throw new Error(`type ${any.type_url} is not loaded`)
  return T.toObject(T.decode(any.value), DECODE_OPTIONS)
}

/** A served resource decoded as a plain object (keepCase). */
export function decodeServed(r: ServedResource | PackedAny): Record<string, any> {
  return decodeAny('any' in r ? r.any : r)
}

/**
 * The filters of a decoded Listener, in order: for an HttpConnectionManager (socket or api
 * listener) its http filters, else its network filters; each typed_config decoded.
 */
export function listenerFilters(listener: Record<string, any>): DecodedFilter[] {
  const chain = listener.filter_chains?.[0]?.filters ?? []
  const hcmAny = listener.api_listener?.api_listener ?? chain.find((f: any) => f.typed_config?.type_url === ExtUrl.hcm)?.typed_config
  const filters = hcmAny ? (decodeAny(hcmAny).http_filters ?? []) : chain
  return filters.map((f: any) => ({
    name: f.name,
    type: f.typed_config?.type_url ?? '',
    config: f.typed_config ? decodeAny(f.typed_config) : {},
  }))
}

/** The filters of a built Listener object as Envoy reads it: packed, decoded, then listenerFilters. */
export function builtListenerFilters(listener: object): DecodedFilter[] {
  const protos = loadXdsProtos()
  const L = protos.typeOf(TypeUrl.listener)!
  return listenerFilters(L.toObject(L.decode(protos.pack(TypeUrl.listener, listener).value), DECODE_OPTIONS))
}

/** The Cluster an ext_authz filter calls, or null. */
export function extAuthzCluster(filters: DecodedFilter[]): string | null {
  const f = filters.find((x) => x.type === ExtUrl.extAuthzHttp || x.type === ExtUrl.extAuthzNetwork)
  return f ? (f.config.grpc_service?.envoy_grpc?.cluster_name ?? '') : null
}

/** The filters include an RBAC filter whose rules are present with no policy: Envoy denies everything. */
export function deniesAll(filters: DecodedFilter[]): boolean {
  return filters.some(
    (x) =>
      (x.type === ExtUrl.rbacHttp || x.type === ExtUrl.rbacNetwork) &&
      x.config.rules &&
      Object.keys(x.config.rules.policies ?? {}).length === 0,
  )
}

/** `r` asking for authorization by `target` (`shoal.authz`), with optional failure_mode_allow and timeout labels. */
export function protect(r: ServiceRecord, target: string, opts: { allow?: boolean; timeout?: string } = {}): ServiceRecord {
  const labels: Record<string, string> = { ...r.labels, 'shoal.authz': target }
  if (opts.allow !== undefined) labels['shoal.authz.failure_mode_allow'] = String(opts.allow)
  if (opts.timeout !== undefined) labels['shoal.authz.timeout'] = opts.timeout
  return { ...r, labels }
}
