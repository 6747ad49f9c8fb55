// Integration: the Lua state machine in a real redis-server, against the same table as decide().
import assert from 'node:assert/strict'
import { decide, type StoredState } from '../plugins/smart-greylist/decision'
import { StoreError, TupleStore } from '../plugins/smart-greylist/store'
import { startPrivateRedis, type PrivateRedis } from '../scripts/redis-server'
import { DECISION_CASES, TIMING } from './helpers/decision-cases'
import { connectRedis, type TestRedis } from './helpers/redis'

describe('TupleStore (Redis)', function () {
  this.timeout(20_000)
  let server: PrivateRedis
  let db: TestRedis
  let store: TupleStore

  before(async () => {
    server = await startPrivateRedis()
    db = await connectRedis(server.port)
    store = new TupleStore(() => db, () => 500)
  })
  beforeEach(() => db.flushDb())
  after(async () => {
    await db?.quit().catch(() => undefined)
    await server?.stop()
  })

  async function seed(key: string, awl: string, stored: StoredState): Promise<void> {
    if (stored.awlCount !== null) await db.set(awl, String(stored.awlCount))
    if (!stored.tuple) return
    await db.hSet(key, 'f', String(stored.tuple.firstSeen))
    if (stored.tuple.passedAt !== null) await db.hSet(key, 'p', String(stored.tuple.passedAt))
  }

  for (const c of DECISION_CASES) {
    it(`applies the same transition as decide(): ${c.outcome.toUpperCase()}, ${c.name}`, async () => {
      const key = 'sgl:t:case'
      const awl = 'sgl:a:case'
      await seed(key, awl, c.stored)
      const verdict = await store.check(key, c.now, TIMING, c.stored.awlCount === null ? undefined : awl)
      assert.deepEqual(verdict, decide(c.stored, c.now, TIMING).verdict)

      const after = { ...(await db.hGetAll(key)) }
      const expected = decide(c.stored, c.now, TIMING).write
      if (expected.op === 'create') assert.deepEqual(after, { f: String(c.now) })
      if (expected.op === 'pass') assert.deepEqual(after, { f: String(c.stored.tuple!.firstSeen), p: String(c.now) })
      if (expected.op === 'awl_touch') assert.deepEqual(after, {}, 'an auto-whitelisted pair writes no tuple')
      if (c.awlAfter !== undefined) assert.equal(await db.get(awl), String(c.awlAfter))
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
    assert.equal((await store.check(key, now, t)).outcome, 'new')
    assert.equal((await store.check(key, now + 100, t)).outcome, 'early')
    assert.equal((await store.check(key, now + 250, t)).outcome, 'retry')
    assert.equal((await store.check(key, now + 300, t)).outcome, 'known')
  })

  it('loads the script again after SCRIPT FLUSH (NOSCRIPT)', async () => {
    await store.check('sgl:t:a', Date.now(), TIMING)
    await db.sendCommand(['SCRIPT', 'FLUSH'])
    assert.equal((await store.check('sgl:t:b', Date.now(), TIMING)).outcome, 'new')
  })

  it('fails with a typed error when there is no client, or Redis is too slow', async () => {
    await assert.rejects(new TupleStore(() => undefined, () => 100).check('k', 0, TIMING), (e: unknown) => e instanceof StoreError && e.kind === 'unavailable')
    const admin = await connectRedis(server.port)
    await admin.sendCommand(['CLIENT', 'PAUSE', '400', 'WRITE'])
    const started = Date.now()
    await assert.rejects(new TupleStore(() => db, () => 100).check('k', Date.now(), TIMING), (e: unknown) => e instanceof StoreError && e.kind === 'timeout')
    assert.ok(Date.now() - started < 300)
    await admin.quit()
    await new Promise((r) => setTimeout(r, 450))
  })
})
