// What a recipient gets, short of touching the tuple's state: skip, whitelist, or the tuple to
// check (identity and keys). Shared by the plugin (which then applies the tuple transition) and by
// `smart-greylist check` (which only reads the state), so both compute everything the same way.
// Pure: the DNS-derived facts come from the sources the caller passes in, the public-suffix
// list from setup.
//
// Two spellings of the sender: authentication (SPF, from: entries, evidence, correspondents)
// uses the envelope as sent, because that is what the client's SPF record speaks for (an SRS
// forwarder's own domain); keys use the normalised one, so that retries rewritten per message
// (SRS, BATV, VERP) match.
import { withRule, type DomainPolicies, type DomainRule } from './domains'
import type { Config } from './settings'
import { domainOf, normaliseAddress, normaliseRecipient, NULL_SENDER, sentDomain } from './envelope'
import {
  awlEligible,
  awlScope,
  hostCandidate,
  identityText,
  resolveIdentity,
  spfIdentity,
  type HostFacts,
  type Identity,
  type OrgDomainFn,
  type RdnsFacts,
  type SpfFacts,
} from './identity'
import type { ParsedIp } from './ip'
import { identityKeys } from './keys'
import { evidenceOf, senderAuthenticated, type DnsblFacts, type Evidence } from './select'
import type { ProviderIndex } from './providers'
import { nameKind, vouchingDomains } from './sender-names'
import type { Entry, Whitelist } from './whitelist'

/** What decides a recipient short of DNS and Redis: the settings and the compiled lists. */
export interface Policy {
  readonly config: Config
  readonly whitelist: Whitelist
  readonly providers: ProviderIndex
  /** The organisational domain of a name (public-suffix list), null when its suffix is unknown. */
  readonly orgDomain: OrgDomainFn
  /** Per recipient domain: smart-greylist.domains. */
  readonly domains: DomainPolicies
}

/** The recipient being decided, independent of Haraka. */
export interface Subject {
  readonly ip: ParsedIp | null
  readonly helo: string | null
  /** Envelope addresses as received; normalised here. */
  readonly sender: string
  readonly recipient: string
  readonly relaying: boolean
  readonly isPrivate: boolean
}

/** Where the DNS-derived facts come from (cached by the caller as it sees fit). */
export interface FactSources {
  rdns(): Promise<RdnsFacts>
  spf(domain: string, isNull: boolean): Promise<SpfFacts>
  /** DNSBL listings of the client ([select]); absent: not asked. */
  dnsbl?(): Promise<DnsblFacts>
  /**
   * The first of `domains` whose SPF record authorises the client from a bounded record, or why
   * none did (`unvouched`, `vouch_permissive`, `vouch_error`); absent: per-address names never group.
   */
  vouch?(domains: readonly string[]): Promise<{ readonly domain: string } | { readonly why: string }>
}

export type Assessment =
  /** `rule`: the smart-greylist.domains rule that switched greylisting off for the recipient. */
  | { readonly kind: 'skip'; readonly reason: string; readonly rule?: DomainRule }
  | { readonly kind: 'whitelist'; readonly what: string; readonly entry: string; readonly origin: string }
  | TupleAssessment

export interface TupleAssessment {
  readonly kind: 'tuple'
  readonly identity: Identity
  readonly sender: string
  readonly recipient: string
  /** The identity's shard: its keys and the statistics it counts in share one cluster slot. */
  readonly shard: number
  readonly key: string
  /** Counts the identity's new tuples for [limits] pending_per_identity. */
  readonly startedKey: string
  /** The client's address and rDNS name, kept with a new tuple (what `stuck` shows). */
  readonly client: string
  readonly rdnsName: string
  /** Present when the (identity, sender domain) pair may be auto-whitelisted. */
  readonly awlKey?: string
  /** What the client brings for [select] policy = suspicious. */
  readonly evidence: Evidence
  /** The sender's domain as sent, when it is authenticated (for [correspondents]); else null. */
  readonly authenticatedDomain: string | null
  /** The recipient domain's rule, when one applies. */
  readonly rule?: DomainRule
  /** The settings for this recipient: smart-greylist.ini with its domain's rule applied. */
  readonly config: Config
}

