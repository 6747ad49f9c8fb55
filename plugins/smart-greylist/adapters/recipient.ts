// The one recipient decider, for the plugin and for `smart-greylist check`: facts gathered within
// the recipient's one time budget (from what other plugins or the admin already established,
// else our own bounded lookups), the pure assessment and steps of core/recipient.ts, and the
// tuple transition through a TupleStore: the Lua script for the plugin, a read and decide() for
// the command. Only where the facts and the store come from differs between the two.
import tlds from 'haraka-tld'
import { assess, type FactSources, type Subject } from '../core/assess'
import { timingFrom, type Timing, type Verdict } from '../core/decision'
import type { RdnsFacts, SpfFacts, SpfResult } from '../core/identity'
import type { ParsedIp } from '../core/ip'
import { correspondentField, correspondentKey } from '../core/keys'
import { concluded, correspondentToAsk, failed, isShadow, postponable, trustPlan, type RecipientDecision } from '../core/recipient'
import { zoneList, type DnsblFacts } from '../core/select'
import { VOUCH_BREADTH } from '../core/sender-names'
import type { Deps } from './deps'
import { lookupDnsbl, lookupRdns } from './dns'
import { StoreError, type StatsOptions, type TupleRef } from './redis-decision'
import { spfFacts } from './spf-guard'
import { Telemetry } from './telemetry'
import { withTimeout } from './timeout'

/** Where the tuple's state is read and changed. */
export interface TupleStore {
  isCorrespondent(key: string, field: string, now: number): Promise<boolean>
  /** The verdict for the tuple now; the plugin's store also applies its transition. */
  check(t: TupleRef, now: number, timing: Timing, stats: StatsOptions): Promise<Verdict>
}

/** What is already known without asking DNS: another plugin's results, or the admin's word. */
export interface GivenFacts {
  /** The fcrdns plugin's results, or the command's --rdns. */
  readonly rdns?: () => RdnsFacts | null | undefined
  /** The spf plugin's result for this scope and domain, or the command's --spf. */
  readonly spf?: (domain: string, isNull: boolean) => SpfResult | null
  /** The dns-list plugin's results. */
  readonly dnsbl?: () => DnsblFacts | null | undefined
}

/** Facts worth keeping across recipients: per connection (rDNS, DNSBL) and per transaction (SPF). */
export interface FactCache {
  rdns?: Promise<RdnsFacts>
  dnsbl?: Promise<DnsblFacts>
  spf?: Promise<SpfFacts>
  /** Per connection, by the domains asked: whether the client's names' domain vouches for it. */
  vouch?: Map<string, Promise<Vouch>>
}

type Vouch = { readonly domain: string } | { readonly why: string }

export interface RecipientInput {
  readonly subject: Subject
  readonly given: GivenFacts
  readonly connection: Pick<FactCache, 'rdns' | 'dnsbl' | 'vouch'>
  /** Null when there is no transaction to keep the SPF result on. */
  readonly transaction: Pick<FactCache, 'spf'> | null
}

/** Below this, a lookup is not worth starting: the fact counts as not established in time. */
const MIN_LOOKUP_MS = 20

export async function decideRecipient(deps: Deps, input: RecipientInput, store: TupleStore): Promise<RecipientDecision> {
  const a = await assess(deps, input.subject, factSources(deps, input, dnsBudget(deps, deps.now())))
  if (a.kind !== 'tuple') return a
  // The recipient's settings: smart-greylist.ini with its domain's rule applied.
  const { config } = a
  try {
    const asked = correspondentToAsk(a, config)
    if (asked && (await store.isCorrespondent(correspondentKey(config.redis.prefix, a.recipient), correspondentField(asked), deps.now()))) {
      return { kind: 'correspondent', identity: a.identity, domain: asked }
    }
    const plan = trustPlan(a.evidence, config)
    const verdict = await store.check(a, deps.now(), timingFrom(config), {
      prefix: config.redis.prefix,
      shadow: isShadow(a),
      // A weak identity's deferral is counted as postponed: its message is what is deferred.
      ...(plan.label ? { label: plan.label } : postponable(a) ? { label: 'postponed' as const } : {}),
      ...(plan.also ? { also: plan.also } : {}),
      ttlDays: config.stats.days,
      identitiesMax: config.stats.identities,
    })
    return concluded(a, plan, verdict)
  } catch (err) {
    if (!(err instanceof StoreError)) throw err
    return failed(a, `redis_${err.kind}`, err.message)
  }
}

