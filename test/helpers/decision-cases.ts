// One table of state-machine cases, run against the pure decide() (unit) and against the Lua
// script in a real Redis (integration), so the two cannot drift apart.
import type { StoredState, Timing } from '../../plugins/smart-greylist/core/decision'

export const TIMING: Timing = { delayMs: 300_000, windowMs: 90_000_000, passTtlMs: 3_024_000_000, awlPasses: 3, awlTtlMs: 3_024_000_000, pendingCap: 10 }
const T0 = 1_800_000_000_000
const pending = { firstSeen: T0, passedAt: null }

export interface DecisionCase {
  name: string
  stored: StoredState
  now: number
  action: 'defer' | 'pass'
  status: string
  waitedMs: number
  retryInMs: number
  write: 'create' | 'pass' | 'touch' | 'awl_touch' | 'none'
  /** TTL the tuple record has afterwards (ms), when it is written. */
  ttlMs?: number
  /** The auto-whitelist count afterwards, when there is an auto-whitelist key. */
  awlAfter?: number
  /** The identity's count of started tuples afterwards. */
  startedAfter?: number
}

const tuple = (t: StoredState['tuple'], awlCount: number | null = null, started = 0): StoredState => ({ tuple: t, awlCount, started })

// One row per case, as a table reads.
// prettier-ignore
export const DECISION_CASES: DecisionCase[] = [
  { name: 'an unknown tuple is deferred and remembered for the window', stored: tuple(null), now: T0, action: 'defer', status: 'new', waitedMs: 0, retryInMs: 300_000, write: 'create', ttlMs: TIMING.windowMs },
  { name: 'a retry 1 s later is too early', stored: tuple(pending), now: T0 + 1000, action: 'defer', status: 'early', waitedMs: 1000, retryInMs: 299_000, write: 'none' },
  { name: 'a retry 1 ms before the delay is too early', stored: tuple(pending), now: T0 + 299_999, action: 'defer', status: 'early', waitedMs: 299_999, retryInMs: 1, write: 'none' },
  { name: 'a retry exactly at the delay passes', stored: tuple(pending), now: T0 + 300_000, action: 'pass', status: 'retry', waitedMs: 300_000, retryInMs: 0, write: 'pass', ttlMs: TIMING.passTtlMs },
  { name: 'a retry at the end of the window passes', stored: tuple(pending), now: T0 + 90_000_000, action: 'pass', status: 'retry', waitedMs: 90_000_000, retryInMs: 0, write: 'pass', ttlMs: TIMING.passTtlMs },
  { name: 'a retry after the window starts over', stored: tuple(pending), now: T0 + 90_000_001, action: 'defer', status: 'expired', waitedMs: 0, retryInMs: 300_000, write: 'create', ttlMs: TIMING.windowMs },
  { name: 'a passed tuple is accepted and refreshed', stored: tuple({ firstSeen: T0, passedAt: T0 + 400_000 }), now: T0 + 10 * 86_400_000, action: 'pass', status: 'known', waitedMs: 400_000, retryInMs: 0, write: 'touch', ttlMs: TIMING.passTtlMs },
  { name: 'a clock that went backwards counts as early', stored: tuple(pending), now: T0 - 5000, action: 'defer', status: 'early', waitedMs: -5000, retryInMs: 305_000, write: 'none' },
  { name: 'a successful retry counts a pass for the auto-whitelist', stored: tuple(pending, 1), now: T0 + 300_000, action: 'pass', status: 'retry', waitedMs: 300_000, retryInMs: 0, write: 'pass', ttlMs: TIMING.passTtlMs, awlAfter: 2 },
  { name: 'the first counted pass starts the auto-whitelist count', stored: tuple(pending, 0), now: T0 + 300_000, action: 'pass', status: 'retry', waitedMs: 300_000, retryInMs: 0, write: 'pass', awlAfter: 1 },
  { name: 'a pair with enough passes skips greylisting, even for a new tuple', stored: tuple(null, 3), now: T0, action: 'pass', status: 'awl', waitedMs: 0, retryInMs: 0, write: 'awl_touch', awlAfter: 3 },
  { name: 'a pair one pass short is still greylisted', stored: tuple(null, 2), now: T0, action: 'defer', status: 'new', waitedMs: 0, retryInMs: 300_000, write: 'create', awlAfter: 2 },
  { name: 'an early retry does not count', stored: tuple(pending, 2), now: T0 + 1000, action: 'defer', status: 'early', waitedMs: 1000, retryInMs: 299_000, write: 'none', awlAfter: 2 },
  { name: 'a new tuple counts against its identity', stored: tuple(null, null, 9), now: T0, action: 'defer', status: 'new', waitedMs: 0, retryInMs: 300_000, write: 'create', startedAfter: 10 },
  { name: 'an identity at its cap is deferred and nothing is stored', stored: tuple(null, null, 10), now: T0, action: 'defer', status: 'capped', waitedMs: 0, retryInMs: 300_000, write: 'none', startedAfter: 10 },
  { name: 'an expired tuple at the cap is deferred and not renewed', stored: tuple(pending, null, 10), now: T0 + 90_000_001, action: 'defer', status: 'capped', waitedMs: 0, retryInMs: 300_000, write: 'none', startedAfter: 10 },
  { name: 'the cap does not hold retries of tuples already stored', stored: tuple(pending, null, 10), now: T0 + 300_000, action: 'pass', status: 'retry', waitedMs: 300_000, retryInMs: 0, write: 'pass' },
]
