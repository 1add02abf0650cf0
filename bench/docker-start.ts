// Time from `docker start` (the API call returning) to the spec appearing in DockerSource,
// p50/p99 over N containers started one at a time, then 50 started at once: time from the
// last start returning to all 50 listed. Needs root and docker.io + busybox-static.
//   TS_NODE_TRANSPILE_ONLY=1 node --import @isaacs/ts-node-temp-fork-for-pr-2009/import bench/docker-start.ts [N]
import { DockerSource } from '../src/docker/source.js'
import { silentLogger } from '../src/log.js'
import { createService, startDockerd, waitFor } from '../test/system/dockerd.js'
import { pct } from './stats.js'

const n = Number(process.argv[2] ?? 30)
const teardowns: Array<() => unknown> = []
const harness = {
  skip: (why: string) => {
    console.log(why)
    process.exitCode = 2
  },
  teardown: (f: () => unknown) => {
    teardowns.push(f)
  },
}

async function main() {
  const d = await startDockerd(harness)
  if (!d) return
  const src = new DockerSource({ dockerHost: d.host, advertiseIp: '127.0.0.1' }, { logger: silentLogger() })
  teardowns.push(() => src.stop())
  src.start()
  await waitFor(() => src.connected(), 10_000, 'connected')
  const create = (name: string, sp: number) => createService(d, name, sp, name)

  const single: number[] = []
  const fromCall: number[] = []
  for (let i = 0; i < n; i++) {
    const c = await create(`one-${i}`, 20000 + i)
    const appeared = new Promise<number>((resolve) => {
      const f = () => {
        if (src.services().some((s) => s.containerId === c.id)) {
          src.off('change', f)
          resolve(performance.now())
        }
      }
      src.on('change', f)
    })
    const t0 = performance.now()
    await c.start()
    const t1 = performance.now()
    const seen = await appeared
    single.push(seen - t1)
    fromCall.push(seen - t0)
  }
  const ids = await Promise.all(Array.from({ length: 50 }, (_x, i) => create(`burst-${i}`, 30000 + i).then((c) => c.id)))
  const t0 = performance.now()
  let last = 0
  await Promise.all(
    ids.map((id) =>
      d.docker
        .getContainer(id)
        .start()
        .then(() => {
          last = performance.now()
        }),
    ),
  )
  await waitFor(() => src.services().length === n + 50, 30_000, 'burst listed')
  const all = performance.now()
  const r = (x: number) => x.toFixed(1)
  console.log(
    JSON.stringify(
      {
        containers: n,
        startCallToListedMs: { p50: r(pct(fromCall, 50)), p99: r(pct(fromCall, 99)), max: r(Math.max(...fromCall)) },
        startReturnedToListedMs: { p50: r(pct(single, 50)), p99: r(pct(single, 99)), max: r(Math.max(...single)) },
        burst50: { startsTookMs: r(last - t0), lastStartReturnedToAllListedMs: r(all - last) },
      },
      null,
      2,
    ),
  )
}

main()
  .catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
  .finally(async () => {
    for (const f of teardowns.reverse()) await f()
  })
