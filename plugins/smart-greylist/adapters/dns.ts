// Forward-confirmed reverse DNS with Node's resolver, bounded in time and in fan-out. DNS
// errors are classified here: "no such name / no data" is an answer, anything else is an error.
import { promises as dnsp } from 'node:dns'
import type { PtrName, RdnsFacts } from '../core/identity'
import { isListingAnswer, isPolicyListing, type DnsblFacts } from '../core/select'
import { parseIp, reverseName, type ParsedIp } from '../core/ip'
import { withTimeout } from './timeout'

/**
 * The one resolver type of this package: what every lookup here asks (PTR, A/AAAA, DNSBL, the SPF
 * walk) and what haraka-plugin-spf's library calls on the resolver it is given.
 */
export type Resolver = Pick<dnsp.Resolver, 'resolvePtr' | 'resolve4' | 'resolve6' | 'resolveTxt' | 'resolveMx' | 'resolve' | 'reverse'>

/** What the rDNS lookup asks. */
export type RdnsResolver = Pick<Resolver, 'resolvePtr' | 'resolve4' | 'resolve6'>

const NO_ANSWER = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'ENONAME'])

function isNoAnswer(err: unknown): boolean {
  return NO_ANSWER.has((err as { code?: string })?.code ?? '')
}

/**
 * The resolver for one configuration: each query bounded by half the rDNS budget (the whole
 * lookup is bounded again below), asking `servers` when given (the command's --dns), else the
 * system's. A bad server address throws here, before anything else is opened.
 */
export function makeResolver(timeoutMs: number, servers?: readonly string[]): Resolver {
  // tries: 1: the overall bound is what matters; retries would only hide it.
  const resolver = new dnsp.Resolver({ timeout: Math.max(50, Math.floor(timeoutMs / 2)), tries: 1 })
  if (servers?.length) {
    try {
      resolver.setServers([...servers])
    } catch (err) {
      throw new Error(`not a DNS server address: ${servers.join(' ')} (${(err as Error).message})`)
    }
  }
  return resolver
}

async function forward(resolver: RdnsResolver, name: string, family: 'ipv4' | 'ipv6'): Promise<string[]> {
  try {
    return family === 'ipv4' ? await resolver.resolve4(name) : await resolver.resolve6(name)
  } catch (err) {
    if (isNoAnswer(err)) return []
    throw err
  }
}

export async function lookupRdns(ip: ParsedIp, resolver: RdnsResolver, opts: { timeoutMs: number; maxNames: number }): Promise<RdnsFacts> {
  const work = async (): Promise<RdnsFacts> => {
    let names: string[]
    try {
      // resolvePtr, not reverse(): c-ares reports every failure of reverse() as ENOTFOUND, so a
      // DNS server that does not answer would read as "no PTR".
      names = await resolver.resolvePtr(reverseName(ip))
    } catch (err) {
      if (isNoAnswer(err)) return { status: 'none' }
      throw err
    }
    const checked: PtrName[] = await Promise.all(
      names.slice(0, opts.maxNames).map(async (name) => {
        const addrs = await forward(resolver, name, ip.kind())
        const confirmed = addrs.some((a) => parseIp(a)?.toString() === ip.toString())
        return { name: name.toLowerCase().replace(/\.$/, ''), confirmed }
      }),
    )
    return checked.length ? { status: 'ok', names: checked } : { status: 'none' }
  }
  try {
    return await withTimeout(work(), opts.timeoutMs, 'rDNS lookup')
  } catch (err) {
    const code = (err as { code?: string })?.code
    return { status: 'error', error: code ?? (err instanceof Error ? err.message : String(err)) }
  }
}

/**
 * Reads the fcrdns plugin's results when it ran for this connection, so the names are not
 * looked up twice. Confirmation is re-checked strictly (exact address), since fcrdns also
 * passes a name whose address is merely in the same /24. Undefined when there is nothing usable.
 */
export function rdnsFromFcrdnsResults(r: Record<string, unknown> | undefined, ip: ParsedIp): RdnsFacts | undefined {
  if (!r) return undefined
  const ptrNames = Array.isArray(r.ptr_names) ? (r.ptr_names as unknown[]).map(String) : []
  const fails = Array.isArray(r.fail) ? (r.fail as unknown[]).map(String) : []
  if (!ptrNames.length) return fails.includes('has_rdns') ? { status: 'none' } : undefined
  const toIps = (r.ptr_name_to_ip ?? {}) as Record<string, unknown>
  const names = ptrNames.map((name) => {
    const ips = Array.isArray(toIps[name]) ? (toIps[name] as unknown[]).map(String) : []
    const confirmed = ips.some((a) => parseIp(a)?.toString() === ip.toString())
    return { name: name.toLowerCase().replace(/\.$/, ''), confirmed }
  })
  return { status: 'ok', names }
}

/**
 * What the dns-list plugin found at connect: its `fail` entries are the zones that list the
 * client (type block; `pass` holds allow lists, `skip` zones it did not ask). Undefined when it
 * did not run.
 */
export function dnsblFromDnsListResults(r: Record<string, unknown> | undefined): DnsblFacts | undefined {
  if (!r) return undefined
  const fails = Array.isArray(r.fail) ? (r.fail as unknown[]).map(String) : []
  // The plugin keeps no answer codes, only the text its dns-list.ini gives them: the shipped one
  // says `PBL` for zen's 127.0.0.10 and .11. A zone that is a policy list as a whole names itself.
  const msgs = Array.isArray(r.msg) ? (r.msg as unknown[]).map(String) : []
  const policy = fails.filter((z) => isPolicyListing(z, ['127.0.0.2']))
  if (msgs.some((m) => /\bPBL\b/.test(m))) policy.push(...fails.filter((z) => !policy.includes(z) && /spamhaus/i.test(z)))
  return { source: 'dns-list', listed: fails, ...(policy.length ? { policy } : {}) }
}

/** Asks each zone for the client (`<reversed address>.<zone>` A), all at once, bounded. */
export async function lookupDnsbl(ip: ParsedIp, zones: readonly string[], resolver: Pick<Resolver, 'resolve4'>, timeoutMs: number): Promise<DnsblFacts> {
  const base = reverseName(ip).replace(/\.(in-addr|ip6)\.arpa$/, '')
  const answers = await Promise.all(
    zones.map(async (zone) => {
      try {
        const a = await withTimeout(resolver.resolve4(`${base}.${zone}`), timeoutMs, `DNSBL ${zone}`)
        return { zone, listed: a.some(isListingAnswer), policy: isPolicyListing(zone, a) }
      } catch (err) {
        return isNoAnswer(err) ? { zone, listed: false } : { zone, failed: true }
      }
    }),
  )
  return {
    source: 'own',
    listed: answers.filter((a) => 'listed' in a && a.listed).map((a) => a.zone),
    failed: answers.filter((a) => 'failed' in a).map((a) => a.zone),
    policy: answers.filter((a) => 'policy' in a && a.policy).map((a) => a.zone),
  }
}
