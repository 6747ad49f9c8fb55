// Host names and the label-aware name patterns of the whitelist. A NameMatcher answers in
// O(number of labels of the name), whatever the number of patterns it holds.

const LABEL = /^(?!-)[a-z0-9_-]{1,63}$/

/** Lower-cased, trailing dot removed; null when it is not a syntactically valid DNS name. */
export function normaliseHost(name: string | null | undefined): string | null {
  if (!name) return null
  const s = name.trim().toLowerCase().replace(/\.$/, '')
  if (!s || s.length > 253) return null
  const labels = s.split('.')
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return null
  return s
}

export class PatternError extends Error {}

/**
 * Accepted forms: `mail.example.com` (exact); `*.example.com` (one or more labels before
 * example.com); `*example.com` (Plesk's form, read as `*.example.com`); `mail-*.example.com`
 * (`*` inside the leftmost label matches within that label only).
 */
export class NameMatcher<T> {
  private readonly exact = new Map<string, T>()
  private readonly suffixes = new Map<string, T>()
  private readonly labelGlobs = new Map<string, { parts: readonly string[]; value: T }[]>()

  add(pattern: string, value: T): void {
    let p = pattern.trim().toLowerCase().replace(/\.$/, '')
    if (p.startsWith('*') && !p.startsWith('*.') && !p.slice(1).includes('*')) p = `*.${p.slice(1)}`
    if (p.startsWith('*.')) {
      const suffix = normaliseHost(p.slice(2))
      if (!suffix) throw new PatternError(`"${pattern}": not a valid name after "*."`)
      if (!this.suffixes.has(suffix)) this.suffixes.set(suffix, value)
      return
    }
    const dot = p.indexOf('.')
    const first = dot < 0 ? p : p.slice(0, dot)
    const rest = dot < 0 ? '' : p.slice(dot + 1)
    if (rest.includes('*')) {
      throw new PatternError(`"${pattern}": "*" may only stand in the leftmost label`)
    }
    if (first.includes('*')) {
      const suffix = normaliseHost(rest)
      if (!suffix || !/^[a-z0-9_*-]+$/.test(first) || /\*\*/.test(first)) {
        throw new PatternError(`"${pattern}": not a valid name pattern`)
      }
      const list = this.labelGlobs.get(suffix) ?? []
      list.push({ parts: first.split('*'), value })
      this.labelGlobs.set(suffix, list)
      return
    }
    const name = normaliseHost(p)
    if (!name) throw new PatternError(`"${pattern}": not a valid host name`)
    if (!this.exact.has(name)) this.exact.set(name, value)
  }

  match(name: string | null | undefined): T | undefined {
    const host = normaliseHost(name)
    if (!host) return undefined
    const exact = this.exact.get(host)
    if (exact !== undefined) return exact
    const labels = host.split('.')
    const parent = labels.slice(1).join('.')
    for (const g of this.labelGlobs.get(parent) ?? []) if (globMatch(g.parts, labels[0] ?? '')) return g.value
    for (let i = 1; i < labels.length; i++) {
      const hit = this.suffixes.get(labels.slice(i).join('.'))
      if (hit !== undefined) return hit
    }
    return undefined
  }
}

/**
 * Whether `s` matches the pattern whose literal pieces, split at each `*`, are `parts`. Fixed
 * first and last pieces, then each middle piece at its leftmost place: for `*`-only patterns the
 * leftmost choice is always right, so there is no backtracking and the time is linear in `s` for
 * a given pattern (a regular expression took 33 s for `*a*a*a*a*a*a*a*a*b` against 60 characters).
 */
export function globMatch(parts: readonly string[], s: string): boolean {
  const first = parts[0] ?? ''
  if (parts.length <= 1) return s === first
  const last = parts.at(-1) ?? ''
  if (s.length < first.length + last.length || !s.startsWith(first) || !s.endsWith(last)) return false
  const end = s.length - last.length
  let pos = first.length
  for (const part of parts.slice(1, -1)) {
    const at = s.indexOf(part, pos)
    if (at < 0 || at + part.length > end) return false
    pos = at + part.length
  }
  return true
}

/**
 * Envelope address patterns: `user@example.org`, `*@example.org` (or `@example.org`, or just
 * `example.org`), `*@*.example.org` (subdomains), `user@*` (that local part at any domain).
 */
export class AddressMatcher<T> {
  private readonly exact = new Map<string, T>()
  private readonly domains = new Map<string, T>()
  private readonly subdomains = new NameMatcher<T>()
  private readonly locals = new Map<string, T>()

  add(pattern: string, value: T): void {
    const p = pattern.trim().toLowerCase()
    const at = p.lastIndexOf('@')
    const local = at < 0 ? '*' : p.slice(0, at)
    const domain = at < 0 ? p : p.slice(at + 1)
    if (local === '' || local === '*') {
      if (domain === '*') throw new PatternError(`"${pattern}" would match every address`)
      if (domain.startsWith('*.')) return this.subdomains.add(domain, value)
      const d = normaliseHost(domain)
      if (!d) throw new PatternError(`"${pattern}": "${domain}" is not a valid domain`)
      if (!this.domains.has(d)) this.domains.set(d, value)
      return
    }
    if (local.includes('*') || /[\s<>]/.test(local)) {
      throw new PatternError(`"${pattern}": a local part is either "*" or written out in full`)
    }
    if (domain === '*') {
      if (!this.locals.has(local)) this.locals.set(local, value)
      return
    }
    const d = normaliseHost(domain)
    if (!d) throw new PatternError(`"${pattern}": "${domain}" is not a valid domain`)
    const key = `${local}@${d}`
    if (!this.exact.has(key)) this.exact.set(key, value)
  }

  match(address: string | null | undefined): T | undefined {
    if (!address) return undefined
    const a = address.trim().toLowerCase()
    const at = a.lastIndexOf('@')
    if (at <= 0) return undefined
    const local = a.slice(0, at)
    const domain = a.slice(at + 1).replace(/\.$/, '')
    return this.exact.get(`${local}@${domain}`) ?? this.domains.get(domain) ?? this.subdomains.match(domain) ?? this.locals.get(local)
  }
}
