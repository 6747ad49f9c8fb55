// A recipient's fate, as one union, and the pure steps that lead to it from an assessment:
// whether to ask about a correspondent, what [select] makes of the evidence, and how the tuple's
// verdict becomes the decision. The plugin records the union (results, log line, counters) and
// `smart-greylist check` prints it; both get it from adapters/recipient.ts, which runs these steps.
import type { Assessment, TupleAssessment } from './assess'
import type { Verdict } from './decision'
import type { DomainRule } from './domains'
import { identityField, identityText, type Identity } from './identity'
import { evidenceText, isTrusted, type Evidence } from './select'
import type { Config } from './settings'
import { COUNTER, type AlsoLabel, type DeferLabel } from './stats'
import { safeField } from './text'

export type RecipientDecision =
  | Exclude<Assessment, TupleAssessment>
  | {
      readonly kind: 'tuple'
      readonly identity: Identity
      readonly verdict: Verdict
      /** [select] policy = suspicious would have accepted this first contact. */
      readonly wouldTrust: boolean
      readonly evidence: Evidence
      /** `mode = shadow` for this recipient: a deferral is logged and counted, the mail accepted. */
      readonly shadow: boolean
      readonly rule?: DomainRule
      /**
       * net_identity_greylist = message: the deferral waits for the message (accepted at RCPT, decided at
       * the end of data by the message's own record); the tuple's keys, for its pass then.
       */
      readonly postponed?: TupleKeys & { readonly delayMs: number }
    }
  /** [select] policy = suspicious accepted it on its evidence; the tuple is recorded all the same. */
  | { readonly kind: 'trusted'; readonly identity: Identity; readonly verdict: Verdict; readonly evidence: Evidence; readonly rule?: DomainRule }
  /** A local mailbox wrote to the sender's (authenticated) domain. */
  | { readonly kind: 'correspondent'; readonly identity: Identity; readonly domain: string }
  /** The tuple's state could not be read or written: `[main] on_error` answers (never in shadow mode). */
  | {
      readonly kind: 'failed'
      readonly identity: Identity
      readonly cause: string
      readonly message: string
      readonly shadow: boolean
      readonly rule?: DomainRule
    }

export type DecisionKind = RecipientDecision['kind']

/** What the tuple script needs of a tuple besides the timing. */
export type TupleKeys = Pick<TupleAssessment, 'shard' | 'key' | 'startedKey' | 'awlKey' | 'identity' | 'sender' | 'recipient'>

/**
 * A weak identity (only a network: no SPF, rDNS or provider names the sender) whose deferral
 * waits for the message under `[main] net_identity_greylist = message`: a pool we cannot name retries the
 * same message from other networks, and the message is what matches then. Never in shadow mode,
 * which defers nothing anyway.
 */
export function postponable(a: TupleAssessment): boolean {
  return a.identity.kind === 'net' && a.config.main.net_identity_greylist === 'message' && !isShadow(a)
}

/**
 * The authenticated sender domain whose correspondence with the recipient would let it skip, or
 * null when none is to be asked about. A client a DNSBL lists is greylisted whoever it writes for.
 */
export function correspondentToAsk(a: TupleAssessment, config: Config): string | null {
  if (!config.correspondents.enabled || !a.authenticatedDomain || a.evidence.dnsbl.listed.length) return null
  return a.authenticatedDomain
}

/** What [select] makes of the evidence, and how the tuple's script counts the call. */
export interface TrustPlan {
  /** The evidence is enough for `suspicious` to accept a first contact. */
  readonly trusted: boolean
  /** `[select] policy = suspicious` accepts it now. */
  readonly accept: boolean
  /** Overrides the deferral's counter family. */
  readonly label?: DeferLabel
  /** A second counter family a deferral bumps. */
  readonly also?: AlsoLabel
}

export function trustPlan(evidence: Evidence, config: Config): TrustPlan {
  const trusted = isTrusted(evidence)
  const accept = trusted && config.select.policy === 'suspicious'
  // Accepted on its evidence: the tuple is recorded all the same (a later switch back to `all`
  // finds it), and what `all` would have deferred is counted as trusted:<state>.
  if (accept) return { trusted, accept, label: 'trusted' }
  return trusted ? { trusted, accept, also: 'would_trust' } : { trusted, accept }
}

