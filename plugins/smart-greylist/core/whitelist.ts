// The typed whitelist files: one `kind:pattern` a line, `#` comments. Parsing is pure and
// reports bad lines with file and line number while the good ones still load.
import { parseListFile, type LineError } from './list-file'
import { AddressMatcher, NameMatcher, PatternError } from './names'
import { CidrSet, parseCidr, type ParsedIp } from './ip'

export const ENTRY_KINDS = ['host', 'helo', 'ip', 'from', 'to'] as const
export type EntryKind = (typeof ENTRY_KINDS)[number]

export type { LineError }

export interface Entry {
  readonly kind: EntryKind
  readonly pattern: string
  /** Where it was written: `smart-greylist.whitelist:12`. */
  readonly origin: string
}

export interface ParsedList {
  readonly entries: Entry[]
  readonly errors: LineError[]
}

/** Parses one file's lines; `source` names it in origins and errors. */
export function parseWhitelist(lines: readonly string[], source: string, isPublicSuffix?: (name: string) => boolean): ParsedList {
  const { items, errors } = parseListFile(lines, source, (text, origin) => parseEntry(text, origin, isPublicSuffix))
  return { entries: items, errors }
}

/**
 * One spelling per entry, for finding duplicates: lower case, no trailing dot, Plesk's
 * `*example.com` as `*.example.com`, ranges in canonical form.
 */
export function canonicalEntry(e: Pick<Entry, 'kind' | 'pattern'>): string {
  let p = e.pattern.trim().toLowerCase().replace(/\.$/, '')
  if ((e.kind === 'host' || e.kind === 'helo') && /^\*[^.*]/.test(p) && !p.slice(1).includes('*')) p = `*.${p.slice(1)}`
  if (e.kind === 'ip') {
    const c = parseCidr(p)
    if (c) p = `${c.ip.toString()}/${c.prefix}`
  }
  if ((e.kind === 'from' || e.kind === 'to') && !p.includes('@')) p = `*@${p}`
  if ((e.kind === 'from' || e.kind === 'to') && p.startsWith('@')) p = `*${p}`
  return `${e.kind}:${p}`
}

/** Shortest ranges an `ip:` entry may name: shorter ones cover whole regions of the Internet. */
export const MIN_PREFIX = { ipv4: 8, ipv6: 16 } as const

/**
 * Why an entry would let far more than one sender skip greylisting (a range shorter than
 * MIN_PREFIX, a name pattern under a public suffix, `from:user@*`), or null when it would not.
 * `isPublicSuffix` is haraka-tld's (injected, so this stays pure).
 */
export function tooBroad(e: Pick<Entry, 'kind' | 'pattern'>, isPublicSuffix: (name: string) => boolean): string | null {
  const p = e.pattern.trim().toLowerCase().replace(/\.$/, '')
  if (e.kind === 'ip') {
    const c = parseCidr(p)
    const min = c ? MIN_PREFIX[c.ip.kind()] : 0
    return c && c.prefix < min ? `/${c.prefix} covers too much of the Internet (at least /${min} for ${c.ip.kind() === 'ipv4' ? 'IPv4' : 'IPv6'})` : null
  }
  const domain = e.kind === 'host' || e.kind === 'helo' ? p : p.slice(p.lastIndexOf('@') + 1)
  if (e.kind === 'from' && domain === '*' && p !== '*@*') return `"${e.pattern}" would let that local part through from any domain`
  if (domain === '*' && e.kind === 'to') return null
  // What the pattern fixes: the labels right of its last "*".
  const fixed = domain.slice(domain.lastIndexOf('*') + 1).replace(/^\./, '')
  if (!fixed || isPublicSuffix(fixed)) return `"${e.pattern}" matches every name under the public suffix "${fixed || '*'}"`
  return null
}

/** Host bits set below the prefix (`ip:40.107.1.0/16`): almost always a typo for another range. */
export function hostBitsSet(e: Pick<Entry, 'kind' | 'pattern'>): boolean {
  if (e.kind !== 'ip') return false
  const c = parseCidr(e.pattern)
  return !!c && !CidrSet.isNetworkAddress(c.ip, c.prefix)
}

