// RedisConnection against a real redis-server: the life of each connection the plugin keeps (the
// decisions' and the admin reads'), seen from Redis's side (CLIENT LIST).
import assert from 'node:assert/strict'
import { redisClientOptions } from '../../plugins/smart-greylist/adapters/redis-client'
import { RedisConnection } from '../../plugins/smart-greylist/adapters/redis-connection'
import { DEFAULTS } from '../../plugins/smart-greylist/core/settings'
import { freePort } from '../../scripts/harness/redis-server'
import { usePrivateRedis } from '../helpers/private-redis'
import { sleep } from '../helpers/wait'

describe('RedisConnection (real Redis)', function () {
  this.timeout(20_000)
  const redis = usePrivateRedis({ flushEach: false })
  const logged: string[] = []
  const log = { loginfo: (m: string) => logged.push(m), logwarn: (m: string) => logged.push(m), logerror: (m: string) => logged.push(m) }
  // `command` where nothing listens: those options give up at once, so no client of the suite
  // keeps reconnecting after it.
  const optionsFor = (port: number, use: 'daemon' | 'command' = 'daemon'): ReturnType<typeof redisClientOptions> =>
    redisClientOptions({}, { host: '127.0.0.1', port: String(port) }, DEFAULTS.redis, use)

  /** Connections Redis has open, besides the suite's own client. */
  async function clients(): Promise<number> {
    const list = String(await redis.db.sendCommand(['CLIENT', 'LIST']))
    return list.split('\n').filter(Boolean).length - 1
  }
  async function until(what: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms
    while (!(await what())) {
      if (Date.now() > deadline) throw new Error('timed out')
      await sleep(20)
    }
  }

  beforeEach(() => {
    logged.length = 0
  })

  it('connects on open(), not before, and names itself when connected', async () => {
    const c = new RedisConnection('admin reads', log)
    c.configure(optionsFor(redis.server.port))
    await sleep(200)
    assert.equal(c.client, undefined, 'configure() alone does not connect')
    c.open()
    await until(() => c.client !== undefined)
    assert.equal(await clients(), 1)
    assert.ok(
      logged.some((l) => /^admin reads: connected to redis:\/\/127\.0\.0\.1:\d+\/0 on a connection of their own$/.test(l)),
      logged.join('\n'),
    )
    c.close()
    await until(async () => (await clients()) === 0)
  })

  it('a client that connects after close() is closed, not kept or leaked', async () => {
    const c = new RedisConnection('admin reads', log)
    c.configure(optionsFor(redis.server.port))
    c.open()
    c.close()
    await sleep(500)
    assert.equal(c.client, undefined)
    assert.equal(await clients(), 0)
  })

  it('a Redis that is not there after close() is not retried', async () => {
    const c = new RedisConnection('admin reads', log)
    c.configure(optionsFor(await freePort(), 'command'))
    c.open()
    c.close()
    await sleep(500)
    assert.deepEqual(
      logged.filter((l) => /not reachable/.test(l)),
      [],
    )
  })

  it('drop() makes a new connection (a new client id); settings that point elsewhere move it', async () => {
    const c = new RedisConnection('admin reads', log)
    c.configure(optionsFor(redis.server.port))
    c.open()
    await until(() => c.client !== undefined)
    const id = async (): Promise<string> => String(await (await c.client?.sgMasters())?.[0]?.sendCommand(['CLIENT', 'ID']))
    const first = await id()
    c.drop()
    await until(() => c.client !== undefined)
    assert.notEqual(await id(), first)
    await until(async () => (await clients()) === 1)
    c.configure(optionsFor(await freePort(), 'command'))
    assert.equal(c.client, undefined, 'the old target is let go at once')
    await until(async () => (await clients()) === 0)
    c.close()
  })
})
