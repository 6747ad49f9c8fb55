// Integration: the Lua state machine in a real redis-server, against the same table as decide().
import assert from 'node:assert/strict'
import { DecisionStore, StoreError, type TupleRef } from '../../plugins/smart-greylist/adapters/redis-decision'
import { AdminStore } from '../../plugins/smart-greylist/adapters/redis-admin'
import { correspondentField, correspondentKey, identityKeys, messageDigest, messageKeys } from '../../plugins/smart-greylist/core/keys'
import { statsKeys } from '../../plugins/smart-greylist/core/stats'
import { TIMING } from '../helpers/decision-cases'
import { connectRedis, type TestRedis } from '../../scripts/harness/redis'
import { usePrivateRedis } from '../helpers/private-redis'
import { caseRef, decisionCases } from '../helpers/store-cases'

describe('DecisionStore and AdminStore (Redis)', function () {
  this.timeout(20_000)
  const redis = usePrivateRedis()
  let db: TestRedis
  let store: DecisionStore
  let reads: AdminStore

  before(() => {
    db = redis.db
    store = new DecisionStore(
      () => db,
      () => 500,
    )
    reads = new AdminStore(
      () => db,
      () => 500,
    )
  })

  const NO_STATS = { prefix: 'sgl:', shadow: false, ttlDays: 0 }
  const ref = (name?: string, withAwl = false): TupleRef => caseRef(name, withAwl)

  decisionCases(() => ({ db, store }))

  it("keeps a message's record without an identity counter (net_identity_greylist = message); a cap of 0 makes none", async () => {
    const { key, shard } = messageKeys('sgl:', messageDigest('a@x.example', ['b@example.com'], 'id', 'body'))
    const msg: TupleRef = { ...ref(), key, shard, startedKey: '' }
    const t0 = Date.now()
    assert.equal((await store.check({ ...msg, key: `${key}x` }, t0, { ...TIMING, pendingCap: 0 }, NO_STATS)).status, 'capped')
    assert.equal(await db.exists(`${key}x`), 0, 'no record')
    assert.equal((await store.check(msg, t0, { ...TIMING, pendingCap: Number.MAX_SAFE_INTEGER }, NO_STATS)).status, 'new')
    assert.equal((await store.check(msg, t0 + 1000, TIMING, NO_STATS)).status, 'early')
    assert.equal((await store.check(msg, t0 + TIMING.delayMs, TIMING, NO_STATS)).status, 'retry')
    assert.deepEqual(await db.keys('sgl:{*}n:*'), [], 'no identity counter was touched')
    const bytes = await db.memoryUsage(key)
    console.log(`      one message record: ${bytes} bytes (MEMORY USAGE)`)
    assert.ok(bytes !== null && bytes < 400, `${bytes} bytes`)
  })

  it('walks a tuple from new to known with a real clock and a short delay', async () => {
    const t = { ...TIMING, delayMs: 200, windowMs: 5000, passTtlMs: 60_000 }
    const key = 'walk'
    const now = Date.now()
    assert.equal((await store.check(ref(key), now, t, NO_STATS)).status, 'new')
    assert.equal((await store.check(ref(key), now + 100, t, NO_STATS)).status, 'early')
    assert.equal((await store.check(ref(key), now + 250, t, NO_STATS)).status, 'retry')
    assert.equal((await store.check(ref(key), now + 300, t, NO_STATS)).status, 'known')
  })

  it('loads the script again after SCRIPT FLUSH (NOSCRIPT)', async () => {
    await store.check(ref('a'), Date.now(), TIMING, NO_STATS)
    await db.sendCommand(['SCRIPT', 'FLUSH'])
    assert.equal((await store.check(ref('b'), Date.now(), TIMING, NO_STATS)).status, 'new')
  })

  it('fails with a typed error when there is no client, or Redis is too slow', async () => {
    await assert.rejects(
      new DecisionStore(
        () => undefined,
        () => 100,
      ).check(ref('k'), 0, TIMING, NO_STATS),
      (e: unknown) => e instanceof StoreError && e.kind === 'unavailable',
    )
    const admin = await connectRedis(redis.server.port)
    // Paused far longer than the store's 100 ms timeout: giving up at its timeout, not when Redis
    // answers, is told apart by a bound well inside the pause, on any machine.
    const PAUSE_MS = 5000
    await admin.sendCommand(['CLIENT', 'PAUSE', String(PAUSE_MS), 'WRITE'])
    const started = Date.now()
    await assert.rejects(
      new DecisionStore(
        () => db,
        () => 100,
      ).check(ref('k'), Date.now(), TIMING, NO_STATS),
      (e: unknown) => e instanceof StoreError && e.kind === 'timeout',
    )
    const took = Date.now() - started
    assert.ok(took < PAUSE_MS / 2, `gave up at its own timeout (${took} ms)`)
    // The pause ends now rather than after a sleep that guesses its end.
    await admin.sendCommand(['CLIENT', 'UNPAUSE'])
    await admin.quit()
  })

  it('counts the day in the same round trip: deferrals, delays, identities, shadow, fail-open events', async () => {
    const stats = { prefix: 'sgl:', shadow: false, ttlDays: 35 }
    const t0 = Date.UTC(2026, 10, 28, 12)
    const keys = statsKeys('sgl:', t0, ref().shard)
    await store.check(ref('s1'), t0, TIMING, stats) // new
    await store.check(ref('s1'), t0 + 10_000, TIMING, stats) // early
    await store.check(ref('s1'), t0 + 400_000, TIMING, stats) // retry after 400 s
    await store.check(ref('s1'), t0 + 500_000, TIMING, stats) // known
    await store.check(ref('s2'), t0, TIMING, { ...stats, shadow: true }) // new, shadow
    store.noteFailOpen('redis_timeout')
    store.noteFailOpen('redis_timeout')
    store.noteFailOpen('internal')
    await store.count('wl:host', t0, stats, '85.214.1.1')
    await store.count('wl:host', t0, stats, '2001:db8::1')
    const h = await db.hGetAll(keys.counters)
    assert.deepEqual(
      { ...h },
      {
        'defer:new': '1',
        'defer:early': '1',
        retry: '1',
        'd:420': '1',
        'dk:host:420': '1',
        dsum: '400',
        'dks:host': '400',
        dmax: '400',
        known: '1',
        'shadow:new': '1',
        // Every tuple decision, by its identity's kind.
        'id:host': '5',
      },
    )
    // Counts without an identity (and the fail-open events the next write carries) land in the
    // client's shard; the command adds the shards up.
    const day = await reads.day('sgl:', t0, 10)
    assert.deepEqual(day.counters, { ...h, 'wl:host': '2', fail_open: '3', 'fo:redis_timeout': '2', 'fo:internal': '1' })
    assert.deepEqual(day.identities, [{ value: 'host:outbound.protection.outlook.com', score: 2 }])
    assert.deepEqual(await db.zRangeWithScores(keys.identities, 0, -1), [{ value: 'host:outbound.protection.outlook.com', score: 2 }])
    const ttl = await db.pTTL(keys.counters)
    assert.ok(ttl > 34 * 86_400_000 && ttl <= 35 * 86_400_000)
  })

  it('reads a tuple without changing it (peek), and lists the tuples with their envelope', async () => {
    const now = Date.now()
    const p1 = ref('p1', true)
    await store.check(p1, now, TIMING, NO_STATS)
    const before = await db.hGetAll(p1.key)
    const peeked = await reads.peek(p1)
    assert.deepEqual(
      { tuple: peeked.tuple, awlCount: peeked.awlCount, started: peeked.started },
      { tuple: { firstSeen: now, passedAt: null }, awlCount: 0, started: 1 },
    )
    assert.deepEqual(await db.hGetAll(p1.key), before)
    const listed = await reads.tuples('sgl:')
    assert.deepEqual(listed, [
      {
        key: p1.key,
        firstSeen: now,
        passedAt: null,
        identity: 'host:outbound.protection.outlook.com',
        sender: 'alice@contoso.com',
        recipient: 'bob@example.com',
        // Where the deferred attempt came from (for stuck).
        client: '40.107.22.92',
        rdns: '?mail-eopbgr220092.outbound.protection.outlook.com',
      },
    ])
  })

  it("cuts stored strings and trims the day's identities, so hostile input cannot grow a record or a set", async () => {
    const long = `${'x'.repeat(500)}@example.org`
    const longRef = { ...ref('long'), sender: long, recipient: long }
    await store.check(longRef, Date.now(), TIMING, NO_STATS)
    const h = await db.hGetAll(longRef.key)
    assert.equal(h.s.length, 64)
    assert.equal(h.r.length, 64)
    const stats = { prefix: 'sgl:', shadow: false, ttlDays: 1, identitiesMax: 10 }
    const t0 = Date.UTC(2026, 10, 28, 12)
    // Sixty identities counted in one shard (the set is per shard): 16 kept for a total of 10, trimmed past twice that.
    for (let i = 0; i < 60; i++) {
      const k = identityKeys('sgl:', `net:85.214.${i}.0/24`)
      await store.check(
        { ...ref(), key: k.tuple('a', 'b'), startedKey: k.started, identity: { kind: 'net', value: `85.214.${i}.0/24`, reason: 'no_pool' } },
        t0,
        TIMING,
        stats,
      )
    }
    const size = await db.sendCommand(['ZCARD', statsKeys('sgl:', t0, ref().shard).identities])
    assert.ok(Number(size) >= 16 && Number(size) <= 32, `${String(size)} identities kept`)
  })

  it('keeps a bounded set of correspondents per mailbox, the ones that expire first going first', async () => {
    const key = correspondentKey('sgl:', 'alice@example.com')
    const t0 = Date.now()
    for (let i = 0; i < 5; i++) {
      const domain = `partner${i}.example`
      await store.recordCorrespondents(
        { key, mailbox: 'alice@example.com', domains: [{ field: correspondentField(domain), domain }] },
        t0 + i * 1000,
        60_000,
        3,
      )
    }
    const h = await db.hGetAll(key)
    assert.equal(h.m, 'alice@example.com')
    assert.deepEqual(
      Object.values(h)
        .filter((v) => v.includes('|'))
        .map((v) => v.split('|')[1])
        .sort(),
      ['partner2.example', 'partner3.example', 'partner4.example'],
    )
    assert.equal(await store.isCorrespondent(key, correspondentField('partner4.example'), t0), true)
    assert.equal(await store.isCorrespondent(key, correspondentField('partner0.example'), t0), false, 'pushed out by the bound')
    assert.equal(await store.isCorrespondent(key, correspondentField('partner4.example'), t0 + 65_000), false, 'expired')
    const ttl = await db.pTTL(key)
    assert.ok(ttl > 55_000 && ttl <= 60_000, `ttl ${ttl}`)
    const listed = await reads.correspondents('sgl:')
    assert.equal(listed.length, 3)
    assert.equal(await reads.hdel(key, [correspondentField('partner3.example')]), 1)
  })
})
