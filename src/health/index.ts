/**
 * Public API of the health checks. Everything not listed here is internal.
 *
 * @example
 *   import { HealthScheduler } from './health/index.js'
 */
export { HealthScheduler } from './scheduler.js'
export type { HealthSchedulerOptions, HealthSchedulerComponents } from './scheduler.js'
export { CheckType, CHECK_OUTPUT_BYTES } from './types.js'
export { renderTemplate } from './template.js'
export type { CheckSpec, CheckStatus, CheckResult, CheckOutcome, CheckContext, CheckPort, DockerHealth, DockerHealthFeed } from './types.js'
