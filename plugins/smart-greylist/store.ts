// Redis adapter: one atomic round trip per decision (EVALSHA of a script that mirrors
// decision.ts), each bounded by a timeout. Errors are classified here; callers see StoreError.
import { createHash } from 'node:crypto'
import type { RedisClient } from './haraka'
import type { Timing, TupleOutcome, Verdict } from './decision'
import { TimeoutError, withTimeout } from './timeout'

export class StoreError extends Error {
  constructor(
    readonly kind: 'unavailable' | 'timeout' | 'failed',
    message: string,
  ) {
    super(message)
    this.name = 'StoreError'
  }
}

// KEYS[1] tuple key, KEYS[2] (optional) auto-whitelist key. ARGV: now, delay, window, pass ttl,
// awl passes (0 = off), awl ttl (all times in ms). The same transitions as decide().
export const TUPLE_SCRIPT = `
local now = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local passttl = tonumber(ARGV[4])
local awlpasses = tonumber(ARGV[5])
local awl = KEYS[2]
if awl and awlpasses > 0 then
  local n = tonumber(redis.call('GET', awl))
  if n and n >= awlpasses then
    redis.call('PEXPIRE', awl, ARGV[6])
    return {'pass', 'awl', 0, 0}
  end
end
local rec = redis.call('HMGET', KEYS[1], 'f', 'p')
local first = tonumber(rec[1])
local passed = tonumber(rec[2])
if first and passed then
  redis.call('PEXPIRE', KEYS[1], passttl)
  return {'pass', 'known', passed - first, 0}
end
if (not first) or (now - first > window) then
  local outcome = 'new'
  if first then outcome = 'expired' end
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'f', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], window)
  return {'defer', outcome, 0, delay}
end
if now - first < delay then
  return {'defer', 'early', now - first, delay - (now - first)}
end
redis.call('HSET', KEYS[1], 'p', ARGV[1])
redis.call('PEXPIRE', KEYS[1], passttl)
if awl and awlpasses > 0 then
  redis.call('INCR', awl)
  redis.call('PEXPIRE', awl, ARGV[6])
end
return {'pass', 'retry', now - first, 0}
`
const TUPLE_SHA = createHash('sha1').update(TUPLE_SCRIPT).digest('hex')
const OUTCOMES: readonly TupleOutcome[] = ['new', 'expired', 'early', 'retry', 'known', 'awl']

export class TupleStore {
  constructor(
    private readonly client: () => RedisClient | undefined,
    private readonly timeoutMs: () => number,
  ) {}

  /** One decision in one round trip; `awlKey` only when the pair may be auto-whitelisted. */
  async check(key: string, now: number, t: Timing, awlKey?: string): Promise<Verdict> {
    const keys = awlKey ? [key, awlKey] : [key]
    const args = [now, t.delayMs, t.windowMs, t.passTtlMs, t.awlPasses, t.awlTtlMs].map(String)
    return parseVerdict(await this.eval(TUPLE_SCRIPT, TUPLE_SHA, keys, args))
  }

  /** A small shared verdict (the SPF guard's), or null when none is stored. */
  async getFlag(key: string): Promise<string | null> {
    return (await this.run((db) => db.get(key), 'Redis')) ?? null
  }

  async setFlag(key: string, value: string, ttlMs: number): Promise<void> {
    await this.run((db) => db.set(key, value, { PX: ttlMs }), 'Redis')
  }

  private eval(script: string, sha: string, keys: string[], args: string[]): Promise<unknown> {
    return this.run(async (db) => {
      try {
        return await db.evalSha(sha, { keys, arguments: args })
      } catch (err) {
        // After a restart or SCRIPT FLUSH the cache is empty: EVAL loads it again.
        if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
          return db.eval(script, { keys, arguments: args })
        }
        throw err
      }
    }, 'Redis')
  }

  /** Runs one command bounded by the timeout, with errors classified into StoreError. */
  private async run<T>(command: (db: RedisClient) => Promise<T>, what: string): Promise<T> {
    const db = this.client()
    if (!db) throw new StoreError('unavailable', 'no Redis connection yet')
    if (db.isReady === false) throw new StoreError('unavailable', 'Redis is not connected')
    try {
      return await withTimeout(command(db), this.timeoutMs(), what)
    } catch (err) {
      if (err instanceof StoreError) throw err
      if (err instanceof TimeoutError) throw new StoreError('timeout', err.message)
      const msg = err instanceof Error ? err.message : String(err)
      const offline = /closed|offline|ECONNREFUSED|socket/i.test(msg)
      throw new StoreError(offline ? 'unavailable' : 'failed', msg)
    }
  }
}

function parseVerdict(reply: unknown): Verdict {
  if (!Array.isArray(reply) || reply.length !== 4) {
    throw new StoreError('failed', `unexpected reply from the tuple script: ${JSON.stringify(reply)}`)
  }
  const [action, outcome, waited, retryIn] = reply as unknown[]
  if ((action !== 'defer' && action !== 'pass') || !OUTCOMES.includes(outcome as TupleOutcome)) {
    throw new StoreError('failed', `unexpected reply from the tuple script: ${JSON.stringify(reply)}`)
  }
  return {
    action,
    outcome: outcome as TupleOutcome,
    waitedMs: Number(waited),
    retryInMs: Number(retryIn),
  }
}
