// Property test of Catalog + GossipBridge over random schedules: an in-process exchange
// that delays, reorders, duplicates and drops broadcasts, push-pulls between random pairs,
// owners restarting with a new boot id and a clock 10 minutes behind, hosts dying,
// leaving, being partitioned and returning, tombstone collection and reaping. After the
// schedule the network heals and anti-entropy runs; then every replica must hold the same
// live catalog, equal to what the live owners themselves hold.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { silentLogger } from '../src/log.js'
import { Catalog } from '../src/registry/catalog.js'
import { GossipBridge, type GossipLike } from '../src/registry/bridge.js'
import { liveRecords, type HostState, type ServiceRecord } from '../src/registry/types.js'
import type { Clock, Member, StateDelegate } from '../src/gossip/types.js'
import { seeded } from './lib/random.js'

const SCHEDULES = Number(process.env.SHOAL_PROPERTY_RUNS ?? 1000)
const TTL = 600
const REAP = 900
const TEN_MIN = 600_000
const logger = silentLogger()
const allCatalogs: Catalog[] = []

interface Delivery {
  at: number
  seq: number
  run: () => void
}

class World {
  now = 0
  seq = 0
  queue: Delivery[] = []
  inflight = new Set<Promise<unknown>>()
  nodes = new Map<string, Node>()
  /** Per (observer, subject): the time of the last membership delivery, to keep them in order. */
  lastMember = new Map<string, number>()
  lossy = true
  constructor(readonly rnd: () => number) {}

  schedule(delay: number, run: () => void): void {
    this.queue.push({ at: this.now + delay, seq: this.seq++, run })
  }

  /** Runs everything due up to now + ms, in time order. */
  advance(ms: number): void {
    const target = this.now + ms
    for (;;) {
      let best = -1
      for (let i = 0; i < this.queue.length; i++) {
        const d = this.queue[i]!
        if (d.at > target) continue
        if (best < 0 || d.at < this.queue[best]!.at || (d.at === this.queue[best]!.at && d.seq < this.queue[best]!.seq)) best = i
      }
      if (best < 0) break
      const d = this.queue.splice(best, 1)[0]!
      this.now = Math.max(this.now, d.at)
      d.run()
    }
    this.now = target
  }

  async drain(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      while (this.inflight.size > 0) await Promise.allSettled([...this.inflight])
      if (this.queue.length === 0) return
      const last = Math.max(...this.queue.map((d) => d.at))
      this.advance(Math.max(0, last - this.now))
    }
  }

  reachable(a: string, b: string): boolean {
    const na = this.nodes.get(a)
    const nb = this.nodes.get(b)
    return !!na?.proc && !!nb?.proc && !na.isolated && !nb.isolated
  }

  /** What `observer` should believe about `subject` given the truth. */
  viewOf(observer: Node, subject: Node): { state: HostState; boot: string } {
    if (!subject.proc) return { state: subject.leftGracefully ? 'left' : 'dead', boot: subject.boot }
    if (observer.isolated || subject.isolated) return { state: 'dead', boot: subject.boot }
    return { state: 'alive', boot: subject.boot }
  }

  /** Sends every up observer its view of `subject`, after a random delay, mostly in order per pair. */
  announce(subject: Node, maxDelay: number): void {
    for (const obs of this.nodes.values()) {
      if (obs === subject || !obs.proc) continue
      const key = `${obs.name}>${subject.name}`
      // Mostly in order per pair; sometimes an event overtakes an earlier one (several gossip paths).
      const delay = this.now + Math.floor(this.rnd() * maxDelay)
      const at = this.rnd() < 0.2 ? delay : Math.max(delay, this.lastMember.get(key) ?? 0)
      this.lastMember.set(key, at)
      const proc = obs.proc
      const v = this.viewOf(obs, subject) // as of now: it may arrive after newer news
      this.queue.push({
        at,
        seq: this.seq++,
        run: () => {
          if (obs.proc !== proc) return
          proc.gossip.deliverMember(member(subject.name, v.boot, v.state))
        },
      })
    }
  }
}

function member(name: string, boot: string, state: HostState): Member {
  return { name, addr: '10.0.0.1', port: 7946, meta: { boot }, bootId: boot, incarnation: 0, state, stateChangedAt: 0 }
}

