// What a simulation reports, per keying and per sender class: messages, delivered, lost, the
// delay paid (minutes), attempts, and for spam how much got in; per keying, what Redis did per
// message and what it holds at the end. A terminal table, the JSON of the same, and the delay
// histogram as `stats --chart` draws it.
import { DELAY_BUCKETS, delayChart } from '../../plugins/smart-greylist/core/stats'
import type { KeyingRun } from './engine'
import { CLASSES, type Population } from './population'

export interface ClassRow {
  readonly class: string
  readonly label: string
  readonly spam: boolean
  readonly messages: number
  /** Accepted at some attempt (for spam: spam accepted). */
  readonly delivered: number
  /** The sender gave up (or never retried). */
  readonly lost: number
  /** Still deferred when the run ended (none: every sender's schedule ends). */
  readonly pending: number
  /** Delay paid by the delivered, in minutes. */
  readonly delayMin: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number }
  /** Delivered after at least one deferral. */
  readonly delayed: number
  readonly attemptsMean: number
  /** How the first attempts were keyed: identity kind, whitelist or skip, with counts. */
  readonly firstKeyedAs: Readonly<Record<string, number>>
  /** Delays paid, in the statistics' buckets (seconds), for the chart. */
  readonly delayBuckets: Readonly<Record<string, number>>
}

export interface KeyingReport {
  readonly keying: string
  readonly about: string
  readonly classes: readonly ClassRow[]
  readonly totals: {
    readonly messages: number
    readonly decisions: number
    readonly seconds: number
    readonly messagesPerSecond: number
    readonly decisionsPerSecond: number
    readonly failures: number
    readonly redisRoundTripsPerMessage: number
    readonly redisCommandsPerMessage: number
    readonly redisBytesPerMessage: number
    readonly redisKeysAtEnd: number
    readonly redisMasters: number
    /** Redis's CPU per message (all masters), microseconds. */
    readonly redisCpuUsPerMessage: number
    readonly dnsQueriesPerMessage: number
    /** Per message: tuples written new (held retry_window) and tuples passed (held pass_ttl, refreshed on use). */
    readonly tuplesStartedPerMessage: number
    readonly tuplesPassedPerMessage: number
    /** Memory per key alive at the end (the day's counters included). */
    readonly redisBytesPerKey: number
  }
}

export interface SimReport {
  readonly seed: number
  readonly messages: number
  readonly recipients: number
  readonly mix: string
  readonly redis: string
  readonly keyings: readonly KeyingReport[]
}

function pct(sorted: Float64Array, p: number): number {
  if (!sorted.length) return 0
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0
}
const round1 = (x: number): number => Math.round(x * 10) / 10
const round2 = (x: number): number => Math.round(x * 100) / 100

export function keyingReport(pop: Population, run: KeyingRun): KeyingReport {
  const classes = CLASSES.map((info, c): ClassRow => {
    const delays: number[] = []
    let messages = 0
    let lost = 0
    let pending = 0
    let attempts = 0
    const keyed: Record<string, number> = {}
    const buckets: Record<string, number> = {}
    for (let m = 0; m < pop.count; m++) {
      if (pop.cls[m] !== c) continue
      messages++
      attempts += run.attempts[m] ?? 0
      const kind = run.kinds[run.firstKind[m] ?? 0] ?? '?'
      keyed[kind] = (keyed[kind] ?? 0) + 1
      const d = run.delayMs[m] ?? Number.NaN
      if (Number.isNaN(d)) pending++
      else if (d < 0) lost++
      else {
        delays.push(d / 60_000)
        const s = Math.round(d / 1000)
        const b = DELAY_BUCKETS.find((x) => s <= x)
        const key = b === undefined ? 'inf' : String(b)
        if (s > 0) buckets[key] = (buckets[key] ?? 0) + 1
      }
    }
    const sorted = Float64Array.from(delays).sort()
    return {
      class: info.id,
      label: info.label,
      spam: info.spam,
      messages,
      delivered: delays.length,
      lost,
      pending,
      delayMin: { p50: round1(pct(sorted, 0.5)), p90: round1(pct(sorted, 0.9)), p99: round1(pct(sorted, 0.99)), max: round1(sorted[sorted.length - 1] ?? 0) },
      delayed: delays.filter((d) => d > 0).length,
      attemptsMean: messages ? round2(attempts / messages) : 0,
      firstKeyedAs: keyed,
      delayBuckets: buckets,
    }
  })
  const n = pop.count
  return {
    keying: run.keying.name,
    about: run.keying.about,
    classes,
    totals: {
      messages: n,
      decisions: run.decisions,
      seconds: round1(run.seconds),
      messagesPerSecond: Math.round(n / run.seconds),
      decisionsPerSecond: Math.round(run.decisions / run.seconds),
      failures: run.failures,
      redisRoundTripsPerMessage: round2(run.roundTrips / n),
      redisCommandsPerMessage: round2(run.redis.commands / n),
      redisBytesPerMessage: Math.round(run.redis.usedMemoryBytes / n),
      redisKeysAtEnd: run.redis.keys,
      redisMasters: run.redis.masters,
      redisCpuUsPerMessage: round1((run.redis.cpuSeconds * 1e6) / n),
      dnsQueriesPerMessage: round2(run.dnsQueries / n),
      tuplesStartedPerMessage: round2(run.tuplesStarted / n),
      tuplesPassedPerMessage: round2(run.tuplesPassed / n),
      redisBytesPerKey: run.redis.keys ? Math.round(run.redis.usedMemoryBytes / run.redis.keys) : 0,
    },
  }
}

