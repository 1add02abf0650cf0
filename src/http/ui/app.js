// Shoal web UI: one page, no build step. It reads /api/watch (Server-Sent Events): a
// `snapshot` event with the whole catalog and the members, then `catalog` and `member`
// events that it applies to its own copy. Everything is drawn with textContent, never
// innerHTML, because names and labels come from other hosts.
'use strict'

const model = {
  cluster: '',
  node: '',
  /** name -> { name, address, state, bootId, services: Map<id, record> } */
  hosts: new Map(),
  /** name -> member view */
  members: new Map(),
  events: [],
  /** instance id -> time of its last change, to highlight it briefly */
  touched: new Map(),
}
const HIGHLIGHT_MS = 2500
const MAX_EVENTS = 30

function $(id) {
  return document.getElementById(id)
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'class') e.className = v
    else if (k === 'text') e.textContent = v
    else if (k === 'onclick') e.addEventListener('click', v)
    else e.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c)
  return e
}

// ---- model updates ----------------------------------------------------------------

function hostOf(name) {
  let h = model.hosts.get(name)
  if (!h) {
    h = { name, address: '', state: 'alive', bootId: '', services: new Map() }
    model.hosts.set(name, h)
  }
  return h
}

function applySnapshot(data) {
  model.cluster = data.state.cluster
  model.node = data.state.node
  model.hosts.clear()
  for (const h of data.state.hosts) {
    model.hosts.set(h.name, { ...h, services: new Map(h.services.map((r) => [r.id, r])) })
  }
  model.members.clear()
  for (const m of data.members) model.members.set(m.name, m)
  model.touched.clear()
}

function putRecord(r) {
  const h = hostOf(r.host)
  if (r.bootId && h.bootId !== r.bootId) {
    // A record of a newer boot: the host restarted, its old records are gone.
    h.bootId = r.bootId
    for (const [id, old] of h.services) if (old.bootId !== r.bootId) h.services.delete(id)
  }
  h.services.set(r.id, r)
  model.touched.set(r.id, Date.now())
}

/** A status with the owner's reason when it gives one (`draining (stopping)`, `unhealthy (starting)`). */
function statusText(r) {
  return r.reason ? `${r.status} (${r.reason})` : r.status
}

function applyCatalog(ev) {
  switch (ev.type) {
    case 'service-added':
      putRecord(ev.record)
      note(`${ev.record.name} added on ${ev.record.host}`, ev.record.status)
      break
    case 'service-updated':
      putRecord(ev.record)
      if (ev.previous && statusText(ev.previous) !== statusText(ev.record)) {
        note(`${ev.record.name} on ${ev.record.host}: ${statusText(ev.previous)} → ${statusText(ev.record)}`, ev.record.status)
      }
      break
    case 'service-removed':
      hostOf(ev.record.host).services.delete(ev.record.id)
      note(`${ev.record.name} removed from ${ev.record.host}`, 'removed')
      break
    case 'host-up':
      hostOf(ev.host).state = 'alive'
      note(`host ${ev.host} up`, 'alive')
      break
    case 'host-down':
      hostOf(ev.host).state = ev.state
      note(`host ${ev.host} ${ev.state}`, ev.state)
      break
  }
}

function applyMember(ev) {
  const m = ev.member
  model.members.set(m.name, m)
  if (model.hosts.has(m.name)) model.hosts.get(m.name).address = model.hosts.get(m.name).address || m.address
  note(`member ${m.name} ${ev.event}`, m.state)
}

function note(text, kind) {
  model.events.unshift({ at: new Date(), text, kind })
  if (model.events.length > MAX_EVENTS) model.events.length = MAX_EVENTS
}

// ---- derived views ---------------------------------------------------------------

/** Membership knows suspicion before the catalog does; prefer it. */
function hostState(h) {
  const m = model.members.get(h.name)
  return m ? m.state : h.state
}

function isLive(h) {
  const s = hostState(h)
  return s === 'alive' || s === 'suspect'
}

function liveRecordsOf(h) {
  if (!isLive(h)) return []
  return [...h.services.values()].filter((r) => r.status !== 'tombstone' && (!h.bootId || r.bootId === h.bootId))
}

function hostNames() {
  const names = new Set([...model.hosts.keys(), ...model.members.keys()])
  return [...names].sort((a, b) => a.localeCompare(b))
}

