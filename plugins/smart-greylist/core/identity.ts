// Who is sending, for the purpose of matching a retry: the sending infrastructure, not the
// single address. Pure: DNS answers and the public-suffix lookup are passed in.
import { normaliseHost } from './names'
import { subnetOf, type ParsedIp } from './ip'
import type { ProviderHit } from './providers'
import { nameEmbedsIp, nameKind, perMachineLabel, vouchingDomains } from './sender-names'
import { safeField } from './text'

export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror'

export interface SpfFacts {
  /** The domain SPF was evaluated for (MAIL FROM's, or HELO's for the null sender). */
  readonly domain: string | null
  readonly result: SpfResult | 'skipped'
  /** Set for a pass: the record authorises an unbounded set of hosts (adapters/spf-guard.ts). */
  readonly permissive?: boolean
  /** Why the guard judged so (`pass_all`, `wide_ipv4 …`, `probe_pass …`, `bounded`). */
  readonly guard?: string
}

/** Reads a result string of haraka-plugin-spf ("Pass", "SoftFail" ...). */
export function spfResultFrom(text: unknown): SpfResult | null {
  const s = typeof text === 'string' ? text.toLowerCase() : ''
  const all: SpfResult[] = ['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror']
  return (all as string[]).includes(s) ? (s as SpfResult) : null
}

export type IdentityKind = 'spf' | 'host' | 'pool' | 'net'

export interface Identity {
  readonly kind: IdentityKind
  readonly value: string
  /** Why this kind was chosen (or why the better kinds were not). */
  readonly reason: string
}

/** The identity as stored and compared (tuple records, `flush --identity`): raw. */
export function identityText(id: Identity): string {
  return `${id.kind}:${id.value}`
}

/** The identity as a field of a line or header: its value may be a name of the client's choosing (SPF, HELO). */
export function identityField(id: Identity): string {
  return safeField(identityText(id))
}

export interface PtrName {
  readonly name: string
  /** The name resolves (A/AAAA) back to the client's address. */
  readonly confirmed: boolean
}

export type RdnsFacts =
  { readonly status: 'ok'; readonly names: readonly PtrName[] } | { readonly status: 'none' } | { readonly status: 'error'; readonly error: string }

/** Organisational (registered) domain of a name, or null when its suffix is unknown. */
export type OrgDomainFn = (name: string) => string | null

/**
 * The domain a pool of senders shares: the confirmed name minus its first label, never shorter
 * than the organisational domain. `mail-eopbgr220092.outbound.protection.outlook.com` gives
 * `outbound.protection.outlook.com`; digits in the name do not disqualify it.
 */
export function poolDomain(name: string, orgDomain: OrgDomainFn): string | null {
  const host = normaliseHost(name)
  if (!host) return null
  const org = orgDomain(host)
  if (!org) return null
  if (host === org) return host
  const parent = host.slice(host.indexOf('.') + 1)
  return parent.length >= org.length ? parent : org
}

/** Picks the rDNS domain when every PTR name is confirmed and all share one pool domain. */
export function rdnsIdentity(rdns: RdnsFacts, orgDomain: OrgDomainFn): { domain: string } | { why: string } {
  if (rdns.status === 'none') return { why: 'no_rdns' }
  if (rdns.status === 'error') return { why: 'rdns_error' }
  if (!rdns.names.length) return { why: 'no_rdns' }
  if (!rdns.names.some((n) => n.confirmed)) return { why: 'not_confirmed' }
  const domains = new Set<string>()
  for (const n of rdns.names) {
    const d = poolDomain(n.name, orgDomain)
    if (!d) return { why: 'bad_name' }
    domains.add(d)
  }
  // A client whose PTRs name unrelated domains could borrow another sender's identity.
  if (domains.size > 1) return { why: 'ptr_disagree' }
  const [domain] = domains
  return domain ? { domain } : { why: 'no_rdns' }
}

export interface IdentitySettings {
  readonly spf: boolean
  readonly rdns: boolean
  readonly pools: boolean
  readonly ipv4_prefix: number
  readonly ipv6_prefix: number
}

/**
 * What the client's rDNS gives the identity: a domain with the reason it may group the client
 * (`fcrdns`: a name somebody chose; `fcrdns_spf`: a per-address name its domain's SPF record
 * authorises), or why it may not.
 */
export type HostFacts = { readonly domain: string; readonly reason: 'fcrdns' | 'fcrdns_spf' } | { readonly why: string }

