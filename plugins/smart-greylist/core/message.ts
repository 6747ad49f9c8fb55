// The message as the key of a deferral (`[main] net_identity_greylist = message`): for a sender we can name
// only by its network, the retry of the same message from any address is what proves it
// retries. Pure: what to ask the message's record, and how the answer reads.
import { timingFrom, type Timing, type Verdict } from './decision'
import { normaliseAddress, normaliseRecipient } from './envelope'
import { identityField, identityText, type Identity } from './identity'
import { messageDigest, messageKeys } from './keys'
import type { RecipientDecision, TupleKeys } from './recipient'
import { secs } from './recipient'
import type { Config } from './settings'
import { safeField } from './text'

/** A recipient whose deferral waits for its message. */
export type PostponedRecipient = Extract<RecipientDecision, { kind: 'tuple' }> & { readonly postponed: TupleKeys & { readonly delayMs: number } }

export function isPostponed(d: RecipientDecision): d is PostponedRecipient {
  return d.kind === 'tuple' && d.postponed !== undefined
}

/** The message, as the end of data has it. */
export interface MessageFacts {
  /** Envelope addresses as received (normalised here, as tuple keys are). */
  readonly sender: string
  readonly recipients: readonly string[]
  readonly messageId: string
  /** SHA-256 of the first `[main] data_hash_bytes` of the body, headers left out. */
  readonly bodyDigest: string
}

export interface MessagePlan {
  /** The message's record, in the tuple script's terms (no identity counter: see `mayRecord`). */
  readonly ref: TupleKeys
  readonly digest: string
  readonly timing: Timing
}

/**
 * What to ask: the record of this message, with the strictest delay of its postponed recipients.
 * A record is made only for a message that started a new tuple (new or expired): the identity
 * paid for it against `[limits] pending_per_identity` at RCPT, so one network cannot make more
 * message records than tuples. Otherwise (every tuple early, say: another body to the same
 * recipient from the same network) it is deferred without a record (`capped`).
 */
export function messagePlan(postponed: readonly PostponedRecipient[], facts: MessageFacts, config: Config): MessagePlan {
  const first = postponed[0]
  if (!first) throw new Error('a message plan needs a postponed recipient')
  const digest = messageDigest(
    normaliseAddress(facts.sender),
    facts.recipients.map((r) => normaliseRecipient(r, config.envelope.recipient_strip_ext)),
    facts.messageId,
    facts.bodyDigest,
  )
  const { shard, key } = messageKeys(config.redis.prefix, digest)
  const mayRecord = postponed.some((p) => p.verdict.status === 'new' || p.verdict.status === 'expired')
  const timing = timingFrom(config)
  return {
    ref: { shard, key, startedKey: '', identity: first.identity, sender: first.postponed.sender, recipient: first.postponed.recipient },
    digest,
    timing: { ...timing, delayMs: Math.max(...postponed.map((p) => p.postponed.delayMs)), pendingCap: mayRecord ? Number.MAX_SAFE_INTEGER : 0 },
  }
}

/** The timing that lets a postponed tuple pass now: its message proved the retry. */
export function provenTiming(timing: Timing): Timing {
  return { ...timing, delayMs: 0 }
}

export interface MessageDecision {
  readonly verdict: Verdict
  readonly digest: string
  readonly identity: Identity
  readonly recipients: number
}

/** The message's one log line and results (the line's outside values through safeField). */
export function messageRecord(d: MessageDecision, sender: string): { result: Record<string, unknown>; line: string } {
  const v = d.verdict
  const timing = `waited=${secs(v.waitedMs)}s` + (v.action === 'defer' ? ` retry_in=${secs(v.retryInMs)}s` : '')
  const result = v.action === 'defer' ? { fail: `greylisted:message_${v.status}` } : { pass: `greylist:message_${v.status}` }
  return {
    result: { ...result, identity: identityText(d.identity), message: d.digest.slice(0, 16) },
    line: `message ${v.action} reason=${v.status} message=${d.digest.slice(0, 16)} identity=${identityField(d.identity)} from=<${safeField(sender)}> recipients=${d.recipients} ${timing}`,
  }
}
