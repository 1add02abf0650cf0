// mTLS through xDS, one run (issue 18, acceptance 4, the per-call part through the agent):
// one agent with --tls-dir (permissive) serves two proxyless gRPC servers, each an XdsServer
// of grpc-js-xds in its own process: `b` with Shoal's certificate providers (its Listener
// carries a DownstreamTlsContext) and `p` without (plain text). Two clients of each kind
// (grpc-js-xds, and gRPC C-core when python3-grpcio is there), each in its own process, call
// them: one with the providers and xDS credentials (mTLS to b, the SAN checked), one with
// plain credentials (to p). Latency is measured inside the client processes, in alternating
// blocks: calls on an open channel, then the first call on a new channel (a new connection,
// the TLS handshake included).
//
//   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/xds-mtls.ts [--out bench/RESULTS-identity.md]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../src/agent/agent.js'
import { parseAgentConfig } from '../src/agent/config.js'
import { silentLogger } from '../src/log.js'
import { freePort } from '../test/lib/agent-child.js'
import { makePki } from '../test/lib/identity.js'
import { until, writeStatic } from '../test/lib/mtls-agents.js'
import { startXdsClient, startXdsServer, xdsClientMissing, XDS_CLIENT_KINDS } from '../test/lib/xds-clients.js'
import { pct } from './stats.js'

const BLOCKS = 10
const CALLS_PER_BLOCK = 500
const CONNECTION_BLOCKS = 5
const CONNECTIONS_PER_BLOCK = 20
const args = process.argv.slice(2)
const out = args.includes('--out') ? args[args.indexOf('--out') + 1] : undefined
const f2 = (x: number) => x.toFixed(2)
const loads: number[] = [loadavg()[0]!]

/** Teardowns in reverse order, as tap runs them. */
const cleanups: Array<() => unknown> = []
const t = { teardown: (fn: () => unknown) => void cleanups.push(fn) }
const base = mkdtempSync(join(tmpdir(), 'shoal-bench-xds-mtls-'))
cleanups.push(() => rmSync(base, { recursive: true, force: true }))

try {
  const pki = await makePki(t, { cluster: 'bench', nodes: ['n1'] })
  const tlsDir = pki.tlsDir('n1')
  const portB = await freePort()
  const portP = await freePort()
  const staticFile = join(base, 'static.json')
  writeStatic(staticFile, [
    { name: 'a', port: await freePort(), servicePort: 10010 },
    { name: 'b', port: portB, servicePort: 10011 },
    { name: 'p', port: portP, servicePort: 10012 },
  ])
  const agent = new Agent(
    parseAgentConfig(
      [
        ...['--node', 'n1', '--cluster', 'bench', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--xds', '127.0.0.1:0'],
        ...['--dns', 'off', '--profile', 'local', '--discovery', 'static', '--static', staticFile, '--tls-dir', tlsDir],
      ],
      {},
    ),
    { logger: silentLogger() },
  )
  cleanups.push(() => agent.stop({ leave: false }))
  await agent.start()
  await until('three leaves', () => agent.identityStatus()?.services.length === 3)
  const xdsAddress = `127.0.0.1:${agent.bound.xds}`
  const servers = [
    startXdsServer(t, 'B', `127.0.0.1:${portB}`, { nodeId: 'srv-b', xdsAddress, service: 'b', tlsDir }),
    startXdsServer(t, 'P', `127.0.0.1:${portP}`, { nodeId: 'srv-p', xdsAddress, service: 'p' }),
  ]
  await until('both servers serve', () => servers.every((s) => s.serving), 60_000)

  const results: string[] = []
  for (const kind of XDS_CLIENT_KINDS) {
    if (xdsClientMissing(kind) !== null) continue
    const tls = await startXdsClient(t, kind, { nodeId: `tls-${kind}`, xdsAddress, service: 'a', tlsDir, creds: 'xds' })
    const plain = await startXdsClient(t, kind, { nodeId: `plain-${kind}`, xdsAddress })
    const B = 'xds:///b:10011'
    const P = 'xds:///p:10012'
    if ((await tls.until(B, (w) => w === 'B|spiffe://bench/svc/a', 5, 60_000)) === null)
      throw new Error(`${kind}: no mTLS call went through`)
    if ((await plain.until(P, (w) => w === 'P|', 5, 60_000)) === null) throw new Error(`${kind}: no plain-text call went through`)
    await tls.time(B, 200)
    await plain.time(P, 200)
    const lat = { tls: [] as number[], plain: [] as number[] }
    for (let i = 0; i < BLOCKS; i++) {
      lat.tls.push(...(await tls.time(B, CALLS_PER_BLOCK)))
      lat.plain.push(...(await plain.time(P, CALLS_PER_BLOCK)))
    }
    const first = { tls: [] as number[], plain: [] as number[] }
    for (let i = 0; i < CONNECTION_BLOCKS; i++) {
      first.tls.push(...(await tls.time(B, CONNECTIONS_PER_BLOCK, true)))
      first.plain.push(...(await plain.time(P, CONNECTIONS_PER_BLOCK, true)))
    }
    loads.push(loadavg()[0]!)
    const med = (xs: number[]) => pct(xs, 50)
    results.push(
      `| ${kind}: unary call on an open channel, mTLS | ${f2(med(lat.tls))} ms | ${f2(pct(lat.tls, 99))} ms | plain text: ${f2(med(lat.plain))} / ${f2(pct(lat.plain, 99))} ms | ${f2(med(lat.tls) / med(lat.plain))} |`,
      `| ${kind}: first call on a new channel, mTLS | ${f2(med(first.tls))} ms | ${f2(pct(first.tls, 99))} ms | plain text: ${f2(med(first.plain))} / ${f2(pct(first.plain, 99))} ms | ${f2(med(first.tls) / med(first.plain))} |`,
    )
  }
  const header = [
    `Run ${new Date().toISOString()} on ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Node ${process.version}; load average (1 min) at start and after each client kind: ${loads.map((x) => x.toFixed(1)).join(', ')}.`,
    `Through xDS (\`bench/xds-mtls.ts\`): one agent (--tls-dir, permissive), XdsServers of grpc-js-xds for b (mTLS) and p (plain text), clients in their own processes timing each call themselves: ${BLOCKS} alternating blocks of ${CALLS_PER_BLOCK} calls per kind after 200 warm-up calls, then ${CONNECTION_BLOCKS} alternating blocks of ${CONNECTIONS_PER_BLOCK} calls on new channels.`,
  ]
  const rows = [`| measure | p50 | p99 | peer in the same run | ratio (p50) |`, `|---|---|---|---|---|`, ...results]
  const text = [...header, '', ...rows, ''].join('\n')
  console.log(text)
  if (out) {
    let file = ''
    try {
      file = readFileSync(out, 'utf8')
    } catch {
      file = '# Identity bench results\n'
    }
    writeFileSync(out, file.replace(/\n*$/, '\n\n') + `## ${new Date().toISOString().slice(0, 10)}, mTLS through xDS\n\n` + text)
  }
} finally {
  for (const fn of cleanups.reverse()) await fn()
}
process.exit(0)
