// The plugin's side of a decision: the Subject and fact sources taken from a Haraka connection
// (rDNS once per connection, SPF once per transaction, the fcrdns and spf plugins' results when
// they ran), then the tuple transition in Redis.
import tlds from 'haraka-tld'
import { assess, type Assessment } from '../core/assess'
import { timingFrom, type Verdict } from '../core/decision'
import { domainOf, normaliseAddress, normaliseRecipient, NULL_SENDER } from '../core/envelope'
import { spfResultFrom, type Identity, type RdnsFacts, type SpfFacts } from '../core/identity'
import { parseIp, type ParsedIp } from '../core/ip'
import { correspondentField, correspondentKey } from '../core/keys'
import { isTrusted, zoneList, type DnsblFacts, type Evidence } from '../core/select'
import type { Deps } from '../setup'
import { dnsblFromDnsListResults, lookupDnsbl, lookupRdns, rdnsFromFcrdnsResults } from './dns'
import { addressOf, type Address, type Connection, type Transaction } from './haraka-types'
import type { CorrespondentWrite } from './redis-decision'
import { spfFacts } from './spf-guard'

const NOTE = 'smart-greylist'

/** A recipient's fate, as recorded in results and in the log line. */
export type RecipientDecision =
  | Exclude<Assessment, { kind: 'tuple' }>
  /** `wouldTrust`: [select] policy = suspicious would have accepted this first contact. */
  | { kind: 'tuple'; identity: Identity; verdict: Verdict; wouldTrust: boolean; evidence: Evidence }
  /** [select] policy = suspicious accepted it on its evidence; the tuple is recorded all the same. */
  | { kind: 'trusted'; identity: Identity; verdict: Verdict; evidence: Evidence }
  /** A local mailbox wrote to the sender's (authenticated) domain. */
  | { kind: 'correspondent'; domain: string }

/** What this plugin keeps on a connection: facts shared by its transactions. */
interface ConnectionNote {
  readonly ip: ParsedIp | null
  rdns?: Promise<RdnsFacts>
  dnsbl?: Promise<DnsblFacts>
}

/** What this plugin keeps on a transaction. */
export interface TransactionNote {
  /** SPF for MAIL FROM, evaluated once for all recipients. */
  spf?: Promise<SpfFacts>
  /** defer_at = data: a recipient was greylisted, so DATA is deferred. */
  deferAtData: boolean
  /** What accepted recipients got, for the X-Greylist header. */
  accepted: RecipientDecision[]
}

function connectionNote(connection: Connection): ConnectionNote {
  let note = connection.notes[NOTE] as ConnectionNote | undefined
  if (!note) {
    note = { ip: parseIp(connection.remote.ip) }
    connection.notes[NOTE] = note
  }
  return note
}

