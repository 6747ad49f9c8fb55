// Reading a provider's outbound ranges from its published SPF record: ip4/ip6 mechanisms, and
// include: / redirect= chains followed over DNS, with a cap on lookups and loops refused. Used by
// `smart-greylist pools refresh`; the record parser is pure.
import { parseCidr } from '../core/ip'
import { withTimeout } from './timeout'

export interface SpfTerms {
  readonly ranges: string[]
  readonly includes: string[]
  readonly redirect: string | null
  /** Mechanisms that name hosts rather than ranges (a, mx, ptr, exists): not followed. */
  readonly ignored: string[]
}

/** Splits one `v=spf1 …` record; only pass-qualified (+ or none) ip mechanisms are ranges. */
export function parseSpfRecord(record: string): SpfTerms {
  const terms = record.trim().split(/\s+/)
  if (terms[0]?.toLowerCase() !== 'v=spf1') throw new Error(`not an SPF record: ${record.slice(0, 60)}`)
  const out = { ranges: [] as string[], includes: [] as string[], redirect: null as string | null, ignored: [] as string[] }
  for (const raw of terms.slice(1)) {
    const t = raw.toLowerCase()
    const qualified = /^[-~?]/.test(t)
    const term = t.replace(/^[-+~?]/, '')
    const [mech, ...rest] = term.split(':')
    const arg = rest.join(':')
    if ((mech === 'ip4' || mech === 'ip6') && arg) {
      if (qualified) continue
      const c = parseCidr(arg)
      if (!c) throw new Error(`bad ${mech} in SPF record: ${arg}`)
      out.ranges.push(`${c.ip.toString()}/${c.prefix}`)
    } else if (mech === 'include' && arg) {
      if (!qualified) out.includes.push(arg)
    } else if (term.startsWith('redirect=')) {
      out.redirect = term.slice('redirect='.length)
    } else if (['a', 'mx', 'ptr', 'exists'].includes(mech.split('/')[0])) {
      out.ignored.push(raw)
    }
  }
  return out
}

export interface TxtResolver {
  resolveTxt(name: string): Promise<string[][]>
}

export interface WalkResult {
  readonly ranges: string[]
  readonly ignored: string[]
  readonly lookups: number
}

/** Follows the record of `root` and everything it includes. Any DNS failure rejects. */
export async function walkSpf(root: string, resolver: TxtResolver, opts: { maxLookups: number; timeoutMs: number }): Promise<WalkResult> {
  const ranges = new Set<string>()
  const ignored: string[] = []
  const seen = new Set<string>()
  let lookups = 0
  const visit = async (name: string): Promise<void> => {
    const domain = name.toLowerCase().replace(/\.$/, '')
    if (seen.has(domain)) return
    seen.add(domain)
    if (++lookups > opts.maxLookups) throw new Error(`more than ${opts.maxLookups} lookups under ${root}`)
    const txt = await withTimeout(resolver.resolveTxt(domain), opts.timeoutMs, `TXT ${domain}`)
    const records = txt.map((parts) => parts.join('')).filter((r) => /^v=spf1(\s|$)/i.test(r))
    if (records.length !== 1) throw new Error(`${domain}: ${records.length} SPF records`)
    const terms = parseSpfRecord(records[0])
    terms.ranges.forEach((r) => ranges.add(r))
    ignored.push(...terms.ignored.map((t) => `${domain}: ${t}`))
    for (const inc of terms.includes) await visit(inc)
    if (terms.redirect) await visit(terms.redirect)
  }
  await visit(root)
  return { ranges: [...ranges], ignored, lookups }
}
