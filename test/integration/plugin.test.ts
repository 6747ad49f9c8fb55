// The Haraka adapter through haraka-test-fixtures, against a real redis-server: skips,
// recipient opt-out, results, on_error, defer_at, and config reloads. (No DNS: these clients
// carry fcrdns results, as when the fcrdns plugin runs first.)
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import constants from 'haraka-constants'
import tlds from 'haraka-tld'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import { KEY_PATTERNS, providerKeys } from '../../plugins/smart-greylist/core/keys'
import { callData, callRcptOk, configDir, connection, makePlugin, type FixtureConnection, type FixturePlugin } from '../../scripts/harness/fixtures'
import { connectRedis, type TestRedis } from '../../scripts/harness/redis'
import { usePrivateRedis } from '../helpers/private-redis'
import type { RedisConnection } from '../../plugins/smart-greylist/adapters/redis-connection'
import { sleep } from '../helpers/wait'
import { freePort } from '../../scripts/harness/redis-server'

const NO_RDNS = { ptr_names: [], fail: ['has_rdns'] }

function withFcrdns(conn: FixtureConnection, r: Record<string, unknown> = NO_RDNS): FixtureConnection {
  conn.results.add({ name: 'fcrdns' }, r)
  return conn
}

describe('plugin hooks (haraka-test-fixtures, real Redis)', function () {
  this.timeout(20_000)
  const redis = usePrivateRedis()
  let db: TestRedis

  before(() => {
    db = redis.db
  })

  const plain = (extra = ''): string =>
    configDir({ 'smart-greylist.ini': `[main]\ndelay=60\n${extra}`, 'smart-greylist.whitelist': 'to:abuse@*\nip:40.107.0.0/16\n' })

  it('defers a new tuple with a 451 4.7.1 DSN and records the result and the identity', async () => {
    const plugin = makePlugin(plain(), db)
    const conn = withFcrdns(connection({ ip: '85.214.132.10' }))
    const { rc, msg } = await callRcptOk(plugin, conn, 'bob@example.com')
    assert.equal(rc, constants.denysoft)
    assert.equal((msg as { code: number }).code, 451)
    assert.match(String(msg), /^4\.7\.1 Greylisted/)
    const r = conn.transaction!.results.get(plugin)!
    assert.deepEqual(r.fail, ['greylisted:new'])
    assert.equal(r.identity, 'net:85.214.132.0/24')
    assert.equal(r.identity_reason, 'spf_none,no_rdns,no_pool')
    assert.equal((await db.keys(KEY_PATTERNS.tuples('sgl:'))).length, 1)
  })

  it("logs each decision in one line, the result's own text, unless [main] log_decisions = false", async () => {
    for (const [extra, expected] of [
      ['', 1],
      ['log_decisions = false\n', 0],
    ] as const) {
      const plugin = makePlugin(plain(extra), db)
      const conn = withFcrdns(connection({ ip: '85.214.132.10' }))
      const logged: string[] = []
      ;(conn as unknown as { loginfo(p: unknown, m: string): void }).loginfo = (_p, m) => logged.push(m)
      const { rc } = await callRcptOk(plugin, conn, 'bob@example.com')
      assert.equal(rc, constants.denysoft)
      const r = conn.transaction!.results.get(plugin)!
      assert.deepEqual(r.fail, [expected ? 'greylisted:new' : 'greylisted:early'])
      assert.match(
        String(r.human),
        /^defer reason=(new|early) identity=net:85\.214\.132\.0\/24 identity_reason=spf_none,no_rdns,no_pool from=<alice@sender\.example\.org> to=<bob@example\.com> waited=0s retry_in=60s$/,
      )
      assert.deepEqual(logged, expected ? [r.human] : [])
    }
  })

  it('publishes each recipient decision to watch once, as rcpt_to.smart-greylist, though haraka-results publishes what it adds', async () => {
    // haraka-results publishes through the redis plugin's shared client (server.notes.redis), on
    // result-<uuid>, which haraka-plugin-watch subscribes to: here a real Redis on both ends.
    const sub = await connectRedis(redis.server.port)
    const seen: { plugin: string; result: Record<string, unknown> }[] = []
    await sub.pSubscribe('result-*', (message) => seen.push(JSON.parse(message) as (typeof seen)[number]))
    try {
      // No daily counters: they are written after the answer, and none may land in the next test's Redis.
      const plugin = makePlugin(plain('[stats]\ndays=0\n'), db)
      for (const [ip, rcpt, cell] of [
        ['85.214.132.10', 'bob@example.com', { fail: 'greylisted:new' }],
        ['::ffff:40.107.22.92', 'carol@example.com', { pass: 'whitelist:ip' }],
      ] as const) {
        const conn = withFcrdns(connection({ ip }))
        ;(conn as unknown as { server: object }).server = { notes: { redis: db } }
        const mark = seen.length
        await callRcptOk(plugin, conn, rcpt)
        assert.ok(conn.transaction!.results.get(plugin), 'the decision is still in the results')
        const deadline = Date.now() + 5000
        while (seen.length === mark && Date.now() < deadline) await sleep(20)
        // Anything published twice has arrived by the time a ping sent after it comes back.
        await db.sendCommand(['PING'])
        await sleep(200)
        const mine = seen.slice(mark)
        assert.deepEqual(
          mine.map((m) => m.plugin),
          ['rcpt_to.smart-greylist'],
          `one publish per decision: ${JSON.stringify(mine)}`,
        )
        assert.deepEqual({ ...mine[0].result, human_html: undefined }, { ...cell, human_html: undefined })
      }
    } finally {
      await sub.quit()
    }
  })

  it('reads a renamed setting by its old name, and does not log its note again at every reload', async () => {
    const plugin = makePlugin(plain('defer_weak_at = data\n'), db) as FixturePlugin & { sg_load(): void; loginfo(m: string): void }
    assert.equal(plugin.sg.deps.config.main.net_identity_greylist, 'message')
    // The start's logged load (once the public-suffix list is in) has happened.
    await tlds.ready
    await new Promise((resolve) => setImmediate(resolve))
    const logged: string[] = []
    plugin.loginfo = (m: string) => logged.push(m)
    plugin.sg_load()
    plugin.sg_load()
    assert.equal(logged.filter((l) => l.startsWith('loaded: ')).length, 2, 'it did reload, twice')
    assert.deepEqual(
      logged.filter((l) => l.includes('defer_weak_at')),
      [],
      'the note was logged at the first load only',
    )
    assert.equal(plugin.sg.deps.config.main.net_identity_greylist, 'message')
  })

  it('skips relaying and private clients without touching Redis', async () => {
    const plugin = makePlugin(plain(), db)
    for (const conn of [connection({ ip: '85.214.132.10', relaying: true }), connection({ ip: '10.1.2.3', isPrivate: true })]) {
      const { rc } = await callRcptOk(plugin, conn, 'bob@example.com')
      assert.equal(rc, undefined)
      assert.equal(String(conn.transaction!.results.get(plugin)!.skip as string[]).match(/relaying|private_ip/)?.length, 1)
    }
    assert.deepEqual(await db.keys('*'), [])
  })

  it('greylists private clients when [skip] private = false', async () => {
    const plugin = makePlugin(plain('[skip]\nprivate=false\n'), db)
    const { rc } = await callRcptOk(plugin, withFcrdns(connection({ ip: '10.1.2.3', isPrivate: true })), 'bob@example.com')
    assert.equal(rc, constants.denysoft)
  })

  it('lets opted-out recipients and whitelisted addresses through, naming the entry', async () => {
    const plugin = makePlugin(plain(), db)
    const conn = withFcrdns(connection({ ip: '85.214.132.10' }))
    assert.equal((await callRcptOk(plugin, conn, 'abuse@example.com')).rc, undefined)
    const conn2 = withFcrdns(connection({ ip: '::ffff:40.107.22.92' }))
    assert.equal((await callRcptOk(plugin, conn2, 'bob@example.com')).rc, undefined)
    assert.equal(conn2.transaction!.results.get(plugin)!.whitelist, 'ip:40.107.0.0/16')
  })

  it('takes odd but legal envelopes and HELO names without failing (address literals, quoted local parts, the null sender)', async () => {
    const plugin = makePlugin(plain(), db)
    const cases: [string, string][] = [
      ['"john smith"@example.org', '[85.214.132.10]'],
      ['user@[85.214.132.10]', 'not a hostname!'],
      ['<>', '[IPv6:2a00:6020::1]'],
      ['x@xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ]
    for (const [from, helo] of cases) {
      const conn = withFcrdns(connection({ ip: '85.214.132.10', from, helo }))
      const { rc } = await callRcptOk(plugin, conn, 'bob@example.com')
      assert.equal(rc, constants.denysoft, `${from} / ${helo}: ${JSON.stringify(conn.transaction!.results.get(plugin))}`)
      assert.deepEqual(conn.transaction!.results.get(plugin)!.err, [], `${from} / ${helo}: no internal error`)
    }
  })

  it('fails open without Redis, recording the error', async () => {
    const plugin = makePlugin(plain())
    const conn = withFcrdns(connection({ ip: '85.214.132.10' }))
    assert.equal((await callRcptOk(plugin, conn, 'bob@example.com')).rc, undefined)
    assert.match(String(conn.transaction!.results.get(plugin)!.err), /redis_unavailable/)
  })

  it('defers on failure when on_error = defer', async () => {
    const plugin = makePlugin(plain('on_error=defer\n'))
    const { rc, msg } = await callRcptOk(plugin, withFcrdns(connection({ ip: '85.214.132.10' })), 'bob@example.com')
    assert.equal(rc, constants.denysoft)
    assert.equal((msg as { code: number }).code, 451)
  })

  it('never defers in shadow mode, not even on failure with on_error = defer', async () => {
    const plugin = makePlugin(plain('on_error=defer\nmode=shadow\n'))
    const conn = withFcrdns(connection({ ip: '85.214.132.10' }))
    const { rc } = await callRcptOk(plugin, conn, 'bob@example.com')
    assert.equal(rc, undefined)
    // The failure the answer is about did happen, recorded with the answer shadow mode gave it.
    assert.match(String(conn.transaction!.results.get(plugin)!.err), /error \(redis_unavailable\): .*; on_error=accept \(shadow mode\)/)
  })

  it('with defer_at = data, continues at RCPT and defers at DATA', async () => {
    const plugin = makePlugin(plain('defer_at=data\n'), db)
    const conn = withFcrdns(connection({ ip: '85.214.132.10' }))
    assert.equal((await callRcptOk(plugin, conn, 'bob@example.com')).rc, undefined)
    const { rc, msg } = await callData(plugin, conn)
    assert.equal(rc, constants.denysoft)
    assert.equal((msg as { code: number }).code, 451)
  })

  it('takes an edited smart-greylist.ini without a restart, and keeps the last good one when an edit is bad', async () => {
    const dir = plain()
    const plugin = makePlugin(dir, db)
    assert.equal(plugin.sg.deps.config.main.delay, 60)
    const ini = path.join(dir, 'config', 'smart-greylist.ini')
    fs.writeFileSync(ini, '[main]\ndelay=120\n')
    const delay = (): unknown => plugin.sg.deps.config.main.delay
    for (let i = 0; i < 100 && delay() !== 120; i++) await sleep(50)
    assert.equal(plugin.sg.deps.config.main.delay, 120)
    const errors: string[] = []
    plugin.logerror = (m: string) => errors.push(m)
    fs.writeFileSync(ini, '[main]\ndelay=banana\n')
    for (let i = 0; i < 200 && !errors.length; i++) await sleep(50)
    assert.match(errors[0] ?? '', /smart-greylist\.ini \[main\] delay: "banana" is not a whole number .*; keeping "120"/)
    assert.equal(plugin.sg.deps.config.main.delay, 120, 'a bad edit leaves the last good settings in force')
  })

  it('ignores a poisoned shared provider record in Redis, and a reload that fails keeps the last good world', async () => {
    const plugin = makePlugin(plain('[refresh]\nevery=0\n'), db) as FixturePlugin & {
      sg: { deps: unknown; refresher: { tick(): Promise<void> }; shared: Map<string, unknown> }
      sg_load(): void
      config: { get: (...a: unknown[]) => unknown }
    }
    const warnings: string[] = []
    const errors: string[] = []
    plugin.logwarn = (m: string) => warnings.push(m)
    plugin.logerror = (m: string) => errors.push(m)
    // One HSET would otherwise put every client into Microsoft's pool (action skip).
    await db.hSet(providerKeys('sgl:').ranges('microsoft'), { ranges: '0.0.0.0/0 ::/0', updated: String(Date.now()), source: 'spf' })
    await plugin.sg.refresher.tick()
    assert.equal(plugin.sg.deps.providers.lookup(parseIp('85.214.132.10')), undefined)
    assert.match(warnings.join('\n'), /ignoring the shared record of microsoft in Redis .*0\.0\.0\.0\/0 is wider than \/12/)

    // haraka-config calls the reload from a timer: it must not throw, whatever fails.
    const before = plugin.sg.deps
    const get = plugin.config.get
    plugin.config.get = () => {
      throw new Error('EACCES reading smart-greylist.ini')
    }
    assert.doesNotThrow(() => plugin.sg_load())
    // New shared ranges arriving while the files cannot be read: the refresher's tick survives,
    // and the shared ranges in force stay the last good ones.
    const ms = { ranges: '40.92.0.0/15 52.106.0.0/24', updated: String(Date.now()), source: 'endpoints', version: '1' }
    await db.hSet(providerKeys('sgl:').ranges('microsoft'), ms)
    await plugin.sg.refresher.tick()
    assert.equal(plugin.sg.shared.size, 0, 'the last good shared ranges (none) stay')
    assert.match(errors.join('\n'), /reload with the shared provider ranges failed, the last good ones stay in force: EACCES/)
    plugin.config.get = get
    assert.equal(plugin.sg.deps, before, 'the last good world stays')
    assert.match(errors.join('\n'), /reload failed, the last good configuration stays in force: EACCES/)
  })

  it("lets a provider's mail skip greylisting, or only groups it, as smart-greylist.ini says", async () => {
    const providers = '[mailchimp]\nname = Mailchimp\naction = skip\nip = 198.2.128.0/18\n'
    const conn = (): FixtureConnection => withFcrdns(connection({ ip: '198.2.130.7' }))
    // The admin's .local section overrides the shipped mailchimp's action and ranges.
    const skip = makePlugin(configDir({ 'smart-greylist.providers.local': providers }), db)
    assert.deepEqual(skip.sg.deps.providers.lookup(parseIp('198.2.130.7'))?.provider.ips, ['198.2.128.0/18'])
    const c1 = conn()
    assert.equal((await callRcptOk(skip, c1, 'bob@example.com')).rc, undefined)
    assert.equal(c1.transaction!.results.get(skip)!.whitelist, 'provider:mailchimp')

    for (const ini of ['[whitelist]\nproviders=false\n', '[providers]\nmailchimp=group\n']) {
      const group = makePlugin(configDir({ 'smart-greylist.ini': ini, 'smart-greylist.providers.local': providers }), db)
      const c2 = conn()
      assert.equal((await callRcptOk(group, c2, `bob${ini.length}@example.com`)).rc, constants.denysoft)
      assert.equal(c2.transaction!.results.get(group)!.identity, 'pool:mailchimp')
    }
    const off = makePlugin(configDir({ 'smart-greylist.ini': '[providers]\nmailchimp=off\n', 'smart-greylist.providers.local': providers }), db)
    const c3 = conn()
    await callRcptOk(off, c3, 'carol@example.com')
    assert.equal(c3.transaction!.results.get(off)!.identity, 'net:198.2.130.0/24')
  })

  it("a Redis that stopped answering takes the admin reads' connection down with the decisions' one, both made anew", async () => {
    const port = await freePort()
    const plugin = makePlugin(
      plain(`[metrics]\nenabled=true\nlisten=127.0.0.1:${port}\n[redis]\nhost=127.0.0.1\nport=${redis.server.port}\n`),
      // A client of its own: dropping it must not close the suite's.
      await connectRedis(redis.server.port),
    )
    const p = plugin as unknown as {
      sg: { admin: RedisConnection }
      sg_init_master(next: () => void, server: object): void
      sg_drop_redis(why: string): void
      shutdown(): void
    }
    // One process (no nodes), no HTTP server: it serves the metrics, with the admin reads' connection.
    p.sg_init_master(() => undefined, { cfg: { main: {} } })
    const idOf = async (): Promise<string> => {
      const deadline = Date.now() + 5000
      while (!p.sg.admin.client && Date.now() < deadline) await sleep(20)
      return String(await (await p.sg.admin.client?.sgMasters())?.[0]?.sendCommand(['CLIENT', 'ID']))
    }
    try {
      const before = await idOf()
      assert.match(before, /^\d+$/)
      p.sg_drop_redis('no answer for 5000 ms')
      const after = await idOf()
      assert.match(after, /^\d+$/)
      assert.notEqual(after, before)
    } finally {
      p.shutdown()
    }
  })
})
