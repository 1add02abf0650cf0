import { isIP } from 'node:net'
import { advertisedIpProblem } from '../address.js'
import type { ContainerInspectInfo } from 'dockerode'
import { renderTemplate } from '../health/index.js'
import { CheckType, type CheckContext, type CheckSpec, type DockerHealth } from '../health/types.js'
import { ProxyMode, type LocalServiceSpec, type ServicePortSpec } from '../registry/types.js'
import { authzOf, imageName, normaliseName, portClashes } from '../registry/index.js'
import { isIgnored, readRegistrator, registratorEnv, splitTags, type RegistratorView } from './registrator.js'

/** One port binding as Docker reports it: `HostIp` may be '', '0.0.0.0', '::' or an address. */
export interface PortBinding {
  containerPort: number
  type: 'tcp' | 'udp'
  hostIp: string
  hostPort: number
}

/** A container's address on one Docker network, with the network's prefix length (its subnet). */
export interface NetworkFacts {
  ip: string
  prefixLen: number
}

/** The facts about one container that the mapping reads (taken from `docker inspect`). */
export interface ContainerFacts {
  id: string
  /** Without the leading slash. */
  name: string
  image: string
  /** Epoch ms. */
  created: number
  labels: Record<string, string>
  bindings: PortBinding[]
  /** Docker network name -> the container's address on it (IPv4, else its global IPv6). */
  networks: Record<string, NetworkFacts>
  health: DockerHealth
  running: boolean
  /** Registrator's `SERVICE_*` keys of the container's environment (registrator.ts registratorEnv); nothing else of it. */
  env?: Record<string, string>
}

export const SkipReason = {
  badContainerPort: 'bad-container-port',
  badServicePort: 'bad-service-port',
  duplicateServicePort: 'duplicate-service-port',
  conflictingLabels: 'conflicting-labels',
  unknownCheckType: 'unknown-check-type',
  unknownProxyMode: 'unknown-proxy-mode',
  badName: 'bad-name',
  unpublishedPort: 'unpublished-port',
  loopbackBinding: 'loopback-binding',
  badAddress: 'bad-address',
  notOnNetwork: 'not-on-network',
  badAuthz: 'bad-authz',
  badRegistratorKey: 'bad-registrator-key',
  portName: 'port-name',
  unreachableCheck: 'unreachable-check',
} as const
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason]

/** A label (or binding) that was skipped, with what was skipped: one port or the whole container. */
export interface LabelProblem {
  /** Container name (or short id when it has none). */
  container: string
  label: string
  reason: SkipReason
  /** What was not taken as labelled: a port, the whole container, or its health check (replaced or left failing). */
  skipped: 'port' | 'container' | 'check'
  message: string
}

export interface MapOptions {
  /** Address other hosts use for published ports on this host. */
  advertiseIp: string
  /**
   * Docker networks (e.g. Swarm overlays) whose container IPs are advertised beside the
   * published ports (`--docker-network`): a record's `networks`, reached at the container port.
   */
  networks?: readonly string[]
  /**
   * Whether the agent itself has an interface on the subnet `ip/prefixLen` (a network it is
   * attached to: it reaches containers there directly, as in the compose demo). Health checks
   * use such an address when a port has no host binding. Default: never.
   */
  onAgentLink?: (ip: string, prefixLen: number) => boolean
}

/** Mapping of containers to service specs, and the problems met on the way. */
export interface MapResult {
  specs: LocalServiceSpec[]
  problems: LabelProblem[]
}

const LABEL = {
  name: ['ServiceName', 'shoal.service'],
  check: ['HealthCheck', 'shoal.check'],
  checkArgs: ['HealthCheckArgs', 'shoal.check.args'],
  proxy: ['ProxyMode', 'shoal.proxy'],
  discover: ['SidecarDiscover', 'shoal.discover'],
} as const
const PORT_LABEL = /^(?:ServicePort_|shoal\.port\.)(.*)$/
const SWARM_SERVICE = 'com.docker.swarm.service.name'

