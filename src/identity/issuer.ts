/**
 * The agent's identity issuer: with its node's intermediate (`--tls-dir`), it gives every
 * local service a leaf (an X509-SVID for `spiffe://TRUST_DOMAIN/svc/NAME`), writes the leaf
 * chain, its key and the root bundle to `--tls-dir/services/NAME/`, and renews it at two
 * thirds of its life. No server takes part: the intermediate signs on this host, and the key
 * of each leaf is made here and never leaves it.
 *
 * Rules (and why):
 * - A leaf lives `leafTtlMs` (24 h) but never past the intermediate: a verifier checks every
 *   certificate of the chain at the time of the handshake (RFC 5280 6.1.3), so a longer leaf
 *   would fail anyway. A leaf cut short that way is renewed only by a new intermediate
 *   (renewing it earlier would give it no more life).
 * - notBefore is set back 5 minutes: hosts' clocks are not synchronised, and a peer whose
 *   clock is behind must accept a leaf issued a moment ago.
 * - A leaf's three files are replaced together, as one generation (files.ts); a service that
 *   leaves keeps its files for `removeAfterMs` (60 s), so a container that restarts finds
 *   them in place.
 * - A new intermediate or bundle (the folder is watched; SIGHUP reloads too) re-issues every
 *   leaf, so chains on disk always carry the current intermediate and roots.
 * - A missing, expired or otherwise unusable intermediate is one error line (repeated only
 *   when the problem changes), `shoal_identity_intermediate_valid 0` and a count in
 *   `shoal_identity_intermediate_problems_total{reason}`; a rejected file while a valid
 *   intermediate is loaded keeps the loaded one (a warning).
 */
import { EventEmitter } from 'node:events'
import { watch, type FSWatcher } from 'node:fs'
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Registry } from 'prom-client'
import { RealClock, type Clock, type Timer } from '../clock.js'
import type { Startable } from '../lifecycle.js'
import { INTERNAL_FAULT, logProblem, type Logger } from '../log.js'
import { counter, gauge, histogram } from '../metrics.js'
import { BACKDATE_MS } from './ca.js'
import { loadIntermediate, type Intermediate } from './chain.js'
import { CERT_MODE, KEY_MODE, LEAF_FILES, SERVICES_DIR, leafPaths, nodePaths, writeFileSet } from './files.js'
import { nodeSpiffeIdOf, serviceNameProblem, spiffeIdOf } from './spiffe.js'
import type { IdentityStatus, ServiceIdentity } from './types.js'
import { certificatesPem, createLeaf, generateKeyPair, privateKeyPem } from './x509.js'

export interface IdentityIssuerOptions {
  /** `--tls-dir`: holds intermediate.pem, intermediate-key.pem, bundle.pem; leaves go under services/. */
  dir: string
  /** The SPIFFE trust domain (the cluster name in lower case). */
  trustDomain: string
  /** Leaf lifetime, ms (default 24 h; `--tls-leaf-ttl`). */
  leafTtlMs?: number
  /** How long a service may be gone before its files are removed, ms (default 60 s). */
  removeAfterMs?: number
  /** Retry interval after a failed issuance, and re-check interval of an unusable intermediate, ms (default 30 s). */
  retryMs?: number
  /**
   * The node name: the agent also holds the node's own identity `spiffe://TRUST_DOMAIN/node/NAME`,
   * what the host's Envoy shows on its outbound connections (it serves every local service, so
   * it cannot show one of theirs). Its files go to `--tls-dir/node/`; it is never removed.
   */
  node?: string
}

export interface IdentityIssuerComponents {
  logger: Logger
  clock?: Clock
  registry?: Registry
}

export interface IdentityIssuerEvents {
  /** A leaf was issued or renewed and its files written. */
  change: [identity: ServiceIdentity]
  /** A service's leaf and files were removed (it left this host). */
  removed: [service: string]
}

