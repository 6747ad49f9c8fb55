// The decision table run against the tuple script in a real Redis: one function, called for a
// single redis-server (store.test.ts) and for a Redis Cluster (cluster.test.ts), so the script
// behaves the same wherever its keys land.
import assert from 'node:assert/strict'
import { decide, type StoredState, type Write } from '../../plugins/smart-greylist/core/decision'
import type { DecisionStore, TupleRef } from '../../plugins/smart-greylist/adapters/redis-decision'
import type { Identity } from '../../plugins/smart-greylist/core/identity'
import { identityKeys } from '../../plugins/smart-greylist/core/keys'
import { DECISION_CASES, TIMING } from './decision-cases'

/** What the cases read and seed, routed by key (a node-redis client or cluster). */
export interface KeyedRedis {
  hSet(key: string, field: string, value: string): Promise<unknown>
  set(key: string, value: string): Promise<unknown>
  get(key: string): Promise<string | null>
  hGet(key: string, field: string): Promise<string | null | undefined>
  hGetAll(key: string): Promise<Record<string, string>>
  exists(key: string): Promise<number>
  pTTL(key: string): Promise<number>
  pExpire(key: string, ms: number): Promise<unknown>
}

export const CASE_IDENTITY: Identity = { kind: 'host', value: 'outbound.protection.outlook.com', reason: 'fcrdns' }
const ids = identityKeys('sgl:', `${CASE_IDENTITY.kind}:${CASE_IDENTITY.value}`)
export const CASE_KEYS = { tuple: ids.tuple('alice@contoso.com', 'bob@example.com'), awl: ids.awl('contoso.com', 'net:85.214.0.0/16'), started: ids.started }

/** A reference to the case identity's tuple (`name` varies the tuple, as another envelope would). */
export function caseRef(name = 'alice@contoso.com', withAwl = false): TupleRef {
  return {
    shard: ids.shard,
    key: name === 'alice@contoso.com' ? CASE_KEYS.tuple : ids.tuple(name, 'bob@example.com'),
    startedKey: CASE_KEYS.started,
    ...(withAwl ? { awlKey: CASE_KEYS.awl } : {}),
    identity: CASE_IDENTITY,
    sender: 'alice@contoso.com',
    recipient: 'bob@example.com',
    client: '40.107.22.92',
    rdnsName: '?mail-eopbgr220092.outbound.protection.outlook.com',
  }
}

export function decisionCases(ctx: () => { db: KeyedRedis; store: DecisionStore }): void {
  const NO_STATS = { prefix: 'sgl:', shadow: false, ttlDays: 0 }
  const { tuple: key, awl, started } = CASE_KEYS

  // Every key a case seeds gets this TTL, so a transition that must leave a TTL alone shows it.
  const SEED_TTL = 7_777_000
  const who = { i: `${CASE_IDENTITY.kind}:${CASE_IDENTITY.value}`, s: 'alice@contoso.com', r: 'bob@example.com' }
  // Stored with a new tuple only: where the deferred attempt came from.
  const whence = { a: '40.107.22.92', h: '?mail-eopbgr220092.outbound.protection.outlook.com' }

  async function seed(db: KeyedRedis, stored: StoredState): Promise<void> {
    if (stored.awlCount !== null) {
      await db.hSet(awl, 'n', String(stored.awlCount))
      await db.pExpire(awl, SEED_TTL)
    }
    if (stored.started) {
      await db.set(started, String(stored.started))
      await db.pExpire(started, SEED_TTL)
    }
    if (!stored.tuple) return
    // A pending tuple holds where its first attempt came from; a passed one no longer does.
    const fields = { f: String(stored.tuple.firstSeen), ...who, ...(stored.tuple.passedAt === null ? whence : { p: String(stored.tuple.passedAt) }) }
    for (const [f, v] of Object.entries(fields)) await db.hSet(key, f, v)
    await db.pExpire(key, SEED_TTL)
  }

  /** Everything the script may touch: the three records and their TTLs (-2: no such key). */
  interface Snapshot {
    tuple: Record<string, string>
    tupleTtl: number
    awl: Record<string, string>
    awlTtl: number
    started: string | null
    startedTtl: number
  }

  async function snapshot(db: KeyedRedis): Promise<Snapshot> {
    return {
      tuple: { ...(await db.hGetAll(key)) },
      tupleTtl: await db.pTTL(key),
      awl: { ...(await db.hGetAll(awl)) },
      awlTtl: await db.pTTL(awl),
      started: await db.get(started),
      startedTtl: await db.pTTL(started),
    }
  }

  /** What decide()'s write does to the records, as the key schema stores them. */
  function expectedAfter(before: Snapshot, write: Write, now: number): Snapshot {
    const after = { ...before, tuple: { ...before.tuple }, awl: { ...before.awl } }
    switch (write.op) {
      case 'create': {
        after.tuple = { f: String(now), ...who, ...whence }
        after.tupleTtl = write.ttlMs
        const n = Number(before.started ?? 0) + 1
        after.started = String(n)
        if (n === 1) after.startedTtl = TIMING.windowMs
        break
      }
      case 'pass':
        after.tuple.p = String(now)
        delete after.tuple.a
        delete after.tuple.h
        after.tupleTtl = write.ttlMs
        if (write.awlIncrement) {
          after.awl = { n: String(Number(before.awl.n ?? 0) + 1), i: who.i, d: 'contoso.com' }
          after.awlTtl = TIMING.awlTtlMs
        }
        break
      case 'touch':
        after.tupleTtl = write.ttlMs
        break
      case 'awl_touch':
        after.awlTtl = write.ttlMs
        break
      case 'none':
        break
    }
    return after
  }

  /** TTLs count down while the test runs: equal within a few seconds, and never longer. */
  function assertSame(actual: Snapshot, expected: Snapshot, what: string): void {
    const ttls = ['tupleTtl', 'awlTtl', 'startedTtl'] as const
    const strip = (s: Snapshot): Omit<Snapshot, (typeof ttls)[number]> => ({ tuple: s.tuple, awl: s.awl, started: s.started })
    assert.deepEqual(strip(actual), strip(expected), what)
    for (const t of ttls) {
      const [a, e] = [actual[t], expected[t]]
      assert.ok(e < 0 ? a === e : a > e - 5000 && a <= e, `${what}: ${t} ${a}, expected ${e}`)
    }
  }

  for (const c of DECISION_CASES) {
    it(`applies the same transition as decide(): ${c.status.toUpperCase()}, ${c.name}`, async () => {
      const { db, store } = ctx()
      await seed(db, c.stored)
      const before = await snapshot(db)
      const verdict = await store.check(caseRef(undefined, c.stored.awlCount !== null), c.now, TIMING, NO_STATS)
      const expected = decide(c.stored, c.now, TIMING)
      assert.deepEqual(verdict, expected.verdict)
      assertSame(await snapshot(db), expectedAfter(before, expected.write, c.now), `${c.status} (${expected.write.op})`)
      // The table's own expectations, stated independently of decide().
      assert.equal(expected.write.op, c.write)
      if (c.awlAfter !== undefined) assert.equal(await db.hGet(awl, 'n'), String(c.awlAfter))
      if (c.startedAfter !== undefined) assert.equal(await db.get(started), String(c.startedAfter))
      if (c.ttlMs !== undefined) {
        const ttl = await db.pTTL(key)
        assert.ok(ttl > c.ttlMs - 5000 && ttl <= c.ttlMs, `ttl ${ttl}`)
      }
    })
  }
}
