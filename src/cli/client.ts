/**
 * `shoal members | services | state | watch | drain ID | undrain ID | keyring list`: read an
 * agent's HTTP API. Tables for people, `--json` for scripts; every failure is one line and exit 1.
 */
import { formatHostPort } from '../address.js'
import type { CatalogEvent, HostView, ServiceRecord } from '../registry/index.js'
import type { KeysView, MemberView, MembersView, ServicesView, ServiceView, StateView } from '../http/index.js'

export type ClientCommand = 'members' | 'services' | 'state' | 'watch' | 'drain' | 'undrain' | 'keyring'
export const CLIENT_COMMANDS: readonly ClientCommand[] = ['members', 'services', 'state', 'watch', 'drain', 'undrain', 'keyring']

export interface ClientOptions {
  /** Agent base URL. Default http://127.0.0.1:7777. */
  agent: string
  json: boolean
  /** Bearer token for drain/undrain (the agent's --api-token). */
  token?: string
  /** drain's reason (`?reason=TEXT`), shown in the record's detail. */
  reason?: string
  out: NodeJS.WritableStream
  /** Where the one-line errors go. Default: `out`. */
  err?: NodeJS.WritableStream
  /** Ends `watch` (and aborts any request). */
  signal?: AbortSignal
}

export const DEFAULT_AGENT_URL = 'http://127.0.0.1:7777'

/** A failure already phrased for the user. */
class ClientFailure extends Error {}

/**
 * Runs one client command; resolves to the process exit code (0 ok, 1 failure).
 *
 * @example
 *   const code = await runClientCommand('members', [], { agent: 'http://127.0.0.1:7777', json: false, out: process.stdout })
 *   process.exitCode = code
 */
export async function runClientCommand(cmd: ClientCommand, args: string[], opts: ClientOptions): Promise<number> {
  const errOut = opts.err ?? opts.out
  try {
    const base = agentUrl(opts.agent)
    switch (cmd) {
      case 'members': {
        const body = (await getJson(base, '/api/members.json', opts)) as MembersView
        opts.out.write(opts.json ? JSON.stringify(body, null, 2) + '\n' : membersTable(body.members))
        return 0
      }
      case 'services': {
        const name = args[0]
        if (name !== undefined) {
          const body = (await getJson(base, `/api/services/${encodeURIComponent(name)}.json`, opts)) as ServiceView
          opts.out.write(opts.json ? JSON.stringify(body, null, 2) + '\n' : instancesTable([body]))
        } else {
          const body = (await getJson(base, '/api/services.json', opts)) as ServicesView
          opts.out.write(opts.json ? JSON.stringify(body, null, 2) + '\n' : servicesTable(body))
        }
        return 0
      }
      case 'state': {
        const body = (await getJson(base, '/api/state.json', opts)) as StateView
        opts.out.write(opts.json ? JSON.stringify(body, null, 2) + '\n' : stateText(body))
        return 0
      }
      case 'watch':
        await watch(base, opts)
        return 0
      case 'drain':
      case 'undrain': {
        const id = args[0]
        if (!id) throw new ClientFailure(`usage: shoal ${cmd} ID (an instance id, see \`shoal services\`)`)
        const query = cmd === 'drain' && opts.reason !== undefined ? `?reason=${encodeURIComponent(opts.reason)}` : ''
        const path = `/api/instances/${encodeURIComponent(id)}/${cmd}${query}`
        const body = (await request(base, path, opts, 'POST', (e) => changeHint(cmd, id, e, opts))) as { id: string; node: string }
        opts.out.write(
          opts.json ? JSON.stringify(body) + '\n' : `${cmd === 'drain' ? 'draining' : 'undrained'} ${body.id} on ${body.node}\n`,
        )
        return 0
      }
      case 'keyring': {
        if (args[0] !== 'list') throw new ClientFailure(`usage: shoal keyring list (got "${args.join(' ')}")`)
        const body = (await getJson(base, '/api/keys.json', opts)) as KeysView
        opts.out.write(opts.json ? JSON.stringify(body, null, 2) + '\n' : keysText(body))
        return 0
      }
      default:
        throw new ClientFailure(`unknown command "${String(cmd)}"; one of ${CLIENT_COMMANDS.join(', ')}`)
    }
  } catch (err) {
    if (opts.signal?.aborted && cmd === 'watch') return 0
    errOut.write(`shoal: ${err instanceof ClientFailure ? err.message : `unexpected error: ${(err as Error)?.message ?? String(err)}`}\n`)
    return 1
  }
}

