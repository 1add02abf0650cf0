// One port per ServicePort and one ServicePort per port in an instance (registry/ports.ts), in
// the static file as in Docker labels: the static file accepted two ServicePorts on one port
// and one ServicePort on two ports silently, where the Docker source skips those ports
// (conflicting-labels, duplicate-service-port). Now it refuses the file naming both entries,
// and over random port lists it refuses exactly when the same ports as labels are skipped.
import t from 'tap'
import { mapContainer } from '../src/docker/labels.js'
import { parseStaticServices } from '../src/registry/static.js'
import { seeded } from './lib/random.js'

const RUNS = Number(process.env.SHOAL_PROPERTY_RUNS ?? 1000)
const SEED = Number(process.env.SHOAL_PROPERTY_SEED ?? Date.now() % 1_000_000)

type Pair = { port: number; servicePort: number }

const refusal = (ports: Array<Record<string, unknown>>): string | undefined => {
  try {
    parseStaticServices(JSON.stringify({ services: [{ name: 'web', ports }] }), 'f.json', '10.0.0.9')
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

/** The same ports as a container's labels: the first label of a container port in Sidecar's spelling, the second in Shoal's. */
const dockerProblems = (pairs: Pair[]): string[] => {
  const labels: Record<string, string> = {}
  for (const p of pairs)
    labels[labels[`ServicePort_${p.port}`] === undefined ? `ServicePort_${p.port}` : `shoal.port.${p.port}`] = String(p.servicePort)
  const r = mapContainer(
    {
      id: 'c'.repeat(64),
      name: 'web',
      image: 'web',
      created: 0,
      labels,
      bindings: pairs.map((p) => ({ containerPort: p.port, type: 'tcp' as const, hostIp: '', hostPort: p.port })),
      networks: {},
      health: 'none',
      running: true,
    },
    { advertiseIp: '10.0.0.9' },
  )
  return r.problems.filter((p) => p.reason === 'duplicate-service-port' || p.reason === 'conflicting-labels').map((p) => p.message)
}

t.test('the cases, with what to do', async (t) => {
  t.match(
    refusal([
      { port: 8080, servicePort: 10001 },
      { port: 8081, servicePort: 10001 },
    ]),
    /^f\.json: services\[0\]\.ports\[1\]\.servicePort: 10001 is also the ServicePort of services\[0\]\.ports\[0\]; an instance has one port per ServicePort .*give this port another ServicePort, or make it an entry of its own/,
  )
  t.match(
    refusal([
      { port: 8080, servicePort: 10001 },
      { port: 8080, servicePort: 10002 },
    ]),
    /^f\.json: services\[0\]\.ports\[1\]: tcp 10\.0\.0\.9:8080 is also services\[0\]\.ports\[0\] \(ServicePort 10001\); a port has one ServicePort .*keep one of the two/,
  )
  t.match(
    refusal([
      { port: 8080, servicePort: 10001, ip: '10.0.0.9' },
      { port: 8080, servicePort: 10001 },
    ]),
    /services\[0\]\.ports\[1\]: repeats services\[0\]\.ports\[0\]: remove one/,
    'the advertise IP by default is the same socket',
  )
  t.match(
    refusal([
      { port: 53, servicePort: 10053, ip: '::1' },
      { port: 53, servicePort: 10054, ip: '0:0::1' },
    ]),
    /tcp \[::1\]:53 is also/,
    'IPv6 spellings of one address are one socket',
  )
  t.equal(
    refusal([
      { port: 53, servicePort: 10053 },
      { port: 53, servicePort: 10054, type: 'udp' },
      { port: 53, servicePort: 10055, ip: '10.0.0.10' },
    ]),
    undefined,
    'another protocol or another IP is another socket',
  )
  /** A Sidecar-format file of one service `web` on ports 80 and 81 with these ServicePorts. */
  const sidecar = (sp80: number, sp81: number) =>
    parseStaticServices(
      JSON.stringify([
        {
          Service: {
            Name: 'web',
            Ports: [
              { Port: 80, ServicePort: sp80 },
              { Port: 81, ServicePort: sp81 },
            ],
          },
        },
      ]),
      'f.json',
      '10.0.0.9',
    )
  t.throws(
    () => sidecar(10080, 10080),
    /f\.json: \[0\]\.Service\.Ports\[1\]\.ServicePort: 10080 is also the ServicePort of \[0\]\.Service\.Ports\[0\]/,
    "Sidecar's format follows the same rule",
  )
  t.doesNotThrow(() => sidecar(0, 0), "Sidecar's ServicePort 0 is no ServicePort")
})

t.test(`the static file refuses exactly the ports Docker labels skip: ${RUNS} port lists (seed ${SEED})`, async (t) => {
  const random = seeded(SEED)
  const seen = { refused: 0, accepted: 0 }
  let failed = 0
  for (let run = 0; run < RUNS && failed < 5; run++) {
    const pairs: Pair[] = []
    for (let n = 1 + Math.floor(random() * 4); pairs.length < n;) {
      const p = { port: 80 + Math.floor(random() * 3), servicePort: 10001 + Math.floor(random() * 3) }
      // Labels can say a container port at most twice (two spellings), and saying it twice alike is one fact.
      const same = pairs.filter((q) => q.port === p.port)
      if (same.length >= 2 || same.some((q) => q.servicePort === p.servicePort)) continue
      pairs.push(p)
    }
    const refused = refusal(pairs)
    const docker = dockerProblems(pairs)
    if ((refused !== undefined) !== docker.length > 0) {
      failed++
      t.fail(`${JSON.stringify(pairs)}: static ${refused ?? 'accepts'}; Docker ${docker.join(' | ') || 'keeps every port'}`)
    }
    seen[refused ? 'refused' : 'accepted']++
  }
  t.ok(seen.refused > RUNS / 10 && seen.accepted > RUNS / 10, `both drawn (${seen.refused} refused, ${seen.accepted} accepted)`)
})
