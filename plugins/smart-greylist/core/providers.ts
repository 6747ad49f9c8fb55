// The shipped data file of large senders (smart-greylist.providers): per provider its outbound
// ranges, rDNS suffixes, the SPF record they are published in, and whether its mail skips
// greylisting or is only grouped into one identity (`pool:<id>`). Parsing is pure; lookups go
// through a CIDR table and a suffix map, so their cost does not grow with the data.
import { NameMatcher } from './names'
import { CidrSet, parseCidr, type ParsedIp } from './ip'
import { PROVIDER_ACTIONS as ACTIONS, type ProviderAction } from './settings'
import { parseListFile, type LineError } from './list-file'

export type { ProviderAction }
type ProviderKey = 'name' | 'source' | 'spf' | 'action' | 'host' | 'ip' | 'updated'

export interface Provider {
  readonly id: string
  readonly name: string
  readonly source: string
  /** SPF record names whose include chains publish the ranges (for `pools refresh`). */
  readonly spf: readonly string[]
  /** What the file suggests; smart-greylist.ini [providers] can override it. */
  readonly action: ProviderAction
  readonly hosts: readonly string[]
  readonly ips: readonly string[]
  /** The day (YYYY-MM-DD) the ranges were taken; decides between shipped and refreshed ranges. */
  readonly updated: string | null
  /** Where the ranges come from (file:line of the section). */
  readonly origin: string
  /** The keys its section sets (a .local section overrides only these). */
  readonly declared: ReadonlySet<ProviderKey>
}

export interface ParsedProviders {
  readonly providers: Provider[]
  readonly errors: LineError[]
}

const ID = /^[a-z0-9][a-z0-9_-]{0,31}$/

interface ProviderDraft {
  id: string
  name: string
  source: string
  spf: string[]
  action: ProviderAction
  hosts: string[]
  ips: string[]
  updated: string | null
  origin: string
  declared: Set<ProviderKey>
}

export function parseProviders(lines: readonly string[], source: string): ParsedProviders {
  const providers: Provider[] = []
  let cur: ProviderDraft | null = null
  const flush = (): void => {
    if (cur) providers.push(cur)
    cur = null
  }
  // Each line sets a key of the section it is in, or starts one: nothing of its own to keep.
  const { errors } = parseListFile(lines, source, (text, origin): LineError | undefined => {
    const fail = (message: string): LineError => ({ origin, text, message })
    const section = /^\[([^\]]+)\]$/.exec(text)
    if (section) {
      flush()
      const id = (section[1] ?? '').trim().toLowerCase()
      if (!ID.test(id) || providers.some((p) => p.id === id)) return fail(`provider id must be unique, a-z 0-9 _ - (up to 32)`)
      cur = { id, name: id, source: '', spf: [], action: 'skip', hosts: [], ips: [], updated: null, origin, declared: new Set() }
      return
    }
    const kv = /^([a-z]+)\s*=\s*(.+)$/.exec(text)
    if (!kv || !cur) return fail(cur ? 'expected "key = value"' : 'expected a [provider] section first')
    const [, key = '', value = ''] = kv
    const declared = cur.declared
    if (['name', 'source', 'spf', 'action', 'host', 'ip', 'updated'].includes(key)) declared.add(key as ProviderKey)
    switch (key) {
      case 'name':
        cur.name = value
        return
      case 'source':
        cur.source = cur.source ? `${cur.source}; ${value}` : value
        return
      case 'spf':
        cur.spf.push(value.toLowerCase())
        return
      case 'action':
        if (!(ACTIONS as readonly string[]).includes(value)) return fail(`action is one of ${ACTIONS.join(', ')}`)
        cur.action = value as ProviderAction
        return
      case 'host':
        try {
          new NameMatcher().add(value, true)
          cur.hosts.push(value.toLowerCase())
        } catch (err) {
          return fail((err as Error).message)
        }
        return
      case 'ip':
        if (!parseCidr(value)) return fail('not an IP address or CIDR range')
        cur.ips.push(value)
        return
      case 'updated':
        if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return fail('updated is a day, YYYY-MM-DD')
        cur.updated = value
        return
      default:
        return fail(`unknown key "${key}" (name, source, spf, action, host, ip, updated)`)
    }
  })
  flush()
  return { providers, errors }
}

export interface ProviderHit {
  readonly provider: Provider
  readonly action: 'skip' | 'group'
  readonly via: 'ip' | 'host'
}

export class ProviderIndex {
  private readonly byIp = new CidrSet<Provider>()
  private readonly byHost = new NameMatcher<Provider>()
  private readonly actions = new Map<string, 'skip' | 'group'>()
  readonly ranges: number

  /** `actionOf` applies the admin's choices; providers it turns `off` are left out. */
  constructor(providers: readonly Provider[], actionOf: (p: Provider) => ProviderAction = (p) => p.action) {
    for (const p of providers) {
      const action = actionOf(p)
      if (action === 'off') continue
      this.actions.set(p.id, action)
      for (const range of p.ips) {
        const c = parseCidr(range)
        if (c) this.byIp.add(c.ip, c.prefix, p)
      }
      for (const h of p.hosts) this.byHost.add(h, p)
    }
    this.ranges = this.byIp.size
  }