/** The listed `ip:` entry whose range holds all of `e`'s range, if any. */
export function coveringRange(e: Pick<Entry, 'kind' | 'pattern'>, listed: readonly Entry[]): Entry | undefined {
  const inner = e.kind === 'ip' ? parseCidr(e.pattern) : null
  if (!inner) return undefined
  const set = new CidrSet<Entry>()
  for (const l of listed) {
    const c = l.kind === 'ip' ? parseCidr(l.pattern) : null
    if (c && c.ip.kind() === inner.ip.kind() && c.prefix <= inner.prefix) set.add(c.ip, c.prefix, l)
  }
  return set.lookup(inner.ip)
}

/** Parses and validates one `kind:pattern`, the same way the files are read. */
/** Without `isPublicSuffix`, breadth is not judged (reading a file to remove one of its lines). */
export function parseEntry(text: string, origin = 'entry', isPublicSuffix?: (name: string) => boolean): Entry | LineError {
  const m = /^([a-z]+):\s*(\S+)$/i.exec(text.trim())
  if (!m) {
    return { origin, text, message: `expected "kind:pattern" with kind one of ${ENTRY_KINDS.join(', ')}` }
  }
  const kind = (m[1] ?? '').toLowerCase() as EntryKind
  if (!ENTRY_KINDS.includes(kind)) {
    return { origin, text, message: `unknown kind "${m[1]}"; expected one of ${ENTRY_KINDS.join(', ')}` }
  }
  const entry: Entry = { kind, pattern: m[2] ?? '', origin }
  const broad = isPublicSuffix ? tooBroad(entry, isPublicSuffix) : null
  if (broad) return { origin, text, message: broad }
  try {
    new Whitelist([entry]) // the compiler is the validator: one set of rules
  } catch (err) {
    return { origin, text, message: err instanceof Error ? err.message : String(err) }
  }
  return entry
}

export interface WhitelistQuery {
  readonly ip?: ParsedIp | null
  /** Forward-confirmed rDNS names only. */
  readonly fcrdnsNames?: readonly string[]
  /** HELO name, given only when the connection backs it (see config whitelist.verify_helo). */
  readonly helo?: string | null
  /** Envelope sender, given only when the connection backs it (whitelist.verify_from). */
  readonly from?: string | null
}

/** Compiled lists: hash maps, suffix maps and a CIDR table, so lookups do not scan entries. */
export class Whitelist {
  private readonly host = new NameMatcher<Entry>()
  private readonly helo = new NameMatcher<Entry>()
  private readonly ip = new CidrSet<Entry>()
  private readonly from = new AddressMatcher<Entry>()
  private readonly to = new AddressMatcher<Entry>()
  readonly size: number

  constructor(entries: readonly Entry[]) {
    for (const e of entries) {
      switch (e.kind) {
        case 'host':
          this.host.add(e.pattern, e)
          break
        case 'helo':
          this.helo.add(e.pattern, e)
          break
        case 'ip': {
          const cidr = parseCidr(e.pattern)
          if (!cidr) throw new PatternError(`"${e.pattern}": not an IP address or CIDR range`)
          this.ip.add(cidr.ip, cidr.prefix, e)
          break
        }
        case 'from':
          this.from.add(e.pattern, e)
          break
        case 'to':
          this.to.add(e.pattern, e)
          break
      }
    }
    this.size = entries.length
  }

  /** The first entry that lets this client and sender skip greylisting. */
  matchSender(q: WhitelistQuery): Entry | undefined {
    if (q.ip) {
      const hit = this.ip.lookup(q.ip)
      if (hit) return hit
    }
    for (const name of q.fcrdnsNames ?? []) {
      const hit = this.host.match(name)
      if (hit) return hit
    }
    return this.helo.match(q.helo) ?? this.from.match(q.from)
  }

  /** A recipient that opted out of greylisting. */
  matchRecipient(rcpt: string): Entry | undefined {
    return this.to.match(rcpt)
  }
}

/** Compiles several parsed files into one list, in order: the admin's file first, so its entry is the one reported. */
export function compileWhitelist(lists: readonly ParsedList[]): Whitelist {
  return new Whitelist(lists.flatMap((l) => l.entries))
}