const share = (x: number, of: number): string => (of ? `${((100 * x) / of).toFixed(1)}%` : '-')

/** The report as terminal lines: one block per keying, then the side-by-side summary. */
export function reportLines(r: SimReport, opts: { chart?: boolean } = {}): string[] {
  const out: string[] = [`simulated day: ${r.messages} messages to ${r.recipients} mailboxes, seed ${r.seed}, mix ${r.mix}, Redis ${r.redis}`]
  for (const k of r.keyings) {
    const t = k.totals
    out.push(
      '',
      `keying ${k.keying}: ${k.about}`,
      `  ${t.decisions} decisions in ${t.seconds} s (${t.messagesPerSecond} messages/s, ${t.decisionsPerSecond} decisions/s); failures ${t.failures}`,
      `  Redis per message: ${t.redisRoundTripsPerMessage} round trips, ${t.redisCommandsPerMessage} commands, ${t.redisCpuUsPerMessage} us of its CPU, ${t.redisBytesPerMessage} bytes; ${t.redisKeysAtEnd} keys at the end (${t.redisBytesPerKey} bytes each, ${t.redisMasters} master${t.redisMasters > 1 ? 's' : ''})`,
      `  per message: ${t.tuplesStartedPerMessage} tuples started (held retry_window), ${t.tuplesPassedPerMessage} passed (held pass_ttl); DNS ${t.dnsQueriesPerMessage} queries`,
      `  ${'class'.padEnd(30)} ${'messages'.padStart(8)} ${'delivered'.padStart(9)} ${'lost'.padStart(7)} ${'delayed'.padStart(7)}  ${'delay p50/p90/p99/max min'.padStart(26)} ${'attempts'.padStart(8)}  first keyed as`,
    )
    for (const c of k.classes) {
      if (!c.messages) continue
      const d = c.delayMin
      const keyed = Object.entries(c.firstKeyedAs)
        .sort((a, b) => b[1] - a[1])
        .map(([kind, n]) => `${kind} ${share(n, c.messages)}`)
        .join(', ')
      out.push(
        `  ${c.label.padEnd(30)} ${String(c.messages).padStart(8)} ${share(c.delivered, c.messages).padStart(9)} ${String(c.lost).padStart(7)} ${String(c.delayed).padStart(7)}  ${`${d.p50} / ${d.p90} / ${d.p99} / ${d.max}`.padStart(26)} ${c.attemptsMean.toFixed(2).padStart(8)}  ${keyed}`,
      )
      if (opts.chart) for (const line of delayChart(c.delayBuckets, 30)) out.push(`    ${line}`)
    }
  }
  out.push('', ...summaryTable(r))
  return out
}

/**
 * Side by side, per class: legitimate mail delivered (lost) and the delay p90 in minutes; spam
 * accepted. As markdown, ready for the README.
 */
export function summaryTable(r: SimReport): string[] {
  const head = `| class | ${r.keyings.map((k) => k.keying).join(' | ')} |`
  const rule = `|---|${r.keyings.map(() => '---').join('|')}|`
  const rows = (r.keyings[0]?.classes ?? [])
    .filter((c) => c.messages)
    .map((c, i) => {
      const cells = r.keyings.map((k) => {
        const x = k.classes[i]
        if (!x) return '-'
        if (x.spam) return `${share(x.delivered, x.messages)} accepted`
        return `${share(x.delivered, x.messages)} delivered${x.lost ? ` (${x.lost} lost)` : ''}, p90 ${x.delayMin.p90} min, max ${x.delayMin.max}`
      })
      return `| ${c.label} (${c.messages}) | ${cells.join(' | ')} |`
    })
  return [head, rule, ...rows]
}
