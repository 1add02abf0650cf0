// A small in-memory CatalogView and membership for the HTTP tests (the real Catalog and
// Gossip land separately; the endpoint depends only on these interfaces), and a helper
// that starts a real HttpServer on 127.0.0.1:0 with teardown.
import { EventEmitter } from 'node:events'
import { Registry } from 'prom-client'
import { ShoalError } from '../../src/errors.js'
import { silentLogger, type Logger } from '../../src/log.js'
import type { Member, MemberState } from '../../src/gossip/types.js'
import type { CatalogEvent, CatalogSnapshot, CatalogView, HostState, HostView, ServiceRecord } from '../../src/registry/types.js'
import { HttpServer, type HttpServerOptions } from '../../src/http/server.js'

export class FixtureCatalog implements CatalogView {
  cluster = 'test'
  seq = 0
  hosts = new Map<string, HostView>()
  private listeners = new Set<(ev: CatalogEvent) => void>()

  snapshot(): CatalogSnapshot {
    return { cluster: this.cluster, seq: this.seq, hosts: [...this.hosts.values()].map((h) => ({ ...h, services: [...h.services] })) }
  }

  subscribe(listener: (ev: CatalogEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  get listenerCount(): number {
    return this.listeners.size
  }

  emit(ev: CatalogEvent): void {
    this.seq++
    for (const l of this.listeners) l(ev)
  }

  addHost(name: string, state: HostState = 'alive', bootId = `boot-${name}`): HostView {
    const h: HostView = { name, address: `127.0.0.1:${7946 + this.hosts.size}`, state, bootId, services: [] }
    this.hosts.set(name, h)
    this.emit({ type: 'host-up', host: name })
    return h
  }

  setHostState(name: string, state: HostState): void {
    const h = this.hosts.get(name)!
    h.state = state
    this.emit(state === 'alive' ? { type: 'host-up', host: name } : { type: 'host-down', host: name, state })
  }

  put(r: ServiceRecord): void {
    const h = this.hosts.get(r.host) ?? this.addHost(r.host)
    const i = h.services.findIndex((x) => x.id === r.id)
    if (i < 0) {
      h.services.push(r)
      h.services.sort((a, b) => a.id.localeCompare(b.id))
      this.emit({ type: 'service-added', record: r })
    } else {
      const previous = h.services[i]!
      h.services[i] = r
      this.emit({ type: 'service-updated', record: r, previous })
    }
  }
}

let counter = 0
export function record(over: Partial<ServiceRecord> & { name: string; host: string }): ServiceRecord {
  counter++
  return {
    id: `inst${String(counter).padStart(8, '0')}`,
    image: `${over.name}:1.0`,
    created: 1_700_000_000_000,
    bootId: `boot-${over.host}`,
    ports: [{ type: 'tcp', port: 30000 + counter, servicePort: 10000 + (over.name.length % 100), ip: '10.0.0.1' }],
    proxyMode: 'http',
    status: 'alive',
    version: [1_700_000_000_000 + counter, 0],
    updated: 1_700_000_000_000,
    labels: {},
    ...over,
  }
}

export class FixtureMembership extends EventEmitter {
  list = new Map<string, Member>()
  members(): Member[] {
    return [...this.list.values()]
  }
  set(name: string, state: MemberState, event: 'join' | 'update' | 'suspect' | 'alive' | 'dead' | 'left' = 'join'): Member {
    const prev = this.list.get(name)
    const m: Member = {
      name,
      addr: '127.0.0.1',
      port: 7946,
      meta: { boot: `boot-${name}` },
      bootId: `boot-${name}`,
      incarnation: (prev?.incarnation ?? 0) + (prev ? 1 : 1),
      state,
      stateChangedAt: performance.now(),
    }
    this.list.set(name, m)
    this.emit(event, m)
    return m
  }
}

/** Drain control over the fixture catalog: local host is `node`. */
export class FixtureControl {
  calls: string[] = []
  constructor(
    private catalog: FixtureCatalog,
    private node: string,
  ) {}
  private find(id: string): ServiceRecord {
    for (const h of this.catalog.hosts.values()) {
      const r = h.services.find((x) => x.id === id)
      if (r) {
        if (h.name !== this.node) throw new ShoalError('SHOAL_ERR_NOT_LOCAL', `instance ${id} belongs to host ${h.name}, not ${this.node}`)
        return r
      }
    }
    throw new ShoalError('SHOAL_ERR_NOT_FOUND', `no instance ${id} on ${this.node}`)
  }
  drain(id: string, reason?: string): void {
    const r = this.find(id)
    this.calls.push(reason === undefined ? `drain ${id}` : `drain ${id} ${reason}`)
    this.catalog.put({ ...r, status: 'draining' })
  }
  undrain(id: string): void {
    const r = this.find(id)
    this.calls.push(`undrain ${id}`)
    this.catalog.put({ ...r, status: 'alive' })
  }
}

export interface Harness {
  server: HttpServer
  url: string
  port: number
  catalog: FixtureCatalog
  membership: FixtureMembership
  control: FixtureControl
  registry: Registry
  ready: { value: boolean }
}

/** Starts an HttpServer on 127.0.0.1:0 over fixtures; stops it at teardown. */
export async function startHarness(
  t: { teardown(fn: () => unknown): void },
  opts: Partial<HttpServerOptions> = {},
  logger: Logger = silentLogger(),
): Promise<Harness> {
  const catalog = new FixtureCatalog()
  const membership = new FixtureMembership()
  const node = opts.node ?? 'node-a'
  const control = new FixtureControl(catalog, node)
  const registry = new Registry()
  const ready = { value: false }
  const server = new HttpServer(
    { bind: { host: '127.0.0.1', port: 0 }, cluster: 'test', node, ...opts },
    {
      logger,
      catalog,
      membership,
      control,
      ready: () => ready.value,
      xdsDebug: () => [{ nodeId: 'envoy-1', subscribed: { 'type.googleapis.com/envoy.config.cluster.v3.Cluster': ['web'] } }],
      registry,
    },
  )
  const { port } = await server.start()
  t.teardown(() => server.stop())
  return { server, url: `http://127.0.0.1:${port}`, port, catalog, membership, control, registry, ready }
}

export interface SseEvent {
  event: string
  data: any
}

/** A plain http.get reader of /api/watch that parses events as they arrive. */
export async function openWatch(url: string): Promise<{
  events: SseEvent[]
  comments: string[]
  ended: Promise<void>
  status: number
  headers: Record<string, unknown>
  waitFor(pred: (evs: SseEvent[]) => boolean, ms?: number): Promise<void>
  close(): void
}> {
  const { get } = await import('node:http')
  const events: SseEvent[] = []
  const comments: string[] = []
  const waiters = new Set<() => void>()
  return new Promise((resolve, reject) => {
    const req = get(`${url}/api/watch`, { headers: { accept: 'text/event-stream' } }, (res) => {
      let buf = ''
      let endResolve!: () => void
      const ended = new Promise<void>((r) => (endResolve = r))
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buf += chunk
        let cut: number
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut)
          buf = buf.slice(cut + 2)
          let event = 'message'
          let data: string | undefined
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim())
            else if (line.startsWith('event: ')) event = line.slice(7)
            else if (line.startsWith('data: ')) data = line.slice(6)
          }
          if (data !== undefined) events.push({ event, data: JSON.parse(data) })
        }
        for (const w of [...waiters]) w()
      })
      res.on('close', () => endResolve())
      res.on('error', () => endResolve())
      resolve({
        events,
        comments,
        ended,
        status: res.statusCode ?? 0,
        headers: res.headers,
        waitFor(pred, ms = 3000) {
          if (pred(events)) return Promise.resolve()
          return new Promise<void>((ok, fail) => {
            const timer = setTimeout(() => {
              waiters.delete(check)
              fail(
                new Error(
                  `timed out waiting; got events: ${events.map((e) => e.event + ':' + (e.data?.type ?? e.data?.event ?? '')).join(', ')}`,
                ),
              )
            }, ms)
            const check = (): void => {
              if (!pred(events)) return
              clearTimeout(timer)
              waiters.delete(check)
              ok()
            }
            waiters.add(check)
          })
        },
        close() {
          req.destroy()
        },
      })
    })
    req.on('error', reject)
  })
}
