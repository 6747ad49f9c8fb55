// What a decision needs from Redis: one atomic round trip (EVALSHA of a script that applies
// decide()'s transition and counts the day's statistics), plus the SPF guard's shared verdicts.
// The script's keys and arguments are declared once, by name, below.
import { createHash } from 'node:crypto'
import { isTupleStatus, TUPLE_STATUSES, type Timing, type TupleStatus, type Verdict } from '../core/decision'
import { identityText, type Identity } from '../core/identity'
import { shardOf } from '../core/keys'
import { DEFAULTS } from '../core/settings'
import { COUNTER, DELAY_BUCKETS, identitiesPerShard, statsKeys, type AlsoLabel, type DeferLabel } from '../core/stats'
import type { FlagStore } from './spf-guard'
import { BoundedRedis, StoreError } from './redis-client'
import type { RedisClient } from './haraka-types'
import type { RedisHealth } from './redis-health'
import { Telemetry } from './telemetry'

export { StoreError }

/** KEYS of the script, in order ('' = not used by this call). */
const KEY_NAMES = ['tuple_key', 'awl_key', 'counters_key', 'identities_key', 'started_key'] as const
/** ARGV of the script, in order; times in ms since the epoch or ms. */
const ARG_NAMES = [
  'now',
  'delay',
  'window',
  'pass_ttl',
  'awl_passes', // 0 = auto-whitelist off
  'awl_ttl',
  'identity',
  'sender',
  'recipient',
  'client', // the client's address, stored with a new tuple ('' = none)
  'rdns', // its rDNS name, '?'-prefixed when not forward-confirmed ('' = none)
  'label', // what a deferral counts as: defer (enforced), shadow ([main] mode), trusted ([select] accepted it)
  'also', // a second counter a deferral bumps ('' = none): would_trust (suspicious would have accepted it)
  'stats_ttl',
  'fail_open', // decisions that failed open since the last successful write, by cause: 'redis_timeout=2,internal=1'
  'field', // COUNT_SCRIPT: the counter to bump
  'pending_cap', // new tuples one identity may start per window
  'identities_max', // identities kept in the day's sorted set
  'deadline', // Redis time (ms) after which the call must not act ('' = unknown)
  'absent', // per key, '1' when the call does not use it (see PREAMBLE)
] as const
type KeyName = (typeof KEY_NAMES)[number]
type ArgName = (typeof ARG_NAMES)[number]

/**
 * Lua locals named after the keys and arguments, so the script body reads by name. A key the
 * call does not use is sent as a copy of one it uses (Redis Cluster wants every key of a script
 * in one slot, and '' is a key of slot 0) and named in `absent`; the script sees it as ''.
 */
const PREAMBLE = [
  ...ARG_NAMES.map((n, i) => `local ${n} = ARGV[${i + 1}]`),
  ...KEY_NAMES.map((n, i) => `local ${n} = KEYS[${i + 1}]\nif string.sub(absent, ${i + 1}, ${i + 1}) == '1' then ${n} = '' end`),
].join('\n')

/**
 * A Lua string literal of a name declared in core/ (statuses, counters, labels): the script
 * spells every one of them through here, so renaming one there renames it here.
 */
function lua(name: string): string {
  if (!/^[a-z_:]+$/.test(name)) throw new Error(`not a plain name for the script: ${name}`)
  return `'${name}'`
}
const S = Object.fromEntries(TUPLE_STATUSES.map((t) => [t, lua(t)])) as Record<TupleStatus, string>
const C = Object.fromEntries(Object.entries(COUNTER).map(([k, v]) => [k, lua(v)])) as Record<keyof typeof COUNTER, string>
const TRUSTED: DeferLabel = 'trusted'

// A call that reaches Redis after its caller gave up (Redis paused, then resumed) acts on
// nothing: the recipient was already answered.
const DEADLINE = `
if deadline ~= '' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline) then return {'stale'} end
end
`