function agentUrl(raw: string): URL {
  let u: URL
  // A bare HOST:PORT (as --http prints it) means http://HOST:PORT.
  if (/^(\[[^\]]+\]|[^/:]+):\d+$/.test(raw)) raw = `http://${raw}`
  try {
    u = new URL(raw || DEFAULT_AGENT_URL)
  } catch {
    throw new ClientFailure(`--agent: "${raw}" is not a URL (e.g. ${DEFAULT_AGENT_URL})`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ClientFailure(`--agent: "${raw}" is not an http(s) URL`)
  return u
}

function urlOf(base: URL, path: string): string {
  return new URL(path, base).toString()
}

async function send(base: URL, path: string, opts: ClientOptions, method: 'GET' | 'POST', accept = 'application/json'): Promise<Response> {
  const headers: Record<string, string> = { accept }
  if (opts.token) headers.authorization = `Bearer ${opts.token}`
  try {
    return await fetch(urlOf(base, path), { method, headers, signal: opts.signal })
  } catch (err) {
    if (opts.signal?.aborted) throw err
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    const why = cause?.code ?? cause?.message ?? (err as Error).message
    throw new ClientFailure(`cannot reach the agent at ${base.origin} (${why}); is "shoal agent" running there? (--agent URL)`)
  }
}

/** What to do about a refused drain or undrain, after the agent's own message. */
function changeHint(
  cmd: 'drain' | 'undrain',
  id: string,
  e: { status: number; code?: string; message?: string },
  opts: ClientOptions,
): string {
  if (e.status === 401)
    return opts.token
      ? "; check --token (or SHOAL_API_TOKEN) against the agent's --api-token"
      : '; the agent has --api-token: pass it with --token TOKEN or SHOAL_API_TOKEN=TOKEN'
  if (e.code === 'SHOAL_ERR_NOT_LOCAL')
    return `; run \`shoal ${cmd} ${id} --agent HOST:PORT\` with the --http address of the agent on the instance's host (its agent must listen beyond loopback)`
  return ''
}

async function request(
  base: URL,
  path: string,
  opts: ClientOptions,
  method: 'GET' | 'POST',
  hint: (e: { status: number; code?: string; message?: string }) => string = () => '',
): Promise<unknown> {
  const res = await send(base, path, opts, method)
  const text = await res.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new ClientFailure(`${method} ${urlOf(base, path)}: HTTP ${res.status}, answer is not JSON (is ${base.origin} a Shoal agent?)`)
  }
  if (!res.ok) {
    const e = (body as { error?: { code?: string; message?: string } }).error
    const more = hint({ status: res.status, code: e?.code, message: e?.message })
    throw new ClientFailure(`${method} ${path}: ${res.status} ${e?.message ?? res.statusText}${e?.code ? ` (${e.code})` : ''}${more}`)
  }
  return body
}

function getJson(base: URL, path: string, opts: ClientOptions): Promise<unknown> {
  return request(base, path, opts, 'GET')
}

// ---- watch -----------------------------------------------------------------------

async function watch(base: URL, opts: ClientOptions): Promise<void> {
  const res = await send(base, '/api/watch', opts, 'GET', 'text/event-stream')
  if (!res.ok || !res.body) {
    await res.body?.cancel()
    throw new ClientFailure(`GET /api/watch: HTTP ${res.status}`)
  }
  const decoder = new TextDecoder()
  let buf = ''
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true })
      let cut: number
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut)
        buf = buf.slice(cut + 2)
        const ev = parseSseBlock(block)
        if (ev) opts.out.write(opts.json ? JSON.stringify(ev) + '\n' : watchLine(ev.event, ev.data) + '\n')
      }
    }
  } catch (err) {
    if (opts.signal?.aborted) return
    throw new ClientFailure(`the agent at ${base.origin} closed the watch stream (${(err as Error).message})`)
  }
  if (!opts.signal?.aborted) throw new ClientFailure(`the agent at ${base.origin} closed the watch stream`)
}

/** One SSE block -> { event, data }; comments (heartbeats) and retry lines give undefined. */
export function parseSseBlock(block: string): { event: string; data: unknown } | undefined {
  let event = 'message'
  const data: string[] = []
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(':') || line === '') continue
    const i = line.indexOf(':')
    const field = i < 0 ? line : line.slice(0, i)
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '')
    if (field === 'event') event = value
    else if (field === 'data') data.push(value)
  }
  if (data.length === 0) return undefined
  const text = data.join('\n')
  try {
    return { event, data: JSON.parse(text) }
  } catch {
    return { event, data: text }
  }
}

