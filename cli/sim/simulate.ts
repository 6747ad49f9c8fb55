// One simulation: the population of a mix, replayed under each keying in turn on the same
// Redis (emptied between keyings, so each one's Redis figures are its own).
import { runKeying, type Keying, type KeyingRun, type RunOptions } from './engine'
import type { Mix } from './mix'
import { buildPopulation, type Population } from './population'
import { keyingReport, type SimReport } from './report'

export interface SimulateOptions extends RunOptions {
  readonly mix: Mix
  readonly mixName: string
  readonly seed: number
  readonly messages?: number
  readonly keyings: readonly Keying[]
  /** Called after each keying (the runs with their traces, for tests). */
  readonly onRun?: (run: KeyingRun, pop: Population) => void
}

export async function simulate(opts: SimulateOptions): Promise<SimReport> {
  const pop = buildPopulation(opts.mix, { seed: opts.seed, messages: opts.messages ?? opts.mix.messages })
  const keyings = []
  for (const k of opts.keyings) {
    const run = await runKeying(pop, k, { ...opts, first: opts.keyings[0] })
    opts.onRun?.(run, pop)
    keyings.push(keyingReport(pop, run))
  }
  return {
    seed: opts.seed,
    messages: pop.count,
    recipients: opts.mix.recipients,
    mix: opts.mixName,
    redis: 'cluster' in opts.redis ? `cluster of ${keyings[0]?.totals.redisMasters ?? '?'} masters` : 'one server',
    keyings,
  }
}
