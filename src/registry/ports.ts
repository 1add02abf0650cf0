/**
 * The rule of one instance's ports, whatever its source: a ServicePort names one port of an
 * instance, and a port one ServicePort. Two ports on one ServicePort would be two endpoints of
 * one instance in one group (and one instance id twice in its ClusterLoadAssignment); one port
 * on two ServicePorts is one socket that both services would claim. The Docker source skips the
 * ports of a container that break it (`duplicate-service-port`; a container port's labels that
 * give two ServicePorts are `conflicting-labels`); the static file is refused, naming both
 * entries. ServicePort 0 (Sidecar's "none") is no ServicePort and is left out.
 */

/** One port as the rule reads it: its ServicePort and where it listens (`tcp 10.0.0.5:8080`, `container port 80`). */
export interface PortOfInstance {
  servicePort: number
  socket: string
}

/** A port that repeats an earlier one's ServicePort (`servicePort`) or socket (`socket`); `first` is the earlier one's index. */
export interface PortClash {
  index: number
  first: number
  kind: 'servicePort' | 'socket'
}

/**
 * Every port of `ports` that breaks the rule, in order, each with the first port it repeats.
 *
 * @example
 *   portClashes([{ servicePort: 10001, socket: 'tcp 10.0.0.5:80' }, { servicePort: 10001, socket: 'tcp 10.0.0.5:81' }])
 *   // [{ index: 1, first: 0, kind: 'servicePort' }]
 */
export function portClashes(ports: readonly PortOfInstance[]): PortClash[] {
  const bySp = new Map<number, number>()
  const bySocket = new Map<string, number>()
  const out: PortClash[] = []
  ports.forEach((p, index) => {
    if (p.servicePort === 0) return
    const sp = bySp.get(p.servicePort)
    const socket = bySocket.get(p.socket)
    if (sp !== undefined) out.push({ index, first: sp, kind: 'servicePort' })
    else if (socket !== undefined) out.push({ index, first: socket, kind: 'socket' })
    if (sp === undefined) bySp.set(p.servicePort, index)
    if (socket === undefined) bySocket.set(p.socket, index)
  })
  return out
}
