// The plugin's side of a decision: the Subject and fact sources taken from a Haraka connection
// (rDNS once per connection, SPF once per transaction, the fcrdns and spf plugins' results when
// they ran), then the tuple transition in Redis.
import tlds from 'haraka-tld'
import { assess, type Assessment } from '../core/assess'
import { timingFrom, type Verdict } from '../core/decision'
import { spfResultFrom, type Identity, type RdnsFacts, type SpfFacts } from '../core/identity'
import { parseIp, type ParsedIp } from '../core/ip'
import type { Deps } from '../setup'
import { lookupRdns, rdnsFromFcrdnsResults } from './dns'
import { addressOf, type Address, type Connection, type Transaction } from './haraka-types'
import { spfFacts } from './spf-guard'

const NOTE = 'smart-greylist'

/** A recipient's fate, as recorded in results and in the log line. */
export type RecipientDecision =
  | Exclude<Assessment, { kind: 'tuple' }>
  | { kind: 'tuple'; identity: Identity; verdict: Verdict }

/** What this plugin keeps on a connection: facts shared by its transactions. */
interface ConnectionNote {
  readonly ip: ParsedIp | null
  rdns?: Promise<RdnsFacts>
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
    { rdns: () => rdnsOf(deps, connection, facts, dnsLeft), spf: (domain, isNull) => spfOf(deps, connection, facts.ip!, domain, isNull, dnsLeft) },
  )
  if (a.kind !== 'tuple') return a
  const verdict = await deps.decisions.check(a, deps.now(), timingFrom(deps.config), {
    prefix: deps.config.redis.prefix,
    shadow,
    ttlDays: deps.config.stats.days,
    identitiesMax: deps.config.stats.identities,
  })
  return { kind: 'tuple', identity: a.identity, verdict }
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