/** Turn `docker inspect` output into the facts the mapping reads. */
export function factsFromInspect(info: ContainerInspectInfo): ContainerFacts {
  const bindings: PortBinding[] = []
  const ports = (info.NetworkSettings?.Ports ?? {}) as Record<string, Array<{ HostIp: string; HostPort: string }> | null>
  for (const [key, list] of Object.entries(ports)) {
    const [p, proto] = key.split('/')
    for (const b of list ?? []) {
      bindings.push({
        containerPort: Number(p),
        type: proto === 'udp' ? 'udp' : 'tcp',
        hostIp: b.HostIp ?? '',
        hostPort: Number(b.HostPort),
      })
    }
  }
  const networks: Record<string, NetworkFacts> = {}
  for (const [name, n] of Object.entries(info.NetworkSettings?.Networks ?? {})) {
    const f = n?.IPAddress
      ? { ip: n.IPAddress, prefixLen: n.IPPrefixLen }
      : n?.GlobalIPv6Address
        ? { ip: n.GlobalIPv6Address, prefixLen: n.GlobalIPv6PrefixLen }
        : undefined
    if (f) Object.defineProperty(networks, name, { value: f, enumerable: true, writable: true, configurable: true })
  }
  const health = (info.State?.Health?.Status as DockerHealth | undefined) ?? 'none'
  return {
    id: info.Id,
    name: (info.Name ?? '').replace(/^\//, ''),
    image: info.Config?.Image ?? info.Image,
    created: Date.parse(info.Created) || 0,
    labels: { ...(info.Config?.Labels ?? {}) },
    bindings,
    networks,
    health: ['healthy', 'unhealthy', 'starting'].includes(health) ? health : 'none',
    running: info.State?.Running === true && info.State?.Paused !== true,
    env: registratorEnv(info.Config?.Env),
  }
}

function label(labels: Record<string, string>, names: readonly string[]): [string, string] | undefined {
  for (const n of names) if (labels[n] !== undefined) return [n, labels[n]!]
  return undefined
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1'
}

function portNumber(s: string): number | undefined {
  if (!/^\d{1,5}$/.test(s.trim())) return undefined
  const n = Number(s)
  return n >= 1 && n <= 65535 ? n : undefined
}

/**
 * Map one running container to its service spec. Returns no spec for a container that is
 * not a service (no ServiceName and no ServicePort label, or discovery turned off) or whose
 * labels make it unusable; `problems` names every label or binding that was skipped.
 *
 * One spec per container, carrying all its ports; its id is the first 12 hex of the
 * container id.
 *
 * @example
 *   mapContainer(factsFromInspect(info), { advertiseIp: '10.0.0.5' })
 */
export function mapContainer(c: ContainerFacts, opts: MapOptions): { spec?: LocalServiceSpec; problems: LabelProblem[] } {
  const problems: LabelProblem[] = []
  const who = c.name || c.id.slice(0, 12)
  const skip = (labelName: string, reason: SkipReason, skipped: LabelProblem['skipped'], message: string) =>
    problems.push({ container: who, label: labelName, reason, skipped, message: `container ${who}: ${labelName}: ${message}` })
  const labels = c.labels
  const discover = label(labels, LABEL.discover)
  if (discover && discover[1].trim().toLowerCase() === 'false') return { problems }
  const reg = readRegistrator(labels, c.env ?? {})
  // SERVICE_IGNORE leaves the container out, unless Sidecar's or Shoal's own label asks for it.
  if (isIgnored(reg.ignore) && discover?.[1].trim().toLowerCase() !== 'true') return { problems }
  for (const p of reg.problems) skip(p.key, SkipReason.badRegistratorKey, 'port', p.message)
  const portLabels = Object.keys(labels).filter((k) => PORT_LABEL.test(k))
  const regPorts = [...reg.ports].filter(([, p]) => p.servicePort !== undefined && !isIgnored(p.ignore))
  const nameLabel = label(labels, LABEL.name)
  if (!nameLabel && !reg.name && portLabels.length === 0 && regPorts.length === 0) return { problems }

  // Name: Sidecar's or Shoal's label, else Registrator's SERVICE_NAME, else the one name the
  // container's SERVICE_<port>_NAME keys agree on, else the Swarm service, else the image.
  const portNames = new Set([...reg.ports.values()].filter((p) => p.name && !isIgnored(p.ignore)).map((p) => normaliseName(p.name!.value)))
  let name = ''
  let nameSource = ''
  let nameValue = c.image
  if (nameLabel) [nameSource, nameValue] = nameLabel
  else if (reg.name) [nameSource, nameValue] = [reg.name.from, reg.name.value]
  else if (portNames.size === 1) [nameSource, nameValue] = ['SERVICE_<port>_NAME', [...portNames][0]!]
  else if (labels[SWARM_SERVICE]) [nameSource, nameValue] = [SWARM_SERVICE, labels[SWARM_SERVICE]!]
  if (nameSource) name = normaliseName(nameValue)
  else [nameSource, name] = ['image', imageName(c.image)]
  if (!name) {
    skip(nameSource, SkipReason.badName, 'container', `"${nameValue}" leaves no usable service name`)
    return { problems }
  }

  let proxyMode: ProxyMode = ProxyMode.http
  const proxy = label(labels, LABEL.proxy)
  if (proxy) {
    const v = proxy[1].trim().toLowerCase()
    if (!(v in ProxyMode)) {
      skip(proxy[0], SkipReason.unknownProxyMode, 'container', `unknown proxy mode "${proxy[1]}" (http, tcp, ws, grpc)`)
      return { problems }
    }
    proxyMode = v as ProxyMode
  }

  // A service that asks for authorization in words Shoal cannot read is left out rather
  // than served without it.
  const authz = authzOf(labels)
  if (authz.kind === 'invalid') {
    skip(authz.label, SkipReason.badAuthz, 'container', `${authz.problem}; the container is not served until this is fixed`)
    return { problems }
  }

  let check: CheckSpec | undefined
  const checkLabel = label(labels, LABEL.check)
  if (checkLabel) {
    const type = Object.values(CheckType).find((ct) => ct.toLowerCase() === checkLabel[1].trim().toLowerCase())
    if (!type) {
      skip(
        checkLabel[0],
        SkipReason.unknownCheckType,
        'container',
        `unknown check type "${checkLabel[1]}" (${Object.values(CheckType).join(', ')})`,
      )
      return { problems }
    }
    const args = label(labels, LABEL.checkArgs)
    check = args ? { type, args: args[1] } : { type }
  }

  // Container port -> ServicePort, from both label spellings.
  const wanted = new Map<number, { servicePort: number; label: string }>()
  const bad = new Set<number>()
  for (const key of portLabels) {
    const cp = portNumber(PORT_LABEL.exec(key)![1]!)
    if (cp === undefined) {
      skip(key, SkipReason.badContainerPort, 'port', `"${PORT_LABEL.exec(key)![1]}" is not a port number (1-65535)`)
      continue
    }
    const sp = portNumber(labels[key]!)
    if (sp === undefined) {
      skip(key, SkipReason.badServicePort, 'port', `ServicePort "${labels[key]}" is not a port number (1-65535)`)
      bad.add(cp)
      continue
    }
    const prev = wanted.get(cp)
    if (prev && prev.servicePort !== sp) {
      skip(key, SkipReason.conflictingLabels, 'port', `ServicePort ${sp} contradicts ${prev.label}=${prev.servicePort}`)
      bad.add(cp)
      continue
    }
    wanted.set(cp, { servicePort: sp, label: key })
  }
  // Registrator's ServicePorts, for container ports no Sidecar or Shoal label names.
  for (const [cp, p] of regPorts) {
    if (wanted.has(cp) || bad.has(cp)) continue
    const sp = portNumber(p.servicePort!.value)
    if (sp === undefined)
      skip(p.servicePort!.from, SkipReason.badServicePort, 'port', `ServicePort "${p.servicePort!.value}" is not a port number (1-65535)`)
    else wanted.set(cp, { servicePort: sp, label: p.servicePort!.from })
  }
  // One name per record: a port Registrator names otherwise would be another service.
  for (const cp of wanted.keys()) {
    const own = reg.ports.get(cp)?.name
    if (!own || normaliseName(own.value) === name) continue
    skip(
      own.from,
      SkipReason.portName,
      'port',
      `container port ${cp} is named "${own.value}" but the container's service is "${name}"; Shoal serves one name per container: run that port as its own container`,
    )
    wanted.delete(cp)
  }
  for (const cp of bad) wanted.delete(cp)
  // The rule of an instance's ports (registry portClashes), shared with the static file: every
  // port on a ServicePort given twice is skipped, since none of them is plainly the one meant.
  const entries = [...wanted]
  const clashes = portClashes(entries.map(([cp, w]) => ({ servicePort: w.servicePort, socket: `container port ${cp}` })))
  for (const sp of new Set(clashes.map((c) => entries[c.index]![1].servicePort))) {
    const cps = entries.filter(([, w]) => w.servicePort === sp).map(([cp]) => cp)
    for (const cp of cps) {
      skip(
        wanted.get(cp)!.label,
        SkipReason.duplicateServicePort,
        'port',
        `ServicePort ${sp} is also given to container port(s) ${cps.filter((x) => x !== cp).join(', ')}`,
      )
      wanted.delete(cp)
    }
  }

  // The container's addresses on the networks the agent advertises (--docker-network).
  const advertised: Record<string, string> = {}
  for (const n of opts.networks ?? []) {
    const f = Object.hasOwn(c.networks, n) ? c.networks[n] : undefined
    if (!f) continue
    // The one rule for advertised addresses (address.ts): a network address no other host can use is left out.
    const bad = advertisedIpProblem(f.ip)
    if (bad !== undefined)
      skip(`network ${n}`, SkipReason.badAddress, 'port', `the container's address "${f.ip}" ${bad}: not advertised on ${n}`)
    else Object.defineProperty(advertised, n, { value: f.ip, enumerable: true, writable: true, configurable: true })
  }
  const onNetworks = Object.keys(advertised).length > 0

  const ports: ServicePortSpec[] = []
  for (const [cp, w] of [...wanted].sort((a, b) => a[0] - b[0])) {
    const chosen = chooseBinding(
      c.bindings.filter((b) => b.containerPort === cp && b.hostPort > 0),
      opts.advertiseIp,
    )
    if (chosen.kind === 'ok') {
      ports.push({ type: chosen.b.type, port: chosen.b.hostPort, servicePort: w.servicePort, ip: chosen.ip, containerPort: cp })
      continue
    }
    if (onNetworks) {
      // No host binding: reachable on the advertised networks only, at the container port.
      const type = c.bindings.find((b) => b.containerPort === cp)?.type ?? 'tcp'
      ports.push({ type, servicePort: w.servicePort, containerPort: cp })
      continue
    }
    if (chosen.kind === 'unadvertisable') {
      skip(w.label, SkipReason.badAddress, 'port', `container port ${cp} is published on "${chosen.b.hostIp}", which ${chosen.why}`)
    } else if (chosen.kind === 'loopback') {
      skip(
        w.label,
        SkipReason.loopbackBinding,
        'port',
        `container port ${cp} is published on ${chosen.b.hostIp} only, not reachable at ${opts.advertiseIp}`,
      )
    } else if (opts.networks?.length) {
      skip(
        w.label,
        SkipReason.notOnNetwork,
        'port',
        `container port ${cp} is not published and the container is on none of the networks --docker-network names (${opts.networks.join(', ')})`,
      )
    } else {
      skip(
        w.label,
        SkipReason.unpublishedPort,
        'port',
        `container port ${cp} is not published (docker run -p ${cp}; docker service create --publish mode=host,target=${cp})`,
      )
    }
  }

  const spec: LocalServiceSpec = {
    id: c.id.slice(0, 12),
    name,
    image: c.image,
    created: c.created,
    ports,
    proxyMode,
    labels: { ...labels },
    containerId: c.id,
    source: 'docker',
    origin: `container ${who} (${c.id.slice(0, 12)})`,
  }
  if (onNetworks) spec.networks = advertised
  if (check) {
    const t = checkTarget(c, check, ports, opts)
    if (t.target) spec.checkTarget = t.target
    if (t.why !== undefined) {
      const labelName = checkLabel?.[0] ?? 'HealthCheck'
      if (c.health !== 'none') {
        skip(labelName, SkipReason.unreachableCheck, 'check', `${t.why}: the container's own HEALTHCHECK is used instead`)
        check = { type: CheckType.Docker }
      } else {
        skip(
          labelName,
          SkipReason.unreachableCheck,
          'check',
          `${t.why}, and the container has no HEALTHCHECK: the check cannot pass; publish the port (--publish mode=host,target=PORT) or give the container a HEALTHCHECK and use HealthCheck=Docker`,
        )
      }
    }
    spec.check = check
  }
  const { tags, attributes } = tagsAndAttributes(
    labels,
    reg,
    ports.flatMap((p) => p.containerPort ?? p.port ?? []),
  )
  if (tags.length > 0) spec.tags = tags
  if (Object.keys(attributes).length > 0) spec.attributes = attributes
  return { spec, problems }
}

const TAGS_LABEL = 'shoal.tags'
const ATTRIBUTE_LABEL = /^shoal\.attr\.(.+)$/

/**
 * A container's tags and attributes, from Shoal's labels (`shoal.tags`, `shoal.attr.<key>`)
 * over Registrator's keys (registrator.ts). Tags: `shoal.tags`, else each served port's
 * `SERVICE_<port>_TAGS` or else `SERVICE_TAGS`, together in port order. Attributes:
 * `SERVICE_<key>`, over it a served port's `SERVICE_<port>_<key>` (the lowest port first), over
 * those `shoal.attr.<key>`; `SERVICE_ID` is the attribute `id` (the instance id stays the
 * container's). Checked and trimmed later by the owner's fit (registry fit.ts).
 */
function tagsAndAttributes(
  labels: Readonly<Record<string, string>>,
  reg: RegistratorView,
  servedPorts: readonly number[],
): { tags: string[]; attributes: Record<string, string> } {
  let tags: string[]
  if (labels[TAGS_LABEL] !== undefined) tags = splitTags(labels[TAGS_LABEL])
  else {
    const lists = servedPorts.map((cp) => reg.ports.get(cp)?.tags ?? reg.tags)
    if (servedPorts.length === 0) lists.push(reg.tags)
    tags = [...new Set(lists.flatMap((l) => (l ? splitTags(l.value) : [])))]
  }
  const attrs = new Map<string, string>()
  if (reg.id) attrs.set('id', reg.id.value)
  for (const [k, v] of reg.attributes) attrs.set(k, v.value)
  const perPort = new Map<string, string>()
  for (const cp of servedPorts) for (const [k, v] of reg.ports.get(cp)?.attributes ?? []) if (!perPort.has(k)) perPort.set(k, v.value)
  for (const [k, v] of perPort) attrs.set(k, v)
  for (const [k, v] of Object.entries(labels)) {
    const m = ATTRIBUTE_LABEL.exec(k)
    if (m) attrs.set(m[1]!, v)
  }
  const attributes: Record<string, string> = {}
  for (const [k, v] of attrs) Object.defineProperty(attributes, k, { value: v, enumerable: true, writable: true, configurable: true })
  return { tags, attributes }
}

/** A check argument that names where the instance is: `{{ host }}` or `{{ tcp N }}`. */
const TARGET_TEMPLATE = /\{\{\s*(?:host|tcp\s+\d+)\s*\}\}/
/** Tcp check arguments whose address and port both come from the instance: the only ones a container's own address can stand behind. */
const TCP_FROM_INSTANCE = /^\s*\{\{\s*host\s*\}\}:\{\{\s*tcp\s+\d+\s*\}\}\s*$/

/**
 * Where the agent reaches a container for an HttpGet or Tcp check whose arguments name the
 * instance (`{{ host }}`, `{{ tcp N }}`): its host bindings when every port the arguments name
 * has one (for a Tcp check, with the container's own address where the agent reaches it, as
 * `behind`); else its address on a network the agent itself is attached to (onAgentLink), with
 * container ports; else nowhere (`why` says so). Other checks, and arguments without such a
 * template, keep the default target (local.ts).
 */
function checkTarget(
  c: ContainerFacts,
  check: CheckSpec,
  ports: ServicePortSpec[],
  opts: MapOptions,
): { target?: CheckContext; why?: string } {
  const args = check.args ?? ''
  if ((check.type !== CheckType.HttpGet && check.type !== CheckType.Tcp) || !TARGET_TEMPLATE.test(args)) return {}
  const renders = (ctx: CheckContext): boolean => {
    try {
      renderTemplate(args, { ...ctx, containerId: c.id })
      return true
    } catch {
      return false
    }
  }
  const containerPorts = [...new Set([...ports.map((p) => p.containerPort!), ...c.bindings.map((b) => b.containerPort)])].sort(
    (a, b) => a - b,
  )
  const names = Object.keys(c.networks).sort()
  let direct: CheckContext | undefined
  // The advertised networks first, then any other the agent shares with the container.
  for (const n of [...names.filter((x) => opts.networks?.includes(x)), ...names.filter((x) => !opts.networks?.includes(x))]) {
    const f = c.networks[n]!
    if (!opts.onAgentLink?.(f.ip, f.prefixLen)) continue
    const d: CheckContext = { host: f.ip, ports: containerPorts.map((p) => ({ port: p, containerPort: p })) }
    if (renders(d)) {
      direct = d
      break
    }
  }
  const bound = ports.filter((p) => p.ip !== undefined && p.port !== undefined)
  if (bound.length > 0) {
    const host: CheckContext = { host: bound[0]!.ip!, ports: bound.map((p) => ({ port: p.port!, containerPort: p.containerPort! })) }
    // A Tcp check connects to the container's own address too (CheckContext.behind); an HttpGet
    // through docker-proxy fails on its own when nothing listens, so it carries none. Only
    // `{{ host }}:{{ tcp N }}`: a port written out (`{{ host }}:8080`) is the host's, which the
    // container's address need not listen on.
    const behind =
      check.type === CheckType.Tcp && direct && TCP_FROM_INSTANCE.test(args) ? { behind: { host: direct.host, ports: direct.ports } } : {}
    if (renders(host)) return { target: { ...host, ...behind } }
  }
  if (direct) return { target: direct }
  const unbound = ports.filter((p) => p.ip === undefined).map((p) => p.containerPort)
  return {
    why: `${check.type} "${args}" names ${unbound.length ? `container port ${unbound.join(', ')}, which has no host binding` : 'a port this container does not publish'}, and the agent is on none of the container's networks`,
  }
}

type Choice =
  | { kind: 'ok'; b: PortBinding; ip: string }
  | { kind: 'loopback'; b: PortBinding }
  | { kind: 'unadvertisable'; b: PortBinding; why: string }
  | { kind: 'none' }

// One advertised address per container port. Docker publishes a wildcard port twice
// (0.0.0.0 and ::, 20.10 even with different host ports): the IPv4 one wins.
function chooseBinding(bs: PortBinding[], advertiseIp: string): Choice {
  if (bs.length === 0) return { kind: 'none' }
  const rank = (b: PortBinding): number => {
    if (b.hostIp === '' || b.hostIp === '0.0.0.0') return 0
    if (b.hostIp === '::') return 1
    if (b.hostIp === advertiseIp) return 2
    if (advertisedIpProblem(b.hostIp) !== undefined) return 5
    if (isLoopback(b.hostIp)) return 4
    return isIP(b.hostIp) === 4 ? 3 : 3.5
  }
  const best = [...bs].sort((a, b) => rank(a) - rank(b) || a.hostPort - b.hostPort)[0]!
  const r = rank(best)
  if (r <= 1) return { kind: 'ok', b: best, ip: advertiseIp }
  if (r === 4 && !isLoopback(advertiseIp)) return { kind: 'loopback', b: best }
  const why = advertisedIpProblem(best.hostIp)
  return why === undefined ? { kind: 'ok', b: best, ip: best.hostIp } : { kind: 'unadvertisable', b: best, why }
}

/** Map many containers; stopped ones are left out. Specs are sorted by id. */
export function mapContainers(cs: ContainerFacts[], opts: MapOptions): MapResult {
  const specs: LocalServiceSpec[] = []
  const problems: LabelProblem[] = []
  for (const c of cs) {
    if (!c.running) continue
    const r = mapContainer(c, opts)
    if (r.spec) specs.push(r.spec)
    problems.push(...r.problems)
  }
  specs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return { specs, problems }
}
