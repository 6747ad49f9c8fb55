// Walking an SPF record over DNS: the record and those of its pass-qualified include: and
// redirect= targets, with a cap on lookups and loops refused. Used by `smart-greylist pools
// refresh` (a provider's ranges) and by the permissive-record guard (what a sender authorises).
import { parseSpfRecord, type SpfTerms } from '../core/spf-record'
import type { Resolver } from './dns'
import { withTimeout } from './timeout'

export type TxtResolver = Pick<Resolver, 'resolveTxt'>

export interface WalkResult {
  readonly ranges: string[]
  readonly ignored: string[]
  readonly lookups: number
  /** Every record reached, the root's first. */
  readonly records: SpfTerms[]
  /** The root record's text as published. */
  readonly rootText: string
}

/**
 * Follows the record of `root` and everything it includes. Any DNS failure rejects; so does
 * `deadline` once aborted: each lookup is bounded by it as well as by `timeoutMs`, and no lookup
 * starts after it, so a walk of many slow answers cannot outlast the work it belongs to.
 */
export async function walkSpf(
  root: string,
  resolver: TxtResolver,
  opts: { maxLookups: number; timeoutMs: number; deadline?: AbortSignal },
): Promise<WalkResult> {
  const ranges = new Set<string>()
  const ignored: string[] = []
  const seen = new Set<string>()
  const records: SpfTerms[] = []
  let rootText = ''
  let lookups = 0
  const visit = async (name: string): Promise<void> => {
    const domain = name.toLowerCase().replace(/\.$/, '')
    if (seen.has(domain)) return
    seen.add(domain)
    if (++lookups > opts.maxLookups) throw new Error(`more than ${opts.maxLookups} lookups under ${root}`)
    opts.deadline?.throwIfAborted()
    const txt = await withTimeout(untilAborted(resolver.resolveTxt(domain), opts.deadline), opts.timeoutMs, `TXT ${domain}`)
    const found = txt.map((parts) => parts.join('')).filter((r) => /^v=spf1(\s|$)/i.test(r))
    const [record] = found
    if (found.length !== 1 || record === undefined) throw new Error(`${domain}: ${found.length} SPF records`)
    const terms = parseSpfRecord(record)
    if (!records.length) rootText = record
    records.push(terms)
    terms.ranges.forEach((r) => ranges.add(r))
    ignored.push(...terms.ignored.map((t) => `${domain}: ${t}`))
    for (const inc of terms.includes) await visit(inc)
    if (terms.redirect) await visit(terms.redirect)
  }
  await visit(root)
  return { ranges: [...ranges], ignored, lookups, records, rootText }
}

/** `work`, or its signal's reason once that is aborted first. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work
  let onAbort = (): void => undefined
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort))
}
