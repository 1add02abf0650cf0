import type { DockerHealth, DockerHealthFeed } from '../health/types.js'

/** Container health as last seen by the Docker source; listeners hear every change. */
export class ContainerHealthFeed implements DockerHealthFeed {
  private readonly states = new Map<string, DockerHealth>()
  private readonly listeners = new Set<(containerId: string) => void>()

  health(containerId: string): DockerHealth | undefined {
    return this.states.get(containerId)
  }

  subscribe(listener: (containerId: string) => void): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  /** Record a container's health (undefined: forget it); tells listeners when it changed. */
  update(containerId: string, h: DockerHealth | undefined): void {
    if (this.states.get(containerId) === h) return
    if (h === undefined) this.states.delete(containerId)
    else this.states.set(containerId, h)
    for (const l of this.listeners) l(containerId)
  }

  ids(): string[] {
    return [...this.states.keys()]
  }
}
