// Service identity bench, one run (issue 18, acceptance 4):
//  1. leaf issuance: time and CPU per leaf through the agent's issuer (EC P-256 key, signature
//     by the intermediate, three files written atomically with fsync), against a floor measured
//     in the same run: node:crypto's key generation and one signature alone;
//  2. rotation at 100 local services: wall and CPU time to renew all 100 leaves (virtual clock
//     moved past two thirds of the lifetime, real keys, signatures and files);
//  3. per-call latency, unary gRPC on loopback (grpc-js): mutual TLS with the issued leaves
//     (server requires a client certificate; the client checks the server's SPIFFE ID) against
//     plain text, in alternating blocks; plus a new connection's first call (the handshake).
//
//   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/identity.ts [--out bench/RESULTS-identity.md]
import * as grpc from '@grpc/grpc-js'
import { generateKeyPairSync, sign } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { VirtualClock } from '../src/clock.js'
import { IdentityIssuer, initCa, makeIntermediate } from '../src/identity/index.js'
import { silentLogger } from '../src/log.js'
import { pct } from './stats.js'

const ISSUE_N = 200
const ROTATION_SERVICES = 100
const ROTATIONS = 5
const CALL_BLOCKS = 10
const CALLS_PER_BLOCK = 500
const CONNECTIONS = 100
const args = process.argv.slice(2)
const out = args.includes('--out') ? args[args.indexOf('--out') + 1] : undefined
const grpcVersion = (createRequire(import.meta.url)('@grpc/grpc-js/package.json') as { version: string }).version

const base = mkdtempSync(join(tmpdir(), 'shoal-bench-identity-'))
const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000
const f1 = (x: number) => x.toFixed(1)
const f2 = (x: number) => x.toFixed(2)
const loads: number[] = [loadavg()[0]!]

