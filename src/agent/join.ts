/**
 * Saying why gossip does not connect, on both ends (issue "Say why", item 1):
 *
 * - the joining agent: a warning per seed and round of `--join` that failed, naming the seed,
 *   the reason and what to do, repeated with the join's backoff while it lasts; `/readyz`
 *   answers 503 with the reason until a seed has answered (or a peer joined us);
 * - the receiving agent: a warning naming the sender's address and the reason for traffic it
 *   cannot open, at most one per sender and reason a minute.
 *
 * The counts per reason are the gossip layer's (`shoal_gossip_join_failures_total`,
 * `shoal_gossip_rejected_total`); the words and the flags to fix are the agent's, here.
 */
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { formatHostPort, type HostPort } from '../address.js'
import type { Clock } from '../clock.js'
import { ShoalError } from '../errors.js'
import { LogLimiter, logProblem, type Logger } from '../log.js'
import type { JoinAttempt, JoinFailureReason, Rejection, RejectReason, SeedFailure } from '../gossip/index.js'

/** What to do about a seed that failed for each reason, said to the joining agent's operator. */
function joinAdvice(reason: JoinFailureReason, cluster: string): string {
  switch (reason) {
    case 'label':
      return `every agent of a cluster needs the same --cluster (this agent has "${cluster}")`
    case 'key':
      return 'every agent needs the key the others seal with: the same lines in --key-file (or --key); in a rotation, add a key everywhere before making it first'
    case 'plain':
      return "this agent has no gossip key: give it the cluster's key with --key-file or --key"
    case 'encrypted':
      return "the seed has no gossip key: give it this agent's key, or drop --key/--key-file here"
    case 'version':
      return 'run the same Shoal version on every agent'
    case 'malformed':
      return "check that the seed's address is a Shoal gossip port (its --bind), not an xDS or HTTP port"
    case 'refused':
      return "check the address, and that the seed's agent runs with --bind on that port"
    case 'unresolvable':
      return "check the name (or give IP:PORT) and this host's DNS"
    case 'timeout':
      return "check that TCP and UDP to that port pass firewalls, and the seed's --advertise"
    case 'unreachable':
      return "check the route to that address and the seed's --advertise"
    case 'closed':
      return "check that the address is a Shoal gossip port (the seed's --bind), and the seed's log"
    case 'busy':
      return 'the seed has too many exchanges in flight; it is asked again'
    case 'error':
      return "see the seed's log"
  }
}

/** Why the seed refused our frame (it could not open it), said of the seed. */
const REFUSED_BECAUSE: Record<RejectReason, string> = {
  label: 'its --cluster differs from ours',
  key: 'none of its keys opens our messages',
  plain: 'it requires encryption and this agent has no key',
  encrypted: 'it has no key and this agent encrypts',
  version: 'it speaks another wire version',
  malformed: 'it could not decode our message',
}

/** What went wrong, in words, without repeating the seed. */
function joinWhy(f: SeedFailure): string {
  const isReject = f.reason in REFUSED_BECAUSE
  if (isReject && f.refusedBySeed) return `the seed refused us: ${REFUSED_BECAUSE[f.reason as RejectReason]}`
  // A socket error or an answer we could not open: the message says what, after the seed.
  const said = f.message.replace(/^(stream to |answer from )?\S+?: /, '')
  if (isReject) return `this agent cannot open the seed's answer: ${said}`
  switch (f.reason) {
    case 'refused':
      return 'connection refused (nothing listens there)'
    case 'unresolvable':
      return `the name ${JSON.stringify(hostOf(f.seed))} does not resolve`
    default:
      return said
  }
}

/** What to do about traffic rejected for each reason, said to the receiving agent's operator. */
function rejectAdvice(reason: RejectReason): string {
  switch (reason) {
    case 'label':
      return "an agent of another cluster sends here: check that agent's --join and --cluster"
    case 'key':
      return "that agent seals with a key this agent does not hold: add it here (--key-file), or fix that agent's keys"
    case 'plain':
      return "that agent has no gossip key: give it this cluster's key (--key-file or --key)"
    case 'encrypted':
      return 'that agent encrypts and this one has no key: give this agent the same key, or remove it there'
    case 'version':
      return 'run the same Shoal version on every agent'
    case 'malformed':
      return 'not Shoal gossip, or damaged on the way: check what sends to this port'
  }
}

