// The greylisting state machine for one tuple, as a pure function of (stored state, now,
// timing). adapters/redis-decision.ts's Lua script applies exactly these transitions atomically in Redis; the
// integration tests run the same table of cases against both.

export interface Timing {
  readonly delayMs: number
  readonly windowMs: number
  readonly passTtlMs: number
  /** Passes of one (identity, sender domain) after which its mail skips greylisting; 0 = off. */
  readonly awlPasses: number
  readonly awlTtlMs: number
  /** New tuples one identity may start per window; past it they are deferred and not stored. */
  readonly pendingCap: number
}

export interface TupleState {
  /** When the tuple was first deferred (ms since the epoch). */
  readonly firstSeen: number
  /** When a retry was first accepted; null while pending. */
  readonly passedAt: number | null
}

export interface StoredState {
  readonly tuple: TupleState | null
  /** Passes counted for the tuple's (identity, sender domain, scope); null when not eligible. */
  readonly awlCount: number | null
  /** New tuples the identity started in the current window. */
  readonly started: number
}

/**
 * The states a tuple decision ends in, declared once: the type, the Lua script's strings and the
 * statistics' counter names all come from this list.
 */
export const TUPLE_STATUSES = [
  'new', // never seen: defer and start the clock
  'expired', // seen, but the retry came after the window: defer and start over
  'early', // retry before the delay: defer, clock unchanged
  'retry', // first retry inside the window: accept, remember, count for the auto-whitelist
  'known', // passed before: accept, refresh
  'awl', // the (identity, sender domain) pair is auto-whitelisted: accept, refresh
  'capped', // new, but the identity started too many tuples this window: defer, store nothing
] as const

export type TupleStatus = (typeof TUPLE_STATUSES)[number]

export function isTupleStatus(s: unknown): s is TupleStatus {
  return (TUPLE_STATUSES as readonly unknown[]).includes(s)
}

export interface Verdict {
  readonly action: 'defer' | 'pass'
  readonly status: TupleStatus
  /** Time since the tuple was first seen (for a pass, how long greylisting delayed it). */
  readonly waitedMs: number
  /** For a deferral, how long until a retry is accepted. */
  readonly retryInMs: number
}

export type Write =
  | { readonly op: 'create'; readonly firstSeen: number; readonly ttlMs: number; readonly countStart: true }
  | { readonly op: 'pass'; readonly passedAt: number; readonly ttlMs: number; readonly awlIncrement: boolean }
  | { readonly op: 'touch'; readonly ttlMs: number }
  | { readonly op: 'awl_touch'; readonly ttlMs: number }
  | { readonly op: 'none' }

export function decide(stored: StoredState, now: number, t: Timing): { verdict: Verdict; write: Write } {
  const awlOn = t.awlPasses > 0 && stored.awlCount !== null
  if (awlOn && stored.awlCount !== null && stored.awlCount >= t.awlPasses) {
    return {
      verdict: { action: 'pass', status: 'awl', waitedMs: 0, retryInMs: 0 },
      write: { op: 'awl_touch', ttlMs: t.awlTtlMs },
    }
  }
  const state = stored.tuple
  if (state && state.passedAt !== null) {
    return {
      verdict: { action: 'pass', status: 'known', waitedMs: state.passedAt - state.firstSeen, retryInMs: 0 },
      write: { op: 'touch', ttlMs: t.passTtlMs },
    }
  }
  if (!state || now - state.firstSeen > t.windowMs) {
    if (stored.started >= t.pendingCap) {
      return { verdict: { action: 'defer', status: 'capped', waitedMs: 0, retryInMs: t.delayMs }, write: { op: 'none' } }
    }
    return {
      verdict: { action: 'defer', status: state ? 'expired' : 'new', waitedMs: 0, retryInMs: t.delayMs },
      write: { op: 'create', firstSeen: now, ttlMs: t.windowMs, countStart: true },
    }
  }
  const waited = now - state.firstSeen
  if (waited < t.delayMs) {
    return {
      verdict: { action: 'defer', status: 'early', waitedMs: waited, retryInMs: t.delayMs - waited },
      write: { op: 'none' },
    }
  }
  return {
    verdict: { action: 'pass', status: 'retry', waitedMs: waited, retryInMs: 0 },
    write: { op: 'pass', passedAt: now, ttlMs: t.passTtlMs, awlIncrement: awlOn },
  }
}

export function timingFrom(c: {
  main: { delay: number; retry_window: number; pass_ttl: number }
  awl: { passes: number; ttl: number }
  limits: { pending_per_identity: number }
}): Timing {
  return {
    pendingCap: c.limits.pending_per_identity,
    delayMs: c.main.delay * 1000,
    windowMs: c.main.retry_window * 1000,
    passTtlMs: c.main.pass_ttl * 1000,
    awlPasses: c.awl.passes,
    awlTtlMs: c.awl.ttl * 1000,
  }
}
