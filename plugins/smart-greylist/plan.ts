// What a recipient gets, short of touching the tuple's state: skip, whitelist, or the tuple to
// check (identity and keys). Shared by the plugin (which then applies the tuple transition) and by
// `smart-greylist check` (which only reads the state), so both compute everything the same way.
import tlds from 'haraka-tld'
import type { Config } from './config'
import type { Resolver } from './dns'
import { domainOf, normaliseAddress, NULL_SENDER } from './envelope'
import { awlEligible, identityText, resolveIdentity, type Identity, type RdnsFacts } from './identity'
import type { ParsedIp } from './ip'
import { awlKey, spfGuardKey, tupleKey } from './keys'
import type { ProviderIndex } from './providers'
import { checkSpf, isPermissive, type SpfFacts, type SpfResult } from './spf'
import type { TupleStore } from './store'
import type { Whitelist } from './whitelist'

export interface Deps {
  readonly config: Config
  readonly whitelist: Whitelist
  readonly providers: ProviderIndex
  readonly store: TupleStore
  readonly resolver: Resolver
  readonly guard: SpfGuardCache
  readonly now: () => number
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
}

export type Plan =
  | { readonly kind: 'skip'; readonly reason: string }
  | { readonly kind: 'whitelist'; readonly what: string; readonly entry: string; readonly origin: string }
  | {
      readonly kind: 'tuple'
      readonly identity: Identity
      readonly sender: string
      readonly recipient: string
      readonly key: string
      /** Present when the (identity, sender domain) pair may be auto-whitelisted. */
      readonly awlKey?: string
    }

export async function plan(deps: Deps, s: Subject, sources: FactSources): Promise<Plan> {
  const { config, whitelist } = deps
  if (config.skip.relaying && s.relaying) return { kind: 'skip', reason: 'relaying' }
  if (!s.ip) return { kind: 'skip', reason: 'no_client_ip' }
  if (config.skip.private && s.isPrivate) return { kind: 'skip', reason: 'private_ip' }

  const recipient = normaliseAddress(s.recipient)
  const optOut = whitelist.matchRecipient(recipient)
  if (optOut) return listed(optOut)
  const byIp = whitelist.matchSender({ ip: s.ip })
  if (byIp) return listed(byIp)

  const rdns = await sources.rdns()
  const confirmed = rdns.status === 'ok' ? rdns.names.filter((n) => n.confirmed).map((n) => n.name) : []
  const byName = whitelist.matchSender({ fcrdnsNames: confirmed, helo: heloIfBacked(config, s.helo, confirmed) })
  if (byName) return listed(byName)

  const pool = deps.providers.lookup(s.ip, confirmed)
  if (pool?.action === 'skip' && config.whitelist.providers) {
    return { kind: 'whitelist', what: 'provider', entry: `provider:${pool.provider.id}`, origin: pool.provider.origin }
  }

  const sender = normaliseAddress(s.sender)
  const isNull = sender === NULL_SENDER
  const spfDomain = isNull ? (s.helo ? s.helo.toLowerCase() : null) : domainOf(sender)
  const needSpf = (config.identity.spf || config.whitelist.verify_from) && spfDomain
  const spf: SpfFacts = needSpf ? await sources.spf(spfDomain, isNull) : { domain: null, result: 'skipped' }
  const senderBacked = !config.whitelist.verify_from || (spf.result === 'pass' && !isNull && spf.domain === domainOf(sender))
  const byFrom = senderBacked ? whitelist.matchSender({ from: sender }) : undefined
  if (byFrom) return listed(byFrom)

  const identity = resolveIdentity({ ip: s.ip, spf, rdns, pool }, config.identity, orgDomain)
  const id = identityText(identity)
  const senderDomain = isNull ? null : domainOf(sender)
  const awl = config.awl.passes > 0 && awlEligible(identity, senderDomain, rdns, s.ip)
  return {
    kind: 'tuple',
    identity,
    sender,
    recipient,
    key: tupleKey(config.redis.prefix, id, sender, recipient),
    ...(awl ? { awlKey: awlKey(config.redis.prefix, id, senderDomain!) } : {}),
  }
}

function listed(e: { kind: string; pattern: string; origin: string }): Plan {
  return { kind: 'whitelist', what: e.kind, entry: `${e.kind}:${e.pattern}`, origin: e.origin }
}

export function orgDomain(name: string): string | null {
  return tlds.get_organizational_domain(name)
}

/** A HELO name counts for the whitelist only when a confirmed rDNS name shares its domain. */
function heloIfBacked(config: Config, helo: string | null, confirmed: string[]): string | null {
  if (!helo) return null
  if (!config.whitelist.verify_helo) return helo
  const heloOrg = orgDomain(helo)
  return heloOrg && confirmed.some((n) => orgDomain(n) === heloOrg) ? helo : null
}

/**
 * SPF facts for one domain: `known` (the spf plugin's result) when given, else our own bounded
 * evaluation; a pass is then checked against the permissive-record guard.
 */
export async function spfFacts(
  deps: Deps,
  ip: ParsedIp,
  domain: string,
  mailFrom: string | null,
  helo: string | null,
  known: SpfResult | null,
): Promise<SpfFacts> {
  const opts = { resolver: deps.resolver as never, timeoutMs: deps.config.dns.spf_timeout_ms, helo }
  const result = known ?? (await checkSpf(ip.toString(), domain, mailFrom, opts))
  if (result !== 'pass') return { domain, result }
  const permissive = await deps.guard.permissive(domain, () => isPermissive(domain, deps.config.identity.self_ip, opts))
  return { domain, result, permissive }
}

/**
 * The permissive-record verdict per domain: in memory for this process, in Redis for every
 * process and MX. Redis trouble only costs a recomputation. A read-only cache (for
 * `smart-greylist check`) never writes to Redis.
 */
export class SpfGuardCache {
  private readonly local = new Map<string, { permissive: boolean; expires: number }>()

  constructor(
    private readonly store: () => TupleStore,
    private readonly settings: () => { prefix: string; ttlMs: number },
    private readonly opts: { maxEntries?: number; readOnly?: boolean } = {},
  ) {}

  async permissive(domain: string, compute: () => Promise<boolean>): Promise<boolean> {
    const now = Date.now()
    const hit = this.local.get(domain)
    if (hit && hit.expires > now) return hit.permissive
    const { prefix, ttlMs } = this.settings()
    const key = spfGuardKey(prefix, domain)
    const stored = await this.store().getFlag(key).catch(() => null)
    let verdict: boolean
    if (stored === '1' || stored === '0') verdict = stored === '1'
    else {
      verdict = await compute()
      if (!this.opts.readOnly) await this.store().setFlag(key, verdict ? '1' : '0', ttlMs).catch(() => undefined)
    }
    if (this.local.size >= (this.opts.maxEntries ?? 10_000)) this.local.delete(this.local.keys().next().value as string)
    this.local.set(domain, { permissive: verdict, expires: now + Math.min(ttlMs, 3_600_000) })
    return verdict
  }
}