class FakeGossip extends EventEmitter implements GossipLike {
  delegate: StateDelegate | undefined
  private msgHandler: ((p: Uint8Array, from: string) => void) | undefined
  private reqHandler: ((p: Uint8Array, from: string) => Promise<Uint8Array> | Uint8Array) | undefined
  constructor(
    readonly world: World,
    readonly name: string,
    readonly bootId: string,
    private readonly initial: Member[],
  ) {
    super()
  }
  private seen = new Set<string>()
  private nextId = 0
  /** Like the real gossip layer: every member passes a message on the first time it sees it. */
  broadcast(_key: string, payload: Uint8Array): void {
    const id = `${this.name}#${this.bootId}#${this.nextId++}`
    this.seen.add(id)
    this.send(id, this.name, payload)
  }
  private send(id: string, origin: string, payload: Uint8Array): void {
    const w = this.world
    for (const other of w.nodes.values()) {
      if (other.name === this.name || other.name === origin) continue
      if (!w.reachable(this.name, other.name)) continue
      if (w.lossy && w.rnd() < 0.2) continue
      const copies = w.lossy && w.rnd() < 0.15 ? 2 : 1
      for (let c = 0; c < copies; c++) {
        const delay = w.lossy ? Math.floor(w.rnd() * (w.rnd() < 0.1 ? 2000 : 200)) : 1
        w.schedule(delay, () => {
          if (!w.reachable(this.name, other.name)) return
          other.proc!.gossip.receive(id, origin, payload)
        })
      }
    }
  }
  receive(id: string, origin: string, payload: Uint8Array): void {
    if (this.seen.has(id)) return
    this.seen.add(id)
    this.msgHandler?.(payload, origin)
    this.send(id, origin, payload)
  }
  onMessage(h: (p: Uint8Array, from: string) => void): void {
    this.msgHandler = h
  }
  setDelegate(d: StateDelegate): void {
    this.delegate = d
  }
  request(node: string, payload: Uint8Array): Promise<Uint8Array> {
    const w = this.world
    if (!w.reachable(this.name, node)) return Promise.reject(new Error('unreachable'))
    const target = w.nodes.get(node)!.proc!.gossip
    const p = Promise.resolve().then(() => {
      if (!w.reachable(this.name, node) || !target.reqHandler) throw new Error('unreachable')
      return target.reqHandler(payload, this.name)
    })
    w.inflight.add(p)
    void p.catch(() => undefined).finally(() => w.inflight.delete(p))
    return p
  }
  onRequest(h: (p: Uint8Array, from: string) => Promise<Uint8Array> | Uint8Array): void {
    this.reqHandler = h
  }
  members(): Member[] {
    return this.initial
  }
  deliverMember(m: Member): void {
    this.emit(m.state === 'alive' ? 'join' : m.state, m)
  }
}

interface Proc {
  catalog: Catalog
  bridge: GossipBridge
  gossip: FakeGossip
}

class Node {
  proc: Proc | undefined
  boot = ''
  boots = 0
  skew = 0
  isolated = false
  leftGracefully = false
  constructor(
    readonly world: World,
    readonly name: string,
  ) {}

  startProcess(ids: string[]): void {
    const w = this.world
    this.boots++
    this.boot = `${this.name}-b${this.boots}-${Math.floor(w.rnd() * 1e9).toString(36)}`
    this.leftGracefully = false
    this.isolated = false
    const skew = this.skew
    const clock: Clock = {
      now: () => w.now,
      wallNow: () => 1_700_000_000_000 + w.now + skew,
      setTimer: () => ({ cancel: () => undefined }),
    }
    const initial: Member[] = []
    for (const o of w.nodes.values()) {
      if (o === this) continue
      const v = w.viewOf(this, o)
      if (o.boot) initial.push(member(o.name, v.boot, v.state))
    }
    const gossip = new FakeGossip(w, this.name, this.boot, initial)
    const catalog = new Catalog({ cluster: 'prop', self: this.name, tombstoneTtlMs: TTL, reapAfterMs: REAP }, { clock, logger })
    const bridge = new GossipBridge({}, { catalog, gossip, logger })
    this.proc = { catalog, bridge, gossip }
    allCatalogs.push(catalog)
    catalog.setLocalBoot(this.boot)
    for (const id of ids) catalog.upsertLocal(spec(id, 1000, 'alive'))
    bridge.start()
  }

  stopProcess(graceful: boolean): void {
    this.proc?.bridge.stop()
    this.proc = undefined
    this.leftGracefully = graceful
  }
}

function spec(id: string, port: number, status: 'alive' | 'unhealthy' | 'unknown' | 'draining') {
  return {
    id,
    name: `svc-${id}`,
    image: `img/${id}:1`,
    created: 1,
    ports: [{ type: 'tcp' as const, port, servicePort: 10000 + Number(id.slice(1)), ip: '10.0.0.1' }],
    proxyMode: 'http' as const,
    status,
    labels: {},
  }
}

function pushPull(w: World, a: Node, b: Node): void {
  if (!w.reachable(a.name, b.name)) return
  const pa = a.proc!
  const pb = b.proc!
  const sa = pa.gossip.delegate!.localState(false)
  const sb = pb.gossip.delegate!.localState(false)
  pb.gossip.delegate!.mergeRemoteState(sa, false, member(a.name, a.boot, 'alive'))
  pa.gossip.delegate!.mergeRemoteState(sb, false, member(b.name, b.boot, 'alive'))
}

function key(r: ServiceRecord): string {
  return `${r.host}/${r.id}/${r.bootId}/${r.version[0]}.${r.version[1]}/${r.status}/${r.ports[0]?.port}`
}

