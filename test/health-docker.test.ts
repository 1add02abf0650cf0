import t from 'tap'
import { HealthScheduler } from '../src/health/scheduler.js'
import type { DockerHealth, DockerHealthFeed } from '../src/health/types.js'
import { silentLogger } from '../src/log.js'

// The feed is an interface the Docker source implements; a map behind it is a complete feed.
class MapFeed implements DockerHealthFeed {
  states = new Map<string, DockerHealth>()
  listeners = new Set<(id: string) => void>()
  health(id: string) {
    return this.states.get(id)
  }
  subscribe(l: (id: string) => void) {
    this.listeners.add(l)
    return () => {
      this.listeners.delete(l)
    }
  }
  set(id: string, h: DockerHealth) {
    this.states.set(id, h)
    for (const l of this.listeners) l(id)
  }
}

t.test('Docker checks follow the feed at once: healthy alive, unhealthy unhealthy, starting not served yet', async (t) => {
  const feed = new MapFeed()
  const hs = new HealthScheduler({ intervalMs: 60_000 }, { logger: silentLogger(), dockerHealth: feed })
  t.teardown(() => hs.stop())
  const seen: string[] = []
  hs.on('change', (_id: string, st: string) => seen.push(st))
  feed.set('c1', 'starting')
  hs.set('c1abc', { type: 'Docker' }, { host: '127.0.0.1', containerId: 'c1', ports: [] })
  hs.start()
  await new Promise((r) => setTimeout(r, 50))
  t.equal(hs.status('c1abc'), 'starting', 'a HEALTHCHECK still starting leaves the check starting (not served)')
  const next = () => new Promise<string>((r) => hs.once('change', (_i: string, st: string) => r(st)))
  let p = next()
  feed.set('c1', 'healthy')
  t.equal(await p, 'alive')
  p = next()
  feed.set('c1', 'unhealthy')
  t.equal(await p, 'unhealthy', 'Docker already counted its retries: one report is enough')
  p = next()
  feed.set('c1', 'healthy')
  t.equal(await p, 'alive')
  t.same(seen, ['alive', 'unhealthy', 'alive'])
  hs.stop()
  t.equal(feed.listeners.size, 0, 'stop() unsubscribes from the feed')
})

t.test('AlwaysSuccessful is alive after its first run', async (t) => {
  const hs = new HealthScheduler({}, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  const got = new Promise<string>((r) => hs.once('change', (_i: string, st: string) => r(st)))
  hs.set('x', { type: 'AlwaysSuccessful' }, { host: '127.0.0.1', ports: [] })
  t.equal(hs.status('x'), 'starting', 'nothing runs before start()')
  hs.start()
  t.equal(await got, 'alive')
})

t.test('a Docker check of a container without a HEALTHCHECK says nothing: unknown, as without a check', async (t) => {
  const feed = new MapFeed()
  const hs = new HealthScheduler({ intervalMs: 60_000 }, { logger: silentLogger(), dockerHealth: feed })
  t.teardown(() => hs.stop())
  feed.set('c2', 'none')
  const got = new Promise<string>((r) => hs.once('change', (_i: string, st: string) => r(st)))
  hs.set('c2abc', { type: 'Docker' }, { host: '127.0.0.1', containerId: 'c2', ports: [] })
  hs.start()
  t.equal(await got, 'unknown')
})
