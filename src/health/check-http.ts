import http from 'node:http'
import https from 'node:https'
import { ShoalError } from '../errors.js'
import { CheckFailed, OutputHead, type Finding } from './finding.js'

/** The most of a response body an HttpGet check reads; a longer body fails the check. */
export const MAX_BODY_BYTES = 1024 * 1024

/**
 * GET `url`; passes when a 2xx or 3xx answer has arrived whole (headers and a body of at most
 * `maxBodyBytes`), resolving to its status and the start of its body. Rejects on any other
 * status (CheckFailed `HTTP 503`, with the status and the body's start), a longer body, an
 * error, or `signal`; however it ends, the request is destroyed and its socket closed, so a
 * check that hangs (headers sent, the body never finished) leaves nothing open. Consul's check
 * once passed on headers alone and read the body afterwards (hashicorp/consul#5440).
 */
export function httpGetCheck(url: string, signal: AbortSignal, maxBodyBytes = MAX_BODY_BYTES): Promise<Finding> {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return Promise.reject(new ShoalError('SHOAL_ERR_CHECK_ARGS', `HttpGet: "${url}" is not a URL`))
  }
  const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : undefined
  if (!mod) return Promise.reject(new ShoalError('SHOAL_ERR_CHECK_ARGS', `HttpGet: "${url}" is not http(s)`))
  return new Promise<Finding>((resolve, reject) => {
    let settled = false
    let found: Finding = {}
    // agent: false so that no keep-alive socket outlives the check.
    const req = mod.get(u, { agent: false, signal, headers: { 'user-agent': 'shoal-health' } }, (res) => {
      const code = res.statusCode ?? 0
      const body = new OutputHead()
      const finding = (): Finding => {
        const output = body.text()
        return output === undefined ? { httpStatus: code } : { httpStatus: code, output }
      }
      found = { httpStatus: code }
      res.on('data', (chunk: Buffer) => {
        body.add(chunk)
        if (body.total > maxBodyBytes) finish(new CheckFailed(`HTTP ${code}: body over ${maxBodyBytes} bytes`, finding()))
      })
      res.once('end', () => {
        found = finding()
        finish(code >= 200 && code < 400 ? undefined : new CheckFailed(`HTTP ${code}`, found))
      })
      res.once('close', () => finish(new CheckFailed(`HTTP ${code}: the connection closed before the body was complete`, finding())))
      res.once('error', (err) => finish(err))
    })
    const finish = (err: Error | undefined): void => {
      if (settled) return
      settled = true
      req.destroy()
      if (err) reject(err)
      else resolve(found)
    }
    req.once('error', (err) => finish(err))
  })
}
