// One recipient's decision: gathers the facts (rDNS, SPF, provider pool), asks the pure parts
// (whitelist, identity) and the store, and returns the outcome. No Haraka objects beyond the
// structural types; the adapter (index.ts) records and applies the outcome.
import tlds from 'haraka-tld'
import type { Config } from './config'
import { timingFrom } from './decision'
import { lookupRdns, rdnsFromFcrdnsResults, type Resolver } from './dns'
import { domainOf, normaliseAddress, NULL_SENDER } from './envelope'
import { addressOf, type Address, type Connection } from './haraka'
import { awlEligible, identityText, resolveIdentity, type Identity, type RdnsFacts } from './identity'
import { parseIp, type ParsedIp } from './ip'
import { awlKey, spfGuardKey, tupleKey } from './keys'
import type { ProviderIndex } from './providers'
import { checkSpf, isPermissive, spfResultFrom, type SpfFacts } from './spf'
import type { TupleStore } from './store'
import type { Whitelist } from './whitelist'

export const NOTE = 'smart-greylist'

export interface Deps {
  readonly config: Config
  readonly whitelist: Whitelist
  readonly providers: ProviderIndex
  readonly store: TupleStore
  readonly resolver: Resolver
  readonly guard: SpfGuardCache
  readonly now: () => number
}

/** A recipient's fate, as recorded in results and in the log line. */
export type Outcome =
  | { kind: 'skip'; reason: string }
  | { kind: 'whitelist'; what: string; entry: string; origin: string }
  | { kind: 'tuple'; action: 'defer' | 'pass'; state: string; identity: Identity; waitedMs: number; retryInMs: number }

interface ConnectionFacts {
  ip: ParsedIp | null
  rdns?: Promise<RdnsFacts>
}

export async function decideRecipient(deps: Deps, connection: Connection, rcpt: Address): Promise<Outcome> {
  const { config, whitelist } = deps
  if (config.skip.relaying && connection.relaying) return { kind: 'skip', reason: 'relaying' }
  const facts = connectionFacts(connection)
  if (!facts.ip) return { kind: 'skip', reason: 'no_client_ip' }
  if (config.skip.private && (connection.remote.is_private || connection.remote.is_local)) {
    return { kind: 'skip', reason: 'private_ip' }
  }
  const recipient = normaliseAddress(addressOf(rcpt))
  const optOut = whitelist.matchRecipient(recipient)
  if (optOut) return listed(optOut)

  const sender = normaliseAddress(addressOf(connection.transaction?.mail_from))
  const byIp = whitelist.matchSender({ ip: facts.ip })
  if (byIp) return listed(byIp)

  const rdns = await rdnsOf(deps, connection, facts)
  const confirmed = rdns.status === 'ok' ? rdns.names.filter((n) => n.confirmed).map((n) => n.name) : []
  const byName = whitelist.matchSender({ fcrdnsNames: confirmed, helo: heloIfBacked(config, connection.hello.host, confirmed) })
  if (byName) return listed(byName)

  const pool = deps.providers.lookup(facts.ip, confirmed)
  if (pool?.action === 'skip' && config.whitelist.providers) {
    return { kind: 'whitelist', what: 'provider', entry: `provider:${pool.provider.id}`, origin: pool.provider.origin }
  }

  const needSpf = config.identity.spf || config.whitelist.verify_from
  const spf = needSpf ? await spfOf(deps, connection, facts.ip, sender) : ({ domain: null, result: 'skipped' } as SpfFacts)
  const senderBacked = !config.whitelist.verify_from || (spf.result === 'pass' && spf.domain === domainOf(sender))
  const byFrom = senderBacked ? whitelist.matchSender({ from: sender }) : undefined
  if (byFrom) return listed(byFrom)

  const identity = resolveIdentity({ ip: facts.ip, spf, rdns, pool }, config.identity, orgDomain)
  const id = identityText(identity)
  const senderDomain = sender === NULL_SENDER ? null : domainOf(sender)
  const awl = config.awl.passes > 0 && awlEligible(identity, senderDomain, rdns, facts.ip)
  const key = tupleKey(config.redis.prefix, id, sender, recipient)
  const v = await deps.store.check(key, deps.now(), timingFrom(config), awl ? awlKey(config.redis.prefix, id, senderDomain!) : undefined)
  return { kind: 'tuple', action: v.action, state: v.outcome, identity, waitedMs: v.waitedMs, retryInMs: v.retryInMs }
}

function listed(e: { kind: string; pattern: string; origin: string }): Outcome {
  return { kind: 'whitelist', what: e.kind, entry: `${e.kind}:${e.pattern}`, origin: e.origin }
}

