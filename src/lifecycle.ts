/**
 * The lifecycle every long-lived part shares (docs/architecture.md "Contracts"): `start()`
 * and `stop()` are idempotent, and `stop()` leaves no timer, socket or child process behind.
 * The agent holds its parts in start order and stops them in reverse.
 *
 * @example
 *   const parts: Startable[] = [gossip, catalog, bridge]
 *   for (const p of parts) await p.start()
 *   for (const p of [...parts].reverse()) await p.stop()
 */
export interface Startable {
  start(): void | Promise<unknown>
  stop(): void | Promise<void>
}