const COUNTING = `
local statsttl = tonumber(stats_ttl)
local function stat(f, n)
  if counters_key ~= '' then
    -- The day's key gets its TTL when one of its counters is created, not on every call.
    if redis.call('HINCRBY', counters_key, f, n or 1) == (n or 1) then redis.call('PEXPIRE', counters_key, statsttl) end
  end
end
for cause, n in string.gmatch(fail_open, '([%w_]+)=(%d+)') do
  stat(${C.failOpen}, tonumber(n))
  stat(${C.failOpenBy} .. cause, tonumber(n))
end
`

// The transitions are exactly those of decide() (core/decision.ts); test/integration runs one
// table of cases against both.
const TUPLE_BODY = `
local nowms = tonumber(now)
local delayms = tonumber(delay)
local windowms = tonumber(window)
local awlpasses = tonumber(awl_passes)
local buckets = {${DELAY_BUCKETS.join(', ')}}
local kind = string.match(identity, '^(%a+):') or 'other'
-- Decisions per identity kind (a message record, which has no identity counter, is not one).
if started_key ~= '' then stat(${C.identityKind} .. kind) end
local function deferred(status)
  stat(label .. ':' .. status)
  if also ~= '' then stat(also .. ':' .. status) end
  if (status == ${S.new} or status == ${S.expired}) and label ~= ${lua(TRUSTED)} and identities_key ~= '' then
    -- A new member sets the TTL and, now and then, trims the set to the identities deferred most.
    if tonumber(redis.call('ZINCRBY', identities_key, 1, identity)) == 1 then
      redis.call('PEXPIRE', identities_key, statsttl)
      local keep = tonumber(identities_max)
      if redis.call('ZCARD', identities_key) > 2 * keep then
        redis.call('ZREMRANGEBYRANK', identities_key, 0, -(keep + 1))
      end
    end
  end
end
if awl_key ~= '' and awlpasses > 0 then
  local n = tonumber(redis.call('HGET', awl_key, 'n'))
  if n and n >= awlpasses then
    redis.call('PEXPIRE', awl_key, awl_ttl)
    stat(${C.awl})
    return {'pass', ${S.awl}, 0, 0}
  end
end
local rec = redis.call('HMGET', tuple_key, 'f', 'p')
local first = tonumber(rec[1])
local passed = tonumber(rec[2])
if first and passed then
  redis.call('PEXPIRE', tuple_key, pass_ttl)
  stat(${C.known})
  return {'pass', ${S.known}, passed - first, 0}
end
if (not first) or (nowms - first > windowms) then
  local status = ${S.new}
  if first then status = ${S.expired} end
  -- A message record (net_identity_greylist = message) has no identity to count against: started_key is absent.
  local started = 0
  if started_key ~= '' then started = tonumber(redis.call('GET', started_key) or '0') end
  if started >= tonumber(pending_cap) then
    deferred(${S.capped})
    return {'defer', ${S.capped}, 0, delayms}
  end
  if started_key ~= '' and redis.call('INCR', started_key) == 1 then redis.call('PEXPIRE', started_key, window) end
  redis.call('DEL', tuple_key)
  local fields = {'f', now, 'i', identity, 's', sender, 'r', recipient}
  -- Where the deferred attempt came from, for smart-greylist stuck.
  if client ~= '' then table.insert(fields, 'a') table.insert(fields, client) end
  if rdns ~= '' then table.insert(fields, 'h') table.insert(fields, rdns) end
  redis.call('HSET', tuple_key, unpack(fields))
  redis.call('PEXPIRE', tuple_key, window)
  deferred(status)
  return {'defer', status, 0, delayms}
end
if nowms - first < delayms then
  deferred(${S.early})
  return {'defer', ${S.early}, nowms - first, delayms - (nowms - first)}
end
redis.call('HSET', tuple_key, 'p', now)
-- Where the attempts came from matters while pending only (stuck): a passed tuple, kept for
-- pass_ttl, stays as small as before.
redis.call('HDEL', tuple_key, 'a', 'h')
redis.call('PEXPIRE', tuple_key, pass_ttl)
if awl_key ~= '' and awlpasses > 0 then
  redis.call('HINCRBY', awl_key, 'n', 1)
  redis.call('HSET', awl_key, 'i', identity, 'd', string.match(sender, '@(.*)$') or '')
  redis.call('PEXPIRE', awl_key, awl_ttl)
end
local waited = math.floor((nowms - first) / 1000 + 0.5)
local bucket = 'inf'
for _, b in ipairs(buckets) do
  if waited <= b then bucket = tostring(b) break end
end
stat(${C.retry})
stat(${C.delayBucket} .. bucket)
stat(${C.delayByKind} .. kind .. ':' .. bucket)
stat(${C.delaySum}, waited)
stat(${C.delaySumByKind} .. kind, waited)
if counters_key ~= '' and waited > (tonumber(redis.call('HGET', counters_key, ${C.delayMax})) or -1) then
  redis.call('HSET', counters_key, ${C.delayMax}, waited)
end
return {'pass', ${S.retry}, nowms - first, 0}
`

