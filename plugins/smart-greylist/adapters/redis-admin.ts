// What the operator's command reads from Redis and removes: tuple state, scans of the key space,
// statistics. Never on the decision path; bounded like every command (see redis-client.ts).
import { decide, type StoredState, type Timing, type Verdict } from '../core/decision'
import { KEY_PATTERNS } from '../core/keys'
import { addHashes, allStatsKeys } from '../core/stats'
import { BoundedRedis, scanNode } from './redis-client'
import type { RedisClient } from './haraka-types'
import type { TupleStore } from './recipient'
import type { TupleRef } from './redis-decision'
import type { TupleSeen } from '../core/stuck'

/** A tuple record as `list` and `stuck` read it. */
export interface TupleRecord extends TupleSeen {
  readonly key: string
}

export interface AwlRecord {
  readonly key: string
  readonly identity: string
  readonly domain: string
  readonly passes: number
}

/** One correspondent of a local mailbox, as `correspondents list` shows it. */
export interface CorrespondentRecord {
  readonly key: string
  readonly field: string
  readonly mailbox: string
  readonly domain: string
  readonly expiresAt: number
}

export class AdminStore {
  private readonly redis: BoundedRedis

  constructor(
    client: () => RedisClient | undefined,
    private readonly timeoutMs: () => number,
  ) {
    this.redis = new BoundedRedis(client, timeoutMs)
  }

  /** A tuple's state as decide() wants it, read without changing it (for `check`). */
  async peek(t: { key: string; awlKey?: string; startedKey: string }): Promise<StoredState & { ttlMs: number }> {
    return this.redis.run(async (db) => {
      const [f, p] = await db.hmGet(t.key, ['f', 'p'])
      const ttlMs = await db.pTTL(t.key)
      const n = t.awlKey ? await db.hGet(t.awlKey, 'n') : null
      const started = await db.get(t.startedKey)
      return {
        tuple: f ? { firstSeen: Number(f), passedAt: p ? Number(p) : null } : null,
        awlCount: t.awlKey ? Number(n ?? 0) : null,
        started: Number(started ?? 0),
        ttlMs,
      }
    })
  }

  /** Every key under `pattern` on every master, in batches (SCAN: no server is blocked). */
  async *scan(pattern: string): AsyncGenerator<string[]> {
    const nodes = await this.redis.run((db) => db.sgMasters())
    for (const node of nodes) yield* scanNode(node, pattern, this.timeoutMs())
  }

  async tuples(prefix: string): Promise<TupleRecord[]> {
    const out: TupleRecord[] = []
    for await (const batch of this.tupleBatches(prefix)) out.push(...batch)
    return out
  }

  /** The tuple records, a SCAN batch at a time (nothing but the batch is held). */
  async *tupleBatches(prefix: string): AsyncGenerator<TupleRecord[]> {
    for await (const keys of this.scan(KEY_PATTERNS.tuples(prefix))) {
      const rows = await Promise.all(keys.map(async (key) => ({ key, h: await this.hash(key) })))
      const out: TupleRecord[] = []
      rows.forEach(({ key, h }) => {
        if (!h.f) return
        out.push({
          key,
          firstSeen: Number(h.f),
          passedAt: h.p ? Number(h.p) : null,
          identity: h.i ?? '',
          sender: h.s ?? '',
          recipient: h.r ?? '',
          client: h.a ?? '',
          rdns: h.h ?? '',
        })
      })
      yield out
    }
  }

  async awlEntries(prefix: string): Promise<AwlRecord[]> {
    const out: AwlRecord[] = []
    for await (const keys of this.scan(KEY_PATTERNS.awl(prefix))) {
      const rows = await Promise.all(keys.map(async (key) => ({ key, h: await this.hash(key) })))
      rows.forEach(({ key, h }) => out.push({ key, identity: h.i ?? '', domain: h.d ?? '', passes: Number(h.n ?? 0) }))
    }
    return out
  }

