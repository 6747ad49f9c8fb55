// SPF facts for the identity: the spf plugin's result when it ran, else our own bounded
// evaluation; a pass is then judged by the permissive-record guard. The guard walks the record
// and its includes (core/spf-record.ts judges what they authorise: a pass-qualified all, ranges
// wider than [identity] spf_widest_*, client-dependent macros), then evaluates the record for
// addresses no sender lists (documentation addresses, the MX's own, two random routable ones).
// Verdicts are kept in Redis by the record's text, so a changed record is judged anew and a
// thousand wildcard subdomains publishing one record cost one judgement. In memory each sender
// domain keeps its verdict for a minute, in one least-recently-used map bounded in entries: the
// domains are the client's to choose, so only a count cap keeps the process's memory fixed.
import ipaddr from 'ipaddr.js'
import type { Config } from '../core/settings'
import type { SpfFacts, SpfResult } from '../core/identity'
import type { ParsedIp } from '../core/ip'
import { spfGuardKey } from '../core/keys'
import { permissiveWhy, type Breadth } from '../core/spf-record'
import type { Resolver } from './dns'
import { checkSpf, PROBE_IPS, type SpfOptions } from './spf'
import { walkSpf } from './spf-walk'
import { withTimeout } from './timeout'

/** Where shared verdicts are kept (the Redis store); failures only cost a recomputation. */
export interface FlagStore {
  getFlag(key: string): Promise<string | null>
  setFlag(key: string, value: string, ttlMs: number): Promise<void>
}

export interface SpfDeps {
  readonly config: Config
  readonly resolver: Resolver
  readonly guard: SpfGuardCache
  readonly now: () => number
}

export interface Verdict {
  readonly permissive: boolean
  readonly why: string
}

/** SPF for `domain` and the client, a pass judged by the guard (at `breadth`, else [identity] spf_widest_*). */
export async function spfFacts(
  deps: SpfDeps,
  ip: ParsedIp,
  domain: string,
  mailFrom: string | null,
  helo: string | null,
  known: SpfResult | null,
  timeoutMs = deps.config.dns.spf_timeout_ms,
  breadth?: Breadth,
): Promise<SpfFacts> {
  // One bound for the evaluation and the guard together; a guard out of time does not trust.
  const started = deps.now()
  const opts = { resolver: deps.resolver, timeoutMs, helo }
  const result = known ?? (await checkSpf(ip.toString(), domain, mailFrom, opts))
  if (result !== 'pass') return { domain, result }
  const v = await deps.guard.judge(domain, { ...opts, timeoutMs: Math.max(1, timeoutMs - (deps.now() - started)) }, breadth)
  return { domain, result, permissive: v.permissive, guard: v.why }
}

/** A random address in public unicast space (never private, reserved or documentation). */
export function randomRoutable(family: 'ipv4' | 'ipv6', random: () => number): string {
  for (;;) {
    const bytes = Array.from({ length: family === 'ipv4' ? 4 : 16 }, () => Math.floor(random() * 256))
    if (family === 'ipv6') bytes[0] = 0x20 | ((bytes[0] ?? 0) & 0x1f) // 2000::/3, global unicast
    const ip = ipaddr.fromByteArray(bytes)
    if (ip.range() === 'unicast') return ip.toString()
  }
}

/**
 * A domain's verdict in memory. Not the Redis key of its record: nothing reads it once the
 * verdict is known, and it was more than half of each entry's heap (`npm run bench`).
 */
interface Remembered extends Verdict {
  readonly expires: number
}

/** Domains whose verdicts are kept in memory at most, unless the caller says otherwise. */
export const SPF_GUARD_MAX_ENTRIES = 10_000

export class SpfGuardCache {
  /**
   * By breadth judged and domain (a domain is judged as a sender and as the voucher of its
   * machines' names), least recently used first: a Map iterates in insertion order, so a hit is
   * moved to the end and eviction takes the first key.
   */
  private readonly byDomain = new Map<string, Remembered>()
  private readonly maxEntries: number

  constructor(
    private readonly store: FlagStore,
    private readonly config: Config,
    private readonly now: () => number,
    private readonly opts: { maxEntries?: number; readOnly?: boolean; random?: () => number } = {},
  ) {
    this.maxEntries = opts.maxEntries ?? SPF_GUARD_MAX_ENTRIES
  }