const COUNT_BODY = `
if field ~= '' then stat(field) end
return 1
`

interface Script {
  readonly source: string
  readonly sha: string
}
function script(body: string): Script {
  return plain(`${PREAMBLE}\n${DEADLINE}${COUNTING}${body}`)
}
export const TUPLE_SCRIPT = script(TUPLE_BODY)
export const COUNT_SCRIPT = script(COUNT_BODY)

// KEYS[1]: a local mailbox's correspondents. ARGV: now, ttl (ms), most kept, the mailbox, then
// (field, domain) pairs. Past the bound the entries that expire first go.
const CORRESPONDENT_SCRIPT: Script = plain(`
local now, ttl, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'm', ARGV[4])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], (now + ttl) .. '|' .. ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ttl)
if redis.call('HLEN', KEYS[1]) - 1 > most then
  local all = redis.call('HGETALL', KEYS[1])
  local entries = {}
  for i = 1, #all, 2 do
    if all[i] ~= 'm' then table.insert(entries, {all[i], tonumber(string.match(all[i + 1], '^(%d+)')) or 0}) end
  end
  table.sort(entries, function(a, b) return a[2] < b[2] end)
  for i = 1, #entries - most do redis.call('HDEL', KEYS[1], entries[i][1]) end
end
return 1
`)

function plain(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') }
}

/** A local mailbox's correspondents to record: the outside domains it wrote to. */
export interface CorrespondentWrite {
  readonly key: string
  readonly mailbox: string
  readonly domains: readonly { field: string; domain: string }[]
}

type ScriptKeys = Partial<Record<KeyName, string>>
type ScriptArgs = Partial<Record<ArgName, string | number>>

const ARG_INDEX = Object.fromEntries(ARG_NAMES.map((n, i) => [n, i])) as Record<ArgName, number>

/**
 * KEYS and ARGV in declaration order; an argument the call does not name is '', a key is absent.
 * Plain loops: this runs for every recipient.
 */
export function scriptCall(keys: ScriptKeys, args: Omit<ScriptArgs, 'absent'>): { keys: string[]; arguments: string[] } {
  let stand: string | undefined
  for (const k of KEY_NAMES) if (!stand && keys[k]) stand = keys[k]
  if (!stand) throw new Error('a script call needs at least one key')
  const out: string[] = new Array<string>(KEY_NAMES.length)
  let absent = ''
  for (const [i, name] of KEY_NAMES.entries()) {
    const key = keys[name]
    out[i] = key || stand
    absent += key ? '0' : '1'
  }
  const argv: string[] = new Array<string>(ARG_NAMES.length).fill('')
  for (const name in args) {
    const value = args[name as keyof typeof args]
    if (value !== undefined && value !== null) argv[ARG_INDEX[name as ArgName]] = String(value)
  }
  argv[ARG_INDEX.absent] = absent
  return { keys: out, arguments: argv }
}

/** What the tuple script needs to know about a decision besides the timing. */
export interface TupleRef {
  /** The identity's shard (keys.ts): the day's counters it bumps are those of this shard. */
  readonly shard: number
  readonly key: string
  readonly startedKey: string
  readonly awlKey?: string
  readonly identity: Identity
  readonly sender: string
  readonly recipient: string
  /** The client's address and rDNS name (`?name` when not forward-confirmed), kept with a new tuple. */
  readonly client?: string
  readonly rdnsName?: string
}