function watchLine(event: string, data: unknown): string {
  const time = new Date().toISOString().slice(11, 19)
  if (event === 'snapshot') {
    const d = data as { state: StateView; members: unknown[] }
    const st = d.state
    const n = st.hosts.reduce((a, h) => a + h.services.length, 0)
    return `${time} snapshot  cluster ${st.cluster}: ${st.hosts.length} hosts, ${n} records, ${d.members.length} members`
  }
  if (event === 'member') {
    const d = data as { event: string; member: MemberView }
    return `${time} member    ${d.member.name} ${d.event} (${d.member.state}, incarnation ${d.member.incarnation})`
  }
  if (event === 'catalog') {
    const d = data as CatalogEvent
    switch (d.type) {
      case 'service-added':
      case 'service-removed':
        return `${time} ${d.type.padEnd(16)} ${recordLabel(d.record)}`
      case 'service-updated':
        return `${time} service-updated  ${recordLabel(d.record)}${d.previous.status !== d.record.status ? ` (was ${d.previous.status})` : ''}`
      case 'host-up':
        return `${time} host-up          ${d.host}`
      case 'host-down':
        return `${time} host-down        ${d.host} (${d.state})`
    }
  }
  return `${time} ${event} ${JSON.stringify(data)}`
}

function recordLabel(r: ServiceRecord): string {
  return `${r.name} ${r.id} on ${r.host} ${r.status}`
}

// ---- tables ----------------------------------------------------------------------

/** Left-aligned columns, two spaces apart, header first. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n') + '\n'
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ago`
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`
  return `${Math.floor(s / 86400)}d ago`
}

function membersTable(members: MemberView[]): string {
  if (members.length === 0) return 'no members\n'
  return table(
    ['NAME', 'ADDRESS', 'STATE', 'INCARNATION', 'LAST CHANGE'],
    members.map((m) => [m.name, m.address, m.state, String(m.incarnation), ago(m.lastChange)]),
  )
}

/** Each port's addresses: the host binding (`ip:port`), then `NETWORK/ip:containerPort` for each network; `->ServicePort`. */
function portsOf(r: ServiceRecord): string {
  const nets = Object.entries(r.networks ?? {})
  return (
    r.ports
      .map((p) => {
        const at = p.ip !== undefined && p.port !== undefined ? [formatHostPort({ host: p.ip, port: p.port })] : []
        if (p.containerPort !== undefined)
          for (const [n, ip] of nets) at.push(`${n}/${formatHostPort({ host: ip, port: p.containerPort })}`)
        return `${at.join('|') || 'unpublished'}${p.servicePort ? `->${p.servicePort}` : ''}`
      })
      .join(',') || '-'
  )
}

function servicesTable(body: ServicesView): string {
  if (body.services.length === 0) return `no services in cluster ${body.cluster}\n`
  return table(
    ['SERVICE', 'SERVICE PORTS', 'INSTANCES', 'HEALTHY', 'HOSTS', 'TAGS'],
    body.services.map((s) => [
      s.name,
      s.servicePorts.join(',') || '-',
      String(s.instances.length),
      String(s.counts.alive ?? 0),
      [...new Set(s.instances.map((r) => r.host))].join(','),
      tagsOf(s.instances.flatMap((r) => r.tags ?? [])),
    ]),
  )
}

function instancesTable(services: ServiceView[]): string {
  const rows = services.flatMap((s) =>
    s.instances.map((r) => [s.name, r.id, r.host, r.status, portsOf(r), r.proxyMode, tagsOf(r.tags ?? [])]),
  )
  return table(['SERVICE', 'ID', 'HOST', 'STATUS', 'ADDRESS->SERVICEPORT', 'MODE', 'TAGS'], rows)
}

/** Tags as one cell: each once, in the order first seen, comma separated; `-` for none (README, Tags and attributes). */
function tagsOf(tags: readonly string[]): string {
  return [...new Set(tags)].join(',') || '-'
}

function keysText(body: KeysView): string {
  if (!body.encrypted) return `gossip on ${body.node} is not encrypted (no --key or --key-file)\n`
  const out = table(
    ['KEY (SHA-256)', 'PRIMARY', 'USED BY', 'MEMBERS'],
    body.keys.map((k) => [k.fingerprint, k.primary ? 'yes' : 'no', `${k.members.length} of ${body.members}`, k.members.join(',') || '-']),
  )
  const unknown = body.unknown.length > 0 ? `not heard from yet: ${body.unknown.join(',')}\n` : ''
  return out + unknown
}

function stateText(body: StateView): string {
  const out = [`cluster ${body.cluster}, seen from ${body.node}, seq ${body.seq}`]
  if (body.hosts.length === 0) out.push('no hosts')
  for (const h of body.hosts as HostView[]) {
    out.push('', `${h.name}  ${h.address}  ${h.state}  boot ${h.bootId.slice(0, 8)}`)
    if (h.services.length === 0) {
      out.push('  (no services)')
      continue
    }
    out.push(
      table(
        ['ID', 'SERVICE', 'STATUS', 'ADDRESS->SERVICEPORT', 'VERSION'],
        h.services.map((r) => [r.id, r.name, r.status, portsOf(r), `${r.version[0]}.${r.version[1]}`]),
      )
        .trimEnd()
        .replace(/^/gm, '  '),
    )
  }
  return out.join('\n') + '\n'
}