export const DEFAULT_LEAF_TTL_MS = 24 * 3_600_000
/** The node identity's entry key starts so: no service name contains a colon. */
const NODE_KEY_PREFIX = 'node:'
/** Renewal at two thirds of a leaf's life: a third of it is left to retry in. */
const RENEW_AT = 2 / 3

interface Entry {
  /** The service name, or `node:NAME` for the node identity (a key no service name can be). */
  name: string
  /** A local service of this name runs now. */
  wanted: boolean
  identity?: ServiceIdentity
  /** The intermediate generation that signed `identity`. */
  generation?: number
  renewTimer?: Timer
  removeTimer?: Timer
}

/**
 * @example
 *   const issuer = new IdentityIssuer({ dir: '/etc/shoal/tls', trustDomain: 'prod' }, { logger, registry })
 *   await issuer.start()
 *   issuer.setServices(['web', 'api'])   // leaves appear in /etc/shoal/tls/services/{web,api}/
 *   await issuer.stop()                  // files stay: the services keep using them
 */
export class IdentityIssuer extends EventEmitter<IdentityIssuerEvents> implements Startable {
  private readonly dir: string
  private readonly trustDomain: string
  private readonly leafTtlMs: number
  private readonly removeAfterMs: number
  private readonly retryMs: number
  private readonly log: Logger
  private readonly clock: Clock
  private readonly entries = new Map<string, Entry>()
  private readonly pending = new Set<string>()
  private intermediate?: Intermediate
  private generation = 0
  private problem?: { reason: string; message: string }
  /** The last problem logged, so one problem is one line. */
  private logged?: string
  private reloadWanted = false
  private loop?: Promise<void>
  private watcher?: FSWatcher
  private debounce?: Timer
  private retryTimer?: Timer
  private expiryTimer?: Timer
  private badNames = new Set<string>()
  /** The node identity's entry key, when there is one. */
  private readonly nodeKey: string | undefined
  private readonly node: string | undefined
  private started = false
  private stopped = false
  private readonly m: ReturnType<typeof identityMetrics>

  constructor(opts: IdentityIssuerOptions, components: IdentityIssuerComponents) {
    super()
    this.dir = opts.dir
    this.trustDomain = opts.trustDomain
    this.leafTtlMs = opts.leafTtlMs ?? DEFAULT_LEAF_TTL_MS
    this.removeAfterMs = opts.removeAfterMs ?? 60_000
    this.retryMs = opts.retryMs ?? 30_000
    this.log = components.logger.child({ component: 'identity' })
    this.clock = components.clock ?? new RealClock()
    this.m = identityMetrics(components.registry)
    this.node = opts.node
    this.nodeKey = opts.node === undefined ? undefined : `${NODE_KEY_PREFIX}${opts.node}`
    if (this.nodeKey !== undefined) {
      this.entries.set(this.nodeKey, { name: this.nodeKey, wanted: true })
      this.pending.add(this.nodeKey)
    }
  }

