// The X-Greylist header: why the message passed and how long it waited, in one line of printable
// ASCII. Pure: the plugin adds it at the end of data ([main] header).
import { identityField } from './identity'
import type { MessageDecision } from './message'
import { secs, type RecipientDecision } from './recipient'
import { evidenceText } from './select'
import { safeField } from './text'

/**
 * One header for the message: the longest delay, else the whitelist entry, else why it passed.
 * Names the client chose (the identity's value, the sender's domain, its PTR in the evidence)
 * go through safeField: printable ASCII only, so they can neither fold the header nor fake a
 * field of it.
 */
export function headerValue(passed: readonly RecipientDecision[], message?: MessageDecision): string | null {
  if (message?.verdict.status === 'retry') {
    return `delayed ${secs(message.verdict.waitedMs)} seconds by smart-greylist (its message, retried); identity=${identityField(message.identity)}`
  }
  const tuples = passed.filter((o): o is Extract<RecipientDecision, { kind: 'tuple' }> => o.kind === 'tuple')
  const delayed = tuples.filter((o) => o.verdict.status === 'retry').sort((a, b) => b.verdict.waitedMs - a.verdict.waitedMs)[0]
  if (delayed) return `delayed ${secs(delayed.verdict.waitedMs)} seconds by smart-greylist; identity=${identityField(delayed.identity)}`
  const listed = passed.find((o): o is Extract<RecipientDecision, { kind: 'whitelist' }> => o.kind === 'whitelist')
  if (listed) return `passed by smart-greylist; whitelist entry ${safeField(listed.entry)} (${listed.origin})`
  const known = passed.find((o): o is Extract<RecipientDecision, { kind: 'correspondent' }> => o.kind === 'correspondent')
  if (known) return `passed by smart-greylist; correspondent ${safeField(known.domain)}`
  const trusted = passed.find((o): o is Extract<RecipientDecision, { kind: 'trusted' }> => o.kind === 'trusted')
  if (trusted) return `passed by smart-greylist; trusted: ${evidenceText(trusted.evidence)}`
  const first = tuples[0]
  if (!first) return null
  const why =
    // Accepted although deferred: shadow mode.
    first.verdict.action === 'defer' ? 'shadow mode, would have been deferred' : first.verdict.status === 'awl' ? 'auto-whitelisted' : 'known sender'
  return `passed by smart-greylist; ${why}; identity=${identityField(first.identity)}`
}
