// What one process measures of itself for the metrics (core/metrics.ts renders it): its Redis
// commands' and its own DNS lookups' waits, and the decisions it failed open on.
import { performance } from 'node:perf_hooks'
import { Histogram } from '../core/metrics'

/** What one process measures of itself for the metrics; made once, kept across reloads. */
export class Telemetry {
  readonly redis = new Histogram()
  readonly dns: Readonly<Record<'rdns' | 'spf' | 'dnsbl' | 'vouch', Histogram>> = {
    rdns: new Histogram(),
    spf: new Histogram(),
    dnsbl: new Histogram(),
    vouch: new Histogram(),
  }
  readonly failOpen = new Map<string, number>()

  noteFailOpen(cause: string): void {
    this.failOpen.set(cause, (this.failOpen.get(cause) ?? 0) + 1)
  }

  /** Resolves as `work` does, having timed it into `h` (a failure is a wait too). */
  static timed<T>(h: Histogram | undefined, work: Promise<T>): Promise<T> {
    if (!h) return work
    const t0 = performance.now()
    const done = (): void => h.observe((performance.now() - t0) / 1000)
    work.then(done, done)
    return work
  }
}
