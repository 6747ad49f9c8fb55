// RedisConnection against a real redis-server: the life of each connection the plugin keeps (the
// decisions' and the admin reads'), seen from Redis's side (CLIENT LIST).
import assert from 'node:assert/strict'
import net from 'node:net'
import { redisClientOptions } from '../../plugins/smart-greylist/adapters/redis-client'
import { duration, RedisConnection } from '../../plugins/smart-greylist/adapters/redis-connection'
import { DEFAULTS } from '../../plugins/smart-greylist/core/settings'
import { freePort, startPrivateRedis } from '../../scripts/harness/redis-server'
import { usePrivateRedis } from '../helpers/private-redis'
import { sleep } from '../helpers/wait'

describe('RedisConnection (real Redis)', function () {
  this.timeout(30_000)
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

  it('a Redis that is down at start: one line naming the cause, a summary after a minute, not one per attempt; one line when greylisting resumes', async () => {
    const port = await freePort()
    let clock = 1_000_000
    const c = new RedisConnection('', log, undefined, undefined, () => clock)
    c.configure(optionsFor(port))
    c.open()
    let late: Awaited<ReturnType<typeof startPrivateRedis>> | undefined
    try {
      await until(() => logged.length > 0)
      await sleep(2500) // node-redis retries several times meanwhile (100 ms, 200 ms … 1.6 s)
      assert.deepEqual(logged, [
        `Redis redis://127.0.0.1:${port}/0 unreachable (connection refused: connect ECONNREFUSED 127.0.0.1:${port}); failing open (mail accepted, not greylisted); retrying, a line when it is back`,
      ])
      for (let i = 0; i < 3; i++) c.noteFailedOpen()
      clock += 61_000
      await until(() => logged.length > 1, 8000)
      assert.match(
        logged[1],
        /^Redis redis:\/\/127\.0\.0\.1:\d+\/0 still unreachable after 1 min 1 s \(connection refused: .*\); failing open: 3 decision\(s\) accepted without greylisting so far$/,
      )
      clock += 90_000 // the next summary is due 2 min after the first
      await sleep(5500)
      assert.equal(logged.length, 2, logged.join('\n'))
      late = await startPrivateRedis(port)
      await until(() => c.client !== undefined, 8000)
      assert.equal(logged.length, 3, logged.join('\n'))
      assert.equal(logged[2], `connected to redis://127.0.0.1:${port}/0: greylisting resumed after 2 min 31 s unreachable; 3 decision(s) failed open meanwhile`)
      const admin = await (await c.client?.sgMasters())?.[0]?.sendCommand(['CLIENT', 'LIST'])
      assert.equal(String(admin).split('\n').filter(Boolean).length, 1, 'one connection')
    } finally {
      c.close()
      await late?.stop()
    }
  })

  it('a Redis that accepts and never answers: one client at a time, each given up after the connect timeout (silent)', async () => {
    let open = 0
    let most = 0
    let accepted = 0
    const sockets = new Set<net.Socket>()
    const silent = net.createServer((sock) => {
      accepted++
      sockets.add(sock)
      most = Math.max(most, ++open)
      sock.on('close', () => {
        open--
        sockets.delete(sock)
      })
      sock.on('error', () => undefined)
      sock.resume() // reads what the client writes, so its close is seen
    })
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()))
    const port = (silent.address() as net.AddressInfo).port
    const c = new RedisConnection('', log)
    try {
      c.configure(optionsFor(port))
      c.open()
      await sleep(6500) // connect timeout 2 s, then a new client after 1 s, 2 s …
      assert.equal(most, 1, 'never two connections at once')
      assert.ok(accepted >= 2, `${accepted} connections in turn`)
      assert.equal(c.client, undefined)
      assert.deepEqual(logged, [
        `Redis redis://127.0.0.1:${port}/0 unreachable (connected but silent: accepted the connection but did not answer within 2000 ms); failing open (mail accepted, not greylisted); retrying, a line when it is back`,
      ])
      c.close()
      await until(() => open === 0, 2000)
    } finally {
      c.close()
      for (const s of sockets) s.destroy()
      silent.close()
    }
  })

  it('a connection dropped under commands (SIGSTOP) and continued (SIGCONT): no raw error from the late replies', async () => {
    const own = await startPrivateRedis()
    const c = new RedisConnection('', log)
    try {
      c.configure(optionsFor(own.port))
      c.open()
      await until(() => c.client !== undefined)
      own.process.kill('SIGSTOP')
      const master = (await c.client?.sgMasters())?.[0]
      assert.ok(master)
      const pending = Promise.allSettled([1, 2, 3].map((i) => master.sendCommand(['SET', `k${i}`, 'v'])))
      await sleep(300)
      c.drop()
      await sleep(300)
      own.process.kill('SIGCONT')
      await pending
      await until(() => c.client !== undefined && c.client.isReady !== false, 8000)
      await sleep(500)
      assert.deepEqual(
        logged.filter((l) => /Cannot read|TypeError|reading '/.test(l)),
        [],
      )
      assert.match(
        logged[logged.length - 1],
        /^connected to redis:\/\/127\.0\.0\.1:\d+\/0: greylisting resumed after \d+ s unreachable; 0 decision\(s\) failed open meanwhile$/,
      )
    } finally {
      own.process.kill('SIGCONT')
      c.close()
      await own.stop()
    }
  })

  it('durations read as an admin reads them', () => {
    assert.equal(duration(45_400), '45 s')
    assert.equal(duration(60_000), '1 min')
    assert.equal(duration(184_000), '3 min 4 s')
    assert.equal(duration(2 * 3600_000 + 10 * 60_000 + 5000), '2 h 10 min')
  })
})
