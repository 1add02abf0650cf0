/**
 * A seeded PRNG (mulberry32) for simulations, property tests and benches: the same seed
 * replays the same schedule, so a failure can be reproduced from the seed it prints.
 *
 * @example
 *   const random = seeded(42)
 *   const i = Math.floor(random() * n)
 */
export function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
