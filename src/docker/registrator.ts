/**
 * Registrator's conventions (gliderlabs/registrator, docs/user/services.md) read from a
 * container's labels and environment: `SERVICE_NAME`, `SERVICE_ID`, `SERVICE_TAGS` (a comma
 * list), `SERVICE_IGNORE`, any other `SERVICE_<key>` as an attribute, and the per-port forms
 * `SERVICE_<port>_NAME`, `SERVICE_<port>_TAGS`, `SERVICE_<port>_IGNORE`,
 * `SERVICE_<port>_<key>`. Shoal adds one key Registrator has no use for:
 * `SERVICE_<port>_SERVICE_PORT`, the ServicePort of that container port.
 *
 * As Registrator does, a label wins over an environment variable of the same key, and a
 * per-port key over the container-wide one for that port. The caller (labels.ts mapContainer)
 * puts Sidecar's and Shoal's own labels above all of these (README "Registrator conventions").
 */

/** A value and the key (and where: label or env) it came from, for log lines. */
export interface Sourced {
  value: string
  /** `label SERVICE_NAME` or `env SERVICE_8080_TAGS`. */
  from: string
}

/** What one container port says in Registrator's words. */
export interface RegistratorPort {
  name?: Sourced
  tags?: Sourced
  ignore?: Sourced
  servicePort?: Sourced
  /** Attribute key (lower case, as Registrator writes it) -> value. */
  attributes: Map<string, Sourced>
}

/** Everything a container says in Registrator's words; empty when it uses none of them. */
export interface RegistratorView {
  name?: Sourced
  id?: Sourced
  tags?: Sourced
  ignore?: Sourced
  attributes: Map<string, Sourced>
  /** Container port -> its per-port keys. */
  ports: Map<number, RegistratorPort>
  /** Keys that say nothing Shoal can read (a port number out of range), with why. */
  problems: Array<{ key: string; message: string }>
}

const PREFIX = 'SERVICE_'
const PER_PORT = /^(\d{1,5})_(.+)$/
/** The keys that are fields, not attributes (lower case, after SERVICE_ and the port). */
const FIELDS = new Set(['name', 'id', 'tags', 'ignore', 'service_port'])

/**
 * The environment of `docker inspect`'s Config.Env (`KEY=VALUE` strings) as a map, keeping
 * only Registrator's `SERVICE_*` keys: the rest (often secrets) is never held nor sent.
 *
 * @example registratorEnv(['PATH=/bin', 'SERVICE_NAME=web']) // { SERVICE_NAME: 'web' }
 */
export function registratorEnv(env: readonly string[] | null | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const kv of env ?? []) {
    const eq = kv.indexOf('=')
    const key = eq < 0 ? kv : kv.slice(0, eq)
    if (!key.startsWith(PREFIX)) continue
    Object.defineProperty(out, key, { value: eq < 0 ? '' : kv.slice(eq + 1), enumerable: true, writable: true, configurable: true })
  }
  return out
}

/**
 * Reads Registrator's keys from a container's labels and (filtered) environment. Keys are
 * matched with the upper-case `SERVICE_` prefix Registrator uses; what follows is read in lower
 * case (`SERVICE_REGION` is the attribute `region`).
 *
 * @example
 *   readRegistrator({ SERVICE_TAGS: 'blue' }, { SERVICE_NAME: 'web', SERVICE_TAGS: 'green' })
 *   // name web (env), tags "blue" (the label wins)
 */
export function readRegistrator(labels: Readonly<Record<string, string>>, env: Readonly<Record<string, string>>): RegistratorView {
  const view: RegistratorView = { attributes: new Map(), ports: new Map(), problems: [] }
  // Environment first, then labels over it: a label wins for the same key.
  const sources: Array<[string, Readonly<Record<string, string>>]> = [
    ['env', env],
    ['label', labels],
  ]
  for (const [where, map] of sources) {
    for (const [rawKey, value] of Object.entries(map)) {
      if (!rawKey.startsWith(PREFIX)) continue
      const from = `${where} ${rawKey}`
      const rest = rawKey.slice(PREFIX.length).toLowerCase()
      const perPort = PER_PORT.exec(rest)
      if (perPort) {
        const port = Number(perPort[1])
        if (port < 1 || port > 65535) {
          view.problems.push({ key: from, message: `${perPort[1]} is not a container port (1-65535)` })
          continue
        }
        const p = view.ports.get(port) ?? { attributes: new Map<string, Sourced>() }
        view.ports.set(port, p)
        setField(p, perPort[2]!, { value, from })
        continue
      }
      if (rest === 'service_port') {
        view.problems.push({ key: from, message: `a ServicePort belongs to one container port: write SERVICE_<port>_SERVICE_PORT` })
        continue
      }
      setField(view, rest, { value, from })
    }
  }
  return view
}

function setField(
  into: { name?: Sourced; id?: Sourced; tags?: Sourced; ignore?: Sourced; servicePort?: Sourced; attributes: Map<string, Sourced> },
  key: string,
  v: Sourced,
): void {
  if (!FIELDS.has(key)) into.attributes.set(key, v)
  else if (key === 'name') into.name = v
  else if (key === 'id') into.id = v
  else if (key === 'tags') into.tags = v
  else if (key === 'ignore') into.ignore = v
  else into.servicePort = v
}

/** Registrator's test for `SERVICE_IGNORE`: any non-empty value. */
export function isIgnored(v: Sourced | undefined): boolean {
  return v !== undefined && v.value !== ''
}

/** A comma list as Registrator splits `SERVICE_TAGS`: trimmed, empty entries left out. */
export function splitTags(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

/** Whether a container uses any of Registrator's keys. */
export function usesRegistrator(view: RegistratorView): boolean {
  return view.name !== undefined || view.id !== undefined || view.tags !== undefined || view.attributes.size > 0 || view.ports.size > 0
}
