// SPF evaluated with haraka-plugin-spf's library (carried in vendor/spf.js: why is said there),
// bounded in time; a failure is a temperror.
import type { SPF as VendoredSpf } from 'haraka-plugin-spf/lib/spf'
import type { Resolver } from './dns'
import { spfResultFrom, type SpfResult } from '../core/identity'
import { withTimeout } from './timeout'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { SPF } = require('../vendor/spf') as { SPF: typeof VendoredSpf }

/** Addresses no legitimate sender lists (RFC 5737 / RFC 3849 documentation ranges). */
export const PROBE_IPS: readonly string[] = ['192.0.2.1', '2001:db8::1']

export interface SpfOptions {
  readonly resolver?: Resolver
  readonly timeoutMs: number
  readonly helo?: string | null
}

// The library writes its trace to stderr, also from each record an include: recurses into (a new
// SPF with the prototype's log_debug): a mail server's log has no room for it. The spf plugin,
// when loaded, routes the prototype's to Haraka's debug log; that choice is left alone.
const LIBRARY_TRACE = SPF.prototype.log_debug // eslint-disable-line @typescript-eslint/unbound-method
function quietLibrary(): void {
  if (SPF.prototype.log_debug === LIBRARY_TRACE) SPF.prototype.log_debug = () => undefined
}

export async function checkSpf(ip: string, domain: string, mailFrom: string | null, opts: SpfOptions): Promise<SpfResult> {
  quietLibrary()
  const spf = new SPF()
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