  async correspondents(prefix: string): Promise<CorrespondentRecord[]> {
    const out: CorrespondentRecord[] = []
    for await (const keys of this.scan(KEY_PATTERNS.correspondents(prefix))) {
      const rows = await Promise.all(keys.map(async (key) => ({ key, h: await this.hash(key) })))
      rows.forEach(({ key, h }) => {
        for (const [field, value] of Object.entries(h)) {
          if (field === 'm') continue
          const bar = value.indexOf('|')
          out.push({ key, field, mailbox: h.m ?? '', domain: value.slice(bar + 1), expiresAt: Number(value.slice(0, bar)) })
        }
      })
    }
    return out
  }

  /** Removes fields of one hash (HDEL); the count removed. */
  async hdel(key: string, fields: string[]): Promise<number> {
    return fields.length ? this.redis.run((db) => db.hDel(key, fields)) : 0
  }

  /** One DEL per key (keys of different shards may live on different cluster nodes), 500 at a time. */
  async del(keys: string[]): Promise<number> {
    let n = 0
    for (let i = 0; i < keys.length; i += 500) {
      const done = await Promise.all(keys.slice(i, i + 500).map((k) => this.redis.run((db) => db.del([k]))))
      n += done.reduce((a, b) => a + b, 0)
    }
    return n
  }

  /** RENAMENX: false when `to` exists already (then `from` is left as it is). */
  async renameIfAbsent(from: string, to: string): Promise<boolean> {
    // node-redis 4 answers a boolean, 5 a number.
    return Number(await this.redis.run((db) => db.renameNX(from, to))) === 1
  }

  /** One day's statistics, every shard added up, and the identities deferred most. */
  async day(prefix: string, ms: number, top: number): Promise<{ counters: Record<string, string>; identities: { value: string; score: number }[] }> {
    const [counters, sets] = await Promise.all([
      this.counters(prefix, ms),
      Promise.all(allStatsKeys(prefix, ms).map((k) => this.topIdentities(k.identities, top))),
    ])
    const identities = sets
      .flat()
      .sort((a, b) => b.score - a.score)
      .slice(0, top)
    return { counters, identities }
  }

  /** One day's counters, every shard added up. */
  async counters(prefix: string, ms: number): Promise<Record<string, string>> {
    return addHashes(await Promise.all(allStatsKeys(prefix, ms).map((k) => this.hash(k.counters))))
  }

  /** SET NX PX: true when this call set it (a gate one process of the site passes per period). */
  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.run((db) => db.set(key, value, { PX: ttlMs, NX: true }))) !== null
  }

  /** Writes a small hash whole, with a TTL. */
  async setHash(key: string, fields: Record<string, string>, ttlMs: number): Promise<void> {
    await this.redis.run(async (db) => {
      await db.hSet(key, fields)
      await db.pExpire(key, ttlMs)
    })
  }

  async hash(key: string): Promise<Record<string, string>> {
    return { ...(await this.redis.run((db) => db.hGetAll(key))) }
  }

  async topIdentities(key: string, n: number): Promise<{ value: string; score: number }[]> {
    return this.redis.run((db) => db.zRangeWithScores(key, 0, n - 1, { REV: true }))
  }
}

/**
 * The command's tuple store: reads the tuple's state and decides as the script would, writing
 * nothing; keeps what it read for the report.
 */
export class TuplePeek implements TupleStore {
  read: (StoredState & { ttlMs: number }) | null = null

  constructor(
    private readonly admin: AdminStore,
    private readonly reads: Pick<TupleStore, 'isCorrespondent'>,
  ) {}

  isCorrespondent(key: string, field: string, now: number): Promise<boolean> {
    return this.reads.isCorrespondent(key, field, now)
  }

  async check(t: TupleRef, now: number, timing: Timing): Promise<Verdict> {
    this.read = await this.admin.peek(t)
    return decide(this.read, now, timing).verdict
  }
}