export function orgDomain(name: string): string | null {
  return tlds.get_organizational_domain(name)
}

function connectionFacts(connection: Connection): ConnectionFacts {
  let facts = connection.notes[NOTE] as ConnectionFacts | undefined
  if (!facts) {
    facts = { ip: parseIp(connection.remote.ip) }
    connection.notes[NOTE] = facts
  }
  return facts
}

/** rDNS facts, looked up once per connection (several recipients and transactions share them). */
function rdnsOf(deps: Deps, connection: Connection, facts: ConnectionFacts): Promise<RdnsFacts> {
  const ip = facts.ip
  if (!ip) return Promise.resolve({ status: 'none' })
  if (!facts.rdns) {
    const fromPlugin = rdnsFromFcrdnsResults(connection.results.get('fcrdns'), ip)
    const { timeout_ms, max_names } = deps.config.dns
    facts.rdns = fromPlugin
      ? Promise.resolve(fromPlugin)
      : tlds.ready.then(() => lookupRdns(ip, deps.resolver, { timeoutMs: timeout_ms, maxNames: max_names }))
  }
  return facts.rdns
}

/** A HELO name counts for the whitelist only when a confirmed rDNS name shares its domain. */
function heloIfBacked(config: Config, helo: string | null | undefined, confirmed: string[]): string | null {
  if (!helo) return null
  if (!config.whitelist.verify_helo) return helo
  const heloOrg = orgDomain(helo)
  return heloOrg && confirmed.some((n) => orgDomain(n) === heloOrg) ? helo : null
}

/**
 * SPF for the MAIL FROM domain (the HELO name for the null sender), once per transaction: the
 * spf plugin's result when it ran, else our own bounded evaluation. A pass is then checked
 * against the permissive-record guard.
 */
function spfOf(deps: Deps, connection: Connection, ip: ParsedIp, sender: string): Promise<SpfFacts> {
  const txn = connection.transaction
  const notes = (txn?.notes ?? {}) as Record<string, unknown>
  const cached = notes[NOTE] as { spf?: Promise<SpfFacts> } | undefined
  if (cached?.spf) return cached.spf
  const work = (async (): Promise<SpfFacts> => {
    const helo = connection.hello.host ?? null
    const isNull = sender === NULL_SENDER
    const domain = isNull ? (helo ? helo.toLowerCase() : null) : domainOf(sender)
    if (!domain) return { domain: null, result: 'none' }
    const scope = isNull ? 'helo' : 'mfrom'
    const fromPlugin = (isNull ? connection.results : txn?.results)?.get('spf')
    let result =
      fromPlugin?.scope === scope && String(fromPlugin?.domain ?? '').toLowerCase() === domain
        ? spfResultFrom(fromPlugin?.result)
        : null
    const opts = { resolver: deps.resolver as never, timeoutMs: deps.config.dns.spf_timeout_ms, helo }
    if (!result) result = await checkSpf(ip.toString(), domain, isNull ? null : sender, opts)
    if (result !== 'pass') return { domain, result }
    return { domain, result, permissive: await deps.guard.permissive(domain, () => isPermissive(domain, deps.config.identity.self_ip, opts)) }
  })()
  notes[NOTE] = { ...(cached ?? {}), spf: work }
  return work
}

/**
 * The permissive-record verdict per domain: in memory for this process, in Redis for every
 * process and MX. Redis trouble only costs a recomputation.
 */
export class SpfGuardCache {
  private readonly local = new Map<string, { permissive: boolean; expires: number }>()

  constructor(
    private readonly store: () => TupleStore,
    private readonly settings: () => { prefix: string; ttlMs: number },
    private readonly maxEntries = 10_000,
  ) {}

  async permissive(domain: string, compute: () => Promise<boolean>): Promise<boolean> {
    const now = Date.now()
    const hit = this.local.get(domain)
    if (hit && hit.expires > now) return hit.permissive
    const { prefix, ttlMs } = this.settings()
    const key = spfGuardKey(prefix, domain)
    let verdict: boolean | null = null
    const stored = await this.store().getFlag(key).catch(() => null)
    if (stored === '1' || stored === '0') verdict = stored === '1'
    if (verdict === null) {
      verdict = await compute()
      await this.store().setFlag(key, verdict ? '1' : '0', ttlMs).catch(() => undefined)
    }
    if (this.local.size >= this.maxEntries) this.local.delete(this.local.keys().next().value as string)
    this.local.set(domain, { permissive: verdict, expires: now + Math.min(ttlMs, 3_600_000) })
    return verdict
  }
}
