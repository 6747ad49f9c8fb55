// Provider data that refreshes itself: what a refresh may accept (the bounds that `pools
// refresh` applies too, and every MX applies again to what it reads back from Redis), how
// Microsoft's endpoints web service is read, and the record of fresh ranges that every MX shares
// through Redis. Pure.
import { parseCidr } from './ip'
import type { Provider } from './providers'
import type { Config } from './settings'
import { safeExcerpt } from './text'

/** A value read from a record anyone with Redis access may have written, as log lines show it. */
const shown = (value: string): string => safeExcerpt(value, 64)

/**
 * No range wider than this, unless it lies inside the provider's files' ranges: no provider
 * sends mail from a /11, and a record that says so is a mistake or an attack.
 */
export const MIN_REFRESH_PREFIX = { ipv4: 12, ipv6: 24 } as const

/**
 * A range that touches none of the provider's files' ranges may be at most this wide without the
 * admin's word ([refresh] accept_new, or --force): providers grow by a few /22-/20 (IPv4) or /44-
 * /48 (IPv6) blocks at a time; a whole new /16 is worth a look by a person first.
 */
export const NEW_RANGE_PREFIX = { ipv4: 20, ipv6: 40 } as const

/**
 * Ranges one provider may have at most, however many its files list: the largest real include
 * chains list well under 100, and the CIDR table and the Redis record stay small (11 providers x
 * 1024 ranges is ~11k entries).
 */
export const MAX_RANGES = 1024

/** What the bounds need besides a provider's anchor: the admin's settings, read by the adapters. */
export interface RefreshBounds {
  /** [refresh] accept_new: fresh ranges inside these are the admin's word, not the refresh's. */
  readonly accepted: readonly string[]
  /**
   * [identity] spf_widest_ipv4/6: the growth allowed beyond 4x the anchor, and the whole
   * allowance of a provider the files give no ranges: what one sender's SPF record may authorise
   * and still be trusted as an identity, so one yardstick judges both.
   */
  readonly widestIpv4: number
  readonly widestIpv6: number
}

export function refreshBounds(config: Config): RefreshBounds {
  return { accepted: config.refresh.accept_new, widestIpv4: config.identity.spf_widest_ipv4, widestIpv6: config.identity.spf_widest_ipv6 }
}

/**
 * Each provider's anchor: every range its files give it, the shipped file's and the admin's
 * (a `.local` section that narrows a provider's ranges does not make the shipped ones suspect).
 */
export function anchorsOf(shipped: readonly Provider[], merged: readonly Provider[]): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const p of [...shipped, ...merged]) out.set(p.id, [...new Set([...(out.get(p.id) ?? []), ...p.ips.map(canonicalRange)])])
  return out
}

export function canonicalRange(range: string): string {
  const [addr = '', len] = range.split('/')
  return `${addr.toLowerCase()}/${len ?? (addr.includes(':') ? '128' : '32')}`
}

/** How many ranges a refresh may give a provider whose files list `anchorCount`. */
export function maxRanges(anchorCount: number): number {
  return Math.min(MAX_RANGES, Math.max(4 * anchorCount, anchorCount + 64))
}

type Family = 'ipv4' | 'ipv6'
interface Interval {
  readonly family: Family
  readonly start: bigint
  readonly end: bigint
  readonly prefix: number
}

function interval(range: string): Interval | null {
  const c = parseCidr(range)
  if (!c) return null
  const family = c.ip.kind()
  const bits = family === 'ipv4' ? 32 : 128
  const value = c.ip.toByteArray().reduce((n, b) => (n << 8n) | BigInt(b), 0n)
  const size = 1n << BigInt(bits - c.prefix)
  const start = value & ~(size - 1n)
  return { family, start, end: start + size - 1n, prefix: c.prefix }
}

/** Addresses the ranges of one family cover, overlaps counted once. */
function space(ranges: readonly Interval[], family: Family): bigint {
  const sorted = ranges.filter((r) => r.family === family).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
  let total = 0n
  let end = -1n
  for (const r of sorted) {
    if (r.end <= end) continue
    total += r.end - (r.start > end ? r.start : end + 1n) + 1n
    end = r.end
  }
  return total
}

