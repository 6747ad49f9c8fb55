// The shipped data file of large senders (smart-greylist.providers): per provider its outbound
// ranges, rDNS suffixes, the SPF record they are published in, and whether its mail skips
// greylisting or is only grouped into one identity (`pool:<id>`). Parsing is pure; lookups go
// through a CIDR table and a suffix map, so their cost does not grow with the data.
import { NameMatcher } from './names'
import { CidrSet, parseCidr, type ParsedIp } from './ip'
import type { LineError } from './whitelist'

export type ProviderAction = 'skip' | 'group' | 'off'
const ACTIONS: readonly ProviderAction[] = ['skip', 'group', 'off']

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
  readonly origin: string
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
  origin: string
}

export function parseProviders(lines: readonly string[], source: string): ParsedProviders {
  const providers: Provider[] = []
  const errors: LineError[] = []
  let cur: ProviderDraft | null = null
  const flush = (): void => {
    if (cur) providers.push(cur)
    cur = null
  }
  lines.forEach((raw, i) => {
    const origin = `${source}:${i + 1}`
    const text = raw.replace(/(^|\s)#.*$/, '').trim()
    if (!text) return
    const section = /^\[([^\]]+)\]$/.exec(text)
    if (section) {
      flush()
      const id = section[1].trim().toLowerCase()
      if (!ID.test(id) || providers.some((p) => p.id === id)) {
        errors.push({ origin, text, message: `provider id must be unique, a-z 0-9 _ - (up to 32)` })
        return
      }
      cur = { id, name: id, source: '', spf: [], action: 'skip', hosts: [], ips: [], origin }
      return
    }
    const kv = /^([a-z]+)\s*=\s*(.+)$/.exec(text)
    if (!kv || !cur) {
      errors.push({ origin, text, message: cur ? 'expected "key = value"' : 'expected a [provider] section first' })
      return
    }
    const [, key, value] = kv
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
        if (!(ACTIONS as readonly string[]).includes(value)) {
          errors.push({ origin, text, message: `action is one of ${ACTIONS.join(', ')}` })
          return
        }
        cur.action = value as ProviderAction
        return
      case 'host':
        try {
          new NameMatcher().add(value, true)
          cur.hosts.push(value.toLowerCase())
        } catch (err) {
          errors.push({ origin, text, message: (err as Error).message })
        }
        return
      case 'ip':
        if (!parseCidr(value)) errors.push({ origin, text, message: 'not an IP address or CIDR range' })
        else cur.ips.push(value)
        return
      default:
        errors.push({ origin, text, message: `unknown key "${key}" (name, source, spf, action, host, ip)` })
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
    if (byIp) return { provider: byIp, action: this.actions.get(byIp.id)!, via: 'ip' }
    for (const n of confirmedNames) {
      const p = this.byHost.match(n)
      if (p) return { provider: p, action: this.actions.get(p.id)!, via: 'host' }
    }
    return undefined
  }
}

/**
 * Replaces the `ip =` lines of the named providers with fresh ranges, leaving every other line
 * (comments, names, sources, hosts, other providers) as it was. Ranges are written sorted, one
 * per line, where the provider's first `ip =` line stood (or after its last line).
 */
export function rewriteRanges(lines: readonly string[], fresh: ReadonlyMap<string, readonly string[]>): string[] {
  const out: string[] = []
  let current: string | null = null
  let written = false
  const emit = (): void => {
    if (current && fresh.has(current) && !written) {
      for (const r of sortRanges(fresh.get(current)!)) out.push(`ip = ${r}`)
      written = true
    }
  }
  for (const line of lines) {
    const section = /^\s*\[([^\]]+)\]\s*$/.exec(line)
    if (section) {
      // Before the next section: trailing blank/comment lines stay with the next provider.
      const tail: string[] = []
      while (out.length && /^\s*(#.*)?$/.test(out[out.length - 1])) tail.unshift(out.pop()!)
      emit()
      out.push(...tail)
      current = section[1].trim().toLowerCase()
      written = false
      out.push(line)
      continue
    }
    if (current && fresh.has(current) && /^\s*ip\s*=/.test(line)) {
      emit()
      continue
    }
    out.push(line)
  }
  const tail: string[] = []
  while (out.length && /^\s*(#.*)?$/.test(out[out.length - 1])) tail.unshift(out.pop()!)
  emit()
  out.push(...tail)
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

