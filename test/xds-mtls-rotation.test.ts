// Issue 18, acceptance 2: short-lived leaves, and a client of `a` calls b's XdsServer over mTLS
// continuously: 0 failed calls across at least two rotations of every leaf. Each kind of client
// (grpc-js-xds and gRPC C-core, at the same time) calls on one long-lived channel and, every
// second, on a new channel: a new connection needs a TLS handshake with the leaves of that
// moment on both sides, so once the first leaves have expired every new connection proves that
// renewed leaves are read and used. Certificate providers read their files every 10 s, as
// `shoal grpc-bootstrap` sets them. The issue's own numbers are 2-minute leaves for 5 minutes
// (SHOAL_ROTATION_TTL=2m SHOAL_ROTATION_SECONDS=300, seen passing: README "Service identity");
// the suite runs 1-minute leaves (the shortest --tls-leaf-ttl, renewed at 40 s) for 110 s: two
// rotations (40 and 80 s) and two expiries (60 and 100 s), each followed by new channels.
import t from 'tap'
import type { Registry } from 'prom-client'
import { twoAgents, serverB } from './lib/mtls-agents.js'
import { startXdsClient, XDS_CLIENT_KINDS, xdsClientMissing, type CallResult, type XdsTestClient } from './lib/xds-clients.js'

const SECONDS = Number(process.env.SHOAL_ROTATION_SECONDS ?? 110)
const TTL = process.env.SHOAL_ROTATION_TTL ?? '1m'
const TTL_SECONDS = Number(/^(\d+)m$/.exec(TTL)?.[1] ?? NaN) * 60
if (!(TTL_SECONDS > 0)) throw new Error(`SHOAL_ROTATION_TTL=${TTL}: give whole minutes, such as 1m or 2m`)
/** A leaf is renewed at two thirds of its lifetime (src/identity/issuer.ts RENEW_AT), every RENEW_SECONDS. */
const RENEW_SECONDS = (TTL_SECONDS * 2) / 3
const B = 'xds:///b:10011'
t.setTimeout((SECONDS + 240) * 1000)

async function renewals(registry: Registry): Promise<number> {
  const m = registry.getSingleMetric('shoal_identity_leaves_issued_total')
  return (await m?.get())?.values.find((v) => v.labels.reason === 'renewal')?.value ?? 0
}

interface Tally {
  calls: number
  fresh: number
  failures: Array<{ at: number; kind: string; fresh: boolean; result: CallResult }>
}

/** Calls on the open channel (about 20 a second) and one on a new channel every second, until `end`. */
async function callFor(client: XdsTestClient, end: number, aId: string, tally: Tally): Promise<void> {
  let nextFresh = Date.now()
  while (Date.now() < end) {
    const fresh = Date.now() >= nextFresh
    if (fresh) nextFresh += 1000
    const r = fresh ? await client.fresh(B, 5000) : await client.call(B, 5000)
    if (fresh) tally.fresh++
    else tally.calls++
    if (!r.ok || r.who !== `B|${aId}`) tally.failures.push({ at: Date.now(), kind: client.kind, fresh, result: r })
    if (!fresh) await new Promise((res) => setTimeout(res, 50))
  }
}

t.test(`mTLS calls through ${SECONDS} s of ${TTL} leaves: none fails`, async (t) => {
  const env = await twoAgents(t, 'rot', { mode: 'strict', leafTtl: TTL })
  await serverB(t, env, 10)
  const aId = `spiffe://${env.trustDomain}/svc/a`
  const kinds = XDS_CLIENT_KINDS.filter((k) => xdsClientMissing(k) === null)
  const clients = await Promise.all(
    kinds.map((kind) => startXdsClient(t, kind, { ...env.clientOf('a'), nodeId: `rot-${kind}`, creds: 'xds' })),
  )
  for (const c of clients) {
    const ms = await c.until(B, (w) => w === `B|${aId}`, 5, 60_000)
    t.ok(ms !== null, `${c.kind}: a reaches b over mTLS before the clock starts (${ms} ms)`)
  }
  const before = { a: await renewals(env.a.registry), b: await renewals(env.b.registry) }
  const start = Date.now()
  const tally: Tally = { calls: 0, fresh: 0, failures: [] }
  await Promise.all(clients.map((c) => callFor(c, start + SECONDS * 1000, aId, tally)))
  const after = { a: await renewals(env.a.registry), b: await renewals(env.b.registry) }
  // Agent A renews a, c and its node's own leaf (Envoy's, issue 19), agent B b, z and its node's:
  // two rotations are at least 6 renewals each.
  const rotations = Math.floor(Math.min(after.a - before.a, after.b - before.b) / 3)
  // Every window of SECONDS holds at least floor(SECONDS / RENEW_SECONDS) renewal times of a leaf.
  t.ok(
    rotations >= Math.floor(SECONDS / RENEW_SECONDS),
    `${rotations} rotations of every leaf in ${SECONDS} s of ${TTL} leaves (renewals: A ${after.a - before.a}, B ${after.b - before.b})`,
  )
  // The first leaves expire TTL after the start; certificate providers read their files every 10 s.
  if (SECONDS >= TTL_SECONDS + 20) t.ok(rotations >= 2, 'at least two, and new channels after the first leaves expired')
  t.same(
    tally.failures.map((f) => ({ ...f, at: `${((f.at - start) / 1000).toFixed(1)} s` })),
    [],
    `${tally.calls} calls on open channels and ${tally.fresh} on new ones (${kinds.join(', ')}): none failed`,
  )
  for (const c of clients) t.same(c.nacks, [], `${c.kind}: no NACK`)
})
