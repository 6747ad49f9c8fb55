// Redis adapter: one atomic round trip per decision (EVALSHA of a script that mirrors
// decision.ts and counts the day's statistics), each command bounded by a timeout. Errors are
// classified here; callers see StoreError.
import { createHash } from 'node:crypto'
import type { RedisClient } from './haraka'
import type { StoredState, Timing, TupleOutcome, Verdict } from './decision'
import { DELAY_BUCKETS, statsKeys } from './stats'
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

// KEYS: tuple, auto-whitelist ('' = not eligible), day counters ('' = no statistics), day
// identities. ARGV: now, delay, window, pass ttl, awl passes (0 = off), awl ttl (times in ms),
// identity, sender, recipient, shadow (1/0), statistics ttl (ms), fail-open events to add.
// The transitions are exactly those of decide().
const COUNT_LUA = `
local statsttl = tonumber(ARGV[11])
local function stat(field, n)
  if KEYS[3] ~= '' then
    redis.call('HINCRBY', KEYS[3], field, n or 1)
    redis.call('PEXPIRE', KEYS[3], statsttl)
  end
end
if tonumber(ARGV[12]) > 0 then stat('fail_open', tonumber(ARGV[12])) end
`
export const TUPLE_SCRIPT = `${COUNT_LUA}
local now = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local passttl = tonumber(ARGV[4])
local awlpasses = tonumber(ARGV[5])
local awl = KEYS[2]
local shadow = ARGV[10] == '1'
local buckets = {${DELAY_BUCKETS.join(', ')}}
local function deferred(outcome)
  if shadow then stat('shadow:' .. outcome) else stat('defer:' .. outcome) end
  if outcome ~= 'early' and KEYS[4] ~= '' then
    redis.call('ZINCRBY', KEYS[4], 1, ARGV[7])
    redis.call('PEXPIRE', KEYS[4], statsttl)
  end
end
if awl ~= '' and awlpasses > 0 then
  local n = tonumber(redis.call('HGET', awl, 'n'))
  if n and n >= awlpasses then
    redis.call('PEXPIRE', awl, ARGV[6])
    stat('awl')
    return {'pass', 'awl', 0, 0}
  end
end
local rec = redis.call('HMGET', KEYS[1], 'f', 'p')
local first = tonumber(rec[1])
local passed = tonumber(rec[2])
if first and passed then
  redis.call('PEXPIRE', KEYS[1], passttl)
  stat('known')
  return {'pass', 'known', passed - first, 0}
end
if (not first) or (now - first > window) then
  local outcome = 'new'
  if first then outcome = 'expired' end
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 'i', ARGV[7], 's', ARGV[8], 'r', ARGV[9])
  redis.call('PEXPIRE', KEYS[1], window)
  deferred(outcome)
  return {'defer', outcome, 0, delay}
end
if now - first < delay then
  deferred('early')
  return {'defer', 'early', now - first, delay - (now - first)}
end
redis.call('HSET', KEYS[1], 'p', ARGV[1])
redis.call('PEXPIRE', KEYS[1], passttl)
if awl ~= '' and awlpasses > 0 then
  redis.call('HINCRBY', awl, 'n', 1)
  redis.call('HSET', awl, 'i', ARGV[7], 'd', string.match(ARGV[8], '@(.*)$') or '')
  redis.call('PEXPIRE', awl, ARGV[6])
end
local waited = math.floor((now - first) / 1000 + 0.5)
local bucket = 'inf'
for _, b in ipairs(buckets) do
  if waited <= b then bucket = tostring(b) break end
end
stat('retry')
stat('d:' .. bucket)
stat('dsum', waited)
if KEYS[3] ~= '' and waited > (tonumber(redis.call('HGET', KEYS[3], 'dmax')) or -1) then
  redis.call('HSET', KEYS[3], 'dmax', waited)
end
return {'pass', 'retry', now - first, 0}
`
// KEYS[3] day counters; ARGV[1] field, ARGV[11], ARGV[12] as above (the rest unused).
export const COUNT_SCRIPT = `${COUNT_LUA}
if ARGV[1] ~= '' then stat(ARGV[1]) end
return 1
`
const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex')
const TUPLE_SHA = sha1(TUPLE_SCRIPT)
const COUNT_SHA = sha1(COUNT_SCRIPT)
const OUTCOMES: readonly TupleOutcome[] = ['new', 'expired', 'early', 'retry', 'known', 'awl']

/** What the tuple script needs to know about a decision besides the timing. */
export interface TupleRef {
  readonly key: string
  readonly awlKey?: string
  readonly identity: { kind: string; value: string }
  readonly sender: string
  readonly recipient: string
}

export interface StatsOptions {
  readonly prefix: string
  readonly shadow: boolean
  /** Days the counters are kept; 0 = no statistics. */
  readonly ttlDays: number
}

/** A tuple record as `list` shows it. */
export interface TupleRecord {
  readonly key: string
  readonly firstSeen: number
  readonly passedAt: number | null
  readonly identity: string
  readonly sender: string
  readonly recipient: string
}

export class TupleStore {
  private failOpenPending = 0

  constructor(
    private readonly client: () => RedisClient | undefined,
    private readonly timeoutMs: () => number,
  ) {}

