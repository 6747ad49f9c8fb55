// SPF as an identity: evaluated with haraka-plugin-spf's library (or read from the spf plugin's
// results), bounded in time, plus the guard against permissive records. A record that would also
// pass for addresses no real sender lists (a documentation address, the MX's own address) says
// nothing about who is sending, so its domain is not trusted as an identity.
import { SPF } from 'haraka-plugin-spf/lib/spf'
import type { Resolver } from './dns'
import { spfResultFrom, type SpfResult } from '../core/identity'
import { withTimeout } from './timeout'

/** Addresses no legitimate sender lists (RFC 5737 / RFC 3849 documentation ranges). */
export const PROBE_IPS: readonly string[] = ['192.0.2.1', '2001:db8::1']

export interface SpfOptions {
  readonly resolver?: Resolver & { resolveTxt(name: string): Promise<string[][]> }
  readonly timeoutMs: number
  readonly helo?: string | null
}

export async function checkSpf(ip: string, domain: string, mailFrom: string | null, opts: SpfOptions): Promise<SpfResult> {
  const spf = new SPF()
  // The library writes its trace to stderr; a mail server's log has no room for it.
  spf.log_debug = () => undefined
  if (opts.resolver) spf.resolver = opts.resolver
  spf.helo = opts.helo ?? 'unknown'
  spf.dns_timeout_ms = opts.timeoutMs
  try {
    const code = await withTimeout(spf.check_host(ip, domain, mailFrom ?? undefined), opts.timeoutMs, 'SPF check')
    return spfResultFrom(spf.result(code)) ?? 'temperror'
  } catch {
    return 'temperror'
  }
}

/** True when the domain's record passes for any address that no real sender would list. */
export async function isPermissive(domain: string, selfIps: readonly string[], opts: SpfOptions): Promise<boolean> {
  const results = await Promise.all([...PROBE_IPS, ...selfIps].map((ip) => checkSpf(ip, domain, null, opts)))
  return results.includes('pass')
}
