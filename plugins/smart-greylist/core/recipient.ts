// A recipient's fate, as one union, and the pure steps that lead to it from an assessment:
// whether to ask about a correspondent, what [select] makes of the evidence, and how the tuple's
// verdict becomes the decision. The plugin records the union (results, log line, counters) and
// `smart-greylist check` prints it; both get it from adapters/recipient.ts, which runs these steps.
import type { Assessment, TupleAssessment } from './assess'
import type { Verdict } from './decision'
import { identityText, type Identity } from './identity'
import { evidenceText, isTrusted, type Evidence } from './select'
import type { Config } from './settings'
import { COUNTER, type AlsoLabel, type DeferLabel } from './stats'

export type RecipientDecision =
  | Exclude<Assessment, TupleAssessment>
  /** `wouldTrust`: [select] policy = suspicious would have accepted this first contact. */
  | { readonly kind: 'tuple'; readonly identity: Identity; readonly verdict: Verdict; readonly wouldTrust: boolean; readonly evidence: Evidence }
  /** [select] policy = suspicious accepted it on its evidence; the tuple is recorded all the same. */
  | { readonly kind: 'trusted'; readonly identity: Identity; readonly verdict: Verdict; readonly evidence: Evidence }
  /** A local mailbox wrote to the sender's (authenticated) domain. */
  | { readonly kind: 'correspondent'; readonly identity: Identity; readonly domain: string }
  /** The tuple's state could not be read or written: `[main] on_error` answers. */
  | { readonly kind: 'failed'; readonly identity: Identity; readonly cause: string; readonly message: string }

export type DecisionKind = RecipientDecision['kind']

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
  if (plan.accept) return { kind: 'trusted', identity: a.identity, verdict, evidence: a.evidence }
  return { kind: 'tuple', identity: a.identity, verdict, wouldTrust: plan.trusted, evidence: a.evidence }
}

/** Whether greylisting defers this recipient (before shadow mode or `on_error` is applied). */
export function defers(d: RecipientDecision): boolean {
  return d.kind === 'tuple' && d.verdict.action === 'defer'
}

/**
 * What the client is answered: `[main] mode = shadow` never defers; a failure answers as
 * `[main] on_error` says.
 */
export function answer(d: RecipientDecision, config: Config): 'accept' | 'defer' {
  if (config.main.mode === 'shadow') return 'accept'
  if (d.kind === 'failed') return config.main.on_error === 'defer' ? 'defer' : 'accept'
  return defers(d) ? 'defer' : 'accept'
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
 * The decision as the plugin records it. `envelope` is the addresses as received; `shadow` is
 * `[main] mode = shadow`; `onError` is `[main] on_error` (for failures).
 */
export function decisionRecord(d: RecipientDecision, envelope: { from: string; to: string }, shadow: boolean, onError: string): DecisionRecord {
  const env = `from=<${envelope.from}> to=<${envelope.to}>`
  const rec = (result: Record<string, unknown>, line: string, dnsError: string | null = null): DecisionRecord => ({ result, line, dnsError })
  switch (d.kind) {
    case 'skip':
      return rec({ skip: d.reason }, `skip reason=${d.reason} ${env}`)
    case 'whitelist':
      return rec({ pass: `whitelist:${d.what}`, whitelist: d.entry }, `accept reason=whitelist:${d.what} entry="${d.entry}" (${d.origin}) ${env}`)
    case 'correspondent':
      return rec({ skip: 'correspondent', correspondent: d.domain }, `skip reason=correspondent domain=${d.domain} identity=${identityText(d.identity)} ${env}`)
    case 'failed':
      // The same words as any other internal failure of the plugin (index.ts).
      return rec(
        { err: `error (${d.cause}): ${d.message}; on_error=${onError}` },
        `error (${d.cause}): ${d.message}; on_error=${onError} identity=${identityText(d.identity)} ${env}`,
      )
    case 'trusted': {
      const evidence = evidenceText(d.evidence)
      const id = identityText(d.identity)
      return rec(
        { skip: 'trusted', evidence, identity: id, tuple: d.verdict.status },
        `skip reason=trusted evidence=${evidence} identity=${id} tuple=${d.verdict.status} ${env}`,
      )
    }
    case 'tuple': {
      const { verdict: v } = d
      const id = identityText(d.identity)
      const result = v.action === 'defer' ? { fail: `greylisted:${v.status}` } : { pass: `greylist:${v.status}` }
      const timing = `waited=${secs(v.waitedMs)}s` + (v.action === 'defer' ? ` retry_in=${secs(v.retryInMs)}s` : '')
      const action = v.action === 'defer' && shadow ? 'shadow-defer' : v.action
      // Under [select] policy = all: what suspicious would have done with this deferral.
      const other = d.wouldTrust && v.action === 'defer' ? ` suspicious_would=accept evidence=${evidenceText(d.evidence)}` : ''
      const dns = d.identity.reason.split(',').filter((r) => r === 'rdns_error' || r === 'spf_temperror')
      return rec(
        { ...result, identity: id, identity_reason: d.identity.reason, ...(shadow ? { shadow: true } : {}) },
        `${action} reason=${v.status} identity=${id} identity_reason=${d.identity.reason} ${env} ${timing}${other}`,
        dns.length ? `dns error (${dns.join(', ')}): identity fell back to ${id}` : null,
      )
    }
  }
}

export function secs(ms: number): number {
  return Math.round(ms / 1000)
}