async function runSchedule(seed: number): Promise<string | undefined> {
  const rnd = seeded(seed)
  const w = new World(rnd)
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!
  const nHosts = 3 + Math.floor(rnd() * 3)
  const ids = ['s0', 's1', 's2', 's3', 's4']
  const nodes: Node[] = []
  for (let i = 0; i < nHosts; i++) {
    const n = new Node(w, `h${i}`)
    nodes.push(n)
    w.nodes.set(n.name, n)
  }
  for (const n of nodes) n.startProcess(ids.filter(() => rnd() < 0.5))
  for (const n of nodes) w.announce(n, 50)

  const steps = 30 + Math.floor(rnd() * 30)
  for (let s = 0; s < steps; s++) {
    const up = nodes.filter((n) => n.proc)
    const r = rnd()
    if (r < 0.25 && up.length > 0) {
      const n = pick(up)
      const id = pick(ids)
      n.proc!.catalog.upsertLocal(spec(id, 1000 + Math.floor(rnd() * 3), pick(['alive', 'unhealthy', 'unknown', 'draining'] as const)))
    } else if (r < 0.4 && up.length > 0) {
      pick(up).proc!.catalog.removeLocal(pick(ids))
    } else if (r < 0.6) {
      w.advance(Math.floor(rnd() * 400))
      for (const n of nodes) n.proc?.catalog.sweep()
    } else if (r < 0.72 && up.length >= 2) {
      const a = pick(up)
      const b = pick(up.filter((x) => x !== a))
      pushPull(w, a, b)
    } else if (r < 0.78 && up.length > 1) {
      // crash: others notice after a while
      const n = pick(up)
      n.stopProcess(false)
      w.announce(n, 300)
    } else if (r < 0.81 && up.length > 1) {
      const n = pick(up)
      n.stopProcess(true)
      w.announce(n, 50)
    } else if (r < 0.88) {
      // restart a stopped host: new boot, its clock 10 minutes behind the previous boot's
      const down = nodes.filter((n) => !n.proc)
      if (down.length > 0) {
        const n = pick(down)
        n.skew -= TEN_MIN
        n.startProcess(ids.filter(() => rnd() < 0.5))
        w.announce(n, 300)
      }
    } else if (r < 0.94 && up.length > 1) {
      // partition one host away, or heal it
      const n = pick(up)
      n.isolated = !n.isolated
      w.announce(n, 300)
      for (const o of nodes) if (o !== n && o.proc) w.announce(o, 300)
    } else {
      await w.drain()
    }
    if (rnd() < 0.5) await Promise.resolve()
  }

  // Heal: no more loss, no partitions, membership tells everyone the truth, anti-entropy.
  w.lossy = false
  for (const n of nodes) n.isolated = false
  await w.drain()
  for (const n of nodes) w.announce(n, 1)
  await w.drain()
  const up = nodes.filter((n) => n.proc)
  for (let round = 0; round < 6; round++) {
    for (const a of up) for (const b of up) if (a !== b) pushPull(w, a, b)
    await w.drain()
  }

  const truth = up
    .flatMap((n) => n.proc!.catalog.localRecords())
    .filter((r) => r.status !== 'tombstone')
    .map(key)
    .sort()
    .join('\n')
  for (const n of up) {
    const seen = liveRecords(n.proc!.catalog.snapshot()).map(key).sort().join('\n')
    if (seen !== truth)
      return `seed ${seed}: replica ${n.name} live view differs from the owners'\n--- owners\n${truth}\n--- ${n.name}\n${seen}`
    for (const h of n.proc!.catalog.snapshot().hosts) {
      const subject = w.nodes.get(h.name)!
      if (h.name !== n.name && h.bootId !== subject.boot)
        return `seed ${seed}: ${n.name} believes ${h.name} runs boot ${h.bootId}, not ${subject.boot}`
    }
  }
  return undefined
}

t.test(`${SCHEDULES} random schedules converge to the owners' live records everywhere`, async (t) => {
  const failures: string[] = []
  const stats = { ownerTombstones: 0, collected: 0, reaped: 0, refused: 0, parked: 0 }
  for (let seed = 1; seed <= SCHEDULES; seed++) {
    const f = await runSchedule(seed)
    if (f) failures.push(f)
    for (const c of allCatalogs.splice(0)) {
      stats.ownerTombstones += c.stats.ownerTombstones
      stats.collected += c.stats.tombstonesCollected
      stats.reaped += c.stats.recordsReaped
      stats.refused += c.stats.refused
      stats.parked += c.stats.parked
    }
    if (failures.length >= 3) break
  }
  t.same(failures, [], 'every schedule converged')
  t.comment(JSON.stringify(stats))
  // The schedules must actually reach the paths they are meant to test.
  t.ok(stats.ownerTombstones > 0, 'owners tombstoned stale records of theirs seen elsewhere')
  t.ok(stats.collected > 0, 'tombstones were collected')
  t.ok(stats.reaped > 0, 'records of dead hosts were reaped')
  t.ok(stats.refused > 0, 'records of replaced boots were refused')
  t.ok(stats.parked > 0, 'records of a boot not yet confirmed by membership were parked')
})