  actionOf(id: string): 'skip' | 'group' | undefined {
    return this.actions.get(id)
  }

  /** The provider whose ranges hold `ip`, or whose rDNS suffix a confirmed name has. */
  lookup(ip: ParsedIp | null, confirmedNames: readonly string[] = []): ProviderHit | undefined {
    const byIp = ip ? this.byIp.lookup(ip) : undefined
    // Only providers that are not off are indexed, each with its action.
    const byIpAction = byIp && this.actions.get(byIp.id)
    if (byIp && byIpAction) return { provider: byIp, action: byIpAction, via: 'ip' }
    for (const n of confirmedNames) {
      const p = this.byHost.match(n)
      const action = p && this.actions.get(p.id)
      if (p && action) return { provider: p, action, via: 'host' }
    }
    return undefined
  }
}

/**
 * The shipped providers with the admin's file read over them (postgrey's `.local` model): a
 * section of the local file sets only the keys it names, a new id adds a provider. Ranges a
 * refresh wrote (`updated =`) give way to shipped ranges of a later day, so a package upgrade
 * still delivers new provider data; ranges written by hand (no `updated`) always win.
 */
export function mergeProviders(shipped: readonly Provider[], local: readonly Provider[]): { providers: Provider[]; notes: string[] } {
  const byId = new Map(shipped.map((p) => [p.id, p]))
  const notes: string[] = []
  for (const l of local) {
    const base = byId.get(l.id)
    if (!base) {
      byId.set(l.id, l)
      continue
    }
    const merged: ProviderDraft = { ...base, spf: [...base.spf], hosts: [...base.hosts], ips: [...base.ips], declared: new Set(base.declared) }
    for (const key of l.declared) {
      switch (key) {
        case 'ip':
          if (l.updated && base.updated && l.updated < base.updated) {
            notes.push(`${l.id}: the shipped ranges (${base.updated}) are newer than those of ${l.origin} (${l.updated}); using the shipped ones`)
            continue
          }
          merged.ips = [...l.ips]
          merged.updated = l.updated
          merged.origin = l.origin
          continue
        case 'updated':
          continue // goes with the ranges
        case 'host':
          merged.hosts = [...l.hosts]
          continue
        case 'spf':
          merged.spf = [...l.spf]
          continue
        case 'name':
          merged.name = l.name
          continue
        case 'source':
          merged.source = l.source
          continue
        case 'action':
          merged.action = l.action
      }
    }
    byId.set(l.id, merged)
  }
  return { providers: [...byId.values()], notes }
}

/**
 * Writes fresh ranges into the lines of a providers file: in each named provider's section the
 * `ip =` and `updated =` lines are replaced (where its first one stood, or after its last line),
 * a provider without a section gets one at the end, and every other line is kept as it was.
 */
export function writeRanges(lines: readonly string[], fresh: ReadonlyMap<string, readonly string[]>, day: string): string[] {
  const out: string[] = []
  const seen = new Set<string>()
  let current: string | null = null
  let written = false
  const block = (id: string): string[] => [`updated = ${day}`, ...sortRanges(fresh.get(id) ?? []).map((r) => `ip = ${r}`)]
  const emit = (): void => {
    if (current && fresh.has(current) && !written) {
      out.push(...block(current))
      written = true
    }
  }
  // Trailing blank and comment lines stay with the next section.
  const closeSection = (): void => {
    const tail: string[] = []
    for (let last = out.at(-1); last !== undefined && /^\s*(#.*)?$/.test(last); last = out.at(-1)) tail.unshift(out.pop() ?? '')
    emit()
    out.push(...tail)
  }
  for (const line of lines) {
    const section = /^\s*\[([^\]]+)\]\s*$/.exec(line)
    if (section) {
      closeSection()
      current = (section[1] ?? '').trim().toLowerCase()
      seen.add(current)
      written = false
      out.push(line)
      continue
    }
    if (current && fresh.has(current) && /^\s*(ip|updated)\s*=/.test(line)) {
      emit()
      continue
    }
    out.push(line)
  }
  closeSection()
  for (const id of fresh.keys()) {
    if (seen.has(id)) continue
    if ((out.at(-1) ?? '').trim() !== '') out.push('')
    out.push(`[${id}]`, ...block(id))
  }
  return out
}

export function sortRanges(ranges: readonly string[]): string[] {
  const key = (r: string): string => {
    const c = parseCidr(r)
    if (!c) return `z${r}`
    const fam = c.ip.kind() === 'ipv4' ? '4' : '6'
    return fam + Buffer.from(c.ip.toByteArray()).toString('hex').padStart(32, '0') + String(c.prefix).padStart(3, '0')
  }
  return [...new Set(ranges)].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
}
