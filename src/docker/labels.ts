import { isIP } from 'node:net'
import type { ContainerInspectInfo } from 'dockerode'
import { CheckType, type CheckSpec, type DockerHealth } from '../health/types.js'
import { ProxyMode, type LocalServiceSpec, type ServicePortSpec } from '../registry/types.js'
import { authzOf, imageName, normaliseName } from '../registry/index.js'

/** One port binding as Docker reports it: `HostIp` may be '', '0.0.0.0', '::' or an address. */
export interface PortBinding {
  containerPort: number
  type: 'tcp' | 'udp'
  hostIp: string
  hostPort: number
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
  /** Docker network name -> the container's IPv4 address on it. */
  networks: Record<string, string>
  health: DockerHealth
  running: boolean
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
  notOnNetwork: 'not-on-network',
  badAuthz: 'bad-authz',
} as const
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason]

/** A label (or binding) that was skipped, with what was skipped: one port or the whole container. */
export interface LabelProblem {
  /** Container name (or short id when it has none). */
  container: string
  label: string
  reason: SkipReason
  skipped: 'port' | 'container'
  message: string
}

export interface MapOptions {
  /** Address other hosts use for published ports on this host. */
  advertiseIp: string
  /** Advertise the container's IP on this Docker network with the container port instead of published ports. */
  network?: string
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
  const networks: Record<string, string> = {}
  for (const [name, n] of Object.entries(info.NetworkSettings?.Networks ?? {})) if (n?.IPAddress) networks[name] = n.IPAddress
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
  const skip = (labelName: string, reason: SkipReason, skipped: 'port' | 'container', message: string) =>
    problems.push({ container: who, label: labelName, reason, skipped, message: `container ${who}: ${labelName}: ${message}` })
  const labels = c.labels
  const discover = label(labels, LABEL.discover)
  if (discover && discover[1].trim().toLowerCase() === 'false') return { problems }
  const portLabels = Object.keys(labels).filter((k) => PORT_LABEL.test(k))
  const nameLabel = label(labels, LABEL.name)
  if (!nameLabel && portLabels.length === 0) return { problems }

  // Name: label, else the Swarm service, else the image.
  let name = ''
  let nameSource = ''
  if (nameLabel) [nameSource, name] = [nameLabel[0], normaliseName(nameLabel[1])]
  else if (labels[SWARM_SERVICE]) [nameSource, name] = [SWARM_SERVICE, normaliseName(labels[SWARM_SERVICE]!)]
  else [nameSource, name] = ['image', imageName(c.image)]
  if (!name) {
    skip(nameSource, SkipReason.badName, 'container', `"${nameLabel?.[1] ?? c.image}" leaves no usable service name`)
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
  for (const cp of bad) wanted.delete(cp)
  const bySp = new Map<number, number[]>()
  for (const [cp, w] of wanted) bySp.set(w.servicePort, [...(bySp.get(w.servicePort) ?? []), cp])
  for (const [sp, cps] of bySp) {
    if (cps.length < 2) continue
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

  const ports: ServicePortSpec[] = []
  for (const [cp, w] of [...wanted].sort((a, b) => a[0] - b[0])) {
    if (opts.network !== undefined) {
      const ip = c.networks[opts.network]
      if (!ip) {
        skip(w.label, SkipReason.notOnNetwork, 'port', `container is not on network "${opts.network}"`)
        continue
      }
      const type = c.bindings.find((b) => b.containerPort === cp)?.type ?? 'tcp'
      ports.push({ type, port: cp, servicePort: w.servicePort, ip, containerPort: cp })
      continue
    }
    const chosen = chooseBinding(
      c.bindings.filter((b) => b.containerPort === cp && b.hostPort > 0),
      opts.advertiseIp,
    )
    if (chosen.kind === 'none') {
      skip(w.label, SkipReason.unpublishedPort, 'port', `container port ${cp} is not published`)
      continue
    }
    if (chosen.kind === 'loopback') {
      skip(
        w.label,
        SkipReason.loopbackBinding,
        'port',
        `container port ${cp} is published on ${chosen.b.hostIp} only, not reachable at ${opts.advertiseIp}`,
      )
      continue
    }
    ports.push({ type: chosen.b.type, port: chosen.b.hostPort, servicePort: w.servicePort, ip: chosen.ip, containerPort: cp })
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
  if (check) spec.check = check
  return { spec, problems }
}

type Choice = { kind: 'ok'; b: PortBinding; ip: string } | { kind: 'loopback'; b: PortBinding } | { kind: 'none' }

// One advertised address per container port. Docker publishes a wildcard port twice
// (0.0.0.0 and ::, 20.10 even with different host ports): the IPv4 one wins.
function chooseBinding(bs: PortBinding[], advertiseIp: string): Choice {
  if (bs.length === 0) return { kind: 'none' }
  const rank = (b: PortBinding): number => {
    if (b.hostIp === '' || b.hostIp === '0.0.0.0') return 0
    if (b.hostIp === '::') return 1
    if (b.hostIp === advertiseIp) return 2
    if (isLoopback(b.hostIp)) return 4
    return isIP(b.hostIp) === 4 ? 3 : 3.5
  }
  const best = [...bs].sort((a, b) => rank(a) - rank(b) || a.hostPort - b.hostPort)[0]!
  const r = rank(best)
  if (r <= 1) return { kind: 'ok', b: best, ip: advertiseIp }
  if (r === 4 && !isLoopback(advertiseIp)) return { kind: 'loopback', b: best }
  return { kind: 'ok', b: best, ip: best.hostIp }
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
