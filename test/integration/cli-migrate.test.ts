// `smart-greylist migrate` against a real redis-server: 0.4's records (written here as 0.4 wrote
// them) land where 0.5 looks for them.
import assert from 'node:assert/strict'
import path from 'node:path'
import { digest, identityKeys } from '../../plugins/smart-greylist/core/keys'
import { dayOf } from '../../plugins/smart-greylist/core/stats'
import { runCli } from '../helpers/cli'
import { configDir } from '../../scripts/harness/fixtures'
import type { TestRedis } from '../../scripts/harness/redis'
import { usePrivateRedis } from '../helpers/private-redis'

describe('smart-greylist migrate (0.4 layout to 0.5)', function () {
  this.timeout(20_000)
  const redis = usePrivateRedis({ flushEach: false })
  let db: TestRedis
  let dir: string

  before(() => {
    db = redis.db
    dir = path.join(configDir({ 'redis.ini': `[server]\nhost=127.0.0.1\nport=${redis.server.port}\n` }), 'config')
  })

  it('moves tuples, auto-whitelist entries and statistics into their shards; a dry run moves nothing', async () => {
    const id = 'host:outbound.protection.outlook.com'
    const [sender, rcpt] = ['alice@contoso.com', 'bob@example.com']
    const oldTuple = `sgl:t:${digest(id, sender, rcpt)}`
    const oldAwl = `sgl:a:${digest(id, 'contoso.com', 'pool:microsoft')}`
    const cutId = `rdns:${'x'.repeat(60)}.example`.slice(0, 64)
    const oldCut = `sgl:t:${digest('whatever', sender, rcpt)}`
    await db.sendCommand(['HSET', oldTuple, 'f', '1800000000000', 'p', '1800000400000', 'i', id, 's', sender, 'r', rcpt])
    await db.sendCommand(['PEXPIRE', oldTuple, '3000000000'])
    await db.sendCommand(['HSET', oldAwl, 'n', '3', 'i', id, 'd', 'contoso.com'])
    await db.sendCommand(['HSET', oldCut, 'f', '1800000000000', 'i', cutId, 's', sender, 'r', rcpt])
    // Yesterday, from the clock the command reads too: `stats --days 2` covers it on any date.
    await db.sendCommand(['HSET', `sgl:st:${dayOf(Date.now() - 86_400_000)}`, 'defer:new', '7'])

    const dry = await runCli(['migrate', '--dry-run', '--json', '--config', dir])
    assert.equal(dry.code, 0, dry.stderr)
    assert.deepEqual(JSON.parse(dry.stdout), { dryRun: true, moved: 3, kept_newer: 0, identity_cut: 1 })
    assert.equal(await db.exists(oldTuple), 1)

    const r = await runCli(['migrate', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /moved 3 record\(s\)/)
    assert.match(r.stdout, /1 left in place: identity cut to 64 characters/)
    const k = identityKeys('sgl:', id)
    assert.deepEqual({ ...(await db.hGetAll(k.tuple(sender, rcpt))) }, { f: '1800000000000', p: '1800000400000', i: id, s: sender, r: rcpt })
    assert.ok((await db.pTTL(k.tuple(sender, rcpt))) > 2_900_000_000, 'the TTL moves with the record')
    assert.equal(await db.hGet(k.awl('contoso.com', 'pool:microsoft'), 'n'), '3')
    assert.equal(await db.exists(oldTuple), 0)
    assert.equal(await db.exists(oldCut), 1)

    // 0.5's stats command sees the old day (shard 0 is one of the shards it adds up).
    const stats = await runCli(['stats', '--days', '2', '--json', '--config', dir])
    assert.equal((JSON.parse(stats.stdout) as { total: { deferredBy: Record<string, number> } }).total.deferredBy.new, 7)

    const again = await runCli(['migrate', '--json', '--config', dir])
    assert.deepEqual(JSON.parse(again.stdout), { dryRun: false, moved: 0, kept_newer: 0, identity_cut: 1 })
  })
})
