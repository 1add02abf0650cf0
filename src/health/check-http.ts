import http from 'node:http'
import https from 'node:https'
import { ShoalError } from '../errors.js'

/** GET `url`; passes on a 2xx or 3xx answer. Rejects on any other answer, error or abort. */
export function httpGetCheck(url: string, signal: AbortSignal): Promise<void> {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return Promise.reject(new ShoalError('SHOAL_ERR_CHECK_ARGS', `HttpGet: "${url}" is not a URL`))
  }
  const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : undefined
  if (!mod) return Promise.reject(new ShoalError('SHOAL_ERR_CHECK_ARGS', `HttpGet: "${url}" is not http(s)`))
  return new Promise((resolve, reject) => {
    // agent: false so that no keep-alive socket outlives the check.
    const req = mod.get(u, { agent: false, signal, headers: { 'user-agent': 'shoal-health' } }, (res) => {
      res.resume()
      const code = res.statusCode ?? 0
      if (code >= 200 && code < 400) resolve()
      else reject(new Error(`HTTP ${code}`))
    })
    req.on('error', reject)
  })
}