export interface StatsOptions {
  readonly prefix: string
  readonly shadow: boolean
  /** Overrides `shadow`: the counter family a deferral bumps. */
  readonly label?: DeferLabel
  /** A second counter family a deferral bumps. */
  readonly also?: AlsoLabel
  /** Days the counters are kept; 0 = no statistics. */
  readonly ttlDays: number
  /** Identities kept per day in the "delayed most" set. */
  readonly identitiesMax?: number
}

export interface DecisionStoreOptions {
  /** Stored strings are cut to this length. */
  readonly storedChars?: () => number
  /** Commands waiting at once; past it a call fails at once instead of queueing. */
  readonly maxInFlight?: () => number
  /** The plugin's watch on a silent Redis, and Redis's clock for the scripts' deadline. */
  readonly health?: RedisHealth
  /** Where this process's Redis waits and fail-open events are counted (the metrics). */
  readonly telemetry?: Telemetry
  /** Told of each decision that failed open (the decisions' connection counts them for its resume line). */
  readonly failedOpen?: () => void
}

export class DecisionStore implements FlagStore {
  /** Decisions that failed open since the last successful write, by cause. */
  private failOpenPending = new Map<string, number>()
  private inFlight = 0
  private readonly redis: BoundedRedis

  constructor(
    client: () => RedisClient | undefined,
    private readonly timeoutMs: () => number,
    private readonly opts: DecisionStoreOptions = {},
  ) {
    this.redis = new BoundedRedis(client, timeoutMs)
  }

  /** Commands of this store waiting for Redis now. */
  get pending(): number {
    return this.inFlight
  }

  private storedChars(): number {
    return this.opts.storedChars?.() ?? DEFAULTS.limits.stored_chars
  }

  /** One decision in one round trip, counted in the day's statistics. */
  async check(t: TupleRef, now: number, timing: Timing, stats: StatsOptions): Promise<Verdict> {
    const cut = this.storedChars()
    const keys = this.statKeys(stats, now, t.shard)
    keys.tuple_key = t.key
    keys.awl_key = t.awlKey
    keys.started_key = t.startedKey
    const args = {
      now,
      delay: timing.delayMs,
      window: timing.windowMs,
      pass_ttl: timing.passTtlMs,
      awl_passes: timing.awlPasses,
      awl_ttl: timing.awlTtlMs,
      identity: identityText(t.identity).slice(0, cut),
      sender: t.sender.slice(0, cut),
      recipient: t.recipient.slice(0, cut),
      client: t.client ?? '',
      rdns: (t.rdnsName ?? '').slice(0, cut),
      label: stats.label ?? (stats.shadow ? 'shadow' : 'defer'),
      also: stats.also ?? '',
      stats_ttl: stats.ttlDays * 86_400_000,
      fail_open: '',
      pending_cap: timing.pendingCap,
      identities_max: identitiesPerShard(stats.identitiesMax ?? DEFAULTS.stats.identities),
      deadline: this.deadline(),
    }
    const reply = await this.withFailOpen((failOpen) => {
      args.fail_open = failOpen
      return this.eval(TUPLE_SCRIPT, keys, args)
    })
    return parseVerdict(reply)
  }

  /**
   * Counts an outcome that needs no tuple (whitelist, skip); best effort. `spread` (the client's
   * address) picks the shard, so these counts spread like the decisions do.
   */
  async count(field: string, now: number, stats: StatsOptions, spread: string): Promise<void> {
    if (!stats.ttlDays) return
    await this.withFailOpen((failOpen) =>
      this.eval(COUNT_SCRIPT, this.statKeys(stats, now, shardOf(spread)), {
        field,
        stats_ttl: stats.ttlDays * 86_400_000,
        fail_open: failOpen,
        deadline: this.deadline(),
      }),
    )
  }

  /** True when `field` of a mailbox's correspondents is there and not expired. */
  async isCorrespondent(key: string, field: string, now: number): Promise<boolean> {
    const value = await this.bounded(key, (db) => db.hGet(key, field))
    return typeof value === 'string' && Number(value.split('|')[0]) > now
  }

