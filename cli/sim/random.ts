// A seeded pseudo-random source for the simulator: the same seed gives the same population,
// the same trace and so the same report, run after run (mulberry32: small, fast, good enough
// for sampling; nothing here is security-relevant).
export class Random {
  private state: number

  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo)
  }

  /** `x` spread by ±`fraction` (a retry timer's jitter). */
  jitter(x: number, fraction: number): number {
    return x * (1 + fraction * (2 * this.next() - 1))
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  pick<T>(xs: readonly T[]): T {
    const x = xs[this.int(xs.length)]
    if (x === undefined) throw new Error('pick from an empty list')
    return x
  }

  /** A new source derived from this one and `salt` (each sender, each message its own stream). */
  fork(salt: number): Random {
    return new Random(Math.imul(this.int(0x7fffffff) ^ salt, 0x85ebca6b) ^ salt)
  }
}

/** A stable 32-bit seed from numbers (message and attempt), independent of processing order. */
export function seedOf(...xs: number[]): number {
  let h = 0x811c9dc5
  for (const x of xs) {
    h ^= x >>> 0
    h = Math.imul(h, 0x01000193)
    h ^= h >>> 13
  }
  return h >>> 0
}