  /** Reads the services folder left by an earlier run and the intermediate, and watches the folder. */
  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    await this.adoptLeftovers()
    this.reloadWanted = true
    this.kick()
    await this.settled()
    this.watchDir()
  }

  /** Stops timers and the folder watch, after the leaf being written (if any). The files stay. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.watcher?.close()
    // The leaf being written finishes first; its timers are cancelled with the rest.
    await this.settled()
    for (const t of [this.debounce, this.retryTimer, this.expiryTimer]) t?.cancel()
    for (const e of this.entries.values()) this.cancelTimers(e)
  }

  /**
   * The names of the services running on this host now (the whole set). New names get a
   * leaf; names gone keep theirs for `removeAfterMs`, then lose it and its files.
   */
  setServices(names: Iterable<string>): void {
    if (this.stopped) return
    const want = new Set<string>()
    for (const n of names) {
      const bad = serviceNameProblem(n)
      if (bad === undefined) want.add(n)
      else if (!this.badNames.has(n)) {
        this.badNames.add(n)
        this.m.failures.inc({ reason: 'name' })
        logProblem(
          this.log,
          'error',
          { what: `no identity for service "${n}": ${bad}`, input: n, fix: 'rename the service (its name is part of its SPIFFE id)' },
          { service: n },
        )
      }
    }
    for (const name of want) {
      const e = this.entries.get(name)
      if (e === undefined) this.entries.set(name, { name, wanted: true })
      else if (e.wanted) continue
      else {
        e.wanted = true
        e.removeTimer?.cancel()
        e.removeTimer = undefined
      }
      this.pending.add(name)
    }
    for (const e of this.entries.values()) {
      if (!e.wanted || want.has(e.name) || e.name === this.nodeKey) continue
      e.wanted = false
      // The renewal timer stays: a service back within the grace period keeps its schedule.
      this.scheduleRemoval(e)
    }
    this.kick()
  }

  /** The identity of a local service, when it has one. */
  identity(service: string): ServiceIdentity | undefined {
    return this.entries.get(service)?.identity
  }

  /** The node's own identity (`spiffe://TRUST_DOMAIN/node/NAME`, with the `node` option), when issued. */
  nodeIdentity(): ServiceIdentity | undefined {
    return this.nodeKey === undefined ? undefined : this.entries.get(this.nodeKey)?.identity
  }

  /** Every service identity held (not the node's), sorted by service. */
  identities(): ServiceIdentity[] {
    return [...this.entries.values()]
      .flatMap((e) => (e.identity && e.name !== this.nodeKey ? [e.identity] : []))
      .sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0))
  }

  status(): IdentityStatus {
    const s: IdentityStatus = { trustDomain: this.trustDomain, services: this.identities().map((i) => i.service) }
    const i = this.intermediate
    if (i) s.intermediate = { subject: i.cert.subject, notAfter: i.cert.notAfter.getTime(), fingerprint: i.cert.fingerprint }
    if (this.problem) s.problem = { ...this.problem }
    return s
  }

  /** Re-reads the intermediate (SIGHUP); resolves when the reload and the issuance it causes are done. */
  reload(): Promise<void> {
    if (this.stopped) return Promise.resolve()
    this.reloadWanted = true
    this.kick()
    return this.settled()
  }

  /** Resolves when no work is queued or running (for tests and benches). */
  async settled(): Promise<void> {
    while (this.loop) await this.loop
  }

  // ---- the work loop: one thing at a time, reloads before leaves --------------------

  private enqueue(name: string): void {
    this.pending.add(name)
    this.kick()
  }

  private kick(): void {
    if (this.loop || this.stopped || (!this.reloadWanted && this.pending.size === 0)) return
    this.loop = (async () => {
      // Yield first, so `this.loop` is assigned before the finally below can clear it.
      await Promise.resolve()
      try {
        for (;;) {
          if (this.stopped) return
          const reload = this.reloadWanted
          this.reloadWanted = false
          const next = reload ? undefined : this.pending.values().next()
          if (next?.done) return
          if (next) this.pending.delete(next.value)
          try {
            if (reload) await this.doReload()
            else await this.reconcile(next!.value)
          } catch (err) {
            // A bug, not bad input (that is handled where it is read): logged, and the loop goes on.
            this.m.failures.inc({ reason: 'internal' })
            logProblem(
              this.log,
              'error',
              { what: `identity work failed (${(err as Error).message})`, input: next?.value ?? this.dir, fix: INTERNAL_FAULT },
              { err, service: next?.value },
            )
          }
        }
      } finally {
        this.loop = undefined
      }
    })()
  }

  private async reconcile(name: string): Promise<void> {
    const e = this.entries.get(name)
    if (e === undefined) return
    if (!e.wanted) {
      if (e.removeTimer === undefined) await this.remove(e)
      return
    }
    // Without an intermediate the service waits: a new one queues every service.
    if (this.intermediate === undefined) return
    const fresh =
      e.identity !== undefined &&
      e.generation === this.generation &&
      (e.identity.renewAt === undefined || this.clock.wallNow() < e.identity.renewAt)
    if (!fresh) return this.issue(e, this.intermediate)
    if (e.renewTimer === undefined) this.scheduleRenewal(e)
  }

  private async issue(e: Entry, inter: Intermediate): Promise<void> {
    const reason = e.identity === undefined ? 'new' : e.generation === this.generation ? 'renewal' : 'new-intermediate'
    const t0 = performance.now()
    const now = this.clock.wallNow()
    const interEnd = inter.cert.notAfter.getTime()
    const notAfter = Math.min(now + this.leafTtlMs, interEnd)
    const notBefore = Math.max(now - BACKDATE_MS, inter.cert.notBefore.getTime())
    const isNode = e.name === this.nodeKey
    const spiffeId = isNode ? nodeSpiffeIdOf(this.trustDomain, this.node!) : spiffeIdOf(this.trustDomain, e.name)
    const paths = isNode ? nodePaths(this.dir) : leafPaths(this.dir, e.name)
    let stage = 'sign'
    try {
      const keys = await generateKeyPair()
      const der = await createLeaf({
        trustDomain: this.trustDomain,
        service: isNode ? this.node! : e.name,
        spiffeId,
        publicKey: keys.publicKey,
        issuer: { der: inter.cert.der, key: inter.key },
        notBefore: new Date(notBefore),
        notAfter: new Date(notAfter),
      })
      const keyPem = await privateKeyPem(keys.privateKey)
      const certChainPem = certificatesPem([der, inter.cert.der])
      stage = 'write'
      // One generation: a reader never gets this key with the previous certificate (files.ts).
      await writeFileSet(paths.dir, [
        { name: LEAF_FILES.key, data: keyPem, mode: KEY_MODE },
        { name: LEAF_FILES.cert, data: certChainPem, mode: CERT_MODE },
        { name: LEAF_FILES.bundle, data: inter.bundlePem, mode: CERT_MODE },
      ])
      const cut = notAfter < now + this.leafTtlMs
      const identity: ServiceIdentity = {
        service: e.name,
        ...(isNode ? { node: this.node } : {}),
        spiffeId,
        certChainPem,
        keyPem,
        bundlePem: inter.bundlePem,
        notBefore,
        notAfter,
        issuedAt: now,
        renewAt: cut ? undefined : now + Math.round((notAfter - now) * RENEW_AT),
        files: { cert: paths.cert, key: paths.key, bundle: paths.bundle },
      }
      e.identity = identity
      e.generation = this.generation
      this.scheduleRenewal(e)
      this.m.seconds.observe((performance.now() - t0) / 1000)
      this.m.issued.inc({ reason })
      this.m.leafExpiry.set({ service: e.name }, Math.floor(notAfter / 1000))
      this.countLeaves()
      const fields = { service: e.name, spiffeId, notAfter: new Date(notAfter).toISOString(), reason }
      if (reason === 'renewal') this.log.debug(fields, 'leaf renewed')
      else this.log.info(fields, 'leaf issued')
      if (cut) {
        logProblem(
          this.log,
          'warn',
          {
            what: `leaf of ${e.name} cut to the intermediate's end (${inter.cert.notAfter.toISOString()})`,
            input: this.dir,
            fix: `renew the intermediate with \`shoal ca intermediate\` into ${this.dir}`,
          },
          { service: e.name, intermediateNotAfter: inter.cert.notAfter.toISOString() },
        )
      }
      this.emit('change', identity)
    } catch (err) {
      this.m.failures.inc({ reason: stage })
      logProblem(
        this.log,
        'error',
        stage === 'write'
          ? {
              what: `cannot write the leaf's files of ${e.name} in ${paths.dir} (${(err as Error).message})`,
              input: paths.dir,
              fix: `make the folder writable by the agent; retrying in ${this.retryMs / 1000} s`,
            }
          : {
              what: `cannot sign a leaf for ${e.name} (${(err as Error).message})`,
              input: this.dir,
              fix: `check the intermediate in ${this.dir} (\`shoal ca inspect\`); retrying in ${this.retryMs / 1000} s`,
            },
        { service: e.name, err: (err as Error).message, dir: paths.dir },
      )
      e.renewTimer?.cancel()
      e.renewTimer = this.clock.setTimer(this.retryMs, () => {
        e.renewTimer = undefined
        this.enqueue(e.name)
      })
    }
  }

  private async remove(e: Entry): Promise<void> {
    this.cancelTimers(e)
    this.entries.delete(e.name)
    const dir = leafPaths(this.dir, e.name).dir
    try {
      await rm(dir, { recursive: true, force: true })
    } catch (err) {
      logProblem(
        this.log,
        'warn',
        {
          what: `cannot remove the identity files of departed service ${e.name} in ${dir} (${(err as Error).message})`,
          input: dir,
          fix: 'remove the folder by hand; the agent no longer renews it',
        },
        { service: e.name, dir, err: (err as Error).message },
      )
    }
    this.m.leafExpiry.remove({ service: e.name })
    this.countLeaves()
    if (e.identity) this.log.info({ service: e.name }, 'service gone: its leaf and files removed')
    this.emit('removed', e.name)
  }

  /** Renewal at the identity's renewAt (none for a leaf that ends with its intermediate). */
  private scheduleRenewal(e: Entry): void {
    e.renewTimer?.cancel()
    e.renewTimer = undefined
    const renewAt = e.identity?.renewAt
    if (renewAt === undefined) return
    // From the time now, not the time the issuance began: signing and writing take a while.
    e.renewTimer = this.clock.setTimer(renewAt - this.clock.wallNow(), () => {
      e.renewTimer = undefined
      this.enqueue(e.name)
    })
  }

  /** The entry's files go after `removeAfterMs` unless its service comes back first. */
  private scheduleRemoval(e: Entry): void {
    e.removeTimer?.cancel()
    e.removeTimer = this.clock.setTimer(this.removeAfterMs, () => {
      e.removeTimer = undefined
      this.enqueue(e.name)
    })
  }

  private cancelTimers(e: Entry): void {
    e.renewTimer?.cancel()
    e.renewTimer = undefined
    e.removeTimer?.cancel()
    e.removeTimer = undefined
  }

  private countLeaves(): void {
    let n = 0
    for (const e of this.entries.values()) if (e.identity && e.name !== this.nodeKey) n++
    this.m.leaves.set(n)
  }

  // ---- the intermediate ----------------------------------------------------------

  private async doReload(): Promise<void> {
    const now = this.clock.wallNow()
    const r = await loadIntermediate(this.dir, this.trustDomain, now)
    this.retryTimer?.cancel()
    this.retryTimer = undefined
    if (r.ok) {
      const prev = this.intermediate
      const next = r.intermediate
      this.intermediate = next
      this.problem = undefined
      this.logged = undefined
      this.m.valid.set(1)
      this.m.expiry.set(Math.floor(next.cert.notAfter.getTime() / 1000))
      if (prev && prev.cert.fingerprint === next.cert.fingerprint && prev.bundlePem === next.bundlePem) return
      this.generation++
      this.expiryTimer?.cancel()
      this.expiryTimer = this.clock.setTimer(next.cert.notAfter.getTime() - this.clock.wallNow(), () => this.requestReload())
      this.log.info(
        { subject: next.cert.subject, notAfter: next.cert.notAfter.toISOString(), sha256: next.cert.fingerprint.slice(0, 16) },
        'intermediate loaded',
      )
      for (const e of this.entries.values()) if (e.wanted) this.pending.add(e.name)
      return
    }
    const key = `${r.reason}:${r.message}`
    const held = this.intermediate
    const keep = held !== undefined && now < held.cert.notAfter.getTime()
    this.problem = { reason: r.reason, message: r.message }
    if (!keep) {
      this.intermediate = undefined
      this.m.valid.set(0)
      this.m.expiry.set(0)
    }
    if (this.logged !== key) {
      this.logged = key
      this.m.problems.inc({ reason: r.reason })
      if (keep)
        logProblem(
          this.log,
          'warn',
          {
            what: r.message,
            input: this.dir,
            fix: `keeping the intermediate loaded before (valid until ${held.cert.notAfter.toISOString()}); put a valid one there (\`shoal ca intermediate\`)`,
          },
          { reason: r.reason, dir: this.dir },
        )
      else
        logProblem(
          this.log,
          'error',
          {
            what: r.message,
            input: this.dir,
            fix: 'local services get no new identity until then; put a valid intermediate there (`shoal ca intermediate`)',
          },
          { reason: r.reason, dir: this.dir },
        )
    }
    // File watches can miss changes (network file systems): look again later.
    this.retryTimer = this.clock.setTimer(this.retryMs, () => this.requestReload())
  }

  private requestReload(): void {
    this.reloadWanted = true
    this.kick()
  }

  private watchDir(): void {
    if (this.stopped) return
    try {
      // The folder, not the files: tools (ours, a Kubernetes secret) replace files by rename.
      this.watcher = watch(this.dir, { persistent: false }, (_ev, name) => {
        if (name !== null && name.toString() === SERVICES_DIR) return
        this.debounce?.cancel()
        this.debounce = this.clock.setTimer(100, () => this.requestReload())
      })
      this.watcher.on('error', (err) => this.cannotWatch(err))
    } catch (err) {
      this.cannotWatch(err as Error)
    }
  }

  private cannotWatch(err: Error): void {
    logProblem(
      this.log,
      'warn',
      {
        what: `cannot watch the TLS folder ${this.dir} (${err.message})`,
        input: this.dir,
        fix: 'send the agent SIGHUP after changing the intermediate (it also looks again every retry interval)',
      },
      { dir: this.dir, err: err.message },
    )
  }

  /** Leaf folders of an earlier run: kept for `removeAfterMs` in case their services are still here. */
  private async adoptLeftovers(): Promise<void> {
    let names: string[]
    try {
      names = (await readdir(join(this.dir, SERVICES_DIR), { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name)
    } catch {
      return
    }
    for (const name of names) {
      if (serviceNameProblem(name) !== undefined || this.entries.has(name)) continue
      const e: Entry = { name, wanted: false }
      this.scheduleRemoval(e)
      this.entries.set(name, e)
    }
  }
}

/** The issuer's metrics (get-or-create: a restarted issuer keeps counting on the same series). */
function identityMetrics(r: Registry | undefined) {
  const m = {
    valid: gauge(r, { name: 'shoal_identity_intermediate_valid', help: '1 while a usable intermediate signs leaves, else 0.' }),
    expiry: gauge(r, {
      name: 'shoal_identity_intermediate_expiry_timestamp_seconds',
      help: "The intermediate's notAfter, Unix seconds (0 without one).",
    }),
    problems: counter(r, {
      name: 'shoal_identity_intermediate_problems_total',
      help: 'Times the intermediate in --tls-dir was found unusable (once per distinct problem), by reason.',
      labelNames: ['reason'],
    }),
    leaves: gauge(r, { name: 'shoal_identity_leaves', help: 'Local services holding a leaf.' }),
    issued: counter(r, {
      name: 'shoal_identity_leaves_issued_total',
      help: 'Leaves issued, by reason (new, renewal, new-intermediate).',
      labelNames: ['reason'],
    }),
    failures: counter(r, {
      name: 'shoal_identity_leaf_failures_total',
      help: 'Leaves that could not be issued, by stage (name, sign, write, internal).',
      labelNames: ['reason'],
    }),
    seconds: histogram(r, {
      name: 'shoal_identity_issue_seconds',
      help: 'Time to issue one leaf: key, signature and three files.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    }),
    leafExpiry: gauge(r, {
      name: 'shoal_identity_leaf_expiry_timestamp_seconds',
      help: "Each local service's leaf notAfter, Unix seconds.",
      labelNames: ['service'],
    }),
  }
  // The known reasons from the start, at zero (Prometheus's instrumentation guide).
  for (const reason of ['new', 'renewal', 'new-intermediate']) m.issued.inc({ reason }, 0)
  for (const reason of ['name', 'sign', 'write', 'internal']) m.failures.inc({ reason }, 0)
  return m
}
