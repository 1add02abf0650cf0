/**
 * The resources of the local Envoy's mTLS form that no ServicePort group yields: the inbound
 * Listeners and local Clusters of this host's instances (from its records and their
 * `shoal.inbound` labels), and the Secrets (from the identities this agent holds). They are
 * kept as immutable maps, replaced when an input changes (`epoch` rises), and merged into the
 * Envoy mTLS snapshot by the server.
 *
 * Rules (README, mTLS between Envoy sidecars):
 * - an inbound Listener is served only while its service's Secret is (Envoy would wait for a
 *   Secret no one sends), and its local Cluster with it;
 * - who may call an instance: with an allow-list (`shoal.allow`), the Envoys of the hosts that
 *   run an allowed service (a host's Envoy shows the node's identity, not a service's); without
 *   one, any node of the trust domain under `strict`, and no RBAC filter under `permissive`
 *   (the TLS chain requires a certificate of the roots anyway);
 * - a Secret that holds a key is marked (`keySecrets`): it is never served over TCP.
 */
import type { Counter } from 'prom-client'
import { logProblem, type Logger } from '../log.js'
import type { ServiceIdentity } from '../identity/names.js'
import { ALLOW_LABEL, INBOUND_LABEL, hostBinding, liveRecordsOf, type CatalogSnapshot, type ServiceRecord } from '../registry/types.js'
import {
  inboundListener,
  inboundName,
  localCluster,
  localClusterName,
  rootsSecret,
  SecretName,
  tlsCertificateSecret,
  type InboundCallers,
  type InboundSpec,
} from './envoy-tls.js'
import { parseInboundLabel } from './inbound-label.js'
import { TypeUrl, type XdsProtos } from './protos.js'
import { contentHash, servedResource, type ServedResource } from './snapshot.js'
import { invalidResource, validateResource } from './validate.js'

const SERVICE_NAME = /^[a-z0-9._-]{1,128}$/

export interface EnvoyExtrasOptions {
  trustDomain: string
  /** This agent's node name: its records get inbound Listeners, its identity is `shoal/node/NODE`. */
  node: string
  strict: boolean
  connectTimeoutMs?: number
}

export interface EnvoyExtrasComponents {
  protos: XdsProtos
  log: Logger
  /** Counts a resource that failed validation (by type label). */
  invalid: Counter
  /** Counts a record whose `shoal.inbound` does not read (once per record version and value). */
  badInbound: Counter
}

/** What the merge takes: each map replaced, never mutated, when it changes. */
export interface EnvoyExtraMaps {
  listeners: Map<string, ServedResource>
  clusters: Map<string, ServedResource>
  secrets: Map<string, ServedResource>
}

export class EnvoyExtras {
  /** Raised whenever one of the maps is replaced. */
  epoch = 0
  maps: EnvoyExtraMaps = { listeners: new Map(), clusters: new Map(), secrets: new Map() }
  private readonly identities = new Map<string, ServiceIdentity>()
  private node: ServiceIdentity | undefined
  private specs: InboundSpec[] = []
  private readonly cache = new Map<string, ServedResource | null>()
  /** Records whose `shoal.inbound` was checked (records are immutable: a change is a new object). */
  private readonly checked = new WeakSet<ServiceRecord>()
  /** `host|id|value` of bad labels already reported. */
  private readonly reported = new Set<string>()

  constructor(
    private readonly opts: EnvoyExtrasOptions,
    private readonly c: EnvoyExtrasComponents,
  ) {}

  /** The node identity and the roots are there: the Envoy mTLS form can be served whole. */
  get ready(): boolean {
    return this.node !== undefined
  }

  /** A local service's identity was issued or renewed (`node` set: the node's own). */
  setIdentity(id: ServiceIdentity): void {
    if (id.node !== undefined) this.node = id
    else this.identities.set(id.service, id)
    this.rebuild()
  }

  removeIdentity(service: string): void {
    if (this.identities.delete(service)) this.rebuild()
  }

  /** Read this host's instances with an inbound address, and who may call them, from a catalog snapshot. */
  update(snap: CatalogSnapshot): void {
    this.checkLabels(snap)
    const local = snap.hosts.find((h) => h.name === this.opts.node)
    const specs: InboundSpec[] = []
    if (local) {
      let hostsOf: Map<string, Set<string>> | undefined
      for (const r of liveRecordsOf(local)) {
        const inbound = parseInboundLabel(r.labels[INBOUND_LABEL])
        if (inbound.size === 0) continue
        if (r.labels[ALLOW_LABEL] !== undefined) hostsOf ??= hostsByService(snap)
        const callers = this.callers(r, hostsOf)
        for (const p of r.ports) {
          const at = p.type === 'tcp' ? inbound.get(p.servicePort) : undefined
          // The inbound Listener forwards to the host binding: a port published on no host address has none to forward to.
          const target = hostBinding(p)
          if (!at || !target) continue
          specs.push({
            id: r.id,
            service: r.name,
            servicePort: p.servicePort,
            target,
            inbound: at,
            plainToo: !this.opts.strict,
            callers,
            connectTimeoutMs: this.opts.connectTimeoutMs,
          })
        }
      }
    }
    if (JSON.stringify(specs) === JSON.stringify(this.specs)) return
    this.specs = specs
    this.rebuild()
  }

