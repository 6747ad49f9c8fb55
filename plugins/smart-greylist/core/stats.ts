// Daily counters the plugin keeps in Redis, and how `smart-greylist stats` reads them back.
// The counting itself happens inside the tuple script (adapters/redis-decision.ts), in the decision's round trip.
//
//   <prefix>{<shard>}st:<YYYY-MM-DD>  hash   defer:<new|early|expired>, shadow:<…>, trusted:<…>,
//                                            would_trust:<…>, retry, known, awl, wl:<kind>,
//                                            skip:<reason>, fail_open, fo:<cause>, id:<kind>,
//                                            d:<bucket>, dsum, dmax, dk:<kind>:<bucket>, dks:<kind>
//   <prefix>{<shard>}si:<YYYY-MM-DD>  zset   identity -> tuples deferred (new or expired) that day
// Both expire after [stats] days. A decision counts in its identity's shard (keys.ts), inside
// the same script and slot as its tuple; `smart-greylist stats` adds the shards up.
import { SHARDS, shardPrefix } from './keys'

/**
 * What a deferral counts as (the counter family `<label>:<status>`): enforced, shadow mode,
 * accepted on its evidence ([select] policy = suspicious), postponed to the end of data (a weak
 * identity under net_identity_greylist = message), or a message deferred at the end of data.
 */
export const DEFER_LABELS = ['defer', 'shadow', 'trusted', 'postponed', 'message'] as const
export type DeferLabel = (typeof DEFER_LABELS)[number]
/** A second family a deferral may count in: [select] policy = suspicious would have accepted it. */
export const ALSO_LABELS = ['would_trust'] as const
export type AlsoLabel = (typeof ALSO_LABELS)[number]

/**
 * The day's other counters, declared once for the tuple script, the plugin and `stats`. The
 * `…:` ones are families: a kind, reason or bucket follows.
 */
export const COUNTER = {
  retry: 'retry',
  known: 'known',
  awl: 'awl',
  failOpen: 'fail_open',
  /** The same by cause: `fo:<cause>` (redis_timeout, redis_unavailable, internal …). */
  failOpenBy: 'fo:',
  /** Tuple decisions per identity kind: `id:<kind>`. */
  identityKind: 'id:',
  delaySum: 'dsum',
  delayMax: 'dmax',
  delayBucket: 'd:',
  /** The same histogram per identity kind: `dk:<kind>:<bucket>`, and its sum `dks:<kind>`. */
  delayByKind: 'dk:',
  delaySumByKind: 'dks:',
  whitelisted: 'wl:',
  skipped: 'skip:',
} as const

/** Upper bounds (seconds) of the histogram of delays that greylisting added; the last is open. */
export const DELAY_BUCKETS: readonly number[] = [60, 120, 180, 240, 300, 360, 420, 480, 600, 900, 1200, 1800, 2700, 3600, 7200, 14_400, 28_800, 86_400, 172_800]

// Every decision names its day's keys; the text changes once a day.
let cachedDay = { from: 0, to: -1, text: '' }

export function dayOf(ms: number): string {
  if (ms >= cachedDay.from && ms < cachedDay.to) return cachedDay.text
  const from = ms - (((ms % 86_400_000) + 86_400_000) % 86_400_000)
  const text = new Date(ms).toISOString().slice(0, 10)
  cachedDay = { from, to: from + 86_400_000, text }
  return text
}

export function statsKeys(prefix: string, ms: number, shard: number): { counters: string; identities: string } {
  const day = dayOf(ms)
  const p = shardPrefix(prefix, shard)
  return { counters: `${p}st:${day}`, identities: `${p}si:${day}` }
}

/** Every shard's keys of one day, for adding them up. */
export function allStatsKeys(prefix: string, ms: number): { counters: string; identities: string }[] {
  return Array.from({ length: SHARDS }, (_, shard) => statsKeys(prefix, ms, shard))
}

/**
 * Identities each shard keeps of the day's "deferred most" set so that the shards together
 * still give the top `total`: an identity lives in one shard only, and the top `total` spread
 * over SHARDS shards put far fewer than four times their share into any one of them.
 */
