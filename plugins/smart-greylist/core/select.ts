// Selective greylisting and correspondents: what evidence a client brings, whether it is enough to
// accept a first contact ([select] policy = suspicious), and whether the sender's domain is
// authenticated enough to count as a correspondent of a local mailbox. Pure.
import type { RdnsFacts, SpfFacts } from './identity'
import { safeField } from './text'

/** DNSBL listings of the client: from the dns-list plugin, from [select] zones, or not asked. */
export interface DnsblFacts {
  readonly source: 'dns-list' | 'own' | 'none'
  /** Zones that list the client. */
  readonly listed: readonly string[]
  /** Zones that could not be asked in time (an unknown answer is not a clean one). */
  readonly failed?: readonly string[]
  /** Zones that list the client as end-user address space (a policy block list: Spamhaus PBL). */
  readonly policy?: readonly string[]
}

export interface Evidence {
  /** A forward-confirmed rDNS name of the client. */
  readonly fcrdns: string | null
  /** The MAIL FROM domain, when SPF passed for it from a record that is not permissive. */
  readonly spf: string | null
  readonly dnsbl: DnsblFacts
}

export function evidenceOf(rdns: RdnsFacts, spf: SpfFacts, senderDomain: string | null, dnsbl: DnsblFacts): Evidence {
  const confirmed = rdns.status === 'ok' ? (rdns.names.find((n) => n.confirmed)?.name ?? null) : null
  const spfPass = senderDomain !== null && spf.result === 'pass' && !spf.permissive && spf.domain === senderDomain
  return { fcrdns: confirmed, spf: spfPass ? senderDomain : null, dnsbl }
}

/**
 * Enough to accept a first contact: a confirmed name, a trusted SPF pass for the sender's own
 * domain, and no DNSBL listing (nor a DNSBL that could not be asked).
 */
export function isTrusted(e: Evidence): boolean {
  return e.fcrdns !== null && e.spf !== null && e.dnsbl.listed.length === 0 && !e.dnsbl.failed?.length
}

/**
 * For the log line: `fcrdns:<name>,spf:<domain>,dnsbl:clean` (or what is missing). The name is
 * the client's PTR, the domain its MAIL FROM's: both through safeField, so neither can add a part.
 */
export function evidenceText(e: Evidence): string {
  const dnsbl = e.dnsbl.listed.length
    ? `listed:${e.dnsbl.listed.join('+')}`
    : e.dnsbl.failed?.length
      ? `unanswered:${e.dnsbl.failed.join('+')}`
      : e.dnsbl.source === 'none'
        ? 'not_asked'
        : `clean(${e.dnsbl.source})`
  return `fcrdns:${e.fcrdns === null ? 'none' : safeField(e.fcrdns)},spf:${e.spf === null ? 'none' : safeField(e.spf)},dnsbl:${dnsbl}`
}

/**
 * The sender's domain is authenticated when SPF passed for it from a trusted record, or when the
 * client's forward-confirmed name lies in it: a forged `partner.example` sender from elsewhere
 * has neither.
 */
export function senderAuthenticated(e: Evidence, rdns: RdnsFacts, senderDomain: string | null): boolean {
  if (!senderDomain) return false
  if (e.spf === senderDomain) return true
  const names = rdns.status === 'ok' ? rdns.names.filter((n) => n.confirmed).map((n) => n.name.toLowerCase()) : []
  return names.some((n) => n === senderDomain || n.endsWith(`.${senderDomain}`))
}

/** Zones of [select] zones, as the settings hold them (space or comma separated). */
export function zoneList(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[\s,]+/)
    .filter(Boolean)
}

/**
 * Reads a DNSBL's A answer: 127.0.0.x-127.255.255.254 lists, 127.255.255.x are the zone's
 * own error codes (Spamhaus: query refused, typically through a public resolver), anything else is
 * not a listing.
 */
export function isListingAnswer(address: string): boolean {
  const m = /^127\.(\d+)\.(\d+)\.(\d+)$/.exec(address)
  if (!m) return false
  return !(m[1] === '255' && m[2] === '255')
}

/**
 * Zones whose answers say "end-user address space, not meant to send mail directly": policy block
 * lists, not spam sightings. A listed zone maps to the answers that mean it, or to null when every
 * listing of the zone does. Matched on the zone's last labels, so Spamhaus's DQS zones
 * (`<key>.zen.dq.spamhaus.net`) count too.
 */
const POLICY_ZONES: readonly [suffix: string, answers: readonly string[] | null][] = [
  ['pbl.spamhaus.org', null],
  ['pbl.dq.spamhaus.net', null],
  ['zen.spamhaus.org', ['127.0.0.10', '127.0.0.11']],
  ['zen.dq.spamhaus.net', ['127.0.0.10', '127.0.0.11']],
  ['dul.dnsbl.sorbs.net', null],
  ['dnsbl.sorbs.net', ['127.0.0.10']],
]

/** Whether `zone`'s answers list the client as end-user space. */
export function isPolicyListing(zone: string, answers: readonly string[]): boolean {
  const z = zone.toLowerCase().replace(/\.$/, '')
  const hit = POLICY_ZONES.find(([suffix]) => z === suffix || z.endsWith(`.${suffix}`))
  if (!hit) return false
  const [, codes] = hit
  return codes === null ? answers.some(isListingAnswer) : answers.some((a) => codes.includes(a))
}
