// The decision table run against the tuple script in a real Redis: one function, called for a
// single redis-server (store.test.ts) and for a Redis Cluster (cluster.test.ts), so the script
// behaves the same wherever its keys land.
import assert from 'node:assert/strict'
import { decide, type StoredState } from '../../plugins/smart-greylist/core/decision'
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
  }
}

export function decisionCases(ctx: () => { db: KeyedRedis; store: DecisionStore }): void {
  const NO_STATS = { prefix: 'sgl:', shadow: false, ttlDays: 0 }
  const { tuple: key, awl, started } = CASE_KEYS

  async function seed(db: KeyedRedis, stored: StoredState): Promise<void> {
    if (stored.awlCount !== null) await db.hSet(awl, 'n', String(stored.awlCount))
    if (stored.started) await db.set(started, String(stored.started))
    if (!stored.tuple) return
    await db.hSet(key, 'f', String(stored.tuple.firstSeen))
    if (stored.tuple.passedAt !== null) await db.hSet(key, 'p', String(stored.tuple.passedAt))
  }

  for (const c of DECISION_CASES) {
    it(`applies the same transition as decide(): ${c.status.toUpperCase()}, ${c.name}`, async () => {
      const { db, store } = ctx()
      await seed(db, c.stored)
      const verdict = await store.check(caseRef(undefined, c.stored.awlCount !== null), c.now, TIMING, NO_STATS)
      assert.deepEqual(verdict, decide(c.stored, c.now, TIMING).verdict)

      const after: Record<string, string> = { ...(await db.hGetAll(key)) }
      const expected = decide(c.stored, c.now, TIMING).write
      const who = { i: 'host:outbound.protection.outlook.com', s: 'alice@contoso.com', r: 'bob@example.com' }
      if (expected.op === 'pass') assert.equal(after.p, String(c.now))
      if (expected.op === 'create') assert.deepEqual(after, { f: String(c.now), ...who })
      if (expected.op === 'awl_touch') assert.deepEqual(after, {}, 'an auto-whitelisted pair writes no tuple')
      if (c.awlAfter !== undefined) assert.equal(await db.hGet(awl, 'n'), String(c.awlAfter))
      if (c.startedAfter !== undefined) assert.equal(await db.get(started), String(c.startedAfter))
      if (c.status === 'capped') assert.equal(await db.exists(key), c.stored.tuple ? 1 : 0, 'a capped tuple is not stored')
      if (c.ttlMs !== undefined) {
        const ttl = await db.pTTL(key)
        assert.ok(ttl > c.ttlMs - 5000 && ttl <= c.ttlMs, `ttl ${ttl}`)
      }
    })
  }
}