function servicesIndex() {
  /** name -> { name, servicePorts:Set, proxyModes:Set, byHost: Map<host, record[]> } */
  const idx = new Map()
  for (const h of model.hosts.values()) {
    for (const r of liveRecordsOf(h)) {
      let s = idx.get(r.name)
      if (!s) idx.set(r.name, (s = { name: r.name, servicePorts: new Set(), proxyModes: new Set(), byHost: new Map() }))
      for (const p of r.ports) if (p.servicePort > 0) s.servicePorts.add(p.servicePort)
      s.proxyModes.add(r.proxyMode)
      if (!s.byHost.has(r.host)) s.byHost.set(r.host, [])
      s.byHost.get(r.host).push(r)
    }
  }
  return [...idx.values()].sort((a, b) => a.name.localeCompare(b.name))
}

// ---- rendering -------------------------------------------------------------------

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ago`
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`
  return `${Math.floor(s / 86400)}d ago`
}

function pill(state) {
  return el('span', { class: `pill st-${state}`, text: state })
}

// A port's addresses: its host binding, then its address on each Docker network (NETWORK/ip:containerPort).
function addressesOf(r, p) {
  const host = (ip) => (ip.includes(':') ? `[${ip}]` : ip)
  const out = p.ip !== undefined && p.port !== undefined ? [`${host(p.ip)}:${p.port}`] : []
  if (p.containerPort !== undefined) for (const [n, ip] of Object.entries(r.networks || {})) out.push(`${n}/${host(ip)}:${p.containerPort}`)
  return out.join(' | ') || 'unpublished'
}

function instanceBadge(r) {
  const ports = r.ports.map((p) => addressesOf(r, p)).join(', ')
  // Tags show on the badge; attributes (key=value) in its title, with everything else.
  const tags = r.tags || []
  const attributes = Object.entries(r.attributes || {}).map(([k, v]) => `${k}=${v}`)
  const title =
    `${r.id} · ${r.image || 'no image'} · ${statusText(r)}` +
    (ports ? ` · ${ports}` : '') +
    (tags.length ? ` · tags: ${tags.join(', ')}` : '') +
    (attributes.length ? ` · ${attributes.join(', ')}` : '')
  const fresh = Date.now() - (model.touched.get(r.id) || 0) < HIGHLIGHT_MS
  return el(
    'span',
    {
      class: `badge st-${r.status}` + (fresh ? ' fresh' : ''),
      title,
      'data-instance': r.id,
      role: 'button',
      tabindex: '0',
      onclick: () => openDetails(r.host, r.id),
    },
    el('span', { class: 'dot' }),
    el('span', { class: 'port', text: ports || r.id }),
    el('span', { class: 'status', text: statusText(r) }),
    ...tags.map((tag) => el('span', { class: 'tag', text: tag })),
  )
}

/**
 * "N of M serving": `serving` is the agent's word on whether a status takes traffic (alive or
 * unknown), never restated here. Red only when none serves and one is unhealthy; a drained
 * instance is draining, not down.
 */
function healthSummary(s) {
  const all = [...s.byHost.values()].flat()
  const serving = all.filter((r) => r.serving).length
  const draining = all.filter((r) => r.status === 'draining').length
  const unhealthy = all.filter((r) => r.status === 'unhealthy').length
  const cls = serving === all.length ? 'ok' : serving === 0 && unhealthy > 0 ? 'bad' : unhealthy > 0 ? 'warn' : 'draining'
  const text =
    `${serving} of ${all.length} serving` + (draining ? ` · ${draining} draining` : '') + (unhealthy ? ` · ${unhealthy} unhealthy` : '')
  return el('div', { class: `svc-health svc-health-${cls}`, text })
}

function renderHeader(hosts, services) {
  $('cluster').textContent = model.cluster || '—'
  $('node').textContent = model.node || '—'
  $('count-hosts').textContent = `${
    hosts.filter((n) => {
      const h = model.hosts.get(n)
      return h ? isLive(h) : (model.members.get(n) || {}).state === 'alive'
    }).length
  } / ${hosts.length}`
  $('count-services').textContent = String(services.length)
  $('count-instances').textContent = String(services.reduce((n, s) => n + [...s.byHost.values()].reduce((a, l) => a + l.length, 0), 0))
  document.title = model.cluster ? `Shoal · ${model.cluster}` : 'Shoal'
}