  /**
   * A `shoal.inbound` that does not read (the owner agent writes it: a peer of another release,
   * or a bug) leaves those ServicePorts without an inbound address: reached in plain text under
   * permissive, left out under strict. Each is logged once and counted.
   */
  private checkLabels(snap: CatalogSnapshot): void {
    for (const h of snap.hosts) {
      for (const r of liveRecordsOf(h)) {
        if (this.checked.has(r)) continue
        this.checked.add(r)
        const value = r.labels[INBOUND_LABEL]
        if (value === undefined) continue
        const bad: string[] = []
        parseInboundLabel(value, bad)
        const key = `${r.host}|${r.id}|${value}`
        if (bad.length === 0 || this.reported.has(key)) continue
        this.reported.add(key)
        this.c.badInbound.inc()
        logProblem(
          this.c.log,
          'warn',
          {
            what: `${r.host}/${r.id}: label ${INBOUND_LABEL}="${value}" does not read (${bad.join(', ')} is not SERVICEPORT=IP:PORT): those ServicePorts have no inbound mTLS address (${
              this.opts.strict ? 'left out under strict' : 'reached in plain text'
            })`,
            input: `${r.host}/${r.id}`,
            fix: "check that host's agent (its release and --inbound-ports)",
          },
          { host: r.host, id: r.id, service: r.name, label: INBOUND_LABEL, value, bad },
        )
      }
    }
  }

  private callers(r: ServiceRecord, hostsOf: Map<string, Set<string>> | undefined): InboundCallers | undefined {
    const raw = r.labels[ALLOW_LABEL]
    if (raw === undefined) return this.opts.strict ? { trustDomain: this.opts.trustDomain } : undefined
    const nodes = new Set<string>()
    // Bad entries are reported where the gRPC Listener reads the same label (server-listeners.ts): left out here too.
    for (const name of raw.split(',').map((s) => s.trim()))
      if (SERVICE_NAME.test(name)) for (const h of hostsOf?.get(name) ?? []) nodes.add(h)
    return { trustDomain: this.opts.trustDomain, nodes: [...nodes].sort() }
  }

  private rebuild(): void {
    const secrets = new Map<string, ServedResource>()
    const listeners = new Map<string, ServedResource>()
    const clusters = new Map<string, ServedResource>()
    const bundle = this.node?.bundlePem ?? this.identities.values().next().value?.bundlePem
    if (bundle !== undefined) this.put(secrets, TypeUrl.secret, SecretName.roots, rootsSecret(bundle))
    if (this.node)
      this.put(
        secrets,
        TypeUrl.secret,
        SecretName.node(this.opts.node),
        tlsCertificateSecret(SecretName.node(this.opts.node), this.node.certChainPem, this.node.keyPem),
      )
    for (const id of this.identities.values()) {
      const name = SecretName.service(id.service)
      this.put(secrets, TypeUrl.secret, name, tlsCertificateSecret(name, id.certChainPem, id.keyPem))
    }
    for (const s of this.specs) {
      // A Listener naming a Secret that is not served would wait for it for ever.
      if (!secrets.has(SecretName.service(s.service)) || !secrets.has(SecretName.roots)) continue
      if (this.put(listeners, TypeUrl.listener, inboundName(s.id, s.servicePort), inboundListener(s)))
        this.put(clusters, TypeUrl.cluster, localClusterName(s.id, s.servicePort), localCluster(s))
    }
    const same = (a: Map<string, ServedResource>, b: Map<string, ServedResource>) =>
      a.size === b.size && [...a].every(([k, v]) => b.get(k) === v)
    if (same(secrets, this.maps.secrets) && same(listeners, this.maps.listeners) && same(clusters, this.maps.clusters)) return
    this.maps = { listeners, clusters, secrets }
    this.epoch++
    // Names no longer built are dropped from the cache.
    const live = new Set([...secrets.values(), ...listeners.values(), ...clusters.values()])
    for (const [k, v] of this.cache) if (v && !live.has(v)) this.cache.delete(k)
  }

  /** Validate, pack and add one resource (cached by content); false when it is invalid (logged, counted). */
  private put(into: Map<string, ServedResource>, typeUrl: string, name: string, obj: object): boolean {
    const key = `${typeUrl}|${name}|${contentHash(JSON.stringify(obj))}`
    let res = this.cache.get(key)
    if (res === undefined) {
      const errors = validateResource(this.c.protos, typeUrl, obj)
      if (errors.length) {
        const type = typeUrl === TypeUrl.secret ? 'sds' : typeUrl === TypeUrl.listener ? 'lds' : 'cds'
        this.c.invalid.inc({ type })
        // A Secret's errors never quote its content (it may hold a key).
        const shown = type === 'sds' ? errors.map((e) => e.split(':')[0]!) : errors
        logProblem(this.c.log, 'warn', invalidResource(type, name, shown), { type, resource: name, errors: shown })
        res = null
      } else res = servedResource(typeUrl, name, this.c.protos.pack(typeUrl, obj).value)
      this.cache.set(key, res)
    }
    if (res) into.set(name, res)
    return res !== null
  }
}

/** Live hosts by the services they run. */
function hostsByService(snap: CatalogSnapshot): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const h of snap.hosts) {
    for (const r of liveRecordsOf(h)) {
      let s = out.get(r.name)
      if (!s) out.set(r.name, (s = new Set()))
      s.add(h.name)
    }
  }
  return out
}
