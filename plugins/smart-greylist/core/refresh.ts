// Provider data that refreshes itself: what a refresh may accept (the sanity bounds that
// `pools refresh` applies too), how Microsoft's endpoints web service is read, and the record of
// fresh ranges that every MX shares through Redis. Pure.
import { parseCidr } from './ip'
import type { Provider } from './providers'

/** The widest range a refresh takes without --force: a provider's include chain is its own to change. */
export const MIN_REFRESH_PREFIX = { ipv4: 12, ipv6: 24 } as const

export function canonicalRange(range: string): string {
  const [addr = '', len] = range.split('/')
  return `${addr.toLowerCase()}/${len ?? (addr.includes(':') ? '128' : '32')}`
}

/** Why fresh ranges look like a mistake or an attack rather than a provider's growth, or null. */
export function implausible(before: readonly string[], after: readonly string[]): string | null {
  if (!after.length) return 'no ranges'
  for (const r of after) {
    const c = parseCidr(r)
    if (!c) return `${r} is not a range`
    if (c.prefix < MIN_REFRESH_PREFIX[c.ip.kind()]) return `${r} is wider than /${MIN_REFRESH_PREFIX[c.ip.kind()]}`
  }
  const size = (ranges: readonly string[], family: 'ipv4' | 'ipv6'): number =>
    ranges.map((x) => parseCidr(x)).reduce((n, c) => (c && c.ip.kind() === family ? n + 2 ** ((family === 'ipv4' ? 32 : 128) - c.prefix) : n), 0)
  for (const [family, slack] of [
    ['ipv4', 2 ** 16],
    ['ipv6', 2 ** 96],
  ] as const) {
    const was = size(before, family)
    const now = size(after, family)
    if (now > 4 * was + slack)
      return `its ${family === 'ipv4' ? 'IPv4' : 'IPv6'} space grows from 2^${Math.round(Math.log2(was || 1))} to 2^${Math.round(Math.log2(now))} addresses`
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

/** A stored record, or null when it is not one (a record edited by hand is ignored, not trusted). */
export function decodeShared(id: string, h: Readonly<Record<string, string>>): SharedRanges | null {
  const ranges = (h.ranges ?? '').split(' ').filter(Boolean)
  const updated = Number(h.updated)
  const source = h.source === 'spf' || h.source === 'endpoints' ? h.source : null
  if (!source || !Number.isFinite(updated) || !ranges.length || ranges.some((r) => !parseCidr(r))) return null
  return { id, ranges, updated, source, version: h.version || null }
}

/**
 * Providers with the shared ranges applied: a record replaces a provider's ranges unless its
 * file's ranges are of a later day (an upgrade, or the admin's `pools refresh`).
 */
export function withShared(providers: readonly Provider[], shared: ReadonlyMap<string, SharedRanges>): Provider[] {
  return providers.map((p) => {
    const s = shared.get(p.id)
    if (!s) return p
    const day = new Date(s.updated).toISOString().slice(0, 10)
    if (p.updated && p.updated > day) return p
    return { ...p, ips: [...s.ranges], updated: day, origin: `redis (${s.source}${s.version ? ` ${s.version}` : ''})` }
  })
}