export async function assess(policy: Policy, s: Subject, sources: FactSources): Promise<Assessment> {
  const { whitelist } = policy
  if (policy.config.skip.relaying && s.relaying) return { kind: 'skip', reason: 'relaying' }
  if (!s.ip) return { kind: 'skip', reason: 'no_client_ip' }
  if (policy.config.skip.private && s.isPrivate) return { kind: 'skip', reason: 'private_ip' }

  const recipient = normaliseRecipient(s.recipient, policy.config.envelope.recipient_strip_ext)
  const optOut = whitelist.matchRecipient(recipient)
  if (optOut) return listed(optOut)
  const rule = policy.domains.ruleFor(domainOf(recipient))
  if (rule?.settings.off) return { kind: 'skip', reason: 'domain_off', rule }
  const config = withRule(policy.config, rule)
  const byIp = whitelist.matchSender({ ip: s.ip })
  if (byIp) return listed(byIp)

  const rdns = await sources.rdns()
  const confirmed = rdns.status === 'ok' ? rdns.names.filter((n) => n.confirmed).map((n) => n.name) : []
  const byName = whitelist.matchSender({ fcrdnsNames: confirmed }) ?? (await heloEntry(policy, s.helo, confirmed, s.ip, sources))
  if (byName) return listed(byName)

  const pool = policy.providers.lookup(s.ip, confirmed)
  if (pool?.action === 'skip' && config.whitelist.providers) {
    return { kind: 'whitelist', what: 'provider', entry: `provider:${pool.provider.id}`, origin: pool.provider.origin }
  }

  const sender = normaliseAddress(s.sender)
  const isNull = sender === NULL_SENDER
  // What SPF speaks for: the domain as sent (an SRS forwarder's own), HELO's for the null sender.
  const asSent = isNull ? null : sentDomain(s.sender)
  const spfDomain = isNull ? (s.helo ? s.helo.toLowerCase() : null) : asSent
  const needSpf = (config.identity.spf || config.whitelist.verify_from || config.select.policy === 'suspicious' || config.correspondents.enabled) && spfDomain
  const spf: SpfFacts = needSpf ? await sources.spf(spfDomain, isNull) : { domain: null, result: 'skipped' }
  // A from: entry names the sender's own address, so it counts only when SPF vouches for that
  // very domain: never for mail an SRS forwarder rewrote.
  const senderBacked =
    !config.whitelist.verify_from || (spf.result === 'pass' && !spf.permissive && !isNull && spf.domain === asSent && asSent === domainOf(sender))
  const byFrom = senderBacked ? whitelist.matchSender({ from: sender }) : undefined
  if (byFrom) return listed(byFrom)

  const dnsbl: DnsblFacts = sources.dnsbl ? await sources.dnsbl() : { source: 'none', listed: [] }
  // The names' domain is asked to vouch only when the rDNS is what would name the identity.
  const host: HostFacts =
    config.identity.rdns && !spfIdentity(spf, config.identity) ? await hostFacts(rdns, s.ip, policy.orgDomain, dnsbl, sources) : { why: 'rdns_unused' }
  const identity = resolveIdentity({ ip: s.ip, spf, host, pool }, config.identity)
  const id = identityText(identity)
  const senderDomain = isNull ? null : domainOf(sender)
  const evidence = evidenceOf(rdns, spf, asSent, dnsbl)
  // A client a DNSBL lists earns no auto-whitelist pass: each of its tuples waits the delay.
  const awl = config.awl.passes > 0 && !dnsbl.listed.length && senderDomain !== null && awlEligible(identity, senderDomain, rdns, s.ip, pool)
  const scope = awlScope(s.ip, pool, { ipv4: config.awl.scope_ipv4_prefix, ipv6: config.awl.scope_ipv6_prefix })
  const keys = identityKeys(config.redis.prefix, id)
  return {
    kind: 'tuple',
    identity,
    sender,
    recipient,
    shard: keys.shard,
    key: keys.tuple(sender, recipient),
    startedKey: keys.started,
    client: s.ip.toString(),
    rdnsName: rdnsName(rdns),
    ...(awl ? { awlKey: keys.awl(senderDomain, scope) } : {}),
    evidence,
    authenticatedDomain: senderAuthenticated(evidence, rdns, asSent) ? asSent : null,
    ...(rule ? { rule } : {}),
    config,
  }
}

