// Integration: the decision script, the command's reads and the health probe against a real
// Redis Cluster (3 masters, 3 replicas on loopback) through the client the plugin makes.
import assert from 'node:assert/strict'
import { AdminStore } from '../../plugins/smart-greylist/adapters/redis-admin'
import { closeRedis, openRedis, redisClientOptions } from '../../plugins/smart-greylist/adapters/redis-client'
import { DecisionStore } from '../../plugins/smart-greylist/adapters/redis-decision'
import { RedisHealth } from '../../plugins/smart-greylist/adapters/redis-health'
import type { RedisClient } from '../../plugins/smart-greylist/adapters/haraka-types'
import { identityKeys, shardOf } from '../../plugins/smart-greylist/core/keys'
import { parseSettings } from '../../plugins/smart-greylist/core/settings'
import { statsKeys } from '../../plugins/smart-greylist/core/stats'
import { redisCli, startPrivateCluster, type PrivateCluster } from '../../scripts/harness/redis-topologies'
import { TIMING } from '../helpers/decision-cases'
import { decisionCases, type KeyedRedis } from '../helpers/store-cases'

const quiet = { loginfo: () => undefined, logwarn: () => undefined, logerror: () => undefined }

describe('Redis Cluster (3 masters, 3 replicas)', function () {
  this.timeout(60_000)
  let cluster: PrivateCluster
  let db: RedisClient & KeyedRedis
  let store: DecisionStore
  let reads: AdminStore

  before(async () => {
    cluster = await startPrivateCluster()
    const seeds = cluster.nodes
      .slice(0, 3)
      .map((n) => `127.0.0.1:${n.port}`)
      .join(' ')
    const { config } = parseSettings({ redis: { cluster: seeds } })
    const opts = redisClientOptions({}, { cluster: seeds }, config.redis, 'daemon')
    db = (await openRedis(opts, quiet)) as RedisClient & KeyedRedis
    store = new DecisionStore(
      () => db,
      () => 1000,
    )
    reads = new AdminStore(
      () => db,
      () => 1000,
    )
  })
  beforeEach(() => {
    for (const port of cluster.masters()) redisCli(port, 'FLUSHALL')
  })
  after(async () => {
    await closeRedis(db)
    await cluster?.stop()
  })

  decisionCases(() => ({ db, store }))

  it("keeps one decision's keys in one slot and spreads identities over every master", async () => {
    const t0 = Date.UTC(2026, 10, 28, 12)
    const stats = { prefix: 'sgl:', shadow: false, ttlDays: 1 }
    const masters = new Map<number, number>()
    for (let i = 0; i < 120; i++) {
      const id = `net:85.214.${i}.0/24`
      const k = identityKeys('sgl:', id)
      const ref = {
        shard: k.shard,
        key: k.tuple('a@corp.example', 'b@example.com'),
        startedKey: k.started,
        awlKey: k.awl('corp.example', 'net:85.214.0.0/16'),
        identity: { kind: 'net' as const, value: `85.214.${i}.0/24`, reason: 'no_pool' },
        sender: 'a@corp.example',
        recipient: 'b@example.com',
      }
      assert.equal((await store.check(ref, t0, TIMING, stats)).status, 'new')
      if (i < 10) {
        // As Redis itself hashes them (a script whose keys are not in one slot would have failed, too).
        const slots = new Set(
          [ref.key, ref.startedKey, ref.awlKey, statsKeys('sgl:', t0, k.shard).counters].map((key) =>
            redisCli(cluster.nodes[0].port, 'CLUSTER', 'KEYSLOT', key),
          ),
        )
        assert.equal(slots.size, 1, `keys of ${id} in one slot`)
      }
    }
    for (const port of cluster.masters()) masters.set(port, Number(redisCli(port, 'EVAL', "return #redis.call('KEYS', 'sgl:{*}t:*')", '0')))
    assert.equal(masters.size, 3, `identities on every master: ${JSON.stringify([...masters])}`)
    for (const n of masters.values()) assert.ok(n >= 20, `each master holds a fair share: ${JSON.stringify([...masters])}`)

    // The command reads across all masters: every tuple listed, the day's shards added up, flush removes all.
    const tuples = await reads.tuples('sgl:')
    assert.equal(tuples.length, 120)
    const day = await reads.day('sgl:', t0, 5)
    assert.equal(day.counters['defer:new'], '120')
    assert.equal(day.identities.length, 5)
    assert.equal(await reads.del(tuples.map((t) => t.key)), 120)
    assert.equal((await reads.tuples('sgl:')).length, 0)
  })

  it("counts outcomes without an identity in the client's shard", async () => {
    const t0 = Date.UTC(2026, 10, 28, 12)
    const stats = { prefix: 'sgl:', shadow: false, ttlDays: 1 }
    for (const ip of ['40.107.22.92', '209.85.220.41', '54.240.8.12']) await store.count('wl:host', t0, stats, ip)
    assert.equal((await reads.day('sgl:', t0, 5)).counters['wl:host'], '3')
    assert.notEqual(shardOf('40.107.22.92'), shardOf('209.85.220.41'))
  })

  it('gates only the slots of a master that stops answering, and remakes the client after dead_after_ms', async () => {
    let dead = ''
    const health = new RedisHealth(
      () => db,
      () => ({ timeoutMs: 200, intervalMs: 100, deadAfterMs: 600 }),
      Date.now,
      (why) => {
        dead = why
      },
    )
    const gated = new DecisionStore(
      () => db,
      () => 1000,
      { health },
    )
    await health.probe()
    assert.equal(health.responsive, true)
    // The deadline is in Redis's clock (which need not be ours: the suite also runs under faketime).
    const [master] = await db.sgMasters()
    const [sec, usec] = (await master.sendCommand(['TIME'])) as [string, string]
    const redisNow = Number(sec) * 1000 + Math.floor(Number(usec) / 1000)
    const deadline = health.deadline(500)
    assert.ok(deadline !== null && deadline > redisNow && deadline <= redisNow + 1500, `deadline ${deadline}, Redis now ${redisNow}`)
    const victim = cluster.masters()[1]
    // One identity whose keys live on the victim, one elsewhere.
    const refs = Array.from({ length: 40 }, (_, i) => {
      const k = identityKeys('sgl:', `net:85.215.${i}.0/24`)
      return {
        shard: k.shard,
        key: k.tuple('a@corp.example', 'b@example.com'),
        startedKey: k.started,
        identity: { kind: 'net' as const, value: `85.215.${i}.0/24`, reason: 'no_pool' },
        sender: 'a@corp.example',
        recipient: 'b@example.com',
      }
    })
    const onVictim = refs.find((r) => cluster.masterOf(r.key) === victim)!
    const elsewhere = refs.find((r) => cluster.masterOf(r.key) !== victim)!
    // Long enough that every step below happens inside the pause on a slow machine too.
    const PAUSE_MS = 3000
    const paused = Date.now()
    redisCli(victim, 'CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL')
    await health.probe()
    assert.equal(health.responsive, false, 'a paused master is noticed')
    assert.equal(health.responsiveFor(onVictim.key), false)
    assert.equal(health.responsiveFor(elsewhere.key), true)
    const started = Date.now()
    await assert.rejects(
      gated.check(onVictim, Date.now(), TIMING, { prefix: 'sgl:', shadow: false, ttlDays: 0 }),
      (e: unknown) => e instanceof Error && /not answering/.test(e.message),
    )
    // Queued behind the paused master, it would have waited for the pause to end (or for its own
    // 1000 ms timeout): a third of the pause tells "at once" from that on any machine.
    const took = Date.now() - started
    assert.ok(took < PAUSE_MS / 3, `refused at once, not queued behind the paused master (${took} ms)`)
    assert.equal((await gated.check(elsewhere, Date.now(), TIMING, { prefix: 'sgl:', shadow: false, ttlDays: 0 })).status, 'new', 'the other masters go on')
    // Probing on, the master is given up for dead once dead_after_ms (600) passed without an
    // answer, which is while it is still paused.
    while (!dead && Date.now() - paused < PAUSE_MS - 300) {
      await new Promise((r) => setTimeout(r, 100))
      await health.probe()
    }
    assert.match(dead, /no answer for 600 ms/)
    assert.ok(Date.now() - paused < PAUSE_MS, 'given up for dead while paused')
    // Once the pause ends, a probe finds it answering again.
    const until = paused + PAUSE_MS + 10_000
    while (!health.responsive && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100))
      await health.probe()
    }
    assert.equal(health.responsive, true)
  })
})
