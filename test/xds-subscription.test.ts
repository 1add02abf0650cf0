// TypeSubscription (src/xds/subscription.ts): the per-stream, per-type books of the xDS
// protocol, without a server: subscriptions (wildcard, legacy wildcard, names), nonces,
// ACK and NACK, what the client holds, narrowing on unsubscribe, and a reconnect's version.
import t from 'tap'
import { TypeUrl, xdsType } from '../src/xds/protos.js'
import { servedResource, versionOfSet, type ServedResource } from '../src/xds/snapshot.js'
import { TypeSubscription } from '../src/xds/subscription.js'
import { seeded } from './lib/random.js'

const res = (name: string, body = name): ServedResource => servedResource(TypeUrl.cluster, name, Buffer.from(body))
const set = (...rs: ServedResource[]) => new Map(rs.map((r) => [r.name, r]))

t.test('first request, send, ACK, NACK', async (t) => {
  const sub = new TypeSubscription(xdsType(TypeUrl.cluster)!)
  const o1 = sub.onRequest({ resource_names: ['a', 'b'] })
  t.match(o1, { kind: 'initial', changed: true, added: true, versionInfo: '' })
  t.equal(sub.mustAnswer, true, 'a first request is answered')
  t.equal(sub.wildcard, false)
  t.same([...sub.names].sort(), ['a', 'b'])

  const v1 = set(res('a'), res('b'))
  sub.recordSent(versionOfSet(v1), v1, 'n1', 5)
  t.equal(sub.inFlight, true)
  t.equal(sub.mustAnswer, false)
  t.equal(sub.heldVersion(), versionOfSet(v1))

  t.match(sub.onRequest({ resource_names: ['a', 'b'], version_info: versionOfSet(v1), response_nonce: 'old' }), {
    kind: 'stale',
    nonce: 'old',
  })
  t.equal(sub.inFlight, true, 'a stale nonce changes nothing')

  t.match(sub.onRequest({ resource_names: ['a', 'b'], version_info: versionOfSet(v1), response_nonce: 'n1' }), {
    kind: 'ack',
    changed: false,
    version: versionOfSet(v1),
  })
  t.equal(sub.ackedVersion, versionOfSet(v1))
  t.equal(sub.inFlight, false)

  const v2 = set(res('a', 'a2'), res('b'))
  sub.recordSent(versionOfSet(v2), v2, 'n2', null)
  const nack = sub.onRequest({
    resource_names: ['a', 'b'],
    version_info: versionOfSet(v1),
    response_nonce: 'n2',
    error_detail: { code: 14, message: 'bad a' },
  })
  t.match(nack, { kind: 'nack', version: versionOfSet(v2), error: 'bad a' })
  t.ok(sub.nacked.has(versionOfSet(v2)), 'the NACKed version is remembered')
  t.equal(sub.held, v1, 'the client holds the last ACKed content again')
  t.equal(sub.sentVersion, versionOfSet(v1))
})

t.test('legacy wildcard: an empty list is a wildcard for LDS and CDS until a name is given', async (t) => {
  const cds = new TypeSubscription(xdsType(TypeUrl.cluster)!)
  cds.onRequest({ resource_names: [] })
  t.equal(cds.wildcard, true)
  const eds = new TypeSubscription(xdsType(TypeUrl.endpoint)!)
  eds.onRequest({ resource_names: [] })
  t.equal(eds.wildcard, false, 'EDS has no legacy wildcard')
  cds.recordSent('v', new Map(), 'n1', null)
  cds.onRequest({ resource_names: ['x'], version_info: 'v', response_nonce: 'n1' })
  t.equal(cds.wildcard, false, 'naming something ends the legacy wildcard')
  cds.onRequest({ resource_names: [], version_info: 'v', response_nonce: 'n1' })
  t.equal(cds.wildcard, false, 'and an empty list is then no names')
  cds.onRequest({ resource_names: ['*', 'x'], version_info: 'v', response_nonce: 'n1' })
  t.equal(cds.wildcard, true, 'an explicit * is a wildcard')
  t.ok(cds.subscribed('anything'))
})

t.test('an unsubscribe narrows what the client holds, so it needs no answer', async (t) => {
  const eds = new TypeSubscription(xdsType(TypeUrl.endpoint)!)
  eds.onRequest({ resource_names: ['a', 'b'] })
  const held = set(res('a'), res('b'))
  eds.recordSent(versionOfSet(held), held, 'n1', null)
  const o = eds.onRequest({ resource_names: ['a'], version_info: versionOfSet(held), response_nonce: 'n1' })
  t.match(o, { kind: 'ack', changed: true, added: false })
  t.same([...eds.held!.keys()], ['a'])
  t.equal(eds.heldVersion(), versionOfSet(set(res('a'))), 'the held version is that of what is still subscribed')
  t.equal(eds.mustAnswer, false, 'nothing to answer')
  const o2 = eds.onRequest({ resource_names: ['a', 'c'], version_info: versionOfSet(held), response_nonce: 'n1' })
  t.match(o2, { changed: true, added: true })
  t.equal(eds.mustAnswer, false, 'a new EDS name is answered only when it exists (the server decides by content)')

  const cds = new TypeSubscription(xdsType(TypeUrl.cluster)!)
  cds.onRequest({ resource_names: ['a'] })
  cds.recordSent('v', set(res('a')), 'n1', null)
  cds.onRequest({ resource_names: ['a', 'later'], version_info: 'v', response_nonce: 'n1' })
  t.equal(cds.mustAnswer, true, 'a new CDS name is answered even if missing: the client learns it does not exist')
})

