// Who is sending, for the purpose of matching a retry: the sending infrastructure, not the
// single address. Pure: DNS answers and the public-suffix lookup are passed in.
import { normaliseHost } from './names'
import { subnetOf, type ParsedIp } from './ip'

export type IdentityKind = 'host' | 'net'

export interface Identity {
  readonly kind: IdentityKind
  readonly value: string
  /** Why this kind was chosen (or why the better kinds were not). */
  readonly reason: string
}

export function identityText(id: Identity): string {
  return `${id.kind}:${id.value}`
}

export interface PtrName {
  readonly name: string
  /** The name resolves (A/AAAA) back to the client's address. */
  readonly confirmed: boolean
}

export type RdnsFacts =
  | { readonly status: 'ok'; readonly names: readonly PtrName[] }
  | { readonly status: 'none' }
  | { readonly status: 'error'; readonly error: string }

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
  return { domain: [...domains][0] }
}

export interface IdentitySettings {
  readonly rdns: boolean
  readonly ipv4_prefix: number
  readonly ipv6_prefix: number
}

export function resolveIdentity(
  ip: ParsedIp,
  rdns: RdnsFacts,
  settings: IdentitySettings,
  orgDomain: OrgDomainFn,
): Identity {
  let why = 'rdns_off'
  if (settings.rdns) {
    const r = rdnsIdentity(rdns, orgDomain)
    if ('domain' in r) return { kind: 'host', value: r.domain, reason: 'fcrdns' }
    why = r.why
  }
  const prefix = ip.kind() === 'ipv4' ? settings.ipv4_prefix : settings.ipv6_prefix
  return { kind: 'net', value: subnetOf(ip, prefix), reason: why }
}
