// Integration: `smart-greylist simulate` as an admin runs it (the compiled bin, in a child
// process) on a scratch Redis: the report's JSON, and the refusal to empty a Redis that holds keys.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createClient } from 'redis'
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

  it('refuses a Redis whose keys are in another database than the one it runs on, and leaves them', async () => {
    const other = createClient({ socket: { host: '127.0.0.1', port: redis.server.port }, database: 1 })
    await other.connect()
    try {
      await other.set('production:key', 'x')
      const r = await runCli(['simulate', '--config', 'config', '--messages', '50', '--redis', `127.0.0.1:${redis.server.port}`])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /holds keys/)
      assert.equal(await other.get('production:key'), 'x')
    } finally {
      await other.flushDb()
      other.destroy()
    }
  })

  it('refuses a Redis that holds keys, and leaves them', async () => {
    await redis.db.set('production:key', 'x')
    const r = await runCli(['simulate', '--config', 'config', '--messages', '50', '--redis', `127.0.0.1:${redis.server.port}`])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /holds keys/)
    assert.equal(await redis.db.get('production:key'), 'x')
  })

  it('names a bad option value', async () => {
    for (const [args, said] of [
      [['--variant', 'nonsense'], /--variant nonsense/],
      [['--messages', '0'], /--messages 0: a whole number from 1 to/],
      [['--keyings', 'plugin,postgrey'], /unknown keying postgrey/],
      [['--redis', 'localhost'], /--redis takes HOST:PORT/],
    ] as const) {
      const r = await runCli(['simulate', '--config', 'config', ...args])
      assert.equal(r.code, 2, args.join(' '))
      assert.match(r.stderr, said)
    }
  })

  it("uses the admin's settings but never their Redis address or login", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-simcfg-'))
    try {
      fs.writeFileSync(
        path.join(dir, 'smart-greylist.ini'),
        '[main]\ndelay=600\n[redis]\nhost=192.0.2.1\nport=6380\npassword=production-secret\nprefix=site:\n',
      )
      const r = await runCli(['simulate', '--config', dir, '--messages', '200', '--keyings', 'plugin', '--redis', `127.0.0.1:${redis.server.port}`, '--json'])
      assert.equal(r.code, 0, r.stderr)
      const report = JSON.parse(r.stdout) as { keyings: { totals: { failures: number }; classes: { class: string; delayMin: { max: number } }[] }[] }
      assert.equal(report.keyings[0].totals.failures, 0)
      // The admin's delay (600 s) is the one in force: a single MTA's delivered mail waited at least that.
      const mta = report.keyings[0].classes.find((c) => c.class === 'company_mta')
      assert.ok(mta && mta.delayMin.max >= 10, JSON.stringify(mta))
      // Under the admin's prefix.
      assert.ok((await redis.db.keys('site:*')).length > 0)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
