// One table of state-machine cases, run against the pure decide() (unit) and against the Lua
// script in a real Redis (integration), so the two cannot drift apart.
import type { Timing, TupleState } from '../../plugins/smart-greylist/decision'

export const TIMING: Timing = { delayMs: 300_000, windowMs: 90_000_000, passTtlMs: 3_024_000_000 }
const T0 = 1_800_000_000_000

export interface DecisionCase {
  name: string
  state: TupleState | null
  now: number
  action: 'defer' | 'pass'
  outcome: string
  waitedMs: number
  retryInMs: number
  write: 'create' | 'pass' | 'touch' | 'none'
  /** TTL the record has afterwards (ms), when it is written. */
  ttlMs?: number
}

export const DECISION_CASES: DecisionCase[] = [
  { name: 'an unknown tuple is deferred and remembered for the window', state: null, now: T0, action: 'defer', outcome: 'new', waitedMs: 0, retryInMs: 300_000, write: 'create', ttlMs: TIMING.windowMs },
  { name: 'a retry 1 s later is too early', state: { firstSeen: T0, passedAt: null }, now: T0 + 1000, action: 'defer', outcome: 'early', waitedMs: 1000, retryInMs: 299_000, write: 'none' },
  { name: 'a retry 1 ms before the delay is too early', state: { firstSeen: T0, passedAt: null }, now: T0 + 299_999, action: 'defer', outcome: 'early', waitedMs: 299_999, retryInMs: 1, write: 'none' },
  { name: 'a retry exactly at the delay passes', state: { firstSeen: T0, passedAt: null }, now: T0 + 300_000, action: 'pass', outcome: 'retry', waitedMs: 300_000, retryInMs: 0, write: 'pass', ttlMs: TIMING.passTtlMs },
  { name: 'a retry at the end of the window passes', state: { firstSeen: T0, passedAt: null }, now: T0 + 90_000_000, action: 'pass', outcome: 'retry', waitedMs: 90_000_000, retryInMs: 0, write: 'pass', ttlMs: TIMING.passTtlMs },
  { name: 'a retry after the window starts over', state: { firstSeen: T0, passedAt: null }, now: T0 + 90_000_001, action: 'defer', outcome: 'expired', waitedMs: 0, retryInMs: 300_000, write: 'create', ttlMs: TIMING.windowMs },
  { name: 'a passed tuple is accepted and refreshed', state: { firstSeen: T0, passedAt: T0 + 400_000 }, now: T0 + 10 * 86_400_000, action: 'pass', outcome: 'known', waitedMs: 400_000, retryInMs: 0, write: 'touch', ttlMs: TIMING.passTtlMs },
  { name: 'a clock that went backwards counts as early', state: { firstSeen: T0, passedAt: null }, now: T0 - 5000, action: 'defer', outcome: 'early', waitedMs: -5000, retryInMs: 305_000, write: 'none' },
]