export function concluded(a: TupleAssessment, plan: TrustPlan, verdict: Verdict): RecipientDecision {
  const rule = a.rule ? { rule: a.rule } : {}
  if (plan.accept) return { kind: 'trusted', identity: a.identity, verdict, evidence: a.evidence, ...rule }
  const { shard, key, startedKey, awlKey, identity, sender, recipient } = a
  const keys = { shard, key, startedKey, identity, sender, recipient, ...(awlKey ? { awlKey } : {}) }
  const postponed = verdict.action === 'defer' && postponable(a) ? { postponed: { ...keys, delayMs: a.config.main.delay * 1000 } } : {}
  return { kind: 'tuple', identity: a.identity, verdict, wouldTrust: plan.trusted, evidence: a.evidence, shadow: isShadow(a), ...rule, ...postponed }
}

/** The tuple's state could not be read or written. */
export function failed(a: TupleAssessment, cause: string, message: string): RecipientDecision {
  return { kind: 'failed', identity: a.identity, cause, message, shadow: isShadow(a), ...(a.rule ? { rule: a.rule } : {}) }
}

/** `[main] mode = shadow`, or the recipient domain's `mode = shadow`. */
export function isShadow(a: TupleAssessment): boolean {
  return a.config.main.mode === 'shadow'
}

/** What a failure answers: `[main] on_error`, but shadow mode never defers (it is there to measure). */
export function failureAnswer(shadow: boolean, config: Config): 'accept' | 'defer' {
  return !shadow && config.main.on_error === 'defer' ? 'defer' : 'accept'
}

/**
 * What the client is answered: shadow mode (the recipient's) never defers; a failure answers as
 * `[main] on_error` says.
 */
export function answer(d: RecipientDecision, config: Config): 'accept' | 'defer' {
  if (d.kind === 'failed') return failureAnswer(d.shadow, config)
  return d.kind === 'tuple' && d.verdict.action === 'defer' && !d.shadow && !d.postponed ? 'defer' : 'accept'
}

/**
 * The day's counter of a decision the tuple script does not count itself (it counts tuple
 * verdicts, trusted ones included, in the same round trip); null for those and for failures,
 * which are counted as fail_open by the next write.
 */
export function counterOf(d: RecipientDecision): string | null {
  switch (d.kind) {
    case 'skip':
      return `${COUNTER.skipped}${d.reason}`
    case 'whitelist':
      return `${COUNTER.whitelisted}${d.what}`
    case 'trusted':
    case 'correspondent':
      return `${COUNTER.skipped}${d.kind}`
    case 'tuple':
    case 'failed':
      return null
  }
}

/** What the plugin adds to the transaction's results, and the one log line that says it. */
export interface DecisionRecord {
  readonly result: Readonly<Record<string, unknown>>
  readonly line: string
  /** A line for the DNS failures behind the identity (a server that failed is not "no such name"). */
  readonly dnsError: string | null
}

/**
 * The decision as the plugin records it. `envelope` is the addresses as received; `onError` is
 * `[main] on_error` (for failures). Every value that came from outside (addresses, names, the
 * identity's value, whitelist entries) is rendered by safeField, so the line stays one line and
 * its fields are ours; the results keep the values raw (they are data, not text).
 */
