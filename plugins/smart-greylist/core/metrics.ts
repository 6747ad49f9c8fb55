// Prometheus metrics: the histograms a process keeps of its own Redis and DNS waits, and the text
// exposition of everything a scrape shows. Pure: the caller gathers the site's counters (Redis),
// the process's state and the time.
//
// Site-wide series (no process labels) come from the day's statistics every MX and worker writes
// to Redis (stats.ts), so one scrape of any MX shows the whole site. They are today's (UTC) and
// start again at 00:00 UTC, which Prometheus's rate() and increase() read as a counter reset.
// Per-process series carry `host` and `pid`.
import { CidrSet, parseCidr, parseIp } from './ip'
import { DELAY_BUCKETS, type DayStats } from './stats'

/** Bounds (seconds) of the Redis and DNS latency histograms: 0.5 ms to 5 s. */
export const LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

export interface HistogramSnapshot {
  readonly bounds: readonly number[]
  /** Observations per bucket (not cumulative); one more than bounds: the last is +Inf. */
  readonly counts: readonly number[]
  readonly sum: number
  readonly count: number
}

/** A fixed-bucket histogram; observing is a short loop and two additions, for the decision path. */
export class Histogram {
  private readonly counts: number[]
  private sum = 0
  private count = 0

  constructor(private readonly bounds: readonly number[] = LATENCY_BUCKETS) {
    this.counts = new Array<number>(bounds.length + 1).fill(0)
  }

  observe(value: number): void {
    let i = 0
    while (i < this.bounds.length && value > (this.bounds[i] ?? Infinity)) i++
    this.counts[i] = (this.counts[i] ?? 0) + 1
    this.sum += value
    this.count++
  }

  snapshot(): HistogramSnapshot {
    return { bounds: this.bounds, counts: [...this.counts], sum: this.sum, count: this.count }
  }
}

/**
 * One read at a time, its result reused for `keepMs`: callers that come while a read is in flight
 * share it, so a burst of scrapes costs Redis one read; a read that failed is not kept, so the
 * next caller tries again.
 */
export class SharedRead<T> {
  private inFlight?: Promise<T>
  private kept?: { readonly at: number; readonly value: T }

  get(now: number, keepMs: number, read: () => Promise<T>): Promise<T> {
    if (this.inFlight) return this.inFlight
    // A clock that went back would otherwise keep an old read until it catches up.
    const k = this.kept
    if (k && now >= k.at && now - k.at < keepMs) return Promise.resolve(k.value)
    const reading: Promise<T> = read()
      .then((value) => {
        this.kept = { at: now, value }
        return value
      })
      .finally(() => {
        if (this.inFlight === reading) this.inFlight = undefined
      })
    this.inFlight = reading
    return reading
  }
}

/** `[metrics] allow` as a set to look addresses up in. */
export function allowSet(list: readonly string[]): CidrSet<true> {
  const set = new CidrSet<true>()
  for (const item of list) {
    const n = parseCidr(item)
    if (n) set.add(n.ip, n.prefix, true)
  }
  return set
}

/** Whether a scraper at `remote` (a socket's peer; `::ffff:a.b.c.d` is a.b.c.d) may read the metrics. */
export function mayScrape(allow: CidrSet<true>, remote: string | undefined): boolean {
  const ip = parseIp(remote)
  return ip !== null && allow.lookup(ip) === true
}

/** What this process knows of itself. */
export interface ProcessMetrics {
  readonly host: string
  readonly pid: number
  readonly redisUp: boolean
  readonly redisInFlight: number
  readonly redisSeconds: HistogramSnapshot
  /** Per lookup: rdns, spf, dnsbl. */
  readonly dnsSeconds: Readonly<Record<string, HistogramSnapshot>>
  /** Decisions this process failed open on since it started, by cause. */
  readonly failOpen: Readonly<Record<string, number>>
  /** Per provider: seconds since its ranges were last updated (null: no date known). */
  readonly providerAgeSeconds: Readonly<Record<string, number | null>>
}