function hostOf(seed: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(seed) ?? /^(.*):\d+$/.exec(seed)
  return m?.[1] ?? seed
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`
}

/** One line for a seed that failed: what, which seed, why, what to do. */
export function seedFailureLine(f: SeedFailure, cluster: string): string {
  return `--join ${f.seed}: cannot join through this seed: ${joinWhy(f)}; ${joinAdvice(f.reason, cluster)}`
}

/**
 * The joining side: logs every failed seed of every round and holds the readiness condition
 * "--join was given and no seed has answered yet".
 *
 * @example
 *   const watch = new JoinWatch({ seeds: cfg.join, cluster: cfg.cluster }, { logger })
 *   gossip.join(cfg.join, { retry: true, onAttempt: (a) => watch.attempt(a) }).then(() => watch.answered())
 *   http readiness: watch.pending()      // undefined once a seed answered
 */
export class JoinWatch {
  private done: boolean
  private last: SeedFailure[] | undefined

  constructor(
    private readonly opts: { seeds: HostPort[]; cluster: string },
    private readonly components: { logger: Logger },
  ) {
    this.done = opts.seeds.length === 0
  }

  /** Why the agent is not (yet) part of a cluster, or undefined once a seed answered or a peer joined us. */
  pending(): string | undefined {
    if (this.done) return undefined
    const seeds = this.opts.seeds.map(formatHostPort).join(',')
    if (!this.last || this.last.length === 0) return `no seed of --join ${seeds} has answered yet`
    return `no seed of --join ${seeds} has answered: ${this.last.map((f) => `${f.seed}: ${joinWhy(f)}`).join('; ')}`
  }

  /** A seed answered, or another member joined us: the agent is in a cluster. */
  answered(): void {
    this.done = true
  }

  /** One round of the join: a warning per seed that failed, with the wait before the next round. */
  attempt(a: JoinAttempt): void {
    if (a.answered === 0) this.last = a.failures
    for (const f of a.failures) {
      const next = a.retryInMs !== undefined ? `; next try in ${seconds(a.retryInMs)}` : a.answered > 0 ? '; another seed answered' : ''
      logProblem(
        this.components.logger,
        'warn',
        {
          what: `--join ${f.seed}: cannot join through this seed: ${joinWhy(f)}`,
          input: `--join ${f.seed}`,
          fix: joinAdvice(f.reason, this.opts.cluster) + next,
        },
        { seed: f.seed, reason: f.reason, attempt: a.attempt, ...(a.retryInMs !== undefined ? { retryInMs: a.retryInMs } : {}) },
      )
    }
  }
}

/**
 * Names in --join that resolve to nothing, looked up once at start: when every seed is such
 * a name, nothing can ever be tried and start-up fails (SHOAL_ERR_CONFIG, exit 2); otherwise
 * the others are tried and the join reports the name every round. A lookup that takes longer
 * than `timeoutMs` counts as resolvable (the join will say).
 */
export async function checkSeedNames(seeds: HostPort[], timeoutMs = 5000): Promise<void> {
  const names = seeds.filter((s) => isIP(s.host) === 0)
  if (names.length === 0 || names.length < seeds.length) return
  const failures = await Promise.all(
    names.map(async (s) => {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), timeoutMs)
        timer.unref()
      })
      try {
        await Promise.race([lookup(s.host), timeout])
        return undefined
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'error'
        return ['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME'].includes(code) ? `"${s.host}" (${code})` : undefined
      } finally {
        clearTimeout(timer)
      }
    }),
  )
  if (failures.every((f) => f !== undefined)) {
    throw new ShoalError(
      'SHOAL_ERR_CONFIG',
      `--join: cannot resolve ${failures.join(', ')}, and no other seed is given; check the name${names.length > 1 ? 's' : ''}, or give IP:PORT`,
    )
  }
}

/** The receiving side: one warning per sender host and reason at most every `windowMs` (default 60 s). */
export class RejectionLog {
  private readonly limit: LogLimiter

  constructor(
    opts: { windowMs?: number },
    private readonly components: { logger: Logger; clock: Clock },
  ) {
    this.limit = new LogLimiter(opts, components)
  }

  add(r: Rejection): void {
    const held = this.limit.admit(`${hostOf(r.from)}|${r.reason}`)
    if (held === undefined) return
    logProblem(
      this.components.logger,
      'warn',
      {
        what: `gossip from ${r.from} rejected (${r.via}): ${r.message}`,
        input: r.from,
        fix: `${rejectAdvice(r.reason)}${LogLimiter.suffix(held)}`,
      },
      { from: r.from, via: r.via, reason: r.reason },
    )
  }
}
