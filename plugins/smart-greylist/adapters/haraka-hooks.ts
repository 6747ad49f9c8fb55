// What each of Haraka's hooks does with a decision: the answer (451 or go on), the backstop that
// answers within the budget, the configured answer when a decision fails, counting, and the
// notes a transaction carries from RCPT to the end of data. index.ts registers and hands off here.
import constants from 'haraka-constants'
import DSN from 'haraka-dsn'
import { headerValue } from '../core/header'
import { isPostponed, type MessageDecision } from '../core/message'
import { answer, counterOf, failureAnswer, type RecipientDecision } from '../core/recipient'
import type { Config } from '../core/settings'
import { safeField } from '../core/text'
import type { Deps } from './deps'
import { correspondentsOf, messageFactsOf, recipientInput, transactionNote } from './haraka-recipient'
import { recordMessage, recordRecipient } from './haraka-record'
import type { Address, Connection, Next } from './haraka-types'
import { decideMessage } from './message'
import { decideRecipient } from './recipient'
import { StoreError } from './redis-client'
import type { CorrespondentWrite } from './redis-decision'
import { withTimeout } from './timeout'

type Answer = [number?, unknown?]

/** Haraka's plugin object, as the hooks use it: results are recorded and lines logged under it. */
export interface HookPlugin {
  readonly name: string
}

/** Calls next exactly once and turns any failure into the configured on_error answer. */
function guarded(plugin: HookPlugin, deps: Deps, connection: Connection, next: Next, work: () => Promise<Answer>): void {
  let done = false
  const once: Next = (code, msg) => {
    if (done) return
    done = true
    next(code, msg)
  }
  work()
    .then(([code, msg]) => once(code, msg))
    .catch((err: unknown) => {
      const kind = err instanceof StoreError ? `redis_${err.kind}` : 'internal'
      const message = err instanceof Error ? err.message : String(err)
      const text = `error (${kind}): ${message}; on_error=${deps.config.main.on_error}`
      // One line: haraka-results logs an err as it records it.
      if (connection.transaction) connection.transaction.results.add(plugin, { err: text })
      else connection.logerror(plugin, text)
      const [code, reply] = onErrorAnswer(deps, kind)
      once(code, reply)
    })
}

/**
 * What a failed decision answers: `[main] on_error`, counted when it fails open; shadow mode
 * (the recipient's, when the failure came with a decision) never defers.
 */
function onErrorAnswer(deps: Deps, cause: string, d?: RecipientDecision): Answer {
  const { config, decisions } = deps
  if (config.main.on_error === 'accept') decisions.noteFailOpen(cause)
  const shadow = d?.kind === 'failed' ? d.shadow : config.main.mode === 'shadow'
  return failureAnswer(shadow, config) === 'defer' ? [constants.denysoft, deferReply(config)] : []
}

function deferReply(config: Config): unknown {
  return DSN.sec_unauthorized(config.main.text, 451)
}

/** rcpt_ok: the recipient's decision, recorded, counted, and answered (or held for DATA). */
export function onRecipient(plugin: HookPlugin, deps: Deps, next: Next, connection: Connection, rcpt: Address): void {
  guarded(plugin, deps, connection, next, async () => {
    const txn = connection.transaction
    if (!txn) return []
    const { config } = deps
    // The backstop: whatever happens inside, the recipient is answered within its budget.
    const decision = await withTimeout(
      decideRecipient(deps, recipientInput(connection, rcpt), deps.decisions),
      config.main.budget_ms + 500,
      "the recipient's decision",
    )
    recordRecipient(plugin, connection, rcpt, decision, config)
    if (decision.kind === 'failed') return onErrorAnswer(deps, decision.cause, decision)
    const field = counterOf(decision)
    if (field) {
      const stats = { prefix: config.redis.prefix, shadow: false, ttlDays: config.stats.days }
      // Counting is best effort and must not hold the recipient.
      deps.decisions.count(field, deps.now(), stats, connection.remote.ip ?? '').catch(() => undefined)
    }
    const note = transactionNote(txn)
    if (answer(decision, config) === 'accept') {
      if (isPostponed(decision)) note.postponed.push(decision)
      else if (decision.kind !== 'skip') note.accepted.push(decision)
      return []
    }
    if (config.main.defer_at === 'data') {
      note.deferAtData = true
      return []
    }
    return [constants.denysoft, deferReply(config)]
  })
}

/** data: under defer_at = data, one 451 for the recipients greylisted at RCPT. */
export function onData(deps: Deps, next: Next, connection: Connection): void {
  const txn = connection.transaction
  if (deps.config.main.defer_at === 'data' && txn && transactionNote(txn).deferAtData) return next(constants.denysoft, deferReply(deps.config))
  next()
}

/** data_post: the message's own decision for postponed recipients, then the X-Greylist header. */
export function onDataEnd(plugin: HookPlugin, deps: Deps, next: Next, connection: Connection): void {
  guarded(plugin, deps, connection, next, async () => {
    const txn = connection.transaction
    if (!txn) return []
    const { config } = deps
    const note = transactionNote(txn)
    let message: MessageDecision | undefined
    if (note.postponed.length) {
      // The backstop, as for a recipient: the body's digest and the message's record fit the budget.
      const work = async (): Promise<MessageDecision> => decideMessage(deps, deps.decisions, note.postponed, await messageFactsOf(txn, config))
      message = await withTimeout(work(), 2 * config.main.budget_ms + 500, "the message's decision")
      recordMessage(plugin, txn, message, config)
      if (message.verdict.action === 'defer') return [constants.denysoft, deferReply(config)]
    }
    if (config.main.header && txn.add_header) {
      const value = headerValue(note.accepted, message)
      if (value) txn.add_header('X-Greylist', value)
    }
    return []
  })
}

/**
 * queue_ok: a relayed message from a local mailbox was queued: the outside domains it went to
 * become that mailbox's correspondents. Best effort, after the fact: never holds or fails the message.
 */
export function onQueued(plugin: HookPlugin, deps: Deps, next: Next, connection: Connection): void {
  // Read before next(): answering the client resets the transaction.
  const w = readCorrespondents(plugin, deps, connection)
  next()
  if (!w) return
  const { ttl, per_mailbox } = deps.config.correspondents
  deps.decisions
    .recordCorrespondents(w, deps.now(), ttl * 1000, per_mailbox)
    .then(() =>
      connection.loginfo(plugin, `correspondents recorded: <${safeField(w.mailbox)}> wrote to ${w.domains.map((d) => safeField(d.domain)).join(', ')}`),
    )
    .catch((err: Error) => connection.logwarn(plugin, `correspondents not recorded (${err.message})`))
}

function readCorrespondents(plugin: HookPlugin, deps: Deps, connection: Connection): CorrespondentWrite | null {
  try {
    return correspondentsOf(deps, connection)
  } catch (err) {
    connection.logerror(plugin, `correspondents: ${(err as Error).message}`)
    return null
  }
}