export function identitiesPerShard(total: number): number {
  return Math.max(16, Math.ceil((total * 4) / SHARDS))
}

/** Adds one day's hashes field by field (the shards of a day). */
export function addHashes(hashes: readonly Record<string, string>[]): Record<string, string> {
  const out: Record<string, number> = {}
  for (const h of hashes) {
    for (const [k, v] of Object.entries(h)) {
      // dmax is a maximum, every other field a count.
      out[k] = k === COUNTER.delayMax ? Math.max(out[k] ?? 0, Number(v)) : (out[k] ?? 0) + Number(v)
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, String(v)]))
}

export interface DayStats {
  readonly day: string
  /** 451s: recipients deferred at RCPT, and messages at the end of data. */
  readonly deferred: number
  readonly deferredBy: Record<string, number>
  /** net_identity_greylist = message: messages deferred at the end of data, by state. */
  readonly messagesDeferredBy: Record<string, number>
  /** net_identity_greylist = message: recipients whose deferral waited for their message, by state. */
  readonly postponed: Record<string, number>
  readonly shadow: number
  /** Shadow mode's would-be deferrals, by state. */
  readonly shadowBy: Record<string, number>
  readonly acceptedAfterDelay: number
  readonly known: number
  readonly autoWhitelisted: number
  readonly whitelisted: Record<string, number>
  readonly skipped: Record<string, number>
  readonly failOpen: number
  /** Fail-open events by cause (redis_timeout, redis_unavailable, redis_busy, internal …). */
  readonly failOpenBy: Record<string, number>
  /** Tuple decisions by identity kind (spf, host, pool, net). */
  readonly identityKinds: Record<string, number>
  /** [select] policy = suspicious: tuples accepted on evidence that `all` would have deferred, by state. */
  readonly trusted: Record<string, number>
  /** [select] policy = all: deferrals that `suspicious` would have accepted, by state. */
  readonly wouldTrust: Record<string, number>
  readonly delay: { count: number; sumSeconds: number; maxSeconds: number; buckets: Record<string, number> }
  /** The delay histogram per identity kind (spf, host, pool, net). */
  readonly delayByKind: Record<string, Record<string, number>>
  /** The delays' sum (seconds) per identity kind. */
  readonly delaySumByKind: Record<string, number>
}

/** One day's hash as Redis returns it (field -> decimal string). */
export function parseDay(day: string, h: Record<string, string>): DayStats {
  const n = (f: string): number => Number(h[f] ?? 0)
  const pick = (pre: string): Record<string, number> =>
    Object.fromEntries(
      Object.entries(h)
        .filter(([k]) => k.startsWith(pre))
        .map(([k, v]) => [k.slice(pre.length), Number(v)]),
    )
  const family = (label: DeferLabel | AlsoLabel): Record<string, number> => pick(`${label}:`)
  const deferredBy = family('defer')
  const messagesDeferredBy = family('message')
  const buckets = pick(COUNTER.delayBucket)
  return {
    day,
    deferred: sum(deferredBy) + sum(messagesDeferredBy),
    deferredBy,
    messagesDeferredBy,
    postponed: family('postponed'),
    shadow: sum(family('shadow')),
    shadowBy: family('shadow'),
    acceptedAfterDelay: n(COUNTER.retry),
    known: n(COUNTER.known),
    autoWhitelisted: n(COUNTER.awl),
    whitelisted: pick(COUNTER.whitelisted),
    skipped: pick(COUNTER.skipped),
    failOpen: n(COUNTER.failOpen),
    failOpenBy: pick(COUNTER.failOpenBy),
    identityKinds: pick(COUNTER.identityKind),
    trusted: family('trusted'),
    wouldTrust: family('would_trust'),
    delay: { count: sum(buckets), sumSeconds: n(COUNTER.delaySum), maxSeconds: n(COUNTER.delayMax), buckets },
    delayByKind: byKind(pick(COUNTER.delayByKind)),
    delaySumByKind: pick(COUNTER.delaySumByKind),
  }
}