function renderGrid(hosts, services) {
  const head = $('grid-head')
  head.replaceChildren(el('th', { class: 'corner', scope: 'col', text: 'service' }))
  for (const name of hosts) {
    const h = model.hosts.get(name)
    const m = model.members.get(name)
    const state = h ? hostState(h) : m.state
    const address = (m && m.address) || (h && h.address) || ''
    head.append(
      el(
        'th',
        { scope: 'col', class: `host host-${state}` + (name === model.node ? ' host-self' : ''), 'data-host': name },
        el('div', { class: 'host-name', text: name }),
        el('div', { class: 'host-meta' }, pill(state), el('span', { class: 'addr', text: address })),
      ),
    )
  }
  const filter = $('filter').value.trim().toLowerCase()
  const shown = filter ? services.filter((s) => s.name.includes(filter)) : services
  const body = $('grid-body')
  body.replaceChildren(
    ...shown.map((s) => {
      const row = el('tr', { 'data-service': s.name })
      const ports = [...s.servicePorts].sort((a, b) => a - b)
      row.append(
        el(
          'th',
          { scope: 'row', class: 'svc' },
          el('div', { class: 'svc-name', text: s.name }),
          el(
            'div',
            { class: 'svc-meta' },
            ...ports.map((p) => el('span', { class: 'sport', title: 'ServicePort', text: `:${p}` })),
            el('span', { class: 'mode', text: [...s.proxyModes].join('/') }),
          ),
          healthSummary(s),
        ),
      )
      for (const name of hosts) {
        const list = (s.byHost.get(name) || []).slice().sort((a, b) => a.id.localeCompare(b.id))
        const h = model.hosts.get(name)
        const dead = h ? !isLive(h) : true
        row.append(
          el(
            'td',
            { class: dead ? 'cell cell-dead' : 'cell' },
            ...(list.length ? list.map(instanceBadge) : dead ? [] : [el('span', { class: 'none', 'aria-label': 'none', text: '–' })]),
          ),
        )
      }
      return row
    }),
  )
  $('grid-empty').hidden = services.length > 0
  $('grid').classList.toggle('is-empty', services.length === 0)
}

function renderMembers() {
  const list = [...model.members.values()].sort((a, b) => a.name.localeCompare(b.name))
  $('members').replaceChildren(
    ...list.map((m) =>
      el(
        'tr',
        { 'data-member': m.name },
        el('td', { class: 'mono', text: m.name + (m.name === model.node ? ' (this agent)' : '') }),
        el('td', { class: 'mono', text: m.address }),
        el('td', {}, pill(m.state)),
        el('td', { class: 'num', text: String(m.incarnation) }),
        el('td', { class: 'mono muted', title: m.bootId, text: (m.bootId || '').slice(0, 8) }),
        el('td', { class: 'muted', title: new Date(m.lastChange).toISOString(), text: ago(m.lastChange) }),
      ),
    ),
  )
}

function renderEvents() {
  $('events').replaceChildren(
    ...model.events.map((e) =>
      el(
        'li',
        {},
        el('time', { text: e.at.toLocaleTimeString() }),
        el('span', { class: `tick st-${e.kind}` }),
        el('span', { text: e.text }),
      ),
    ),
  )
  if (model.events.length === 0) $('events').append(el('li', { class: 'muted', text: 'Waiting for changes…' }))
}

// ---- xDS warnings (from /debug/xds): what the agent leaves out of what it serves ----

// `clients`: the node ids of the connected xDS clients on the network the warning is about.
function warningText(w, clients) {
  if (w.problem)
    return `${w.service}:${w.servicePort}: external authorization by "${w.target}": ${w.detail}; its Envoy listener ${w.failureModeAllow ? 'lets everything through' : 'denies everything'}`
  if (w.losers) return `ServicePort ${w.servicePort} is claimed by ${[w.winner, ...w.losers].join(', ')}: only ${w.winner} is served`
  const where = w.network === null || w.network === undefined ? 'clients on the host network' : `clients on network ${w.network}`
  const to = `not sent to ${where}${clients && clients.length ? ` (${clients.join(', ')})` : ''}`
  const who = `${w.service}:${w.servicePort}: ${w.host}/${w.id}`
  if (w.reason === 'duplicate_address') return `${who} lists ${w.address}, already served for ${w.keptBy.host}/${w.keptBy.id}: ${to}`
  if (w.reason === 'no_reachable_address') {
    const has = w.networks && w.networks.length ? `only on network ${w.networks.join(', ')}` : 'no address'
    return w.network === null || w.network === undefined
      ? `${who} has no published port (${has}): ${to}`
      : `${who} has no address on ${w.network} and no published port: ${to}`
  }
  return `${who} has address ${w.address}, which no xDS client accepts (${w.reason.replace(/_/g, ' ')}): ${to}`
}

