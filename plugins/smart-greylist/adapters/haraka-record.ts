// Recording decisions where Haraka keeps them: the transaction's results (which haraka-results
// logs as one line, the `human` text), the watch cell, and the log line of a DNS error.
import { messageRecord, type MessageDecision } from '../core/message'
import { decisionRecord, WATCH_NAME, watchResult, type RecipientDecision } from '../core/recipient'
import type { Config } from '../core/settings'
import { addressOf, type Address, type Connection, type Results, type Transaction } from './haraka-types'

/**
 * The recipient's decision, recorded once and published to haraka-plugin-watch once, as the cell
 * rcpt_to.smart-greylist (which watch places under RCPT TO and colours by its outcome).
 */
export function recordRecipient(plugin: object, connection: Connection, rcpt: Address, d: RecipientDecision, config: Config): void {
  const txn = connection.transaction
  if (!txn) return
  const r = decisionRecord(d, { from: addressOf(txn.mail_from), to: addressOf(rcpt) }, config.main.on_error)
  // The log line is the result's `human` text, emitted by haraka-results: one line, and
  // haraka-results does not format a summary of its own on every add (nobody read it). An
  // error is logged by haraka-results as it records it.
  addUnpublished(txn.results, plugin, d.kind === 'failed' ? { err: r.line } : { ...r.result, human: r.line, emit: config.main.log_decisions })
  txn.results.redis_publish?.(WATCH_NAME, watchResult(d, config, r.line))
  if (r.dnsError) connection.logerror(plugin, r.dnsError)
}

/** The message's decision at the end of data (net_identity_greylist = message). */
export function recordMessage(plugin: object, txn: Transaction, message: MessageDecision, config: Config): void {
  const r = messageRecord(message, addressOf(txn.mail_from))
  txn.results.add(plugin, { ...r.result, human: r.line, emit: config.main.log_decisions })
}

/**
 * Adds a result without haraka-results publishing it. haraka-results >= 2 publishes every result
 * it adds (results.ini redis_publish, on by default, through the redis plugin's client) under the
 * plugin's own name, which watch shows as a second, uncategorized cell of the same decision; the
 * decision's one publish is the watch cell above. Its publish is held back for this one add only
 * (synchronous: nothing else runs meanwhile).
 */
export function addUnpublished(results: Results, plugin: object, obj: Record<string, unknown>): void {
  if (!results.redis_publish) return results.add(plugin, obj)
  const own = Object.getOwnPropertyDescriptor(results, 'redis_publish')
  results.redis_publish = () => undefined
  try {
    results.add(plugin, obj)
  } finally {
    if (own) Object.defineProperty(results, 'redis_publish', own)
    else delete results.redis_publish
  }
}