/** `{'spf:300': 2, 'net:inf': 1}` as `{spf: {'300': 2}, net: {inf: 1}}`. */
function byKind(fields: Record<string, number>): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {}
  for (const [k, v] of Object.entries(fields)) {
    const colon = k.indexOf(':')
    if (colon < 0) continue
    const kind = k.slice(0, colon)
    out[kind] = { ...out[kind], [k.slice(colon + 1)]: v }
  }
  return out
}

function sum(r: Record<string, number>): number {
  return Object.values(r).reduce((a, b) => a + b, 0)
}

/** The histogram's buckets in order, with their labels (`<= 300 s`, `> 172800 s`) and counts. */
export function delayRows(buckets: Record<string, number>): { label: string; count: number }[] {
  return [
    ...DELAY_BUCKETS.map((b) => ({ label: `<= ${b} s`, count: buckets[String(b)] ?? 0 })),
    { label: `> ${DELAY_BUCKETS.at(-1) ?? 0} s`, count: buckets.inf ?? 0 },
  ]
}

/** The histogram as bars, one row per bucket from the first to the last that holds mail. */
export function delayChart(buckets: Record<string, number>, width = 40): string[] {
  const rows = delayRows(buckets)
  const first = rows.findIndex((r) => r.count > 0)
  if (first < 0) return []
  const last = rows.length - 1 - [...rows].reverse().findIndex((r) => r.count > 0)
  const most = Math.max(...rows.map((r) => r.count))
  return rows.slice(first, last + 1).map((r) => {
    const bar = r.count ? '#'.repeat(Math.max(1, Math.round((r.count / most) * width))) : ''
    return `  ${r.label.padStart(11)} | ${bar.padEnd(width)} ${r.count}`
  })
}

/**
 * The delay below which `p` (0..1) of the delayed messages fall, as the upper bound of the
 * histogram bucket that holds it (capped by the exact maximum). Null when nothing was delayed.
 */
export function delayPercentile(buckets: Record<string, number>, p: number, maxSeconds: number): number | null {
  const total = sum(buckets)
  if (!total) return null
  let seen = 0
  for (const bound of [...DELAY_BUCKETS, Infinity]) {
    seen += buckets[bound === Infinity ? 'inf' : String(bound)] ?? 0
    if (seen >= p * total) return Math.min(bound, maxSeconds)
  }
  return maxSeconds
}

export function mergeDays(days: readonly DayStats[]): DayStats {
  const add = (a: Record<string, number>, b: Record<string, number>): Record<string, number> => {
    const out = { ...a }
    for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v
    return out
  }
  return days.reduce<DayStats>(
    (t, d) => ({
      day: 'total',
      deferred: t.deferred + d.deferred,
      deferredBy: add(t.deferredBy, d.deferredBy),
      messagesDeferredBy: add(t.messagesDeferredBy, d.messagesDeferredBy),
      postponed: add(t.postponed, d.postponed),
      shadow: t.shadow + d.shadow,
      shadowBy: add(t.shadowBy, d.shadowBy),
      acceptedAfterDelay: t.acceptedAfterDelay + d.acceptedAfterDelay,
      known: t.known + d.known,
      autoWhitelisted: t.autoWhitelisted + d.autoWhitelisted,
      whitelisted: add(t.whitelisted, d.whitelisted),
      skipped: add(t.skipped, d.skipped),
      failOpen: t.failOpen + d.failOpen,
      failOpenBy: add(t.failOpenBy, d.failOpenBy),
      identityKinds: add(t.identityKinds, d.identityKinds),
      trusted: add(t.trusted, d.trusted),
      wouldTrust: add(t.wouldTrust, d.wouldTrust),
      delay: {
        count: t.delay.count + d.delay.count,
        sumSeconds: t.delay.sumSeconds + d.delay.sumSeconds,
        maxSeconds: Math.max(t.delay.maxSeconds, d.delay.maxSeconds),
        buckets: add(t.delay.buckets, d.delay.buckets),
      },
      delayByKind: Object.fromEntries(
        [...new Set([...Object.keys(t.delayByKind), ...Object.keys(d.delayByKind)])].map((k) => [k, add(t.delayByKind[k] ?? {}, d.delayByKind[k] ?? {})]),
      ),
      delaySumByKind: add(t.delaySumByKind, d.delaySumByKind),
    }),
    parseDay('total', {}),
  )
}
