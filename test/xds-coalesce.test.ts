// Push coalescing (README "xDS model": first change at once, then at most one push per
// --xds-min-push-interval), on virtual time: the server's timers run only when the test moves
// its clock, so a loaded machine changes nothing but how long a delivery takes. A push that
// must not happen is checked by waiting a little real time with the clock held still: no timer
// can fire then, so only a fault would send one.
import t from 'tap'
import { VirtualClock } from '../src/clock.js'
import { echoCatalog, GRPC_NODE, host, rec, startServer, TypeUrl, type AdsClient } from './lib/xds-fixture.js'

/** The instance ports of the one ClusterLoadAssignment of a response, h1's (9001, never changed) left out. */
function ports(r: Awaited<ReturnType<AdsClient['next']>>): number[] {
  return (r.resources[0]!.endpoints as any[])
    .flatMap((l) => l.lb_endpoints.map((e: any) => e.endpoint.address.socket_address.port_value))
    .filter((p: number) => p !== 9001)
}

/** Let the server's catalog turn (setImmediate) run, then fire its timers due now. */
async function turn(clock: VirtualClock, ms = 0): Promise<void> {
  await new Promise((r) => setImmediate(r))
  await clock.advance(ms)
}

t.test('first change pushed at once, then at most one push per 100 ms, last state wins', async (t) => {
  const clock = new VirtualClock()
  const catalog = echoCatalog()
  const { connect } = await startServer(t, catalog, { minPushIntervalMs: 100 }, { clock })
  const c = connect()
  c.send({ type_url: TypeUrl.endpoint, node: GRPC_NODE, resource_names: ['echo:10001'] })
  c.ack(await c.next(30_000))
  await turn(clock, 200)
  const base = catalog.snapshot().hosts
  const set = (port: number) => catalog.set([base[0]!, host('h2', [rec({ host: 'h2', id: 'b1', name: 'echo', servicePort: 10001, port })])])
  /** Moves the clock `ms` on, takes the push that must come then, and ACKs it. */
  const pushAfter = async (ms?: number) => {
    await turn(clock, ms)
    const r = await c.next(30_000)
    c.ack(r)
    return r
  }

  // 12 changes, 10 ms apart: at 0, 10, ... 110 ms.
  set(9100)
  const first = await pushAfter()
  t.same(ports(first), [9100], 'the first change is pushed at once (no virtual time passed)')
  for (let i = 1; i <= 9; i++) {
    await turn(clock, 10)
    set(9100 + i)
  }
  await turn(clock, 9) // 99 ms after the first push
  t.ok(await c.quiet(100), 'nothing more within 100 ms of the first push (9 changes held)')
  const second = await pushAfter(1)
  t.same(ports(second), [9109], 'at 100 ms one push with the state of then')
  await turn(clock, 10)
  set(9110)
  await turn(clock, 10)
  set(9111)
  await turn(clock, 79)
  t.ok(await c.quiet(100), 'the next changes wait for 100 ms after the second push')
  const third = await pushAfter(1)
  t.same(ports(third), [9111], 'the last push carries the last state')
  await turn(clock, 500)
  t.ok(await c.quiet(100), 'three pushes for twelve changes')

  // A burst within one tick is one push.
  for (let i = 0; i < 5; i++) set(9200 + i)
  const one = await pushAfter()
  t.same(ports(one), [9204], 'a same-tick burst gives one push, with its last state')
  await turn(clock, 500)
  t.ok(await c.quiet(100), 'and only one')
})
