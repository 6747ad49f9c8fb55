// Client addresses: parsing, IPv4-mapped IPv6 folded to IPv4, subnets, and a CIDR set whose
// lookup cost depends on the number of distinct prefix lengths (<= 33 or 129), not on its size.
import { isIP } from 'node:net'
import ipaddr from 'ipaddr.js'

export type ParsedIp = ipaddr.IPv4 | ipaddr.IPv6

/** Parses an address; `::ffff:a.b.c.d` becomes the IPv4 address. Null for anything else. */
export function parseIp(text: string | null | undefined): ParsedIp | null {
  if (!text) return null
  const s = text.trim().replace(/^\[|\]$/g, '')
  // net.isIP, not ipaddr.isValid: the latter also takes inet_aton forms such as `1.2.3`.
  if (isIP(s) === 0) return null
  const ip = ipaddr.parse(s)
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (ip as ipaddr.IPv6).toIPv4Address()
  }
  return ip
}

/** Canonical text of the network that holds `ip`, e.g. `40.107.22.0/24`, `2a01:111:f400::/64`. */
export function subnetOf(ip: ParsedIp, prefix: number): string {
  const bytes = maskBytes(ip.toByteArray(), prefix)
  const net = ipaddr.fromByteArray(bytes)
  return `${net.toString()}/${prefix}`
}

/** The in-addr.arpa or ip6.arpa name whose PTR records name `ip`. */
export function reverseName(ip: ParsedIp): string {
  const bytes = ip.toByteArray()
  if (ip.kind() === 'ipv4') return `${[...bytes].reverse().join('.')}.in-addr.arpa`
  const nibbles = bytes.flatMap((b) => [b >> 4, b & 15]).map((n) => n.toString(16))
  return `${nibbles.reverse().join('.')}.ip6.arpa`
}

function maskBytes(bytes: number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, prefix - i * 8))
    return bits === 0 ? 0 : b & (0xff << (8 - bits)) & 0xff
  })
}

/**
 * The masked network as a map key: a number for IPv4 (lookups try every prefix length in use,
 * so this runs a dozen times per client), the masked bytes in hex for IPv6.
 */
function netKey(bytes: number[], prefix: number): string | number {
  if (bytes.length === 4) {
    const [a = 0, b = 0, c = 0, d = 0] = bytes
    const n = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0
    return prefix === 0 ? 0 : (n & (0xffffffff << (32 - prefix))) >>> 0
  }
  return Buffer.from(maskBytes(bytes, prefix)).toString('hex')
}

export interface CidrEntry<T> {
  ip: ParsedIp
  prefix: number
  value: T
}

/** Parses `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n`; IPv4-mapped ranges become IPv4 ranges. */
export function parseCidr(text: string): { ip: ParsedIp; prefix: number } | null {
  const [addr = '', len, extra] = text.trim().split('/')
  if (extra !== undefined) return null
  const ip = parseIp(addr)
  if (!ip) return null
  const max = ip.kind() === 'ipv4' ? 32 : 128
  if (len === undefined) return { ip, prefix: max }
  if (!/^\d{1,3}$/.test(len)) return null
  let prefix = Number(len)
  // ::ffff:a.b.c.d/104 names the IPv4 /8 it maps.
  if (ip.kind() === 'ipv4' && addr.includes(':')) prefix -= 96
  if (prefix < 0 || prefix > max) return null
  return { ip, prefix }
}

export class CidrSet<T> {
  // family -> prefix length -> masked network (see netKey) -> value
  private readonly tables = { ipv4: new Map<number, Map<string | number, T>>(), ipv6: new Map<number, Map<string | number, T>>() }
  private sortedLengths = { ipv4: [] as number[], ipv6: [] as number[] }
  size = 0

  add(ip: ParsedIp, prefix: number, value: T): void {
    const fam = ip.kind()
    let table = this.tables[fam].get(prefix)
    if (!table) {
      table = new Map()
      this.tables[fam].set(prefix, table)
      // Longest prefix first, so the most specific entry is the one reported.
      this.sortedLengths[fam] = [...this.tables[fam].keys()].sort((a, b) => b - a)
    }
    const key = netKey(ip.toByteArray(), prefix)
    if (!table.has(key)) {
      table.set(key, value)
      this.size++
    }
  }

  /** Whether no bit below `prefix` is set. */
  static isNetworkAddress(ip: ParsedIp, prefix: number): boolean {
    const bytes = ip.toByteArray()
    return netKey(bytes, prefix) === netKey(bytes, bytes.length * 8)
  }

  lookup(ip: ParsedIp): T | undefined {
    const fam = ip.kind()
    const bytes = ip.toByteArray()
    for (const len of this.sortedLengths[fam]) {
      const hit = this.tables[fam].get(len)?.get(netKey(bytes, len))
      if (hit !== undefined) return hit
    }
    return undefined
  }
}
