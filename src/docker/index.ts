/**
 * Public API of Docker discovery. Everything not listed here is internal.
 *
 * @example
 *   import { DockerSource } from './docker/index.js'
 */
export { DockerSource } from './source.js'
export type { DockerSourceOptions, DockerSourceComponents } from './source.js'
export { mapContainer, mapContainers } from './labels.js'
export type { ContainerFacts, LabelProblem } from './labels.js'
export { parseDockerHost } from './host.js'