const within = (r: Interval, outer: readonly Interval[]): boolean => outer.some((o) => o.family === r.family && o.start <= r.start && r.end <= o.end)
const touches = (r: Interval, others: readonly Interval[]): boolean => others.some((o) => o.family === r.family && o.start <= r.end && r.start <= o.end)
const bits = (n: bigint): string => (n === 0n ? '0' : `2^${Math.round(Math.log2(Number(n)) * 10) / 10}`)

/**
 * Why fresh ranges look like a mistake or an attack rather than a provider's growth, or null.
 * Every bound is measured against `anchor`, the provider's ranges as its files give them, never
 * against the last refresh: a bound relative to the last accepted value ratchets (seven refreshes
 * that each quadruple would reach all of IPv4).
 */
export function implausible(anchor: readonly string[], fresh: readonly string[], b: RefreshBounds): string | null {
  if (!fresh.length) return 'no ranges'
  const cap = maxRanges(anchor.length)
  // Counted before anything is parsed: a record of 100k ranges costs nothing to refuse.
  if (fresh.length > cap) return `${fresh.length} ranges, more than the ${cap} allowed for ${anchor.length} in the files`
  const base = anchor.flatMap((r) => interval(r) ?? [])
  const accepted = b.accepted.flatMap((r) => interval(r) ?? [])
  const bounded: Interval[] = []
  for (const r of fresh) {
    const i = interval(r)
    if (!i) return `${shown(r)} is not a range`
    // The admin vouched for these: neither judged nor counted.
    if (within(i, accepted)) continue
    bounded.push(i)
    if (within(i, base)) continue
    if (i.prefix < MIN_REFRESH_PREFIX[i.family]) return `${r} is wider than /${MIN_REFRESH_PREFIX[i.family]}`
    if (i.prefix < NEW_RANGE_PREFIX[i.family] && !touches(i, base))
      return `${r} is new and wider than /${NEW_RANGE_PREFIX[i.family]} ([refresh] accept_new takes it)`
  }
  for (const [family, widest] of [
    ['ipv4', b.widestIpv4],
    ['ipv6', b.widestIpv6],
  ] as const) {
    const was = space(base, family)
    const now = space(bounded, family)
    const limit = 4n * was + (1n << BigInt((family === 'ipv4' ? 32 : 128) - widest))
    if (now > limit)
      return `its ${family === 'ipv4' ? 'IPv4' : 'IPv6'} space would be ${bits(now)} addresses, more than 4 x the files' ${bits(was)} + ${bits(limit - 4n * was)}`
  }
  return null
}

/** The service's `/version/<instance>` answer: `{"instance": "Worldwide", "latest": "2025113000"}`. */
export function endpointsVersion(json: unknown): string | null {
  const latest = (json as { latest?: unknown } | null)?.latest
  return typeof latest === 'string' && /^\d{6,12}$/.test(latest) ? latest : null
}

/**
 * The ranges Exchange Online sends mail from, in the service's `/endpoints/<instance>` answer:
 * the endpoint sets of service area Exchange whose TCP ports include 25 (set 10, `*.mail.protection.outlook.com`).
 */
export function exchangeSmtpRanges(json: unknown): string[] | { error: string } {
  if (!Array.isArray(json)) return { error: 'the endpoints answer is not a list of endpoint sets' }
  const ranges = new Set<string>()
  for (const set of json as unknown[]) {
    const s = set as { serviceArea?: unknown; tcpPorts?: unknown; ips?: unknown } | null
    if (s?.serviceArea !== 'Exchange' || typeof s.tcpPorts !== 'string' || !s.tcpPorts.split(',').some((p) => p.trim() === '25')) continue
    if (!Array.isArray(s.ips)) continue
    for (const ip of s.ips as unknown[]) {
      if (typeof ip !== 'string' || !parseCidr(ip)) return { error: `an Exchange endpoint set lists "${String(ip)}", not a range` }
      ranges.add(canonicalRange(ip))
    }
  }
  return ranges.size ? [...ranges] : { error: 'no Exchange endpoint set for TCP port 25' }
}

