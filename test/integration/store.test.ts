// Integration: the Lua state machine in a real redis-server, against the same table as decide().
import assert from 'node:assert/strict'
import { decide, type StoredState } from '../../plugins/smart-greylist/core/decision'
import { DecisionStore, StoreError, type TupleRef } from '../../plugins/smart-greylist/adapters/redis-decision'
import { AdminStore } from '../../plugins/smart-greylist/adapters/redis-admin'
import { statsKeys } from '../../plugins/smart-greylist/core/stats'
import { startPrivateRedis, type PrivateRedis } from '../../scripts/redis-server'
import { DECISION_CASES, TIMING } from '../helpers/decision-cases'
import { connectRedis, type TestRedis } from '../helpers/redis'

describe('DecisionStore and AdminStore (Redis)', function () {
  this.timeout(20_000)
  let server: PrivateRedis
  let db: TestRedis
  let store: DecisionStore
  let reads: AdminStore

  before(async () => {
    server = await startPrivateRedis()
    db = await connectRedis(server.port)
    store = new DecisionStore(() => db, () => 500)
    reads = new AdminStore(() => db, () => 500)
  })
  beforeEach(() => db.flushDb())
  after(async () => {
    await db?.quit().catch(() => undefined)
    await server?.stop()
  })

  const NO_STATS = { prefix: 'sgl:', shadow: false, ttlDays: 0 }
  const ref = (key: string, awlKey?: string): TupleRef => ({
    key,
    startedKey: 'sgl:n:case',
    ...(awlKey ? { awlKey } : {}),
    identity: { kind: 'host', value: 'outbound.protection.outlook.com' },
    sender: 'alice@contoso.com',
    recipient: 'bob@example.com',
  })

  async function seed(key: string, awl: string, stored: StoredState): Promise<void> {
    if (stored.awlCount !== null) await db.hSet(awl, 'n', String(stored.awlCount))
    if (stored.started) await db.set('sgl:n:case', String(stored.started))
    if (!stored.tuple) return
    await db.hSet(key, 'f', String(stored.tuple.firstSeen))
    if (stored.tuple.passedAt !== null) await db.hSet(key, 'p', String(stored.tuple.passedAt))
  }

  for (const c of DECISION_CASES) {
    it(`applies the same transition as decide(): ${c.status.toUpperCase()}, ${c.name}`, async () => {
      const key = 'sgl:t:case'
      const awl = 'sgl:a:case'
      await seed(key, awl, c.stored)
      const verdict = await store.check(ref(key, c.stored.awlCount === null ? undefined : awl), c.now, TIMING, NO_STATS)
      assert.deepEqual(verdict, decide(c.stored, c.now, TIMING).verdict)

      const after: Record<string, string> = { ...(await db.hGetAll(key)) }
      const expected = decide(c.stored, c.now, TIMING).write
      const who = { i: 'host:outbound.protection.outlook.com', s: 'alice@contoso.com', r: 'bob@example.com' }
      if (expected.op === 'pass') assert.equal(after.p, String(c.now))
      if (expected.op === 'create') assert.deepEqual(after, { f: String(c.now), ...who })
      if (expected.op === 'awl_touch') assert.deepEqual(after, {}, 'an auto-whitelisted pair writes no tuple')
      if (c.awlAfter !== undefined) assert.equal(await db.hGet(awl, 'n'), String(c.awlAfter))
      if (c.startedAfter !== undefined) assert.equal(await db.get('sgl:n:case'), String(c.startedAfter))
      if (c.status === 'capped') assert.equal(await db.exists(key), c.stored.tuple ? 1 : 0, 'a capped tuple is not stored')
      if (c.ttlMs !== undefined) {
        const ttl = await db.pTTL(key)
        assert.ok(ttl > c.ttlMs - 5000 && ttl <= c.ttlMs, `ttl ${ttl}`)
      }
    })
  }

  it('walks a tuple from new to known with a real clock and a short delay', async () => {
    const t = { ...TIMING, delayMs: 200, windowMs: 5000, passTtlMs: 60_000 }
    const key = 'sgl:t:walk'
    const now = Date.now()
    assert.equal((await store.check(ref(key), now, t, NO_STATS)).status, 'new')
    assert.equal((await store.check(ref(key), now + 100, t, NO_STATS)).status, 'early')
    assert.equal((await store.check(ref(key), now + 250, t, NO_STATS)).status, 'retry')
    assert.equal((await store.check(ref(key), now + 300, t, NO_STATS)).status, 'known')
  })

  it('loads the script again after SCRIPT FLUSH (NOSCRIPT)', async () => {
    await store.check(ref('sgl:t:a'), Date.now(), TIMING, NO_STATS)
    await db.sendCommand(['SCRIPT', 'FLUSH'])
    assert.equal((await store.check(ref('sgl:t:b'), Date.now(), TIMING, NO_STATS)).status, 'new')
  })

  it('fails with a typed error when there is no client, or Redis is too slow', async () => {
    await assert.rejects(new DecisionStore(() => undefined, () => 100).check(ref('k'), 0, TIMING, NO_STATS), (e: unknown) => e instanceof StoreError && e.kind === 'unavailable')
    const admin = await connectRedis(server.port)
    await admin.sendCommand(['CLIENT', 'PAUSE', '400', 'WRITE'])
    const started = Date.now()
    await assert.rejects(new DecisionStore(() => db, () => 100).check(ref('k'), Date.now(), TIMING, NO_STATS), (e: unknown) => e instanceof StoreError && e.kind === 'timeout')
    assert.ok(Date.now() - started < 300)
    await admin.quit()
    await new Promise((r) => setTimeout(r, 450))
  })

  it('counts the day in the same round trip: deferrals, delays, identities, shadow, fail-open events', async () => {
    const stats = { prefix: 'sgl:', shadow: false, ttlDays: 35 }
    const t0 = Date.UTC(2026, 10, 28, 12)
    const keys = statsKeys('sgl:', t0)
    await store.check(ref('sgl:t:s1'), t0, TIMING, stats) // new
    await store.check(ref('sgl:t:s1'), t0 + 10_000, TIMING, stats) // early
    await store.check(ref('sgl:t:s1'), t0 + 400_000, TIMING, stats) // retry after 400 s
    await store.check(ref('sgl:t:s1'), t0 + 500_000, TIMING, stats) // known
    await store.check(ref('sgl:t:s2'), t0, TIMING, { ...stats, shadow: true }) // new, shadow
    store.noteFailOpen()
    store.noteFailOpen()
    await store.count('wl:host', t0, stats)
    const h = await db.hGetAll(keys.counters)
    assert.deepEqual({ ...h }, {
      'defer:new': '1', 'defer:early': '1', retry: '1', 'd:420': '1', dsum: '400', dmax: '400', known: '1', 'shadow:new': '1', fail_open: '2', 'wl:host': '1',
    })
    assert.deepEqual(await db.zRangeWithScores(keys.identities, 0, -1), [{ value: 'host:outbound.protection.outlook.com', score: 2 }])
    const ttl = await db.pTTL(keys.counters)
    assert.ok(ttl > 34 * 86_400_000 && ttl <= 35 * 86_400_000)
  })

  it('reads a tuple without changing it (peek), and lists the tuples with their envelope', async () => {
    const now = Date.now()
    await store.check(ref('sgl:t:p1', 'sgl:a:p1'), now, TIMING, NO_STATS)
    const before = await db.hGetAll('sgl:t:p1')
    const peeked = await reads.peek({ key: 'sgl:t:p1', awlKey: 'sgl:a:p1', startedKey: 'sgl:n:case' })
    assert.deepEqual({ tuple: peeked.tuple, awlCount: peeked.awlCount, started: peeked.started }, { tuple: { firstSeen: now, passedAt: null }, awlCount: 0, started: 1 })
    assert.deepEqual(await db.hGetAll('sgl:t:p1'), before)
    const listed = await reads.tuples('sgl:')
    assert.deepEqual(listed, [{ key: 'sgl:t:p1', firstSeen: now, passedAt: null, identity: 'host:outbound.protection.outlook.com', sender: 'alice@contoso.com', recipient: 'bob@example.com' }])
  })

  it('cuts stored strings and trims the day\'s identities, so hostile input cannot grow a record or a set', async () => {
    const long = `${'x'.repeat(500)}@example.org`
    await store.check({ ...ref('sgl:t:long'), sender: long, recipient: long }, Date.now(), TIMING, NO_STATS)
    const h = await db.hGetAll('sgl:t:long')
    assert.equal(h.s.length, 64)
    assert.equal(h.r.length, 64)
    const stats = { prefix: 'sgl:', shadow: false, ttlDays: 1, identitiesMax: 10 }
    const t0 = Date.UTC(2026, 10, 28, 12)
    for (let i = 0; i < 60; i++) {
      await store.check({ ...ref(`sgl:t:id${i}`), startedKey: `sgl:n:id${i}`, identity: { kind: 'net', value: `85.214.${i}.0/24` } }, t0, TIMING, stats)
    }
    const size = await db.sendCommand(['ZCARD', statsKeys('sgl:', t0).identities])
    assert.ok(Number(size) <= 20, `${String(size)} identities kept`)
  })
})
