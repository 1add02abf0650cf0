import http from 'node:http'
import https from 'node:https'
import { ShoalError } from '../errors.js'

/** The most of a response body an HttpGet check reads; a longer body fails the check. */
export const MAX_BODY_BYTES = 1024 * 1024

/**
 * GET `url`; passes when a 2xx or 3xx answer has arrived whole (headers and a body of at most
 * `maxBodyBytes`). Rejects on any other status, a longer body, an error, or `signal`; however
 * it ends, the request is destroyed and its socket closed, so a check that hangs (headers sent,
 * the body never finished) leaves nothing open. Consul's check once passed on headers alone
 * and read the body afterwards (hashicorp/consul#5440).
 */
export function httpGetCheck(url: string, signal: AbortSignal, maxBodyBytes = MAX_BODY_BYTES): Promise<void> {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return Promise.reject(new ShoalError('SHOAL_ERR_CHECK_ARGS', `HttpGet: "${url}" is not a URL`))
  }
  const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : undefined
  if (!mod) return Promise.reject(new ShoalError('SHOAL_ERR_CHECK_ARGS', `HttpGet: "${url}" is not http(s)`))
  return new Promise<void>((resolve, reject) => {
    let settled = false
    // agent: false so that no keep-alive socket outlives the check.
    const req = mod.get(u, { agent: false, signal, headers: { 'user-agent': 'shoal-health' } }, (res) => {
      const code = res.statusCode ?? 0
      let bytes = 0
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        if (bytes > maxBodyBytes) finish(new Error(`HTTP ${code}: body over ${maxBodyBytes} bytes`))
      })
      res.once('end', () => finish(code >= 200 && code < 400 ? undefined : new Error(`HTTP ${code}`)))
      res.once('close', () => finish(new Error(`HTTP ${code}: the connection closed before the body was complete`)))
      res.once('error', (err) => finish(err))
    })
    const finish = (err: Error | undefined): void => {
      if (settled) return
      settled = true
      req.destroy()
      if (err) reject(err)
      else resolve()
    }
    req.once('error', (err) => finish(err))
  })
}
