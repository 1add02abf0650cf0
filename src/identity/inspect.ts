/**
 * `shoal ca inspect FILE`: a chain in words. Every certificate of FILE (and of the optional
 * bundle) with its kind, SPIFFE ID, subject, validity and key, who signed whom (signatures
 * checked by OpenSSL), and the X509-SVID rules it breaks (sections 2, 3 and 4 of
 * https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md).
 */
import { readFile } from 'node:fs/promises'
import { ShoalError } from '../errors.js'
import { readCertificates, signedBy } from './chain.js'
import { parseSpiffeId } from './spiffe.js'
import { pemBlocks, type CertificateInfo } from './x509.js'

export interface InspectResult {
  /** The text to print. */
  text: string
  /** Every certificate keeps the rules, none is expired, and (with a bundle) the chain reaches a root. */
  ok: boolean
}

interface Entry {
  info: CertificateInfo
  /** Where it came from: the file, or the bundle. */
  from: string
}

/**
 * Describes the certificates of `file` at wall time `nowMs`; `bundleFile` adds roots to
 * follow the chain to. Throws SHOAL_ERR_PEM or SHOAL_ERR_CA naming a file that cannot be read
 * or holds no certificate.
 */
export async function inspectChain(file: string, opts: { bundleFile?: string; nowMs?: number } = {}): Promise<InspectResult> {
  const now = opts.nowMs ?? Date.now()
  const text = await read(file)
  const keys = pemBlocks(text, file).filter((b) => /PRIVATE KEY/.test(b.type)).length
  const own = await readCertificates(text, file)
  if (own.length === 0) {
    const what = keys > 0 ? 'a private key and no certificate (keys are not shown)' : 'no certificate'
    throw new ShoalError('SHOAL_ERR_PEM', `${file} holds ${what}`)
  }
  const roots = opts.bundleFile ? await readCertificates(await read(opts.bundleFile), opts.bundleFile) : []
  const all: Entry[] = [...own.map((info) => ({ info, from: file })), ...roots.map((info) => ({ info, from: opts.bundleFile! }))]
  const lines: string[] = [
    `${file}: ${own.length} certificate${own.length === 1 ? '' : 's'}${keys ? ` and ${keys} private key${keys === 1 ? '' : 's'} (not shown)` : ''}`,
  ]
  let ok = true
  const issuerOf = all.map((e, i) => {
    if (signedBy(e.info.der, e.info.der)) return i
    return all.findIndex((p, j) => j !== i && p.info.ca && signedBy(e.info.der, p.info.der))
  })
  all.forEach((e, i) => {
    const c = e.info
    const selfSigned = issuerOf[i] === i
    const kind = !c.ca ? 'leaf' : selfSigned ? 'root' : 'intermediate'
    const constraints = c.ca ? ` (CA${c.pathLength !== undefined ? `, path length ${c.pathLength}` : ''})` : ''
    const ids = c.uris.length > 0 ? ' ' + c.uris.join(' ') : ''
    lines.push(`[${i + 1}] ${kind}${constraints}${ids}${e.from !== file ? ` (from ${e.from})` : ''}`)
    lines.push(`    subject    ${c.subject}`)
    lines.push(`    issuer     ${c.issuer}`)
    lines.push(`    valid      ${iso(c.notBefore)} to ${iso(c.notAfter)} (${validity(c, now)})`)
    const usage = [
      c.keyUsage.length ? `usage ${c.keyUsage.join(', ')}` : '',
      c.extKeyUsage.length ? `extended ${c.extKeyUsage.join(', ')}` : '',
    ]
    lines.push(`    key        ${[c.keyAlgorithm, ...usage.filter(Boolean)].join('; ')}`)
    if (c.permittedUris !== undefined) lines.push(`    names      permitted URI hosts: ${c.permittedUris.join(', ') || 'none'}`)
    if (c.otherNames.length) lines.push(`    other SANs ${c.otherNames.join(', ')}`)
    lines.push(`    serial     ${c.serial}; sha256 ${c.fingerprint}`)
    const by = issuerOf[i]!
    if (selfSigned) lines.push(`    signed by  itself (a root: trust it only from a bundle you hold)`)
    else if (by >= 0) lines.push(`    signed by  [${by + 1}] (signature checked)`)
    else
      lines.push(
        `    signed by  ${c.issuer}: not in ${opts.bundleFile ? 'this file or the bundle' : 'this file (pass --bundle FILE to follow it to a root)'}`,
      )
    const problems = rulesBroken(c, kind, now)
    for (const p of problems) lines.push(`    problem    ${p}`)
    if (problems.length) ok = false
  })
  // The chain of the file's first certificate, up through its issuers.
  const path: number[] = [0]
  for (let at = 0; ;) {
    const next = issuerOf[at]!
    if (next < 0 || next === at || path.includes(next)) break
    path.push(next)
    at = next
  }
  const top = path[path.length - 1]!
  const reachesRoot = issuerOf[top] === top && all[top]!.from === opts.bundleFile
  const chain = path.map((i) => `[${i + 1}]`).join(' -> ')
  if (opts.bundleFile) {
    if (!reachesRoot) ok = false
    lines.push(`chain: ${chain}: ${reachesRoot ? `reaches a root of ${opts.bundleFile}` : `does not reach a root of ${opts.bundleFile}`}`)
  } else {
    lines.push(`chain: ${chain}${issuerOf[top] === top ? ' (ends at a self-signed certificate of this file)' : ''}`)
  }
  return { text: lines.join('\n') + '\n', ok }
}

