// SPF records as data: parsing one record's terms, and judging what a record with its includes
// authorises. A domain is trusted as a sender identity only when its record names a bounded set
// of hosts: a sender controls its own DNS, so a record that passes for any address (a
// pass-qualified `all`, very wide ranges, macros that expand the client's address or HELO) would
// let bots anywhere share one identity. Pure: the walk over DNS is adapters/spf-walk.ts.
import { parseCidr } from './ip'

export interface SpfTerms {
  /** Pass-qualified (+ or none) ip4:/ip6: ranges, canonical. */
  readonly ranges: string[]
  /** Pass-qualified include: targets. */
  readonly includes: string[]
  readonly redirect: string | null
  /** Mechanisms that name hosts rather than ranges (a, mx, ptr, exists), as written. */
  readonly ignored: string[]
  /** A pass-qualified `all`: every address passes. */
  readonly passAll: boolean
  /** Terms whose domain-spec depends on the client (its address, name or HELO: %{i} %{p} %{v} %{c} %{h}). */
  readonly clientMacros: string[]
  /** Pass-qualified a/mx terms with a CIDR length: each authorises a network around each address. */
  readonly hostNetworks: { readonly family: 'ipv4' | 'ipv6'; readonly prefix: number; readonly term: string }[]
}

const CLIENT_MACRO = /%\{[ipvch]/i

/** Splits one `v=spf1 …` record; throws on what is not an SPF record or a bad ip4:/ip6: range. */
export function parseSpfRecord(record: string): SpfTerms {
  const terms = record.trim().split(/\s+/)
  if (terms[0]?.toLowerCase() !== 'v=spf1') throw new Error(`not an SPF record: ${record.slice(0, 60)}`)
  const out: { -readonly [K in keyof SpfTerms]: SpfTerms[K] } = {
    ranges: [],
    includes: [],
    redirect: null,
    ignored: [],
    passAll: false,
    clientMacros: [],
    hostNetworks: [],
  }
  for (const raw of terms.slice(1)) {
    const t = raw.toLowerCase()
    const qualified = /^[-~?]/.test(t)
    const term = t.replace(/^[-+~?]/, '')
    const [mech = '', ...rest] = term.split(':')
    const arg = rest.join(':')
    if (!qualified && CLIENT_MACRO.test(term)) out.clientMacros.push(raw)
    if ((mech === 'ip4' || mech === 'ip6') && arg) {
      if (qualified) continue
      const c = parseCidr(arg)
      if (!c) throw new Error(`bad ${mech} in SPF record: ${arg}`)
      out.ranges.push(`${c.ip.toString()}/${c.prefix}`)
    } else if (mech === 'include' && arg) {
      if (!qualified) out.includes.push(arg)
    } else if (term.startsWith('redirect=')) {
      out.redirect = term.slice('redirect='.length)
    } else if (term === 'all') {
      if (!qualified) out.passAll = true
    } else if (['a', 'mx', 'ptr', 'exists'].includes(mech.split('/', 1)[0] ?? '')) {
      out.ignored.push(raw)
      const cidr = /^(?:a|mx)(?::[^/]*)?(?:\/(\d+))?(?:\/\/(\d+))?$/.exec(term)
      if (cidr && !qualified) {
        if (cidr[1] !== undefined) out.hostNetworks.push({ family: 'ipv4', prefix: Number(cidr[1]), term: raw })
        if (cidr[2] !== undefined) out.hostNetworks.push({ family: 'ipv6', prefix: Number(cidr[2]), term: raw })
      }
    }
  }
  return out
}

export interface Breadth {
  /** The widest networks a record may authorise in total before it counts as permissive. */
  readonly widestIpv4: number
  readonly widestIpv6: number
  /**
   * A pass-qualified `ptr` counts as permissive: asked whether a domain vouches for a client's
   * own rDNS name, `ptr` would answer with that very name (every customer of an ISP that
   * publishes it would pass).
   */
  readonly refusePtr?: boolean
}

/**
 * Why the records pass for any client whatever their ranges (a pass-qualified `all`, a macro
 * of the client's address or name), or null. A provider's refresh refuses such a walk outright;
 * its ranges are judged by the refresh's own bounds (core/refresh.ts).
 */
export function unboundedWhy(records: readonly SpfTerms[]): string | null {
  for (const r of records) {
    if (r.passAll) return 'pass_all'
    if (r.clientMacros.length) return `client_macro ${r.clientMacros[0]}`
  }
  return null
}

/**
 * Why the records reached from a domain (its own and those of its pass-qualified includes and
 * redirect) authorise an unbounded set of hosts, or null when they do not.
 */
export function permissiveWhy(records: readonly SpfTerms[], b: Breadth): string | null {
  const unbounded = unboundedWhy(records)
  if (unbounded) return unbounded
  const ptr = b.refusePtr ? records.flatMap((r) => r.ignored).find((t) => /^\+?ptr(?::|$)/i.test(t)) : undefined
  if (ptr) return `ptr ${ptr}`
  let v4 = 0
  let v6 = 0
  for (const r of records) {
    for (const range of r.ranges) {
      const c = parseCidr(range)
      if (!c) continue // parseSpfRecord kept only ranges that parse
      if (c.ip.kind() === 'ipv4') v4 += 2 ** (32 - c.prefix)
      else v6 += 2 ** (128 - c.prefix)
    }
    // a/24 or mx/16 authorise that network around every address of the name.
    for (const n of r.hostNetworks) {
      if (n.family === 'ipv4') v4 += 2 ** (32 - n.prefix)
      else v6 += 2 ** (128 - n.prefix)
    }
  }
  if (v4 > 2 ** (32 - b.widestIpv4)) return `wide_ipv4 ${Math.round(Math.log2(v4) * 10) / 10} bits`
  if (v6 > 2 ** (128 - b.widestIpv6)) return `wide_ipv6 ${Math.round(Math.log2(v6) * 10) / 10} bits`
  return null
}