try {
  const clock = new VirtualClock({ startWall: Date.now() })
  await initCa({ cluster: 'bench', outDir: join(base, 'root'), now: clock.wallNow() })
  const tls = join(base, 'tls')
  await makeIntermediate({ node: 'n1', caDir: join(base, 'root'), outDir: tls, now: clock.wallNow() })
  const issuer = new IdentityIssuer({ dir: tls, trustDomain: 'bench', leafTtlMs: 90 * 60_000 }, { logger: silentLogger(), clock })
  await issuer.start()

  // 1. Issuance, one leaf at a time, and the floor.
  const wall: number[] = []
  const cpu: number[] = []
  const names: string[] = []
  for (let i = 0; i < ISSUE_N; i++) {
    names.push(`svc-${i}`)
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    issuer.setServices(names)
    await issuer.settled()
    wall.push(performance.now() - t0)
    cpu.push(cpuMs(process.cpuUsage(c0)))
  }
  const floor: number[] = []
  for (let i = 0; i < ISSUE_N; i++) {
    const c0 = process.cpuUsage()
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    sign('sha256', Buffer.alloc(400), privateKey)
    floor.push(cpuMs(process.cpuUsage(c0)))
  }
  loads.push(loadavg()[0]!)

  // 2. Rotation of 100 leaves (the others leave first and are removed after the grace period).
  issuer.setServices(names.slice(0, ROTATION_SERVICES))
  await clock.advance(61_000)
  await issuer.settled()
  const rotWall: number[] = []
  const rotCpu: number[] = []
  for (let r = 0; r < ROTATIONS; r++) {
    const before = issuer.identity('svc-0')!.renewAt!
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    await clock.advance(before - clock.wallNow() + 1000)
    await issuer.settled()
    rotWall.push(performance.now() - t0)
    rotCpu.push(cpuMs(process.cpuUsage(c0)))
    if (issuer.identities().some((i) => i.issuedAt < before)) throw new Error('a leaf was not renewed')
  }
  loads.push(loadavg()[0]!)
  await issuer.stop()
  // The virtual clock ran ahead: leaves for the calls come from an issuer on real time.
  const live = new IdentityIssuer({ dir: tls, trustDomain: 'bench' }, { logger: silentLogger() })
  await live.start()
  live.setServices(['a', 'b'])
  await live.settled()
  const a = live.identity('a')!
  const b = live.identity('b')!
  await live.stop()

  // 3. Per-call latency: mTLS with the issued leaves vs plain text, alternating blocks.
  const echo: grpc.ServiceDefinition = {
    Echo: {
      path: '/bench.Echo/Echo',
      requestStream: false,
      responseStream: false,
      requestSerialize: (x: Buffer) => x,
      requestDeserialize: (x: Buffer) => x,
      responseSerialize: (x: Buffer) => x,
      responseDeserialize: (x: Buffer) => x,
    },
  }
  const serve = async (creds: grpc.ServerCredentials): Promise<{ port: number; server: grpc.Server }> => {
    const server = new grpc.Server()
    server.addService(echo, { Echo: (_c: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('ok')) })
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? rej(e) : res(p))))
    return { port, server }
  }
  const plain = await serve(grpc.ServerCredentials.createInsecure())
  const secure = await serve(
    grpc.ServerCredentials.createSsl(
      Buffer.from(b.bundlePem),
      [{ private_key: Buffer.from(b.keyPem), cert_chain: Buffer.from(b.certChainPem) }],
      true,
    ),
  )
  const clientCreds = () =>
    grpc.credentials.createSsl(Buffer.from(a.bundlePem), Buffer.from(a.keyPem), Buffer.from(a.certChainPem), {
      checkServerIdentity: (_host, cert) => (cert.subjectaltname === `URI:${b.spiffeId}` ? undefined : new Error(`not ${b.spiffeId}`)),
    })
  // SNI may not be an IP address (RFC 6066); the server's identity is checked by its SPIFFE ID.
  const client = (port: number, tlsOn: boolean) =>
    tlsOn
      ? new grpc.Client(`127.0.0.1:${port}`, clientCreds(), { 'grpc.ssl_target_name_override': 'b' })
      : new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  const call = (c: grpc.Client) =>
    new Promise<void>((res, rej) =>
      c.makeUnaryRequest(
        '/bench.Echo/Echo',
        (x: Buffer) => x,
        (x: Buffer) => x,
        Buffer.from('hi'),
        (e) => (e ? rej(e) : res()),
      ),
    )
  const lat = { plain: [] as number[], tls: [] as number[] }
  const cPlain = client(plain.port, false)
  const cTls = client(secure.port, true)
  for (const c of [cPlain, cTls]) for (let i = 0; i < 200; i++) await call(c) // warm-up
  for (let blk = 0; blk < CALL_BLOCKS; blk++) {
    for (const [kind, c] of [
      ['plain', cPlain],
      ['tls', cTls],
    ] as const) {
      for (let i = 0; i < CALLS_PER_BLOCK; i++) {
        const t0 = performance.now()
        await call(c)
        lat[kind].push(performance.now() - t0)
      }
    }
  }
  cPlain.close()
  cTls.close()
  const first = { plain: [] as number[], tls: [] as number[] }
  for (let i = 0; i < CONNECTIONS; i++) {
    for (const kind of ['plain', 'tls'] as const) {
      const c = client(kind === 'tls' ? secure.port : plain.port, kind === 'tls')
      const t0 = performance.now()
      await call(c)
      first[kind].push(performance.now() - t0)
      c.close()
    }
  }
  plain.server.forceShutdown()
  secure.server.forceShutdown()
  loads.push(loadavg()[0]!)

  const med = (xs: number[]) => pct(xs, 50)
  const rows = [
    `| measure | p50 | p99 | peer in the same run | ratio (p50) |`,
    `|---|---|---|---|---|`,
    `| leaf issued (key, signature, 3 files with fsync), wall | ${f1(med(wall))} ms | ${f1(pct(wall, 99))} ms | | |`,
    `| leaf issued, CPU | ${f2(med(cpu))} ms | ${f2(pct(cpu, 99))} ms | node:crypto key + one signature: ${f2(med(floor))} ms | ${f1(med(cpu) / med(floor))} |`,
    `| rotation of ${ROTATION_SERVICES} leaves, wall | ${f1(med(rotWall))} ms | max ${f1(Math.max(...rotWall))} ms | | |`,
    `| rotation of ${ROTATION_SERVICES} leaves, CPU | ${f1(med(rotCpu))} ms | max ${f1(Math.max(...rotCpu))} ms | ${ROTATION_SERVICES} x the floor: ${f1(ROTATION_SERVICES * med(floor))} ms | ${f1(med(rotCpu) / (ROTATION_SERVICES * med(floor)))} |`,
    `| unary call on an open connection, mTLS | ${f2(med(lat.tls))} ms | ${f2(pct(lat.tls, 99))} ms | plain text: ${f2(med(lat.plain))} / ${f2(pct(lat.plain, 99))} ms | ${f2(med(lat.tls) / med(lat.plain))} |`,
    `| first call on a new connection, mTLS | ${f2(med(first.tls))} ms | ${f2(pct(first.tls, 99))} ms | plain text: ${f2(med(first.plain))} / ${f2(pct(first.plain, 99))} ms | ${f2(med(first.tls) / med(first.plain))} |`,
  ]
  const header = [
    `Run ${new Date().toISOString()} on ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Node ${process.version}; load average (1 min) at start, after issuance, after rotation, after calls: ${loads.map(f1).join(', ')}.`,
    `Issuance: ${ISSUE_N} leaves one at a time through IdentityIssuer. Rotation: ${ROTATIONS} renewals of ${ROTATION_SERVICES} leaves (virtual clock past two thirds of a 90-minute lifetime). Calls: ${CALL_BLOCKS} alternating blocks of ${CALLS_PER_BLOCK} unary calls per kind after 200 warm-up calls, and ${CONNECTIONS} new connections per kind; grpc-js ${grpcVersion} on 127.0.0.1.`,
  ]
  const text = [...header, '', ...rows, ''].join('\n')
  console.log(text)
  if (out) {
    const file = readFileSafe(out)
    writeFileSync(
      out,
      (file ? file.replace(/\n*$/, '\n\n') : '# Identity bench results (`bench/identity.ts`)\n\n') +
        `## ${new Date().toISOString().slice(0, 10)}\n\n` +
        text,
    )
  }
} finally {
  rmSync(base, { recursive: true, force: true })
}
process.exit(0)

function readFileSafe(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    mkdirSync(join(path, '..'), { recursive: true })
    return undefined
  }
}