  /** One decision in one round trip, counted in the day's statistics. */
  async check(t: TupleRef, now: number, timing: Timing, stats: StatsOptions): Promise<Verdict> {
    const keys = this.statKeys(t.key, t.awlKey ?? '', stats, now)
    const args = [
      now,
      timing.delayMs,
      timing.windowMs,
      timing.passTtlMs,
      timing.awlPasses,
      timing.awlTtlMs,
      `${t.identity.kind}:${t.identity.value}`,
      t.sender,
      t.recipient,
      stats.shadow ? 1 : 0,
      stats.ttlDays * 86_400_000,
    ].map(String)
    return parseVerdict(await this.withFailOpen((carry) => this.eval(TUPLE_SCRIPT, TUPLE_SHA, keys, [...args, String(carry)])))
  }

  /** Counts an outcome that needs no tuple (whitelist, skip); best effort. */
  async count(field: string, now: number, stats: StatsOptions): Promise<void> {
    if (!stats.ttlDays) return
    const keys = this.statKeys('', '', stats, now)
    const args = [field, ...Array(9).fill(''), String(stats.ttlDays * 86_400_000)]
    await this.withFailOpen((carry) => this.eval(COUNT_SCRIPT, COUNT_SHA, keys, [...args, String(carry)]))
  }

  /** Remembers a decision that failed open; the next successful write counts it. */
  noteFailOpen(): void {
    this.failOpenPending++
  }

  /** Reads a tuple's state without changing it (for `smart-greylist check`). */
  async peek(t: { key: string; awlKey?: string }): Promise<StoredState & { ttlMs: number }> {
    return this.run(async (db) => {
      const [f, p] = await db.hmGet!(t.key, ['f', 'p'])
      const ttlMs = await db.pTTL!(t.key)
      const n = t.awlKey ? await db.hGet!(t.awlKey, 'n') : null
      return {
        tuple: f ? { firstSeen: Number(f), passedAt: p ? Number(p) : null } : null,
        awlCount: t.awlKey ? Number(n ?? 0) : null,
        ttlMs,
      }
    })
  }

  /** A small shared verdict (the SPF guard's), or null when none is stored. */
  async getFlag(key: string): Promise<string | null> {
    return (await this.run((db) => db.get(key))) ?? null
  }

  async setFlag(key: string, value: string, ttlMs: number): Promise<void> {
    await this.run((db) => db.set(key, value, { PX: ttlMs }))
  }

  /** Every key under `pattern`, in batches (SCAN: the server is never blocked). */
  async *scan(pattern: string): AsyncGenerator<string[]> {
    const db = this.ready()
    for await (const batch of db.scanIterator!({ MATCH: pattern, COUNT: 1000 })) {
      yield Array.isArray(batch) ? (batch as string[]) : [batch as string]
    }
  }

  async tuples(prefix: string): Promise<TupleRecord[]> {
    const out: TupleRecord[] = []
    for await (const keys of this.scan(`${prefix}t:*`)) {
      const rows = await Promise.all(keys.map((k) => this.run((db) => db.hGetAll!(k))))
      rows.forEach((h, i) => {
        if (!h?.f) return
        out.push({ key: keys[i], firstSeen: Number(h.f), passedAt: h.p ? Number(h.p) : null, identity: h.i ?? '', sender: h.s ?? '', recipient: h.r ?? '' })
      })
    }
    return out
  }

  async awlEntries(prefix: string): Promise<{ key: string; identity: string; domain: string; passes: number }[]> {
    const out: { key: string; identity: string; domain: string; passes: number }[] = []
    for await (const keys of this.scan(`${prefix}a:*`)) {
      const rows = await Promise.all(keys.map((k) => this.run((db) => db.hGetAll!(k))))
      rows.forEach((h, i) => out.push({ key: keys[i], identity: h?.i ?? '', domain: h?.d ?? '', passes: Number(h?.n ?? 0) }))
    }
    return out
  }

  async del(keys: string[]): Promise<number> {
    let n = 0
    for (let i = 0; i < keys.length; i += 500) n += await this.run((db) => db.del!(keys.slice(i, i + 500)))
    return n
  }

  async hash(key: string): Promise<Record<string, string>> {
    return { ...(await this.run((db) => db.hGetAll!(key))) }
  }

  async topIdentities(key: string, n: number): Promise<{ value: string; score: number }[]> {
    return this.run((db) => db.zRangeWithScores!(key, 0, n - 1, { REV: true }))
  }

  private statKeys(tuple: string, awl: string, stats: StatsOptions, now: number): string[] {
    if (!stats.ttlDays) return [tuple, awl, '', '']
    const s = statsKeys(stats.prefix, now)
    return [tuple, awl, s.counters, s.identities]
  }

  private async withFailOpen<T>(work: (carry: number) => Promise<T>): Promise<T> {
    const carry = this.failOpenPending
    this.failOpenPending = 0
    try {
      return await work(carry)
    } catch (err) {
      this.failOpenPending += carry
      throw err
    }
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
    })
  }

  private ready(): RedisClient {
    const db = this.client()
    if (!db) throw new StoreError('unavailable', 'no Redis connection yet')
    if (db.isReady === false) throw new StoreError('unavailable', 'Redis is not connected')
    return db
  }

  /** Runs one command bounded by the timeout, with errors classified into StoreError. */
  private async run<T>(command: (db: RedisClient) => Promise<T>): Promise<T> {
    const db = this.ready()
    try {
      return await withTimeout(command(db), this.timeoutMs(), 'Redis')
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
  return { action, outcome: outcome as TupleOutcome, waitedMs: Number(waited), retryInMs: Number(retryIn) }
}