export interface SiteMetrics {
  /** Today's counters of every MX, or null when Redis could not be read. */
  readonly today: DayStats | null
  /** Stuck (sender domain, recipient) pairs at the last count, or null before the first. */
  readonly stuckPairs: number | null
  readonly stuckCountedAt: number | null
  /** Whether the site's last provider refresh (by any MX) recorded an error; null: none recorded. */
  readonly refreshFailed: boolean | null
}

type Labels = Readonly<Record<string, string | number>>

/** One metric family in the text format: HELP, TYPE and its samples. */
class Family {
  readonly lines: string[]
  constructor(name: string, type: 'counter' | 'gauge' | 'histogram', help: string) {
    this.lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`]
  }
  sample(name: string, labels: Labels, value: number): this {
    this.lines.push(`${name}${labelText(labels)} ${formatValue(value)}`)
    return this
  }
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
  return parts.length ? `{${parts.join(',')}}` : ''
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  return String(v)
}

/** A histogram family's samples from per-bucket counts (made cumulative here). */
function histogram(f: Family, name: string, labels: Labels, bounds: readonly number[], counts: readonly number[], sum: number): void {
  let running = 0
  bounds.forEach((b, i) => {
    running += counts[i] ?? 0
    f.sample(`${name}_bucket`, { ...labels, le: b }, running)
  })
  running += counts[bounds.length] ?? 0
  f.sample(`${name}_bucket`, { ...labels, le: '+Inf' }, running)
  f.sample(`${name}_sum`, labels, sum)
  f.sample(`${name}_count`, labels, running)
}

/** The day's delay histogram (`d:<bucket>` style fields) as per-bucket counts in DELAY_BUCKETS order, +Inf last. */
function delayCounts(buckets: Readonly<Record<string, number>>): number[] {
  return [...DELAY_BUCKETS.map((b) => buckets[String(b)] ?? 0), buckets.inf ?? 0]
}

const P = 'smart_greylist'

export function renderMetrics(site: SiteMetrics, proc: ProcessMetrics, now: number): string {
  const families: Family[] = []
  const fam = (name: string, type: 'counter' | 'gauge' | 'histogram', help: string): Family => {
    const f = new Family(`${P}_${name}`, type, help)
    families.push(f)
    return f
  }
  const me = { host: proc.host, pid: proc.pid }

  fam('site_up', 'gauge', "1 when the site's counters could be read from Redis for this scrape").sample(`${P}_site_up`, {}, site.today ? 1 : 0)
  const d = site.today
  if (d) {
    const decisions = fam(
      'decisions_total',
      'counter',
      'Recipient and message decisions of every MX today (UTC), by action and reason; starts again at 00:00 UTC',
    )
    const each = (action: string, by: Readonly<Record<string, number>>): void => {
      for (const [reason, n] of Object.entries(by).sort()) decisions.sample(`${P}_decisions_total`, { action, reason }, n)
    }
    each('defer', d.deferredBy)
    each('message_defer', d.messagesDeferredBy)
    each('postpone', d.postponed)
    each('shadow_defer', d.shadowBy)
    each('trusted', d.trusted)
    each('pass', { retry: d.acceptedAfterDelay, known: d.known, awl: d.autoWhitelisted })
    each('whitelist', d.whitelisted)
    each('skip', d.skipped)
    const would = fam('would_trust_total', 'counter', '[select] policy = all: deferrals today that policy = suspicious would have accepted, by state')
    for (const [reason, n] of Object.entries(d.wouldTrust).sort()) would.sample(`${P}_would_trust_total`, { reason }, n)
    const kinds = fam(
      'identity_decisions_total',
      'counter',
      'Tuple decisions of every MX today, by the kind of identity the sender was given (spf, host, pool, net)',
    )
    for (const [kind, n] of Object.entries(d.identityKinds).sort()) kinds.sample(`${P}_identity_decisions_total`, { kind }, n)
    const failOpen = fam('fail_open_total', 'counter', 'Decisions of every MX today that failed open (accepted on an internal failure), by cause')
    const byCause = { ...d.failOpenBy }
    // Counted before causes were recorded (0.6): the rest of the total.
    const unknown = d.failOpen - Object.values(byCause).reduce((a, b) => a + b, 0)
    if (unknown > 0) byCause.unknown = unknown
    for (const [cause, n] of Object.entries(byCause).sort()) failOpen.sample(`${P}_fail_open_total`, { cause }, n)
    const delay = fam('delay_seconds', 'histogram', 'The wait (first contact to accepted retry) of mail accepted today after greylisting, at every MX')
    histogram(delay, `${P}_delay_seconds`, {}, DELAY_BUCKETS, delayCounts(d.delay.buckets), d.delay.sumSeconds)
    const byKind = fam('delay_by_kind_seconds', 'histogram', 'The same wait, by identity kind')
    for (const [kind, b] of Object.entries(d.delayByKind).sort()) {
      histogram(byKind, `${P}_delay_by_kind_seconds`, { kind }, DELAY_BUCKETS, delayCounts(b), d.delaySumByKind[kind] ?? 0)
    }
  }
  if (site.stuckPairs !== null) {
    fam('stuck_pairs', 'gauge', '(sender domain, recipient) pairs deferred from several identities or networks within the retry window without passing').sample(
      `${P}_stuck_pairs`,
      {},
      site.stuckPairs,
    )
    if (site.stuckCountedAt !== null) {
      fam('stuck_count_age_seconds', 'gauge', 'Seconds since the stuck pairs were counted').sample(
        `${P}_stuck_count_age_seconds`,
        {},
        Math.max(0, Math.round((now - site.stuckCountedAt) / 1000)),
      )
    }
  }

  if (site.refreshFailed !== null) {
    fam(
      'provider_refresh_failed',
      'gauge',
      "1 when the site's last provider refresh (by any MX) failed for some provider, which kept its last good ranges",
    ).sample(`${P}_provider_refresh_failed`, {}, site.refreshFailed ? 1 : 0)
  }

  fam('redis_up', 'gauge', 'This process has a Redis connection that answers').sample(`${P}_redis_up`, me, proc.redisUp ? 1 : 0)
  fam('redis_in_flight', 'gauge', "This process's Redis commands waiting for an answer").sample(`${P}_redis_in_flight`, me, proc.redisInFlight)
  const r = proc.redisSeconds
  histogram(
    fam('redis_request_seconds', 'histogram', "This process's Redis commands, from sending to the answer or the bound"),
    `${P}_redis_request_seconds`,
    me,
    r.bounds,
    r.counts,
    r.sum,
  )
  const dns = fam('dns_lookup_seconds', 'histogram', "This process's own DNS lookups (not those of other plugins), by lookup")
  for (const [lookup, h] of Object.entries(proc.dnsSeconds).sort()) histogram(dns, `${P}_dns_lookup_seconds`, { ...me, lookup }, h.bounds, h.counts, h.sum)
  const processFailOpen = fam(
    'process_fail_open_total',
    'counter',
    'Decisions this process failed open on since it started, by cause (also while Redis is unreachable)',
  )
  for (const [cause, n] of Object.entries(proc.failOpen).sort()) processFailOpen.sample(`${P}_process_fail_open_total`, { ...me, cause }, n)
  const age = fam('provider_data_age_seconds', 'gauge', "Seconds since each provider's ranges were updated, as this process uses them")
  for (const [provider, s] of Object.entries(proc.providerAgeSeconds).sort())
    if (s !== null) age.sample(`${P}_provider_data_age_seconds`, { ...me, provider }, s)

  return `${families.flatMap((f) => f.lines).join('\n')}\n`
}

/** Seconds since each provider's ranges were updated: a refresh's own time, else the day its file names. */
export function providerAges(
  providers: readonly { id: string; updated: string | null; origin: string }[],
  shared: ReadonlyMap<string, { updated: number }>,
  now: number,
): Record<string, number | null> {
  const out: Record<string, number | null> = {}
  for (const p of providers) {
    const fromRedis = p.origin.startsWith('redis') ? shared.get(p.id)?.updated : undefined
    const at = fromRedis ?? (p.updated ? Date.parse(`${p.updated}T00:00:00Z`) : NaN)
    out[p.id] = Number.isFinite(at) ? Math.max(0, Math.round((now - at) / 1000)) : null
  }
  return out
}