// Every warning once: conflicts, then what is left out for each network's clients (the host network's even with no client).
function xdsWarnings(x) {
  const byNet = new Map([[null, { dropped: x.dropped || [], clients: [] }]])
  for (const c of x.clients || []) {
    const key = c.network ?? null
    if (!byNet.has(key)) byNet.set(key, { dropped: c.dropped || [], clients: [] })
    byNet.get(key).clients.push(c.nodeId || `stream ${c.stream}`)
  }
  const items = (x.conflicts || []).map((w) => warningText(w))
  for (const v of byNet.values()) for (const d of v.dropped) items.push(warningText(d, v.clients))
  for (const a of x.authz || []) items.push(warningText(a))
  return items
}

/** One row per client and resource type: what it subscribed to, the version it ACKed, the one it NACKed and why. */
function renderXdsClients(clients) {
  const rows = []
  for (const c of clients) {
    for (const sub of c.types) {
      rows.push(
        el(
          'tr',
          { 'data-xds-client': c.nodeId },
          el('td', { class: 'mono', text: c.nodeId || `stream ${c.stream}` }),
          el('td', { text: c.kind }),
          el('td', { text: sub.type }),
          el('td', {
            class: 'mono',
            text: sub.wildcard
              ? '* (all)'
              : sub.names.join(', ') + (sub.nameCount > sub.names.length ? ` … (${sub.nameCount} in all)` : ''),
          }),
          el('td', { class: 'mono', text: sub.ackedVersion || '—' }),
          el('td', {
            class: sub.nackedVersion ? 'mono nack' : 'mono',
            text: sub.nackedVersion ? `${sub.nackedVersion}: ${sub.nackError}` : '—',
          }),
        ),
      )
    }
  }
  $('xds-clients-panel').hidden = rows.length === 0
  $('xds-clients').replaceChildren(...rows)
}

let xdsTimer = null
function refreshXds() {
  if (xdsTimer) return
  xdsTimer = setTimeout(async () => {
    xdsTimer = null
    try {
      const x = (await (await fetch('/debug/xds')).json()).clients ?? {}
      const items = xdsWarnings(x)
      $('xds-warnings').hidden = items.length === 0
      $('xds-list').replaceChildren(...items.map((text) => el('li', { text })))
      renderXdsClients(x.clients ?? [])
    } catch {
      // the agent is restarting: the next catalog event tries again
    }
  }, 300)
}

// ---- this agent's sources (from /api/sources.json): a refused static file, kept services ----

async function refreshSources() {
  try {
    const { sources = [] } = await (await fetch('/api/sources.json')).json()
    const items = []
    for (const s of sources) {
      const entries = s.entries || []
      if (s.error || (!s.ok && !entries.some((e) => e.action === 'refused')))
        items.push(`${s.source}: ${s.error?.message ?? `${s.where}: failing`}; still announcing its last good ${s.services} service(s)`)
      // Entries the record limits refused (not served) or trimmed (served without what was cut).
      for (const e of entries) items.push(`${s.source}: ${e.origin}: ${e.message} (record limits: README "Known limits")`)
    }
    $('source-warnings').hidden = items.length === 0
    $('source-list').replaceChildren(...items.map((text) => el('li', { text })))
  } catch {
    // the agent is restarting: the next poll tries again
  }
}
// A refused file changes no record, so no catalog event says so: poll.
setInterval(refreshSources, 5000)
refreshSources()

// ---- instance details (a badge opened) ---------------------------------------------

/** The open instance: { host, id }, or null. */
let opened = null

function openDetails(host, id) {
  opened = { host, id }
  $('action-result').textContent = ''
  $('drain-reason').value = ''
  renderDetails()
  $('details').hidden = false
  $('details').scrollIntoView({ block: 'nearest' })
}

function field(name, value) {
  return value === undefined || value === null || value === '' ? [] : [el('dt', { text: name }), el('dd', { text: String(value) })]
}

