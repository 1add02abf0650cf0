/**
 * Polls `f` every 100 ms until it gives a value (not undefined; a throw counts as none yet) and
 * returns it; throws naming `what` after `ms` (generous: CI runs on a loaded 2-core machine).
 */
export async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await Promise.resolve()
      .then(f)
      .catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * Polls `pred` every 20 ms until it holds and returns the milliseconds that took; throws naming
 * `what` after `ms` (default 30 s: a ceiling, not an expectation, as CI runs on a loaded 2-core
 * machine). A throw from `pred` fails at once.
 *
 * @example
 *   const took = await waitFor('b to list web-1', () => b.services().length === 1)
 */
export async function waitFor(what: string, pred: () => boolean | Promise<boolean>, ms = 30_000): Promise<number> {
  const start = Date.now()
  while (!(await pred())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return Date.now() - start
}
