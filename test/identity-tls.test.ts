// Identities in a real TLS stack (Node's TLS, OpenSSL): two agents' issuers, each with its own
// intermediate signed by one offline root, give services `a` and `b` leaves; `a` calls `b`
// over mutual TLS on loopback and each side sees the other's SPIFFE ID. A client whose leaf
// chains to another root is refused, and a name-constrained intermediate cannot vouch for
// another trust domain.
import t, { type Test } from 'tap'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, createServer, type PeerCertificate, type TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { IdentityIssuer } from '../src/identity/index.js'
import { silentLogger } from '../src/log.js'
import { createLeaf, generateKeyPair, importSigningKey, privateKeyPem, certificatesPem, pemBlocks } from '../src/identity/x509.js'
import { makePki, type Pki } from './lib/identity.js'

interface Files {
  cert: string
  key: string
  ca: string
}

async function leafOf(t: Test, pki: Pki, node: string, service: string): Promise<Files> {
  const issuer = new IdentityIssuer({ dir: pki.tlsDir(node), trustDomain: pki.trustDomain }, { logger: silentLogger() })
  t.teardown(() => issuer.stop())
  await issuer.start()
  issuer.setServices([service])
  await issuer.settled()
  const dir = join(pki.tlsDir(node), 'services', service)
  return {
    cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    key: readFileSync(join(dir, 'key.pem'), 'utf8'),
    ca: readFileSync(join(dir, 'bundle.pem'), 'utf8'),
  }
}

/**
 * A TLS server with `server`'s files that requires a client certificate chaining to its
 * bundle; the client connects with `client`'s files and checks the server's SPIFFE ID.
 * Resolves with what each side saw of the other, or the error that refused the connection.
 */
async function handshake(
  t: Test,
  server: Files,
  client: Files,
  expectServerId: string,
): Promise<{ serverSaw?: string; clientSaw?: string; error?: string }> {
  const seen: { serverSaw?: string; refused?: string } = {}
  // OpenSSL verifies the client's chain during the handshake; the server reads its verdict
  // (authorized, authorizationError) so the test can name the reason, and greets only a
  // verified client.
  const srv = createServer(
    { cert: server.cert, key: server.key, ca: server.ca, requestCert: true, rejectUnauthorized: false },
    (s: TLSSocket) => {
      if (!s.authorized) {
        seen.refused = String(s.authorizationError)
        s.destroy()
        return
      }
      seen.serverSaw = s.getPeerCertificate().subjectaltname
      s.end('hello')
    },
  )
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())))
  const port = (srv.address() as AddressInfo).port
  return new Promise((resolve) => {
    const sock = connect({
      host: '127.0.0.1',
      port,
      cert: client.cert,
      key: client.key,
      ca: client.ca,
      // SPIFFE peers are matched by their URI SAN, not a host name (X509-SVID 5.2).
      checkServerIdentity: (_host: string, cert: PeerCertificate) =>
        cert.subjectaltname === `URI:${expectServerId}` ? undefined : new Error(`server is ${cert.subjectaltname}, not ${expectServerId}`),
    })
    let data = ''
    let clientSaw: string | undefined
    sock.on('secureConnect', () => (clientSaw = sock.getPeerCertificate().subjectaltname))
    sock.on('data', (d) => (data += d))
    sock.on('error', (err) => (seen.refused ??= err.message))
    sock.on('close', () => {
      if (data === 'hello') resolve({ serverSaw: seen.serverSaw, clientSaw })
      else resolve({ error: seen.refused ?? 'closed without a greeting' })
    })
  })
}

t.test('two agents, one offline root: a calls b over mutual TLS and each sees the other', async (t) => {
  const pki = await makePki(t, { cluster: 'prod', nodes: ['n1', 'n2'] })
  const a = await leafOf(t, pki, 'n1', 'a')
  const b = await leafOf(t, pki, 'n2', 'b')
  const r = await handshake(t, b, a, 'spiffe://prod/svc/b')
  t.equal(r.error, undefined)
  t.equal(r.serverSaw, 'URI:spiffe://prod/svc/a', "the server sees the caller's SPIFFE ID")
  t.equal(r.clientSaw, 'URI:spiffe://prod/svc/b', "the client sees the server's")
  const wrong = await handshake(t, b, a, 'spiffe://prod/svc/c')
  t.match(wrong.error, /server is URI:spiffe:\/\/prod\/svc\/b, not spiffe:\/\/prod\/svc\/c/, 'a client expecting another service refuses')
})

t.test('a client whose leaf chains to another root is refused', async (t) => {
  const pki = await makePki(t, { cluster: 'prod', nodes: ['n1'] })
  const other = await makePki(t, { cluster: 'prod', nodes: ['x1'] })
  const b = await leafOf(t, pki, 'n1', 'b')
  const stranger = await leafOf(t, other, 'x1', 'a')
  // The stranger trusts our root, so only the server's check can refuse it.
  const r = await handshake(t, b, { ...stranger, ca: b.ca }, 'spiffe://prod/svc/b')
  t.match(r.error, /UNABLE_TO_GET_ISSUER_CERT_LOCALLY|unable to get local issuer/, `refused by the server: ${r.error}`)
  t.equal(r.serverSaw, undefined, 'the server never accepted it')
})

t.test('a name-constrained intermediate: OpenSSL accepts its trust domain and refuses another', async (t) => {
  const pki = await makePki(t, { cluster: 'prod', nodes: ['n2'] })
  await pki.intermediate('n1', { nameConstraint: true })
  const a = await leafOf(t, pki, 'n1', 'a')
  const b = await leafOf(t, pki, 'n2', 'b')
  const ok = await handshake(t, b, a, 'spiffe://prod/svc/b')
  t.equal(ok.serverSaw, 'URI:spiffe://prod/svc/a', 'a leaf of its own trust domain passes')
  // Leaves for another trust domain signed with each intermediate's key: only the name
  // constraint stops one (without it, keeping the trust domain is up to the application).
  const forge = async (node: string): Promise<Files> => {
    const interPem = readFileSync(join(pki.tlsDir(node), 'intermediate.pem'), 'utf8')
    const interDer = pemBlocks(interPem, 'intermediate.pem')[0]!.der
    const key = await importSigningKey(readFileSync(join(pki.tlsDir(node), 'intermediate-key.pem'), 'utf8'), 'intermediate-key.pem')
    const keys = await generateKeyPair()
    const der = await createLeaf({
      trustDomain: 'evil',
      service: 'a',
      spiffeId: 'spiffe://evil/svc/a',
      publicKey: keys.publicKey,
      issuer: { der: interDer, key },
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
    })
    return { cert: certificatesPem([der, interDer]), key: await privateKeyPem(keys.privateKey), ca: a.ca }
  }
  const unconstrained = await handshake(t, b, await forge('n2'), 'spiffe://prod/svc/b')
  t.equal(unconstrained.serverSaw, 'URI:spiffe://evil/svc/a', 'the unconstrained intermediate can vouch for another trust domain')
  const r = await handshake(t, b, await forge('n1'), 'spiffe://prod/svc/b')
  // OpenSSL's error 47, "permitted subtree violation" (Node 20 names it UNSPECIFIED).
  t.match(r.error, /PERMITTED_SUBTREE_VIOLATION|UNSPECIFIED/, `the constrained one cannot: refused by the server (${r.error})`)
  t.equal(r.serverSaw, undefined)
})