export function decisionRecord(d: RecipientDecision, envelope: { from: string; to: string }, onError: string): DecisionRecord {
  const env = `from=<${safeField(envelope.from)}> to=<${safeField(envelope.to)}>`
  // The smart-greylist.domains rule that applied, by its line.
  const applied = 'rule' in d ? d.rule : undefined
  const rule = applied ? ` rule=${applied.origin}` : ''
  const rec = (result: Record<string, unknown>, line: string, dnsError: string | null = null): DecisionRecord => ({
    result: applied ? { ...result, rule: applied.origin } : result,
    line,
    dnsError,
  })
  switch (d.kind) {
    case 'skip':
      return rec({ skip: d.reason }, `skip reason=${d.reason}${rule} ${env}`)
    case 'whitelist':
      return rec({ pass: `whitelist:${d.what}`, whitelist: d.entry }, `accept reason=whitelist:${d.what} entry="${safeField(d.entry)}" (${d.origin}) ${env}`)
    case 'correspondent':
      return rec(
        { skip: 'correspondent', correspondent: d.domain },
        `skip reason=correspondent domain=${safeField(d.domain)} identity=${identityField(d.identity)} ${env}`,
      )
    case 'failed': {
      // The same words as any other internal failure of the plugin (adapters/haraka-hooks.ts).
      const text = `error (${d.cause}): ${d.message}; on_error=${d.shadow ? 'accept (shadow mode)' : onError}`
      return rec({ err: text }, `${text} identity=${identityField(d.identity)}${rule} ${env}`)
    }
    case 'trusted': {
      const evidence = evidenceText(d.evidence)
      const id = identityText(d.identity)
      return rec(
        { skip: 'trusted', evidence, identity: id, tuple: d.verdict.status },
        `skip reason=trusted evidence=${evidence} identity=${safeField(id)} tuple=${d.verdict.status}${rule} ${env}`,
      )
    }
    case 'tuple': {
      const { verdict: v } = d
      const id = identityText(d.identity)
      const result = d.postponed
        ? { msg: `greylisted:${v.status} postponed to the end of data` }
        : v.action === 'defer'
          ? { fail: `greylisted:${v.status}` }
          : { pass: `greylist:${v.status}` }
      const timing = `waited=${secs(v.waitedMs)}s` + (v.action === 'defer' ? ` retry_in=${secs(v.retryInMs)}s` : '')
      const action = v.action === 'defer' && d.shadow ? 'shadow-defer' : d.postponed ? 'postpone' : v.action
      // Under [select] policy = all: what suspicious would have done with this deferral.
      const other = d.wouldTrust && v.action === 'defer' ? ` suspicious_would=accept evidence=${evidenceText(d.evidence)}` : ''
      const dns = d.identity.reason.split(',').filter((r) => r === 'rdns_error' || r === 'spf_temperror')
      return rec(
        { ...result, identity: id, identity_reason: d.identity.reason, ...(d.shadow ? { shadow: true } : {}) },
        `${action} reason=${v.status} identity=${safeField(id)} identity_reason=${d.identity.reason}${rule} ${env} ${timing}${other}`,
        dns.length ? `dns error (${dns.join(', ')}): identity fell back to ${safeField(id)}` : null,
      )
    }
  }
}

export function secs(ms: number): number {
  return Math.round(ms / 1000)
}

/**
 * How haraka-plugin-watch shows a recipient's decision. It places a plugin by its name's phase
 * prefix (rcpt_to.* under RCPT TO) and colours an unknown plugin's cell by its result: pass
 * green, fail red, err yellow, anything else grey; the tooltip is human_html.
 */
export const WATCH_NAME = 'rcpt_to.smart-greylist'

export function watchResult(d: RecipientDecision, config: Config, line: string): Record<string, string> {
  const cell = (outcome: 'pass' | 'fail' | 'skip' | 'err', what: string): Record<string, string> => ({ [outcome]: what, human_html: line })
  switch (d.kind) {
    case 'failed':
      return cell('err', d.cause)
    case 'whitelist':
      return cell('pass', `whitelist:${d.what}`)
    case 'skip':
      return cell('skip', d.reason)
    case 'trusted':
    case 'correspondent':
      return cell('skip', d.kind)
    case 'tuple':
      if (answer(d, config) === 'defer') return cell('fail', `greylisted:${d.verdict.status}`)
      // Shadow mode's would-be deferrals and postponed ones were accepted, but not passed.
      return d.verdict.action === 'pass' ? cell('pass', `greylist:${d.verdict.status}`) : cell('skip', d.postponed ? 'postponed' : 'shadow')
  }
}
