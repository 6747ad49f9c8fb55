// The simulated senders' DNS, answered in memory through the plugin's own Resolver type: the
// plugin's FCrDNS, SPF (haraka-plugin-spf's library), vouching and guard code run unchanged and
// ask it as they would ask a DNS server. Same records and the same answers (wildcards, NXDOMAIN,
// NODATA) as the tests' loopback server (scripts/harness/dns-server.ts), which takes the same
// Zone, so one population can be served both ways (test/e2e/simulate-agrees.test.ts).
import type { Resolver } from '../../plugins/smart-greylist/adapters/dns'
import { parseIp, reverseName } from '../../plugins/smart-greylist/core/ip'

export interface Zone {
  ptr?: Record<string, string[]>
  a?: Record<string, string[]>
  aaaa?: Record<string, string[]>
  txt?: Record<string, string[]>
}

type RecordType = 'A' | 'AAAA' | 'TXT'

function dnsError(code: 'ENOTFOUND' | 'ENODATA', query: string, name: string): Error {
  return Object.assign(new Error(`${query} ${code} ${name}`), { code, hostname: name })
}

// resolve4/resolve6 of node's Resolver are overloaded (with TTLs); the plugin and the SPF library
// never ask for TTLs, so the plain answers are all there is here, typed to fit every overload.
export class ZoneResolver implements Resolver {
  /** Queries answered, by type (what the plugin's DNS work costs per message). */
  readonly queries = { PTR: 0, A: 0, AAAA: 0, TXT: 0, MX: 0 }
  private readonly ptr = new Map<string, string[]>()
  private readonly records = new Map<string, Map<RecordType, string[]>>()

  add(zone: Zone): void {
    for (const [ip, names] of Object.entries(zone.ptr ?? {})) {
      const parsed = parseIp(ip)
      if (parsed) this.ptr.set(reverseName(parsed), names)
    }
    for (const type of ['a', 'aaaa', 'txt'] as const) {
      for (const [name, values] of Object.entries(zone[type] ?? {})) {
        const key = name.toLowerCase()
        const byType = this.records.get(key) ?? new Map<RecordType, string[]>()
        byType.set(type.toUpperCase() as RecordType, values)
        this.records.set(key, byType)
      }
    }
  }

  /**
   * What a DNS server holding this zone answers for `name` and `type`: whether the name exists
   * (NXDOMAIN when not), and its records of that type (NODATA when none). A name with no records
   * of its own takes those of the closest `*.` wildcard above it. The tests' loopback DNS server
   * answers from this too.
   */
  answer(name: string, type: string): { exists: boolean; values: string[] } {
    const key = name.toLowerCase().replace(/\.$/, '')
    const ptr = this.ptr.get(key)
    let byType = this.records.get(key)
    if (!byType) {
      const labels = key.split('.')
      for (let i = 1; i < labels.length && !byType; i++) byType = this.records.get(`*.${labels.slice(i).join('.')}`)
    }
    const values = type === 'PTR' ? ptr : byType?.get(type as RecordType)
    return { exists: Boolean(ptr ?? byType), values: [...(values ?? [])] }
  }

  private lookup(name: string, type: RecordType | 'PTR', query: string): string[] {
    const { exists, values } = this.answer(name, type)
    if (!exists) throw dnsError('ENOTFOUND', query, name)
    if (!values.length) throw dnsError('ENODATA', query, name)
    return values
  }

  resolvePtr(name: string): Promise<string[]> {
    this.queries.PTR++
    return this.attempt(() => this.lookup(name, 'PTR', 'queryPtr'))
  }

  resolve4(name: string): Promise<never> {
    this.queries.A++
    return this.attempt(() => this.lookup(name, 'A', 'queryA')) as Promise<never>
  }

  resolve6(name: string): Promise<never> {
    this.queries.AAAA++
    return this.attempt(() => this.lookup(name, 'AAAA', 'queryAaaa')) as Promise<never>
  }

  resolveTxt(name: string): Promise<string[][]> {
    this.queries.TXT++
    return this.attempt(() => this.lookup(name, 'TXT', 'queryTxt').map((t) => [t]))
  }

  resolveMx(name: string): Promise<{ exchange: string; priority: number }[]> {
    this.queries.MX++
    return Promise.reject(dnsError(this.records.has(name.toLowerCase()) ? 'ENODATA' : 'ENOTFOUND', 'queryMx', name))
  }

  reverse(ip: string): Promise<string[]> {
    const parsed = parseIp(ip)
    return parsed ? this.resolvePtr(reverseName(parsed)) : Promise.reject(dnsError('ENOTFOUND', 'getHostByAddr', ip))
  }

  // The overloads of dns.promises.Resolver#resolve, as far as the SPF library uses them.
  resolve(name: string, type?: string): Promise<never> {
    const t = (type ?? 'A').toUpperCase()
    const work: Promise<unknown> =
      t === 'A'
        ? this.resolve4(name)
        : t === 'AAAA'
          ? this.resolve6(name)
          : t === 'TXT'
            ? this.resolveTxt(name)
            : t === 'PTR'
              ? this.resolvePtr(name)
              : t === 'MX'
                ? this.resolveMx(name)
                : Promise.reject(dnsError('ENODATA', 'query', name))
    return work as Promise<never>
  }

  private attempt<T>(f: () => T): Promise<T> {
    try {
      return Promise.resolve(f())
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
  }
}