/** The record from the stream, and what only its owner knows from this agent's /api/services/NAME.json when it is local. */
async function renderDetails() {
  if (!opened) return
  const h = model.hosts.get(opened.host)
  const r = h && h.services.get(opened.id)
  if (!r) {
    $('details-title').textContent = `${opened.id} on ${opened.host}: gone`
    $('details-fields').replaceChildren()
    $('details-actions').hidden = true
    $('details-elsewhere').hidden = true
    return
  }
  let own = null
  if (r.host === model.node) {
    try {
      const v = await (await fetch(`/api/services/${encodeURIComponent(r.name)}.json`)).json()
      own = (v.instances || []).find((i) => i.id === r.id && i.host === r.host) || null
    } catch {
      // the agent is restarting: the record alone is shown
    }
  }
  const c = own && own.check
  const l = own && own.local
  $('details-title').textContent = `${r.name} · ${r.id} on ${r.host}`
  $('details-fields').replaceChildren(
    ...field('status', r.status + (r.serving ? ' (serving)' : ' (not serving)')),
    ...field('reason', r.reason),
    ...field('detail', r.detail),
    ...field('image', r.image),
    ...field('ports', r.ports.map((p) => `${addressesOf(r, p)} → ServicePort ${p.servicePort}`).join(', ')),
    ...field('tags', (r.tags || []).join(', ')),
    ...field(
      'attributes',
      Object.entries(r.attributes || {})
        .map(([k, v]) => `${k}=${v}`)
        .join('\n'),
    ),
    ...field('proxy mode', r.proxyMode),
    ...field('version', r.version.join('.')),
    ...field('last change', r.updated ? `${new Date(r.updated).toISOString()} (${ago(r.updated)})` : ''),
    ...field('source', l && `${l.source}${l.origin ? `: ${l.origin}` : ''}`),
    ...field('container', l && l.containerId),
    ...field('check', c ? `${c.type}${c.target ? ` ${c.target}` : ''}` : l && l.checkSpec ? `${l.checkSpec.type} (not run yet)` : ''),
    ...field(
      'last check',
      c &&
        `${c.outcome}${c.error ? `: ${c.error}` : ''}${c.httpStatus !== undefined ? ` (HTTP ${c.httpStatus})` : ''} at ${new Date(c.at).toLocaleTimeString()}, ${c.passes} passes / ${c.fails} failures in a row`,
    ),
    ...field('check output', c && c.output),
    ...field('drained', l && l.drain && `${new Date(l.drain.at).toLocaleTimeString()}${l.drain.reason ? `: ${l.drain.reason}` : ''}`),
    ...field(
      'labels',
      Object.keys(r.labels || {}).length
        ? Object.entries(r.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join('\n')
        : '',
    ),
  )
  // Another host's instance: what its owner gossips (status, reason, the check's detail,
  // version) is above; its check run, source and drain controls live on its owner's agent.
  const remote = r.host !== model.node
  $('details-actions').hidden = remote
  $('details-elsewhere').hidden = !remote
  $('details-elsewhere').textContent = remote
    ? `${r.host} runs this instance: its last check run and source are on ${r.host}'s agent, and only that agent drains it ` +
      `(open ${r.host}'s UI, or run \`shoal drain ${r.id} --agent HOST:PORT\` with ${r.host}'s --http address).`
    : ''
  $('drain').hidden = r.status === 'draining' && r.reason === 'operator'
  $('undrain').hidden = !(r.status === 'draining' && r.reason === 'operator')
}

// ---- the API token (the agent's --api-token), for drain and undrain ----------------

// Kept for this tab only: sessionStorage is per origin and gone when the tab closes.
const TOKEN_KEY = 'shoal.apiToken'

function apiToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || ''
  } catch {
    return '' // storage disabled: the field's value alone is used
  }
}

function setApiToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value)
    else sessionStorage.removeItem(TOKEN_KEY)
  } catch {
    // storage disabled
  }
}

/**
 * Drain or undrain the open local instance. Without --api-token the agent answers loopback
 * callers only; with one it wants `Authorization: Bearer TOKEN` (README, HTTP API), which the
 * API token field supplies.
 */