/**
 * What DNS may still spend of the recipient's `[main] budget_ms`: Redis's own bound is kept back,
 * so slow DNS costs identity precision (the tuple falls back to the pool or the network), never
 * the answer.
 */
function dnsBudget(deps: Deps, startedAt: number): () => number {
  const deadline = startedAt + deps.config.main.budget_ms - deps.config.redis.timeout_ms
  return () => Math.max(0, deadline - deps.now())
}

function factSources(deps: Deps, input: RecipientInput, dnsLeft: () => number): FactSources {
  const { subject: s, given, connection: conn, transaction: txn } = input
  const { dns } = deps.config
  const ip = s.ip
  const dnsTimes = deps.telemetry?.dns
  return {
    rdns(): Promise<RdnsFacts> {
      if (!ip) return Promise.resolve({ status: 'none' })
      if (!conn.rdns) {
        const known = given.rdns?.() ?? null
        const timeoutMs = Math.min(dns.timeout_ms, dnsLeft())
        conn.rdns = known
          ? Promise.resolve(known)
          : timeoutMs < MIN_LOOKUP_MS
            ? Promise.resolve({ status: 'error', error: 'no time left in [main] budget_ms' })
            : Telemetry.timed(
                dnsTimes?.rdns,
                tlds.ready.then(() => lookupRdns(ip, deps.resolver, { timeoutMs, maxNames: dns.max_names })),
              )
      }
      return conn.rdns
    },
    spf(domain: string, isNull: boolean): Promise<SpfFacts> {
      if (txn?.spf) return txn.spf
      const known = given.spf?.(domain, isNull) ?? null
      const timeoutMs = Math.min(dns.spf_timeout_ms, dnsLeft())
      // SPF speaks for the envelope as sent (adapters never hand it a normalised address).
      const work: Promise<SpfFacts> =
        !ip || (!known && timeoutMs < MIN_LOOKUP_MS)
          ? Promise.resolve({ domain, result: 'temperror' })
          : Telemetry.timed(known ? undefined : dnsTimes?.spf, spfFacts(deps, ip, domain, isNull ? null : s.sender, s.helo, known, timeoutMs))
      if (txn) txn.spf = work
      return work
    },
    vouch(domains: readonly string[]): Promise<Vouch> {
      const asked = (conn.vouch ??= new Map<string, Promise<Vouch>>())
      const key = domains.join(' ')
      let work = asked.get(key)
      if (!work) {
        const timeoutMs = Math.min(dns.spf_timeout_ms, dnsLeft())
        work =
          !ip || timeoutMs < MIN_LOOKUP_MS ? Promise.resolve({ why: 'vouch_error' }) : Telemetry.timed(dnsTimes?.vouch, vouchFor(deps, ip, domains, timeoutMs))
        asked.set(key, work)
      }
      return work
    },
    dnsbl(): Promise<DnsblFacts> {
      if (!conn.dnsbl) {
        const known = given.dnsbl?.() ?? null
        const zones = zoneList(deps.config.select.zones)
        conn.dnsbl =
          known || !zones.length || !ip
            ? Promise.resolve(known ?? { source: 'none', listed: [] })
            : Telemetry.timed(dnsTimes?.dnsbl, lookupDnsbl(ip, zones, deps.resolver, Math.max(Math.min(dns.timeout_ms, dnsLeft()), MIN_LOOKUP_MS)))
      }
      return conn.dnsbl
    },
  }
}

/**
 * The first of `domains` (the client's names' organisational domain, then those below it) whose
 * SPF record authorises the client, judged by the permissive-record guard at VOUCH_BREADTH: the
 * domain that names the machine says it sends mail. Within one bound for all of them.
 */
async function vouchFor(deps: Deps, ip: ParsedIp, domains: readonly string[], timeoutMs: number): Promise<Vouch> {
  const deadline = deps.now() + timeoutMs
  const work = async (): Promise<Vouch> => {
    let why = 'unvouched'
    for (const domain of domains) {
      const f = await spfFacts(deps, ip, domain, null, null, null, Math.max(1, deadline - deps.now()), VOUCH_BREADTH)
      if (f.result === 'temperror' || f.result === 'permerror') why = 'vouch_error'
      if (f.result !== 'pass') continue
      if (!f.permissive) return { domain }
      why = 'vouch_permissive'
    }
    return { why }
  }
  return withTimeout(work(), timeoutMs, 'rDNS vouching').catch(() => ({ why: 'vouch_error' }))
}