/** The client's first forward-confirmed name, else `?` and its first PTR name, else ''. */
export function rdnsName(rdns: RdnsFacts): string {
  if (rdns.status !== 'ok') return ''
  const confirmed = rdns.names.find((n) => n.confirmed)
  if (confirmed) return confirmed.name
  const first = rdns.names[0]
  return first ? `?${first.name}` : ''
}

async function hostFacts(rdns: RdnsFacts, ip: ParsedIp, orgDomain: OrgDomainFn, dnsbl: DnsblFacts, sources: FactSources): Promise<HostFacts> {
  const c = hostCandidate(rdns, ip, orgDomain, !!dnsbl.policy?.length)
  if (!('vouchers' in c)) return c
  const v = sources.vouch ? await sources.vouch(c.vouchers) : { why: 'unvouched' }
  return 'domain' in v ? { domain: c.domain, reason: 'fcrdns_spf' } : { why: `rdns_${v.why}` }
}

function listed(e: { kind: string; pattern: string; origin: string }): Assessment {
  return { kind: 'whitelist', what: e.kind, entry: `${e.kind}:${e.pattern}`, origin: e.origin }
}

/**
 * A `helo:` entry counts only when a confirmed rDNS name backs the HELO: the name itself, or one
 * sharing its parent (first label off) when the parent is not a public suffix, so an
 * organisation's other hosts (`dyn-7.dorm.bigcorp.example`) do not vouch for `mx1.bigcorp.example`.
 * The rule that keeps groups narrow holds here too: an access network's generic name backs
 * nothing, and a per-address name, or the name of a client a policy list names, backs another
 * name only when its domain vouches for the client (never, for the policy-listed).
 * DNS is asked only when an entry matched.
 */
async function heloEntry(policy: Policy, helo: string | null, confirmed: string[], ip: ParsedIp, sources: FactSources): Promise<Entry | undefined> {
  const entry = helo ? policy.whitelist.matchSender({ helo }) : undefined
  if (!entry || !helo || !policy.config.whitelist.verify_helo) return entry
  const h = helo.toLowerCase().replace(/\.$/, '')
  const parent = (n: string): string => n.slice(n.indexOf('.') + 1)
  const kinds = new Map(confirmed.map((n) => [n, nameKind(n, ip, policy.orgDomain)]))
  const usable = confirmed.filter((n) => kinds.get(n) !== 'end_user')
  if (usable.includes(h)) return entry
  const siblings = usable.filter((n) => n.includes('.') && parent(n) === parent(h) && policy.orgDomain(parent(h)) !== null)
  if (!siblings.length) return undefined
  // A client a policy list calls end-user space backs no other name, whatever its own.
  const dnsbl = sources.dnsbl ? await sources.dnsbl() : null
  if (dnsbl?.policy?.length) return undefined
  if (siblings.every((n) => kinds.get(n) === 'named')) return entry
  const vouchers = vouchingDomains(parent(h), policy.orgDomain)
  const v = vouchers.length && sources.vouch ? await sources.vouch(vouchers) : null
  return v && 'domain' in v ? entry : undefined
}