async function act(on) {
  if (!opened) return
  const reason = $('drain-reason').value.trim()
  const q = on && reason ? `?reason=${encodeURIComponent(reason)}` : ''
  const token = $('api-token').value.trim() || apiToken()
  const headers = token ? { authorization: `Bearer ${token}` } : {}
  const res = await fetch(`/api/instances/${encodeURIComponent(opened.id)}/${on ? 'drain' : 'undrain'}${q}`, { method: 'POST', headers })
  const body = await res.json().catch(() => ({}))
  const message = (body.error && body.error.message) || body.message || res.statusText || 'failed'
  const hint =
    res.status === 401
      ? token
        ? ": check the API token field against the agent's --api-token"
        : ": enter the agent's --api-token in the API token field"
      : ''
  $('action-result').textContent = res.ok ? (on ? 'drained' : 'undrained') : `${res.status}: ${message}${hint}`
}

// ---- deep links: #/services/NAME, #/hosts/NAME -------------------------------------

/**
 * `#/services/NAME` or `#/hosts/NAME` -> { kind, name }; another hash -> undefined; a NAME
 * that is not valid percent-encoding (`%E0%A4%A`) -> { kind, name: undefined, raw }.
 */
function parseHash(hash) {
  const m = /^#\/(services|hosts)\/(.+)$/.exec(hash)
  if (!m) return undefined
  try {
    return { kind: m[1], name: decodeURIComponent(m[2]), raw: m[2] }
  } catch {
    return { kind: m[1], name: undefined, raw: m[2] }
  }
}

function applyHash() {
  for (const e of document.querySelectorAll('.selected')) e.classList.remove('selected')
  const link = parseHash(location.hash)
  const missing = $('link-missing')
  missing.hidden = true
  if (!link) return
  const target =
    link.name === undefined
      ? undefined
      : link.kind === 'services'
        ? [...document.querySelectorAll('#grid-body tr')].find((tr) => tr.getAttribute('data-service') === link.name)
        : [...document.querySelectorAll('#grid-head th.host')].find((th) => th.getAttribute('data-host') === link.name)
  if (!target) {
    // Only once data has arrived: before the snapshot every name is unknown.
    if (hostNames().length > 0 || link.name === undefined) {
      const what = link.kind === 'services' ? 'service' : 'host'
      missing.textContent =
        link.name === undefined
          ? `Link not found: "${link.raw}" is not a valid ${what} name (malformed percent-encoding).`
          : `Link not found: no ${what} "${link.name}" in this cluster now.`
      missing.hidden = false
    }
    return
  }
  target.classList.add('selected')
  target.scrollIntoView({ block: 'nearest', inline: 'nearest' })
}

let scheduled = false
function render() {
  if (scheduled) return
  scheduled = true
  requestAnimationFrame(() => {
    scheduled = false
    const hosts = hostNames()
    const services = servicesIndex()
    renderHeader(hosts, services)
    renderGrid(hosts, services)
    renderMembers()
    renderEvents()
    renderDetails()
    applyHash()
  })
}

// ---- the stream ------------------------------------------------------------------

function setConn(state, text) {
  const c = $('conn')
  c.className = `conn conn-${state}`
  $('conn-text').textContent = text
}

function connect() {
  const es = new EventSource('/api/watch')
  es.addEventListener('open', () => setConn('live', 'live'))
  es.addEventListener('error', () => setConn('down', 'reconnecting…'))
  es.addEventListener('snapshot', (e) => {
    applySnapshot(JSON.parse(e.data))
    setConn('live', 'live')
    render()
    refreshXds()
  })
  es.addEventListener('catalog', (e) => {
    applyCatalog(JSON.parse(e.data))
    render()
    refreshXds()
  })
  es.addEventListener('member', (e) => {
    applyMember(JSON.parse(e.data))
    render()
  })
}

document.addEventListener('DOMContentLoaded', () => {
  $('filter').addEventListener('input', render)
  $('details-close').addEventListener('click', () => {
    opened = null
    $('details').hidden = true
  })
  $('api-token').value = apiToken()
  $('api-token').addEventListener('input', () => setApiToken($('api-token').value.trim()))
  $('drain').addEventListener('click', () => act(true))
  $('undrain').addEventListener('click', () => act(false))
  window.addEventListener('hashchange', applyHash)
  setInterval(refreshXds, 2000) // a client's ACK or NACK is no catalog event
  setInterval(renderMembers, 5000) // keeps "last change" ages current
  render()
  connect()
})
