// The greylisting state machine for one tuple, as a pure function of (stored state, now,
// timing). store.ts's Lua script applies exactly these transitions atomically in Redis; the
// integration tests run the same table of cases against both.

export interface Timing {
  readonly delayMs: number
  readonly windowMs: number
  readonly passTtlMs: number
}

export interface TupleState {
  /** When the tuple was first deferred (ms since the epoch). */
  readonly firstSeen: number
  /** When a retry was first accepted; null while pending. */
  readonly passedAt: number | null
}

export type TupleOutcome =
  | 'new' // never seen: defer and start the clock
  | 'expired' // seen, but the retry came after the window: defer and start over
  | 'early' // retry before the delay: defer, clock unchanged
  | 'retry' // first retry inside the window: accept and remember
  | 'known' // passed before: accept, refresh

export interface Verdict {
  readonly action: 'defer' | 'pass'
  readonly outcome: TupleOutcome
  /** Time since the tuple was first seen (for a pass, how long greylisting delayed it). */
  readonly waitedMs: number
  /** For a deferral, how long until a retry is accepted. */
  readonly retryInMs: number
}

export type Write =
  | { readonly op: 'create'; readonly firstSeen: number; readonly ttlMs: number }
  | { readonly op: 'pass'; readonly passedAt: number; readonly ttlMs: number }
  | { readonly op: 'touch'; readonly ttlMs: number }
  | { readonly op: 'none' }

export function decide(state: TupleState | null, now: number, t: Timing): { verdict: Verdict; write: Write } {
  if (state && state.passedAt !== null) {
    return {
      verdict: { action: 'pass', outcome: 'known', waitedMs: state.passedAt - state.firstSeen, retryInMs: 0 },
      write: { op: 'touch', ttlMs: t.passTtlMs },
    }
  }
  if (!state || now - state.firstSeen > t.windowMs) {
    return {
      verdict: { action: 'defer', outcome: state ? 'expired' : 'new', waitedMs: 0, retryInMs: t.delayMs },
      write: { op: 'create', firstSeen: now, ttlMs: t.windowMs },
    }
  }
  const waited = now - state.firstSeen
  if (waited < t.delayMs) {
    return {
      verdict: { action: 'defer', outcome: 'early', waitedMs: waited, retryInMs: t.delayMs - waited },
      write: { op: 'none' },
    }
  }
  return {
    verdict: { action: 'pass', outcome: 'retry', waitedMs: waited, retryInMs: 0 },
    write: { op: 'pass', passedAt: now, ttlMs: t.passTtlMs },
  }
}

export function timingFrom(main: { delay: number; retry_window: number; pass_ttl: number }): Timing {
  return { delayMs: main.delay * 1000, windowMs: main.retry_window * 1000, passTtlMs: main.pass_ttl * 1000 }
}
