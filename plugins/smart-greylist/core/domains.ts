// Per-domain policy: `smart-greylist.domains`, one recipient domain (or `*.domain`) a line with
// the settings that differ for it, `#` comments, bad lines reported with file and line while the
// good ones load (the whitelist's conventions). Pure: the public-suffix check is passed in.
//
//   example.org      off                          never greylisted
//   *.example.net    delay=60                     a shorter delay for every subdomain
//   shop.example     policy=suspicious mode=shadow
import { NameMatcher, normaliseHost, PatternError } from './names'
import { SCHEMA, type Config, type Mode } from './settings'
import { parseListFile, type LineError } from './list-file'

type Policy = Config['select']['policy']

/** What a rule changes for its domain's recipients; absent keys keep `smart-greylist.ini`'s. */
export interface DomainSettings {
  readonly off?: true
  readonly delay?: number
  readonly policy?: Policy
  readonly mode?: Mode
}

export interface DomainRule {
  readonly pattern: string
  readonly settings: DomainSettings
  /** Where it was written: `smart-greylist.domains:3`. */
  readonly origin: string
}

export interface ParsedDomains {
  readonly rules: DomainRule[]
  readonly errors: LineError[]
}

const DELAY = SCHEMA.main.keys.delay
const POLICIES: readonly string[] = SCHEMA.select.keys.policy.values
const MODES: readonly string[] = SCHEMA.main.keys.mode.values
const KEYS = 'off, delay=N, policy=all|suspicious, mode=enforce|shadow'

/** Parses one file's lines; `source` names it in origins and errors. */
export function parseDomains(lines: readonly string[], source: string, isPublicSuffix?: (name: string) => boolean): ParsedDomains {
  const seen = new Map<string, string>()
  const { items, errors } = parseListFile(lines, source, (text, origin): DomainRule | LineError => {
    const r = parseRule(text, origin, isPublicSuffix)
    if ('message' in r) return r
    const first = seen.get(canonicalPattern(r.pattern))
    if (first) return { origin, text, message: `${r.pattern} has a rule already (${first})` }
    seen.set(canonicalPattern(r.pattern), origin)
    return r
  })
  return { rules: items, errors }
}

function canonicalPattern(p: string): string {
  return p.toLowerCase().replace(/\.$/, '')
}

function parseRule(text: string, origin: string, isPublicSuffix?: (name: string) => boolean): DomainRule | LineError {
  const [pattern = '', ...words] = text.split(/\s+/)
  const fail = (message: string): LineError => ({ origin, text, message })
  if (!words.length) return fail(`expected "domain settings" with settings among ${KEYS}`)
  const domain = pattern.startsWith('*.') ? pattern.slice(2) : pattern
  if (!normaliseHost(domain) || domain.includes('*')) return fail(`"${pattern}" is not a domain or *.domain`)
  if (isPublicSuffix?.(canonicalPattern(domain))) return fail(`"${pattern}" covers a public suffix: every domain under it`)
  try {
    new NameMatcher().add(pattern, true)
  } catch (err) {
    return fail(err instanceof PatternError ? err.message : String(err))
  }
  const settings: { off?: true; delay?: number; policy?: Policy; mode?: Mode } = {}
  for (const w of words) {
    const [key = '', value, extra] = w.toLowerCase().split('=')
    if (extra !== undefined) return fail(`"${w}" is not key=value`)
    if (key in settings) return fail(`${key} is given twice`)
    if (key === 'off' && value === undefined) settings.off = true
    else if (key === 'delay' && value !== undefined) {
      const n = /^\d{1,9}$/.test(value) ? Number(value) : NaN
      if (!(n >= DELAY.min && n <= DELAY.max)) return fail(`delay is a whole number of seconds from ${DELAY.min} to ${DELAY.max}`)
      settings.delay = n
    } else if (key === 'policy' && value !== undefined) {
      if (!POLICIES.includes(value)) return fail(`policy is one of ${POLICIES.join(', ')}`)
      settings.policy = value
    } else if (key === 'mode' && value !== undefined) {
      if (!MODES.includes(value)) return fail(`mode is one of ${MODES.join(', ')}`)
      settings.mode = value
    } else return fail(`unknown setting "${w}"; expected ${KEYS}`)
  }
  if (settings.off && words.length > 1) return fail('off takes no other settings: the domain is not greylisted at all')
  return { pattern, settings, origin }
}

/** Compiled rules: the most specific pattern wins (exact, then the longest `*.` suffix). */
export class DomainPolicies {
  private readonly matcher = new NameMatcher<DomainRule>()
  readonly size: number

  constructor(rules: readonly DomainRule[]) {
    for (const r of rules) this.matcher.add(r.pattern, r)
    this.size = rules.length
  }

  /** The rule for a recipient's domain, if any. */
  ruleFor(domain: string | null): DomainRule | undefined {
    return domain ? this.matcher.match(domain) : undefined
  }
}

/** Settings with a rule's changes applied, for one recipient. */
export function withRule(config: Config, rule: DomainRule | undefined): Config {
  const s = rule?.settings
  if (!s || (s.delay === undefined && s.policy === undefined && s.mode === undefined)) return config
  return {
    ...config,
    main: { ...config.main, ...(s.delay === undefined ? {} : { delay: s.delay }), ...(s.mode === undefined ? {} : { mode: s.mode }) },
    select: { ...config.select, ...(s.policy === undefined ? {} : { policy: s.policy }) },
  }
}

/** A rule as its line says it, for logs and `check`: `shop.example policy=suspicious mode=shadow`. */
export function ruleText(r: DomainRule): string {
  const s = r.settings
  const words = s.off
    ? ['off']
    : [s.delay === undefined ? '' : `delay=${s.delay}`, s.policy ? `policy=${s.policy}` : '', s.mode ? `mode=${s.mode}` : ''].filter(Boolean)
  return `${r.pattern} ${words.join(' ')}`
}