/** The X509-SVID rules `c` breaks as a `kind`, and whether it is outside its validity at `now`. */
function rulesBroken(c: CertificateInfo, kind: 'leaf' | 'root' | 'intermediate', now: number): string[] {
  const out: string[] = []
  if (now >= c.notAfter.getTime()) out.push(`expired at ${iso(c.notAfter)}`)
  if (now < c.notBefore.getTime()) out.push(`not valid before ${iso(c.notBefore)}`)
  const ids = c.uris.map(parseSpiffeId)
  for (const id of ids) if (typeof id === 'string') out.push(`URI SAN is not a SPIFFE ID: ${id}`)
  if (kind === 'leaf') {
    if (c.uris.length !== 1) out.push(`a leaf SVID has exactly one URI SAN; this one has ${c.uris.length} (X509-SVID 2)`)
    for (const id of ids) if (typeof id !== 'string' && id.path === '') out.push('a leaf SPIFFE ID needs a path (X509-SVID 3.1)')
    if (!c.keyUsage.includes('digitalSignature')) out.push('a leaf needs key usage digitalSignature (X509-SVID 4.3)')
    if (c.keyUsage.includes('keyCertSign') || c.keyUsage.includes('cRLSign'))
      out.push('a leaf may not have keyCertSign or cRLSign (X509-SVID 4.3)')
  } else {
    if (!c.keyUsage.includes('keyCertSign')) out.push('a signing certificate needs key usage keyCertSign (X509-SVID 4.3)')
    for (const id of ids)
      if (typeof id !== 'string' && id.path !== '') out.push('a signing certificate SPIFFE ID has no path (X509-SVID 3.2)')
  }
  if (c.unknownCritical.length) out.push(`critical extensions a verifier may not know: ${c.unknownCritical.join(', ')}`)
  return out
}

function iso(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z')
}

/** `23h 59m left`, `29d 23h left`, `expired 3h 0m ago`, `starts in 5m 0s`. */
function validity(c: CertificateInfo, now: number): string {
  if (now < c.notBefore.getTime()) return `starts in ${span(c.notBefore.getTime() - now)}`
  const left = c.notAfter.getTime() - now
  return left > 0 ? `${span(left)} left` : `expired ${span(-left)} ago`
}

function span(ms: number): string {
  const s = Math.floor(ms / 1000)
  const d = Math.floor(s / 86_400)
  const h = Math.floor((s % 86_400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  if (d > 0) return `${d}d ${h}h`
  if (h > 0) return `${h}h ${m}m`
  return `${m}m ${s % 60}s`
}

async function read(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new ShoalError('SHOAL_ERR_CA', `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, {
      cause: err,
    })
  }
}
