// Integration: `smart-greylist simulate` as an admin runs it (the compiled bin, in a child
// process) on a scratch Redis: the report's JSON, and the refusal to empty a Redis that holds keys.
import assert from 'node:assert/strict'
import { runCli } from '../helpers/cli'
import { usePrivateRedis } from '../helpers/private-redis'

describe('smart-greylist simulate', function () {
  this.timeout(60_000)
  const redis = usePrivateRedis()

  it('reports every class per keying, as JSON, with the Redis it used', async () => {
    const r = await runCli([
      'simulate',
      '--config',
      'config',
      '--messages',
      '400',
      '--keyings',
      'plugin,exact',
      '--redis',
      `127.0.0.1:${redis.server.port}`,
      '--json',
    ])
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout) as {
      messages: number
      keyings: { keying: string; classes: { class: string; messages: number; delivered: number; lost: number }[]; totals: { redisKeysAtEnd: number } }[]
    }
    assert.equal(report.messages, 400)
    assert.deepEqual(
      report.keyings.map((k) => k.keying),
      ['plugin', 'exact'],
    )
    for (const k of report.keyings) {
      assert.equal(
        k.classes.reduce((s, c) => s + c.messages, 0),
        400,
      )
      for (const c of k.classes) assert.ok(c.delivered + c.lost <= c.messages)
      assert.ok(k.totals.redisKeysAtEnd > 0)
    }
    // What it left is the last keying's day; the admin's scratch Redis is theirs to empty.
    assert.ok((await redis.db.dbSize()) > 0)
  })

  it('refuses a Redis that holds keys, and leaves them', async () => {
    await redis.db.set('production:key', 'x')
    const r = await runCli(['simulate', '--config', 'config', '--messages', '50', '--redis', `127.0.0.1:${redis.server.port}`])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /holds keys/)
    assert.equal(await redis.db.get('production:key'), 'x')
  })

  it('names a bad option value', async () => {
    const r = await runCli(['simulate', '--config', 'config', '--variant', 'nonsense'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /--variant nonsense/)
  })
})