/** What the names alone decide, or the domains to ask whether they speak for the client. */
export type HostCandidate = HostFacts | { readonly domain: string; readonly vouchers: readonly string[] }

/**
 * An rDNS domain groups only what one sender operates. A client a policy block list names as end
 * user space (Spamhaus PBL), or whose names are an access network's generic ones, is never
 * grouped by them; names that spell the address or number the machine (Exchange Online's, SES's,
 * an ESP's, but also an ISP's without telling words) group only when a domain of theirs vouches
 * for the client; names somebody chose group as they are.
 */
export function hostCandidate(rdns: RdnsFacts, ip: ParsedIp, orgDomain: OrgDomainFn, policyListed: boolean): HostCandidate {
  const r = rdnsIdentity(rdns, orgDomain)
  if (!('domain' in r)) return r
  if (policyListed) return { why: 'rdns_policy_listed' }
  const kinds = rdns.status === 'ok' ? rdns.names.map((n) => nameKind(n.name, ip, orgDomain)) : []
  if (kinds.includes('end_user')) return { why: 'rdns_end_user' }
  if (!kinds.includes('per_address')) return { domain: r.domain, reason: 'fcrdns' }
  const vouchers = vouchingDomains(r.domain, orgDomain)
  return vouchers.length ? { domain: r.domain, vouchers } : { why: 'rdns_unvouched' }
}

export interface IdentityInputs {
  readonly ip: ParsedIp
  readonly spf: SpfFacts
  readonly host: HostFacts
  readonly pool: ProviderHit | undefined
}

/** The SPF-authenticated domain when it is the identity (a pass from a bounded record), else null. */
export function spfIdentity(spf: SpfFacts, settings: Pick<IdentitySettings, 'spf'>): string | null {
  return settings.spf && spf.result === 'pass' && spf.domain && !spf.permissive ? spf.domain : null
}

/**
 * The first identity that applies, in order: SPF-authenticated domain, forward-confirmed rDNS
 * domain, provider pool, subnet. For a subnet, the reason lists why each better kind was passed
 * over (`spf_none,no_rdns,no_pool`).
 */
export function resolveIdentity(inputs: IdentityInputs, settings: IdentitySettings): Identity {
  const why: string[] = []
  const { spf, host } = inputs
  const bySpf = spfIdentity(spf, settings)
  if (bySpf) return { kind: 'spf', value: bySpf, reason: 'spf_pass' }
  why.push(!settings.spf ? 'spf_off' : spf.result === 'pass' ? 'spf_permissive' : `spf_${spf.result}`)

  if (!settings.rdns) why.push('rdns_off')
  else if ('domain' in host) return { kind: 'host', value: host.domain, reason: host.reason }
  else why.push(host.why)

  if (!settings.pools) why.push('pools_off')
  else if (inputs.pool) return { kind: 'pool', value: inputs.pool.provider.id, reason: `pool_${inputs.pool.via}` }
  else why.push('no_pool')

  const prefix = inputs.ip.kind() === 'ipv4' ? settings.ipv4_prefix : settings.ipv6_prefix
  return { kind: 'net', value: subnetOf(inputs.ip, prefix), reason: why.join(',') }
}

/**
 * Whether (identity, sender domain) may earn an auto-whitelist entry. Never for the null sender.
 * For an rDNS identity, never when a name's first label is per machine (it spells the client's
 * address, or numbers the host: `vmi123456.contaboserver.net`, `c0a80101.example.net`): such a
 * domain covers thousands of unrelated machines. Names of a listed provider stay eligible.
 */
export function awlEligible(identity: Identity, senderDomain: string | null, rdns: RdnsFacts, ip: ParsedIp, pool?: ProviderHit): boolean {
  if (!senderDomain) return false
  if (identity.kind !== 'host' || pool) return true
  return rdns.status === 'ok' && !rdns.names.some((n) => nameEmbedsIp(n.name, ip) || perMachineLabel(n.name))
}

/**
 * The part of the Internet an auto-whitelist entry is earned for: the provider pool that holds
 * the client, else its network of the configured prefix. Mail of the same sender domain from
 * unrelated networks (bots behind a permissive record) does not inherit it.
 */
export function awlScope(ip: ParsedIp, pool: ProviderHit | undefined, prefixes: { ipv4: number; ipv6: number }): string {
  if (pool) return `pool:${pool.provider.id}`
  return `net:${subnetOf(ip, ip.kind() === 'ipv4' ? prefixes.ipv4 : prefixes.ipv6)}`
}
