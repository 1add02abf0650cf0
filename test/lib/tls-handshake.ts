/**
 * A mutual TLS handshake in Node's tls module (OpenSSL), the real TLS stack the SDS tests check
 * Secrets with: a server on 127.0.0.1 presents one chain and requires a client certificate of
 * its roots; a client presents another and checks the server's URI SAN as Envoy's SAN matcher
 * would. Everything is closed at the test's teardown.
 *
 * @example
 *   const hs = await tlsServer(t, { cert: b.chain, key: b.key, ca: roots })
 *   await hs.dial({ cert: a.chain, key: a.key, ca: roots }, 'spiffe://prod/svc/b')   // 'ok'
 *   hs.peers                                                                          // ['URI:spiffe://prod/svc/a']
 */
import { createServer, connect, type TLSSocket } from 'node:tls'
import type { Test } from 'tap'

export interface Pem {
  /** PEM chain: leaf first. */
  cert: string
  key: string
  /** PEM roots the peer's chain must reach. */
  ca: string
}

export interface TlsTestServer {
  port: number
  /** The URI SAN of each client that completed a handshake, in order. */
  peers: string[]
  /** Handshake as a client expecting the server's URI SAN `expect`: 'ok', or the error message. */
  dial(client: Pem, expect: string): Promise<string>
}

export async function tlsServer(t: Pick<Test, 'teardown'>, pem: Pem, port = 0): Promise<TlsTestServer> {
  const peers: string[] = []
  const server = createServer({ ...pem, requestCert: true, rejectUnauthorized: true })
  server.on('secureConnection', (s: TLSSocket) => {
    peers.push(s.getPeerX509Certificate()?.subjectAltName ?? '')
    s.end('ok')
  })
  server.on('tlsClientError', () => undefined)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  const bound = (server.address() as { port: number }).port
  return {
    port: bound,
    peers,
    dial: (client, expect) =>
      new Promise<string>((resolve) => {
        const s = connect({
          host: '127.0.0.1',
          port: bound,
          ...client,
          checkServerIdentity: (_h, cert) =>
            cert.subjectaltname === `URI:${expect}` ? undefined : new Error(`not ${expect}: ${cert.subjectaltname}`),
        })
        s.on('data', () => {
          s.end()
          resolve('ok')
        })
        s.on('error', (err) => {
          s.destroy()
          resolve(err.message)
        })
      }),
  }
}