  /** Records (or refreshes) the outside domains a local mailbox wrote to. */
  async recordCorrespondents(w: CorrespondentWrite, now: number, ttlMs: number, most: number): Promise<void> {
    const cut = this.storedChars()
    const pairs = w.domains.flatMap((d) => [d.field, d.domain.slice(0, cut)])
    await this.run(CORRESPONDENT_SCRIPT, { keys: [w.key], arguments: [String(now), String(ttlMs), String(most), w.mailbox.slice(0, cut), ...pairs] })
  }

  /** Remembers a decision that failed open, and why; the next successful write counts it. */
  noteFailOpen(cause: string): void {
    const c = /^[a-z_]{1,32}$/.test(cause) ? cause : 'other'
    this.opts.telemetry?.noteFailOpen(c)
    this.opts.failedOpen?.()
    this.failOpenPending.set(c, (this.failOpenPending.get(c) ?? 0) + 1)
  }

  /** A small shared verdict (the SPF guard's), or null when none is stored. */
  async getFlag(key: string): Promise<string | null> {
    return (await this.bounded(key, (db) => db.get(key))) ?? null
  }

  async setFlag(key: string, value: string, ttlMs: number): Promise<void> {
    await this.bounded(key, (db) => db.set(key, value, { PX: ttlMs }))
  }

  private deadline(): number | string {
    return this.opts.health?.deadline(this.timeoutMs()) ?? ''
  }

  /**
   * Every command of this store, on `key` (which decides the cluster node): refused at once when
   * that node is silent or too much is waiting.
   */
  private async bounded<T>(key: string, command: (db: RedisClient) => Promise<T>): Promise<T> {
    if (this.opts.health && !this.opts.health.responsiveFor(key)) throw new StoreError('unavailable', 'Redis is not answering')
    const max = this.opts.maxInFlight?.() ?? Infinity
    if (this.inFlight >= max) throw new StoreError('busy', `${this.inFlight} Redis commands already waiting`)
    this.inFlight++
    try {
      return await Telemetry.timed(this.opts.telemetry?.redis, this.redis.run(command))
    } finally {
      this.inFlight--
    }
  }

  private statKeys(stats: StatsOptions, now: number, shard: number): ScriptKeys {
    if (!stats.ttlDays) return {}
    const s = statsKeys(stats.prefix, now, shard)
    return { counters_key: s.counters, identities_key: s.identities }
  }

  private async withFailOpen<T>(work: (failOpen: string) => Promise<T>): Promise<T> {
    if (!this.failOpenPending.size) return work('')
    const carry = this.failOpenPending
    this.failOpenPending = new Map()
    try {
      return await work([...carry].map(([c, n]) => `${c}=${n}`).join(','))
    } catch (err) {
      for (const [c, n] of carry) this.failOpenPending.set(c, (this.failOpenPending.get(c) ?? 0) + n)
      throw err
    }
  }

  private eval(s: Script, keys: ScriptKeys, args: Omit<ScriptArgs, 'absent'>): Promise<unknown> {
    return this.run(s, scriptCall(keys, args))
  }

  private run(s: Script, call: { keys: string[]; arguments: string[] }): Promise<unknown> {
    return this.bounded(call.keys[0] ?? '', async (db) => {
      try {
        return await db.evalSha(s.sha, call)
      } catch (err) {
        // After a restart or SCRIPT FLUSH the cache is empty: EVAL loads it again.
        if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return db.eval(s.source, call)
        throw err
      }
    })
  }
}

function parseVerdict(reply: unknown): Verdict {
  if (Array.isArray(reply) && reply[0] === 'stale') throw new StoreError('timeout', 'Redis ran the decision after its deadline; it changed nothing')
  if (!Array.isArray(reply) || reply.length !== 4) {
    throw new StoreError('failed', `unexpected reply from the tuple script: ${JSON.stringify(reply)}`)
  }
  const [action, status, waited, retryIn] = reply as unknown[]
  if ((action !== 'defer' && action !== 'pass') || !isTupleStatus(status)) {
    throw new StoreError('failed', `unexpected reply from the tuple script: ${JSON.stringify(reply)}`)
  }
  return { action, status, waitedMs: Number(waited), retryInMs: Number(retryIn) }
}