  /** Domains whose verdicts are held in memory now (never more than maxEntries). */
  get size(): number {
    return this.byDomain.size
  }

  /**
   * The verdict on `domain`'s record; a record that cannot be read in time is not trusted.
   * `breadth`: how much a record may authorise in total, [identity] spf_widest_* by default.
   */
  async judge(domain: string, spf: SpfOptions & { readonly resolver: Resolver }, breadth?: Breadth): Promise<Verdict> {
    const b = breadth ?? { widestIpv4: this.config.identity.spf_widest_ipv4, widestIpv6: this.config.identity.spf_widest_ipv6 }
    const now = this.now()
    // The sender's judgement is by far the most common: its slot is the domain itself, a string
    // already held (a built one cost 70 more bytes an entry; `npm run bench`).
    const slot = breadth ? `${breadthText(b)} ${domain}` : domain
    const known = this.byDomain.get(slot)
    if (known) {
      this.byDomain.delete(slot)
      if (known.expires > now) {
        this.byDomain.set(slot, known)
        return known
      }
    }
    try {
      return await withTimeout(this.judgeAnew(domain, slot, spf, b, now), spf.timeoutMs, 'SPF guard')
    } catch (err) {
      return { permissive: true, why: `unjudged: ${(err as Error).message}` }
    }
  }

  private async judgeAnew(domain: string, slot: string, spf: SpfOptions & { readonly resolver: Resolver }, b: Breadth, now: number): Promise<Verdict> {
    const { identity, redis } = this.config
    const walk = await walkSpf(domain, spf.resolver, { maxLookups: 20, timeoutMs: spf.timeoutMs })
    // Macros make a record mean something else for each domain that publishes it.
    const perDomain = walk.records.some((r) => r.clientMacros.length) || /%\{/.test(walk.rootText)
    const settings = `${breadthText(b)}/${identity.self_ip.join(',')}`
    const key = spfGuardKey(redis.prefix, `${settings}\0${perDomain ? domain : ''}\0${walk.rootText}`)
    const ttlMs = identity.spf_guard_ttl * 1000
    const remember = (v: Verdict): Verdict => {
      // In memory for a minute at most: a record that changes is read again soon.
      this.byDomain.delete(slot) // a concurrent judgement of the same domain may have got here first
      // A literal, not a spread of v: V8 gives a spread object a property store of its own (about
      // 220 more bytes per entry).
      this.byDomain.set(slot, { permissive: v.permissive, why: v.why, expires: now + Math.min(ttlMs, 60_000) })
      if (this.byDomain.size > this.maxEntries) this.evict()
      return v
    }
    const stored = await this.store.getFlag(key).catch(() => null)
    if (stored) return remember({ permissive: stored.startsWith('1'), why: stored.slice(2) || 'stored' })

    const random = this.opts.random ?? Math.random
    let why = permissiveWhy(walk.records, b)
    if (!why) {
      const probes = [...PROBE_IPS, ...identity.self_ip, randomRoutable('ipv4', random), randomRoutable('ipv6', random)]
      const results = await Promise.all(probes.map((ip) => checkSpf(ip, domain, null, spf)))
      const hit = results.findIndex((r) => r === 'pass')
      if (hit >= 0) why = `probe_pass ${probes[hit]}`
    }
    const verdict = { permissive: why !== null, why: why ?? 'bounded' }
    if (!this.opts.readOnly) await this.store.setFlag(key, `${verdict.permissive ? 1 : 0}:${verdict.why}`, ttlMs).catch(() => undefined)
    return remember(verdict)
  }

  /**
   * Drops the least recently used sixteenth. Not one at a time: V8 leaves a deleted Map entry in
   * place until the table is rebuilt, and each new iterator walks past those from the start, so
   * evicting one entry per insert cost about 6 µs at 10,000 entries and 50 µs at 100,000.
   */
  private evict(): void {
    const keep = this.maxEntries - Math.floor(this.maxEntries / 16)
    for (const oldest of this.byDomain.keys()) {
      if (this.byDomain.size <= keep) break
      this.byDomain.delete(oldest)
    }
  }
}

function breadthText(b: Breadth): string {
  return `${b.widestIpv4}/${b.widestIpv6}${b.refusePtr ? '/noptr' : ''}`
}
