// The plugin's side of a recipient: the Subject and the facts other plugins established, read
// from a Haraka connection (fcrdns and dns-list results per connection, spf per transaction), and
// where the facts we look up ourselves are kept (rDNS and DNSBL once per connection, SPF once per
// transaction). The decision itself is adapters/recipient.ts's, shared with `check`.
import { domainOf, normaliseAddress, normaliseRecipient, NULL_SENDER } from '../core/envelope'
import { spfResultFrom } from '../core/identity'
import { parseIp, type ParsedIp } from '../core/ip'
import { correspondentField, correspondentKey } from '../core/keys'
import type { MessageFacts, PostponedRecipient } from '../core/message'
import type { RecipientDecision } from '../core/recipient'
import type { Config } from '../core/settings'
import type { Deps } from './deps'
import { dnsblFromDnsListResults, rdnsFromFcrdnsResults } from './dns'
import { addressOf, type Address, type Connection, type Transaction } from './haraka-types'
import { bodyDigest } from './message'
import type { FactCache, RecipientInput } from './recipient'
import type { CorrespondentWrite } from './redis-decision'

const NOTE = 'smart-greylist'

/** What this plugin keeps on a connection: facts shared by its transactions. */
interface ConnectionNote extends Pick<FactCache, 'rdns' | 'dnsbl' | 'vouch'> {
  readonly ip: ParsedIp | null
}

/** What this plugin keeps on a transaction. */
export interface TransactionNote extends Pick<FactCache, 'spf'> {
  /** defer_at = data: a recipient was greylisted, so DATA is deferred. */
  deferAtData: boolean
  /** What accepted recipients got, for the X-Greylist header. */
  accepted: RecipientDecision[]
  /** net_identity_greylist = message: recipients whose deferral waits for the message. */
  postponed: PostponedRecipient[]
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
    note = { deferAtData: false, accepted: [], postponed: [] }
    txn.notes[NOTE] = note
  }
  return note
}

/** A recipient of this connection's transaction, as the shared decider takes it. */
export function recipientInput(connection: Connection, rcpt: Address): RecipientInput {
  const facts = connectionNote(connection)
  const txn = connection.transaction
  const ip = facts.ip
  return {
    subject: {
      ip,
      helo: connection.hello.host ?? null,
      sender: addressOf(txn?.mail_from),
      recipient: addressOf(rcpt),
      relaying: connection.relaying,
      isPrivate: Boolean(connection.remote.is_private || connection.remote.is_local),
    },
    given: {
      rdns: () => (ip ? rdnsFromFcrdnsResults(connection.results.get('fcrdns'), ip) : null),
      // The spf plugin's result counts for the same scope and the same domain only.
      spf: (domain, isNull) => {
        const r = (isNull ? connection.results : txn?.results)?.get('spf')
        return r?.scope === (isNull ? 'helo' : 'mfrom') && typeof r.domain === 'string' && r.domain.toLowerCase() === domain ? spfResultFrom(r.result) : null
      },
      dnsbl: () => dnsblFromDnsListResults(connection.results.get('dns-list')),
    },
    connection: facts,
    transaction: txn ? transactionNote(txn) : null,
  }
}

/** The message at the end of data, for its own record (net_identity_greylist = message). */
export async function messageFactsOf(txn: Transaction, config: Config): Promise<MessageFacts> {
  return {
    sender: addressOf(txn.mail_from),
    recipients: txn.rcpt_to.map((r) => addressOf(r)),
    messageId: txn.header?.get('Message-ID') ?? '',
    bodyDigest: await bodyDigest(txn.message_stream, config.main.data_hash_bytes, config.main.budget_ms),
  }
}

/** After a relayed message is queued: the outside domains its (local) sender wrote to. */
export function correspondentsOf(deps: Deps, connection: Connection): CorrespondentWrite | null {
  const { isLocalDomain } = deps
  const txn = connection.transaction
  if (!txn || !connection.relaying || !deps.config.correspondents.enabled) return null
  const mailbox = normaliseAddress(addressOf(txn.mail_from))
  const from = domainOf(mailbox)
  if (mailbox === NULL_SENDER || !from || !isLocalDomain(from)) return null
  const outside = [...new Set(txn.rcpt_to.map((r) => domainOf(normaliseAddress(addressOf(r)))).filter((d): d is string => d !== null && !isLocalDomain(d)))]
  if (!outside.length) return null
  const local = normaliseRecipient(mailbox, deps.config.envelope.recipient_strip_ext)
  return {
    key: correspondentKey(deps.config.redis.prefix, local),
    mailbox: local,
    domains: outside.map((domain) => ({ field: correspondentField(domain), domain })),
  }
}
