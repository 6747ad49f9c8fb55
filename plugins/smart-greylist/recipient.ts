// The plugin's side of a decision: the Subject and fact sources taken from a Haraka connection
// (rDNS once per connection, SPF once per transaction, the fcrdns and spf plugins' results when
// they ran), then the tuple transition in Redis.
import tlds from 'haraka-tld'
import { timingFrom, type Verdict } from './decision'
import { lookupRdns, rdnsFromFcrdnsResults } from './dns'
import { addressOf, type Address, type Connection } from './haraka'
import type { Identity, RdnsFacts } from './identity'
import { parseIp, type ParsedIp } from './ip'
import { plan, spfFacts, type Deps, type Plan } from './plan'
import { spfResultFrom, type SpfFacts } from './spf'

export const NOTE = 'smart-greylist'

/** A recipient's fate, as recorded in results and in the log line. */
export type Outcome =
  | Exclude<Plan, { kind: 'tuple' }>
  | { kind: 'tuple'; identity: Identity; verdict: Verdict }

interface ConnectionFacts {
  ip: ParsedIp | null
  rdns?: Promise<RdnsFacts>
}

export async function decideRecipient(deps: Deps, connection: Connection, rcpt: Address, shadow: boolean): Promise<Outcome> {
  const facts = connectionFacts(connection)
  const p = await plan(
    deps,
    {
      ip: facts.ip,
      helo: connection.hello.host ?? null,
      sender: addressOf(connection.transaction?.mail_from),
      recipient: addressOf(rcpt),
      relaying: connection.relaying,
      isPrivate: Boolean(connection.remote.is_private || connection.remote.is_local),
    },
    { rdns: () => rdnsOf(deps, connection, facts), spf: (domain, isNull) => spfOf(deps, connection, facts.ip!, domain, isNull) },
  )
  if (p.kind !== 'tuple') return p
  const verdict = await deps.store.check(p, deps.now(), timingFrom(deps.config), {
    prefix: deps.config.redis.prefix,
    shadow,
    ttlDays: deps.config.stats.days,
  })
  return { kind: 'tuple', identity: p.identity, verdict }
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

/** SPF facts once per transaction; the spf plugin's result for the same scope and domain wins. */
function spfOf(deps: Deps, connection: Connection, ip: ParsedIp, domain: string, isNull: boolean): Promise<SpfFacts> {
  const txn = connection.transaction
  const notes = (txn?.notes ?? {}) as Record<string, unknown>
  const cached = notes[NOTE] as { spf?: Promise<SpfFacts> } | undefined
  if (cached?.spf) return cached.spf
  const r = (isNull ? connection.results : txn?.results)?.get('spf')
  const known = r?.scope === (isNull ? 'helo' : 'mfrom') && String(r?.domain ?? '').toLowerCase() === domain ? spfResultFrom(r?.result) : null
  const mailFrom = isNull ? null : addressOf(txn?.mail_from)
  const work = spfFacts(deps, ip, domain, mailFrom, connection.hello.host ?? null, known)
  notes[NOTE] = { ...(cached ?? {}), spf: work }
  return work
}