export function transactionNote(txn: Transaction): TransactionNote {
  let note = txn.notes[NOTE] as TransactionNote | undefined
  if (!note) {
    note = { deferAtData: false, accepted: [] }
    txn.notes[NOTE] = note
  }
  return note
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

export async function decideRecipient(deps: Deps, connection: Connection, rcpt: Address, shadow: boolean): Promise<RecipientDecision> {
  const facts = connectionNote(connection)
  const dnsLeft = dnsBudget(deps, deps.now())
  const { config } = deps
  const a = await assess(
    deps,
    {
      ip: facts.ip,
      helo: connection.hello.host ?? null,
      sender: addressOf(connection.transaction?.mail_from),
      recipient: addressOf(rcpt),
      relaying: connection.relaying,
      isPrivate: Boolean(connection.remote.is_private || connection.remote.is_local),
    },
    {
      rdns: () => rdnsOf(deps, connection, facts, dnsLeft),
      spf: (domain, isNull) => spfOf(deps, connection, facts.ip!, domain, isNull, dnsLeft),
      dnsbl: () => dnsblOf(deps, connection, facts, dnsLeft),
    },
  )
  if (a.kind !== 'tuple') return a
  // A client a DNSBL lists is greylisted whoever it writes for.
  if (config.correspondents.enabled && a.authenticatedDomain && !a.evidence.dnsbl.listed.length) {
    const key = correspondentKey(config.redis.prefix, a.recipient)
    if (await deps.decisions.isCorrespondent(key, correspondentField(a.authenticatedDomain), deps.now())) {
      return { kind: 'correspondent', domain: a.authenticatedDomain }
    }
  }
  const trusted = isTrusted(a.evidence)
  const accept = trusted && config.select.policy === 'suspicious'
  const verdict = await deps.decisions.check(a, deps.now(), timingFrom(config), {
    prefix: config.redis.prefix,
    shadow,
    // Accepted on its evidence: the tuple is recorded all the same (a later switch back to
    // `all` finds it), and what `all` would have deferred is counted as trusted:<state>.
    ...(accept ? { label: 'trusted' as const } : {}),
    ...(trusted && !accept ? { also: 'would_trust' as const } : {}),
    ttlDays: config.stats.days,
    identitiesMax: config.stats.identities,
  })
  if (accept) return { kind: 'trusted', identity: a.identity, verdict, evidence: a.evidence }
  return { kind: 'tuple', identity: a.identity, verdict, wouldTrust: trusted, evidence: a.evidence }
}

/** DNSBL listings once per connection: the dns-list plugin's when it ran, else [select] zones. */
function dnsblOf(deps: Deps, connection: Connection, facts: ConnectionNote, dnsLeft: () => number): Promise<DnsblFacts> {
  if (!facts.dnsbl) {
    const fromPlugin = dnsblFromDnsListResults(connection.results.get('dns-list'))
    const zones = zoneList(deps.config.select.zones)
    const timeoutMs = Math.min(deps.config.dns.timeout_ms, dnsLeft())
    facts.dnsbl =
      fromPlugin || !zones.length || !facts.ip
        ? Promise.resolve(fromPlugin ?? { source: 'none', listed: [] })
        : lookupDnsbl(facts.ip, zones, deps.resolver, Math.max(timeoutMs, 20))
  }
  return facts.dnsbl
}

/** After a relayed message is queued: the outside domains its (local) sender wrote to. */
export function correspondentsOf(deps: Deps, connection: Connection, isLocalDomain: (d: string) => boolean): CorrespondentWrite | null {
  const txn = connection.transaction
  if (!txn || !connection.relaying || !deps.config.correspondents.enabled) return null
  const mailbox = normaliseAddress(addressOf(txn.mail_from))
  const from = domainOf(mailbox)
  if (mailbox === NULL_SENDER || !from || !isLocalDomain(from)) return null
  const outside = [...new Set(txn.rcpt_to.map((r) => domainOf(normaliseAddress(addressOf(r)))).filter((d): d is string => Boolean(d) && !isLocalDomain(d!)))]
  if (!outside.length) return null
  const local = normaliseRecipient(mailbox, deps.config.envelope.recipient_strip_ext)
  return {
    key: correspondentKey(deps.config.redis.prefix, local),
    mailbox: local,
    domains: outside.map((domain) => ({ field: correspondentField(domain), domain })),
  }
}

/** rDNS facts, looked up once per connection (several recipients and transactions share them). */
function rdnsOf(deps: Deps, connection: Connection, facts: ConnectionNote, dnsLeft: () => number): Promise<RdnsFacts> {
  const ip = facts.ip
  if (!ip) return Promise.resolve({ status: 'none' })
  if (!facts.rdns) {
    const fromPlugin = rdnsFromFcrdnsResults(connection.results.get('fcrdns'), ip)
    const { timeout_ms, max_names } = deps.config.dns
    const timeoutMs = Math.min(timeout_ms, dnsLeft())
    facts.rdns = fromPlugin
      ? Promise.resolve(fromPlugin)
      : timeoutMs < 20
        ? Promise.resolve({ status: 'error', error: 'no time left in [main] budget_ms' })
        : tlds.ready.then(() => lookupRdns(ip, deps.resolver, { timeoutMs, maxNames: max_names }))
  }
  return facts.rdns
}

/** SPF facts once per transaction; the spf plugin's result for the same scope and domain wins. */
function spfOf(deps: Deps, connection: Connection, ip: ParsedIp, domain: string, isNull: boolean, dnsLeft: () => number): Promise<SpfFacts> {
  const txn = connection.transaction
  const note = txn ? transactionNote(txn) : undefined
  if (note?.spf) return note.spf
  const r = (isNull ? connection.results : txn?.results)?.get('spf')
  const known = r?.scope === (isNull ? 'helo' : 'mfrom') && String(r?.domain ?? '').toLowerCase() === domain ? spfResultFrom(r?.result) : null
  const mailFrom = isNull ? null : addressOf(txn?.mail_from)
  const timeoutMs = Math.min(deps.config.dns.spf_timeout_ms, dnsLeft())
  const work: Promise<SpfFacts> =
    !known && timeoutMs < 20
      ? Promise.resolve({ domain, result: 'temperror' })
      : spfFacts(deps, ip, domain, mailFrom, connection.hello.host ?? null, known, timeoutMs)
  if (note) note.spf = work
  return work
}