/** A provider's fresh ranges as every MX reads them from Redis. */
export interface SharedRanges {
  readonly id: string
  readonly ranges: readonly string[]
  /** When the ranges were fetched (ms). */
  readonly updated: number
  readonly source: 'spf' | 'endpoints'
  /** The endpoints service's version of the data, when that was the source. */
  readonly version: string | null
}

/** How the last attempt went, apart from the data it left in place. */
export interface RefreshStatus {
  readonly checked: number
  readonly error: string | null
}

export function encodeShared(s: SharedRanges): Record<string, string> {
  return { ranges: s.ranges.join(' '), updated: String(s.updated), source: s.source, version: s.version ?? '' }
}

/** Records older than this were not written by this plugin's refresh: a clock gone wrong, or a forgery. */
const EARLIEST_UPDATED = Date.UTC(2020, 0, 1)
/** How far ahead of this MX's clock a record may be dated: clocks of MXs differ, not by days. */
const FUTURE_SLACK_MS = 86_400_000
/** The longest `ranges` field a record of MAX_RANGES ranges can have (an IPv6 CIDR is at most 43 characters). */
const MAX_RANGES_CHARS = MAX_RANGES * 44

/** A record read back from Redis that is not used, and why (logged, and named by `config check`). */
export interface RefusedShared {
  readonly id: string
  readonly refused: string
}

/**
 * A stored record, checked as a refresh's result is: Redis is shared, and anyone who can write
 * to it could otherwise put every client into a provider's pool. Null when there is none; a
 * record that is not one, is dated outside [2020, now + 1 day], or fails `implausible` against
 * the provider's files' ranges is refused, not trusted.
 */
export function decodeShared(
  id: string,
  h: Readonly<Record<string, string>>,
  check: { readonly anchor: readonly string[]; readonly bounds: RefreshBounds; readonly now: number },
): SharedRanges | RefusedShared | null {
  if (!Object.keys(h).length) return null
  const refused = (why: string): RefusedShared => ({ id, refused: why })
  const text = h.ranges ?? ''
  // Bounded before it is split: a forged record can be megabytes.
  if (text.length > MAX_RANGES_CHARS) return refused(`its ranges are ${text.length} characters long`)
  const ranges = text.split(' ').filter(Boolean)
  const updated = Number(h.updated)
  const source = h.source === 'spf' || h.source === 'endpoints' ? h.source : null
  if (!source) return refused(`source "${shown(String(h.source))}" is neither spf nor endpoints`)
  if (!Number.isFinite(updated) || updated < EARLIEST_UPDATED || updated > check.now + FUTURE_SLACK_MS)
    return refused(`updated "${shown(String(h.updated))}" is not a time between 2020 and tomorrow`)
  const why = implausible(check.anchor, ranges, check.bounds)
  if (why) return refused(why)
  return { id, ranges, updated, source, version: h.version || null }
}

/**
 * Providers with the shared ranges applied: a record replaces a provider's ranges unless its
 * file's ranges are of a later day (an upgrade, or the admin's `pools refresh`).
 */
export function withShared(providers: readonly Provider[], shared: ReadonlyMap<string, SharedRanges>): Provider[] {
  return providers.map((p) => {
    const s = shared.get(p.id)
    // A time Date cannot hold (decodeShared refuses it already) would throw here, on every reload.
    if (!s || !Number.isFinite(s.updated) || Math.abs(s.updated) > 8.64e15) return p
    const day = new Date(s.updated).toISOString().slice(0, 10)
    if (p.updated && p.updated > day) return p
    return { ...p, ips: [...s.ranges], updated: day, origin: `redis (${s.source}${s.version ? ` ${s.version}` : ''})` }
  })
}
