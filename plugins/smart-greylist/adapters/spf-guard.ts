// SPF facts for the identity: the spf plugin's result when it ran, else our own bounded
// evaluation; a pass is then checked against the permissive-record guard, whose verdict is
// cached per domain in memory and in Redis (shared by every process and MX).
import type { Config } from '../core/settings'
import type { SpfFacts, SpfResult } from '../core/identity'
import type { ParsedIp } from '../core/ip'
import { spfGuardKey } from '../core/keys'
import type { Resolver } from './dns'
import { checkSpf, isPermissive } from './spf'

/** Where shared verdicts are kept (the Redis store); failures only cost a recomputation. */
export interface FlagStore {
  getFlag(key: string): Promise<string | null>
  setFlag(key: string, value: string, ttlMs: number): Promise<void>
}

export interface SpfDeps {
  readonly config: Config
  readonly resolver: Resolver
  readonly guard: SpfGuardCache
}

export async function spfFacts(
  deps: SpfDeps,
  ip: ParsedIp,
  domain: string,
  mailFrom: string | null,
  helo: string | null,
  known: SpfResult | null,
): Promise<SpfFacts> {
  const opts = { resolver: deps.resolver as never, timeoutMs: deps.config.dns.spf_timeout_ms, helo }
  const result = known ?? (await checkSpf(ip.toString(), domain, mailFrom, opts))
  if (result !== 'pass') return { domain, result }
  const permissive = await deps.guard.permissive(domain, () => isPermissive(domain, deps.config.identity.self_ip, opts))
  return { domain, result, permissive }
}

/**
 * The permissive-record verdict per domain. A read-only cache (for `smart-greylist check`) never
 * writes to Redis.
 */
export class SpfGuardCache {
  private readonly local = new Map<string, { permissive: boolean; expires: number }>()

  constructor(
    private readonly store: FlagStore,
    private readonly settings: () => { prefix: string; ttlMs: number },
    private readonly now: () => number,
    private readonly opts: { maxEntries?: number; readOnly?: boolean } = {},
  ) {}

  async permissive(domain: string, compute: () => Promise<boolean>): Promise<boolean> {
    const now = this.now()
    const hit = this.local.get(domain)
    if (hit && hit.expires > now) return hit.permissive
    const { prefix, ttlMs } = this.settings()
    const key = spfGuardKey(prefix, domain)
    const stored = await this.store.getFlag(key).catch(() => null)
    let verdict: boolean
    if (stored === '1' || stored === '0') verdict = stored === '1'
    else {
      verdict = await compute()
      if (!this.opts.readOnly) await this.store.setFlag(key, verdict ? '1' : '0', ttlMs).catch(() => undefined)
    }
    if (this.local.size >= (this.opts.maxEntries ?? 10_000)) this.local.delete(this.local.keys().next().value as string)
    this.local.set(domain, { permissive: verdict, expires: now + Math.min(ttlMs, 3_600_000) })
    return verdict
  }
}