t.test('a reconnecting client: known holdings when its version is the current one, unknown otherwise', async (t) => {
  const current = set(res('a'), res('b'))
  const same = new TypeSubscription(xdsType(TypeUrl.cluster)!)
  t.match(same.onRequest({ resource_names: ['a', 'b'], version_info: versionOfSet(current) }), { kind: 'initial' })
  same.resume(versionOfSet(current), current)
  t.equal(same.held, current, 'it holds exactly the current content')
  t.equal(same.mustAnswer, false, 'and needs no answer')
  t.equal(same.ackedVersion, versionOfSet(current))

  const older = new TypeSubscription(xdsType(TypeUrl.cluster)!)
  older.onRequest({ resource_names: ['a', 'b'], version_info: 'from-before-the-restart' })
  older.resume('from-before-the-restart', current)
  t.equal(older.held, null, 'what it holds is unknown')
  t.equal(older.heldVersion(), 'from-before-the-restart')
  t.equal(older.mustAnswer, true, 'it gets an answer')
})

t.test('a repeated NACK is a repeat: no second NACK books the fallback version', async (t) => {
  const sub = new TypeSubscription(xdsType(TypeUrl.cluster)!)
  sub.onRequest({ resource_names: ['a'] })
  const v1 = set(res('a'))
  sub.recordSent(versionOfSet(v1), v1, 'n1', null)
  // A NACK before any ACK: the version rejected is booked, never "".
  const nack = { resource_names: ['a'], response_nonce: 'n1', error_detail: { code: 13, message: 'bad' } }
  t.match(sub.onRequest(nack), { kind: 'nack', version: versionOfSet(v1) })
  t.match(sub.onRequest({ ...nack, resource_names: ['a', 'b'] }), { kind: 'repeat', nonce: 'n1', changed: true, added: true })
  t.same([...sub.nacked], [versionOfSet(v1)], 'only the version rejected is barred; no "" entry')
  t.same([...sub.names].sort(), ['a', 'b'], 'the repeat applies its names')
  // A resumed client that says it holds "" and NACKs: nothing to bar.
  const r = new TypeSubscription(xdsType(TypeUrl.cluster)!)
  r.onRequest({ resource_names: ['a'], version_info: '' })
  r.resume('', new Map())
  r.nonce = 'n9'
  t.match(r.onRequest({ resource_names: ['a'], response_nonce: 'n9', error_detail: { message: 'x' } }), { kind: 'nack', version: '' })
  t.equal(r.nacked.size, 0, 'version "" is never barred')
})

// The kind of the fault above, as a property: however a client's requests go (responses, ACKs,
// NACKs, stale nonces), re-sending the request that answered the response in flight, with any
// names, books nothing: what was sent, ACKed, NACKed and barred match the same run without the
// repeats (what the client holds follows its names, as any request's do: not compared).
t.test('property: a repeated request (an answered nonce) never changes the ACK/NACK books', async (t) => {
  const NAMES = ['a', 'b', 'c']
  const books = (s: TypeSubscription) => ({
    sentVersion: s.sentVersion,
    ackedVersion: s.ackedVersion,
    nacked: [...s.nacked].sort(),
    lastNack: s.lastNack,
    inFlight: s.inFlight,
  })
  for (let seed = 1; seed <= 300; seed++) {
    const rnd = seeded(seed)
    const pick = () => NAMES.filter(() => rnd() < 0.6)
    const withRepeats = new TypeSubscription(xdsType(TypeUrl.cluster)!)
    const without = new TypeSubscription(xdsType(TypeUrl.cluster)!)
    const both = (req: Parameters<TypeSubscription['onRequest']>[0]) => {
      withRepeats.onRequest(req)
      without.onRequest(req)
    }
    both({ resource_names: pick() })
    let n = 0
    let last: Parameters<TypeSubscription['onRequest']>[0] | null = null
    const steps: string[] = []
    for (let i = 0; i < 12; i++) {
      const r = rnd()
      if (r < 0.3) {
        // A response: one of a few contents, so versions come back.
        const v = set(...NAMES.slice(0, 1 + Math.floor(rnd() * 3)).map((x) => res(x, `${x}${Math.floor(rnd() * 2)}`)))
        const nonce = `n${++n}`
        withRepeats.recordSent(versionOfSet(v), v, nonce, null)
        without.recordSent(versionOfSet(v), v, nonce, null)
        steps.push(`send ${nonce}`)
      } else if (r < 0.6 && withRepeats.nonce !== null) {
        const nack = rnd() < 0.5
        last = {
          resource_names: pick(),
          version_info: withRepeats.ackedVersion ?? '',
          response_nonce: withRepeats.nonce,
          ...(nack ? { error_detail: { code: 13, message: 'bad' } } : {}),
        }
        both(last)
        steps.push(`${nack ? 'nack' : 'ack'} ${withRepeats.nonce}`)
      } else if (r < 0.85 && last && last.response_nonce === withRepeats.nonce) {
        withRepeats.onRequest({ ...last, resource_names: pick() })
        steps.push(`repeat ${String(last.response_nonce)}`)
      } else if (n > 1) {
        both({ resource_names: pick(), response_nonce: 'n1' })
        steps.push('stale n1')
      }
    }
    const a = books(withRepeats)
    const b = books(without)
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      t.same(a, b, `seed ${seed}: ${steps.join(', ')}`)
      return
    }
  }
  t.pass('300 seeded runs: repeats booked nothing')
})
