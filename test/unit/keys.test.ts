import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { identityKeys, KEY_PATTERNS, SHARDS, shardOf, spfGuardKey } from '../../plugins/smart-greylist/core/keys'
import { addHashes, allStatsKeys, identitiesPerShard, statsKeys } from '../../plugins/smart-greylist/core/stats'
import { parseNode, parseNodeList, parseSettings } from '../../plugins/smart-greylist/core/settings'
import { scriptCall } from '../../plugins/smart-greylist/adapters/redis-decision'
import { redisTopology } from '../../plugins/smart-greylist/adapters/redis-client'

/** The part of a key Redis Cluster hashes: the first {…} with something inside. */
const hashTag = (key: string): string => /\{([^}]+)\}/.exec(key)?.[1] ?? key

describe('cluster-safe keys', () => {
  it("gives every key of one decision the same hash tag: tuple, auto-whitelist, started count, the day's statistics", () => {
    const k = identityKeys('sgl:', 'rdns:mail.protection.outlook.com')
    const s = statsKeys('sgl:', Date.UTC(2026, 10, 28), k.shard)
    const tags = [k.tuple('a@b.example', 'c@d.example'), k.awl('b.example', 'pool:microsoft'), k.started, s.counters, s.identities].map(hashTag)
    assert.deepEqual(new Set(tags), new Set([String(k.shard)]))
  })

  it('names records as 0.5.0 did: the shard is the first 16 bits of the SHA-256, the digests its first 22 base64url characters', () => {
    const sha = (s: string): Buffer => createHash('sha256').update(s).digest()
    for (const id of ['rdns:mail.protection.outlook.com', 'net:85.214.132.0/24', 'spf:example.com', `host:${'h'.repeat(200)}`]) {
      const shard = sha(id).readUInt16BE(0) % 256
      assert.equal(shardOf(id), shard)
      const k = identityKeys('sgl:', id)
      assert.equal(k.shard, shard)
      assert.equal(k.started, `sgl:{${shard}}n:${sha(id).toString('base64url').slice(0, 22)}`)
      assert.equal(k.tuple('a@b.example', 'c@d.example'), `sgl:{${shard}}t:${sha(`${id}\0a@b.example\0c@d.example`).toString('base64url').slice(0, 22)}`)
    }
  })

  it('spreads identities evenly over all shards', () => {
    const counts = new Array<number>(SHARDS).fill(0)
    for (let i = 0; i < 25_600; i++) counts[shardOf(`net:${i >> 8}.${i & 255}.0.0/16`)]++
    // 100 per shard on average; a fair spread keeps every shard within ±45.
    assert.ok(Math.min(...counts) >= 55 && Math.max(...counts) <= 145, `${Math.min(...counts)}..${Math.max(...counts)}`)
  })

  it("keeps the SPF guard's verdicts and the scan patterns apart from the shards", () => {
    assert.match(spfGuardKey('sgl:', 'example.com'), /^sgl:s:[A-Za-z0-9_-]{22}$/)
    assert.equal(KEY_PATTERNS.tuples('sgl:'), 'sgl:{*}t:*')
    assert.equal(allStatsKeys('sgl:', 0).length, SHARDS)
  })

  it('adds the shards of a day: counts summed, the maximum delay taken as a maximum', () => {
    assert.deepEqual(addHashes([{ 'defer:new': '2', dmax: '400', dsum: '500' }, { 'defer:new': '3', dmax: '90', retry: '1' }, {}]), {
      'defer:new': '5',
      dmax: '400',
      dsum: '500',
      retry: '1',
    })
    assert.equal(identitiesPerShard(1000), 16)
    assert.equal(identitiesPerShard(100_000), 1563)
  })

  it('sends an unused key of the script as a copy of a used one, named in absent', () => {
    const call = scriptCall({ tuple_key: 'sgl:{3}t:x', started_key: 'sgl:{3}n:y' }, { now: 1 })
    assert.deepEqual(call.keys, ['sgl:{3}t:x', 'sgl:{3}t:x', 'sgl:{3}t:x', 'sgl:{3}t:x', 'sgl:{3}n:y'])
    assert.equal(call.arguments.at(-1), '01110')
    assert.throws(() => scriptCall({}, {}), /at least one key/)
  })
})

describe('Redis nodes in the settings', () => {
  it('reads host:port, a.b.c.d:port and [v6]:port, and nothing else', () => {
    assert.deepEqual(parseNode('redis-1.example:7000'), { host: 'redis-1.example', port: 7000 })
    assert.deepEqual(parseNode('[::1]:26379'), { host: '::1', port: 26379 })
    for (const bad of ['localhost', ':7000', 'a:0', 'a:65536', '[nonsense]:1', '::1:7000', 'a b:1', 'host:7000x']) {
      assert.equal(parseNode(bad), null, bad)
    }
    assert.deepEqual(
      parseNodeList('127.0.0.1:7000, 127.0.0.1:7001  127.0.0.1:7002'),
      [7000, 7001, 7002].map((port) => ({ host: '127.0.0.1', port })),
    )
    assert.deepEqual(parseNodeList('127.0.0.1:7000 nope'), { bad: ['nope'] })
  })

  it('chooses cluster, else sentinel, else one Redis, and says so when both are set', () => {
    const both = parseSettings({ redis: { cluster: '127.0.0.1:7000', sentinels: '127.0.0.1:26379' } })
    assert.deepEqual(redisTopology(both.config.redis), { kind: 'cluster', nodes: [{ host: '127.0.0.1', port: 7000 }] })
    assert.match(both.problems.map((p) => p.message).join(), /sentinels ignored/)
    const sentinel = parseSettings({ redis: { sentinels: '[::1]:26379', sentinel_name: 'mx' } })
    assert.deepEqual(redisTopology(sentinel.config.redis), { kind: 'sentinel', nodes: [{ host: '::1', port: 26379 }], name: 'mx' })
    assert.deepEqual(sentinel.config.redis.sentinels, ['[::1]:26379'])
    const bad = parseSettings({ redis: { cluster: '127.0.0.1' } })
    assert.deepEqual(redisTopology(bad.config.redis), { kind: 'single' })
    assert.match(bad.problems.map((p) => p.message).join(), /not host:port: 127\.0\.0\.1/)
  })
})
