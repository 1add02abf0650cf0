/**
 * A real gRPC echo backend and the client side used by the proxyless xDS tests: each backend
 * answers every call with its own id, so a test can count which host served a call.
 *
 * @example
 *   const port = await echoBackend(t, 'A')
 *   const spread = await counts(client, 100)   // { A: 52, B: 48 }
 */
import * as grpc from '@grpc/grpc-js'
import type { Test } from 'tap'

const ident = (b: Buffer) => b
export const ECHO_METHOD = '/shoal.test.Echo/Echo'
const echoService: grpc.ServiceDefinition = {
  Echo: {
    path: ECHO_METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: ident,
    requestDeserialize: ident,
    responseSerialize: ident,
    responseDeserialize: ident,
  },
}

/**
 * Start an echo server on `ip` (default 127.0.0.1; any of 127.0.0.0/8) port 0 that answers
 * with `id` (or, with `fail`, fails every call with INTERNAL, or with the status `failWith`,
 * naming `id` in the message); stopped at teardown.
 */
export async function echoBackend(t: Test, id: string, o: { fail?: boolean; failWith?: grpc.status; ip?: string } = {}): Promise<number> {
  const s = new grpc.Server()
  const failure = o.failWith ?? (o.fail ? grpc.status.INTERNAL : undefined)
  s.addService(echoService, {
    Echo: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) =>
      failure !== undefined ? cb({ code: failure, details: `backend ${id} fails on purpose` }) : cb(null, Buffer.from(id)),
  })
  const port = await new Promise<number>((res, rej) =>
    s.bindAsync(`${o.ip ?? '127.0.0.1'}:0`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  )
  t.teardown(() => s.forceShutdown())
  return port
}

/** One call; resolves with the id of the backend that answered. */
export function call(client: grpc.Client, deadlineMs = 3000): Promise<string> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(ECHO_METHOD, ident, ident, Buffer.from('hi'), { deadline: Date.now() + deadlineMs }, (err, res) =>
      err ? reject(err) : resolve(res!.toString()),
    ),
  )
}

/** `n` calls in a row; answers counted per backend id. */
export async function counts(client: grpc.Client, n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const who = await call(client)
    out[who] = (out[who] ?? 0) + 1
  }
  return out
}

/** Call until `pred` holds for `window` answers in a row: the ms it took, or null after the ceiling. */
export async function until(
  client: grpc.Client,
  pred: (who: string) => boolean,
  window: number,
  ceilingMs: number,
): Promise<number | null> {
  const start = Date.now()
  let run = 0
  while (Date.now() - start < ceilingMs) {
    const who = await call(client).catch(() => '')
    run = pred(who) ? run + 1 : 0
    if (run >= window) return Date.now() - start
    if (who === '') await new Promise((r) => setTimeout(r, 50))
  }
  return null
}
