// End to end: what the admin sees. Two Harakas share one Redis, each serving Prometheus metrics
// on [metrics] listen. An Exchange-like sender is deferred by one MX and accepted by the other;
// either MX's scrape then shows both decisions, the delay, and its own Redis and DNS waits. An
// unlisted six-address pool without rDNS retries to no avail: `stuck` names it, the metric counts
// it, and `stats --chart` draws the delay real mail paid.
import assert from 'node:assert/strict'
import net from 'node:net'
import { DnsServer } from '../../scripts/harness/dns-server'
import { HarakaInstance } from '../../scripts/harness/haraka'
import { freePort, startPrivateRedis, type PrivateRedis } from '../../scripts/harness/redis-server'
import { connectRedis, type TestRedis } from '../../scripts/harness/redis'
import { deliver } from '../../scripts/harness/smtp'
import { runCli } from '../helpers/cli'
import { httpGet } from '../helpers/http'
import { sleep, utcDay, withinOneDay } from '../helpers/wait'
import { EXCHANGE_HELO, EXCHANGE_IPS, exchangeZone } from '../helpers/world'

/** Six addresses in six /16s, no PTR, no SPF record, in no provider range. */
const POOL_IPS = ['2.58.10.5', '31.13.70.9', '45.83.1.7', '77.111.240.3', '91.199.4.8', '185.15.58.2']

const scrape = (port: number, path = '/metrics'): ReturnType<typeof httpGet> => httpGet(port, path)

/** A sample's value: the line `name{labels…}` whose labels include all of `labels`. */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3])
  }
  return undefined
}

describe('metrics, stuck senders and the delay chart, across two MXs', function () {
  this.timeout(120_000)
  let redis: PrivateRedis
  let dns: DnsServer
  const mx: HarakaInstance[] = []
  const metricsPorts: number[] = []
  // The site-wide series are today's counters (UTC) and start again at 00:00 UTC by design, and
  // these tests assert exact counts summed over the file's scenarios (7 deferrals = 1 + 6). A
  // count read across midnight is not wrong, just another day's: so the file runs within one UTC
  // day. Started with less than FILE_MS left, it waits for the new day first; each test checks
  // the day is still the one it started in, so a run that overstays says why, not "6 != 7".
  const FILE_MS = 150_000
  let day = ''
  const sameDay = (): void => assert.equal(utcDay(), day, 'the scenario ran past 00:00 UTC, where the per-day series start again')

  const iniFor = (port: number, enabled = true): string =>
    `[main]\ndelay=1\nretry_window=600\n[whitelist]\nproviders=false\n[awl]\npasses=0\n[metrics]\nenabled=${enabled}\nlisten=127.0.0.1:${port}\nstuck_every=10\n`

  before(async function () {
    this.timeout(60_000 + FILE_MS)
    await withinOneDay(FILE_MS)
    day = utcDay()
    redis = await startPrivateRedis()
    dns = await DnsServer.start()
    dns.add(exchangeZone())
    for (let i = 0; i < 2; i++) {
      const port = await freePort()
      metricsPorts.push(port)
      mx.push(await HarakaInstance.start({ redisPort: redis.port, dnsPort: dns.port, ini: iniFor(port) }))
    }
    for (const h of mx) await h.waitFor(/\[smart-greylist\] connected to redis/)
    for (const h of mx) await h.waitFor(/metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/)
    for (const h of mx) await h.waitFor(/admin reads: connected to redis/)
  })
  after(async () => {
    for (const h of mx) await h.stop()
    await dns?.close()
    await redis?.stop()
  })

  it('one scrape of either MX shows the decisions of both after a real 451 -> 250, and its own waits', async () => {
    const env = { helo: EXCHANGE_HELO, from: 'alice@contoso.example', to: ['carol@example.com'] }
    const first = await deliver(mx[0].port, { ...env, clientIp: EXCHANGE_IPS[0] })
    assert.equal(first.rcpt[0].code, 451)
    await sleep(1300)
    const retry = await deliver(mx[1].port, { ...env, clientIp: EXCHANGE_IPS[3] })
    assert.equal(retry.rcpt[0].code, 250)

    for (const [i, port] of metricsPorts.entries()) {
      const r = await scrape(port)
      assert.equal(r.status, 200)
      assert.match(r.type, /^text\/plain; version=0\.0\.4/)
      const m = r.body
      assert.equal(value(m, 'smart_greylist_site_up'), 1)
      assert.equal(value(m, 'smart_greylist_decisions_total', { action: 'defer', reason: 'new' }), 1, `MX ${i + 1} sees MX 1's deferral`)
      assert.equal(value(m, 'smart_greylist_decisions_total', { action: 'pass', reason: 'retry' }), 1, `MX ${i + 1} sees MX 2's pass`)
      assert.equal(value(m, 'smart_greylist_identity_decisions_total', { kind: 'host' }), 2)
      assert.equal(value(m, 'smart_greylist_delay_seconds_count'), 1)
      assert.equal(value(m, 'smart_greylist_delay_seconds_bucket', { le: '60' }), 1)
      assert.equal(value(m, 'smart_greylist_delay_seconds_bucket', { le: '+Inf' }), 1)
      const waited = value(m, 'smart_greylist_delay_seconds_sum') ?? -1
      assert.ok(waited >= 1 && waited <= 30, `delay sum ${waited}`)
      assert.equal(value(m, 'smart_greylist_delay_by_kind_seconds_count', { kind: 'host' }), 1)
      // This process's own series, labelled with its pid.
      const me = { pid: String(mx[i].pid) }
      assert.equal(value(m, 'smart_greylist_redis_up', me), 1)
      assert.equal(value(m, 'smart_greylist_redis_in_flight', me), 0)
      assert.ok((value(m, 'smart_greylist_redis_request_seconds_count', me) ?? 0) >= 1, 'Redis waits of this process')
      assert.equal(value(m, 'smart_greylist_dns_lookup_seconds_count', { ...me, lookup: 'rdns' }), 1, 'one rDNS lookup per MX')
      assert.ok((value(m, 'smart_greylist_provider_data_age_seconds', { ...me, provider: 'microsoft' }) ?? -1) > 0)
      assert.match(m, /^# TYPE smart_greylist_decisions_total counter$/m)
      assert.match(m, /^# TYPE smart_greylist_delay_seconds histogram$/m)
    }
    assert.equal((await scrape(metricsPorts[0], '/other')).status, 404)
    sameDay()
  })

  it('an unlisted pool without rDNS that retries from six networks: stuck names it, the metric counts it', async () => {
    const env = { from: 'news@pool.example', to: ['dave@example.com'] }
    for (const [i, ip] of POOL_IPS.entries()) {
      const r = await deliver(mx[i % 2].port, { ...env, clientIp: ip })
      assert.equal(r.rcpt[0].code, 451, `attempt ${i + 1} from ${ip}`)
    }
    const cli = (...args: string[]): ReturnType<typeof runCli> => runCli([...args, '--config', mx[0].configDir])
    const text = await cli('stuck')
    assert.equal(text.code, 1, text.stderr)
    assert.match(text.stdout, /^pool\.example -> dave@example\.com: 6 deferrals from 6 identities in 6 networks/m)
    assert.match(text.stdout, /identities: net:2\.58\.10\.0\/24 net:31\.13\.70\.0\/24/)
    assert.match(text.stdout, /rDNS: {7}none/)
    assert.match(text.stdout, /suggest: {4}\[main\] net_identity_greylist = message/)
    assert.doesNotMatch(text.stdout, /contoso/, 'the Exchange-like sender passed: not stuck')
    const json = JSON.parse((await cli('stuck', '--json')).stdout) as { total: number; pairs: { networks: string[] }[] }
    assert.equal(json.total, 1)
    assert.equal(json.pairs[0]?.networks.length, 6)
    const chart = await cli('stats', '--days', '2', '--chart')
    assert.equal(chart.code, 0, chart.stderr)
    assert.match(chart.stdout, /^ {6}<= 60 s \| #{40} 1$/m)
    if (process.env.SGL_SHOW_OUTPUT) console.log(`$ smart-greylist stuck\n${text.stdout}\n$ smart-greylist stats --days 2 --chart\n${chart.stdout}`)

    // One process of the site counts at a time, every stuck_every (10 s): the count made at the
    // first test's scrapes (0) holds until then, and a scrape after it starts the next. A scrape
    // within cache_ms (5 s) of the first test's shows that test's read, made before any count.
    let stuck: number | undefined
    const seen = new Set<number | undefined>()
    const until = Date.now() + 30_000
    for (let i = 0; stuck !== 1 && Date.now() < until; i++) {
      stuck = value((await scrape(metricsPorts[i % 2])).body, 'smart_greylist_stuck_pairs')
      seen.add(stuck)
      if (stuck !== 1) await sleep(500)
    }
    assert.equal(stuck, 1)
    assert.deepEqual(
      [...seen].filter((v) => v !== 1 && v !== undefined),
      [0],
      `the earlier count until the period ended: ${[...seen].join(' ')}`,
    )
    const m = (await scrape(metricsPorts[1])).body
    assert.equal(value(m, 'smart_greylist_decisions_total', { action: 'defer', reason: 'new' }), 7)
    assert.equal(value(m, 'smart_greylist_identity_decisions_total', { kind: 'net' }), 6)
    sameDay()
  })

  it("[metrics] turned off, moved and on again takes effect without a restart, the admin reads' connection with it", async () => {
    const h = mx[1]
    const refused = (port: number): Promise<boolean> =>
      scrape(port).then(
        () => false,
        (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
      )
    const db = await connectRedis(redis.port)
    // Both MXs' connections (decisions, admin reads) and this one.
    const clients = async (): Promise<number> =>
      String(await db.sendCommand(['CLIENT', 'LIST']))
        .split('\n')
        .filter(Boolean).length
    const connections = async (n: number): Promise<void> => {
      const until = Date.now() + 5000
      while ((await clients()) !== n && Date.now() < until) await sleep(50)
      assert.equal(await clients(), n)
    }
    await connections(5)
    let mark = h.log.length
    h.writeConfig('smart-greylist.ini', iniFor(metricsPorts[1], false))
    await h.waitFor(/loaded: whitelist/, 15_000, mark)
    assert.ok(await refused(metricsPorts[1]), 'off: nothing listens')
    await connections(4)
    const moved = await freePort()
    mark = h.log.length
    h.writeConfig('smart-greylist.ini', iniFor(moved))
    await h.waitFor(new RegExp(`metrics at http://127\\.0\\.0\\.1:${moved}/metrics`), 15_000, mark)
    const r = await scrape(moved)
    assert.equal(r.status, 200)
    assert.equal(value(r.body, 'smart_greylist_redis_up', { pid: String(h.pid) }), 1)
    assert.ok(await refused(metricsPorts[1]), 'the old address is let go')
    await connections(5)
    await db.quit()
  })
})

/** Calls of one Redis command so far (INFO commandstats). */
async function commandCalls(db: TestRedis, command: string): Promise<number> {
  const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(await db.info('commandstats'))
  return Number(m?.[1] ?? 0)
}

/**
 * Every command Redis runs from now on, with the address of the connection that sent it (MONITOR
 * on a connection of its own).
 */
async function monitor(port: number): Promise<{ lines: string[]; stop(): void }> {
  const sock = net.connect({ host: '127.0.0.1', port })
  const lines: string[] = []
  let rest = ''
  sock.on('data', (d: Buffer) => {
    const parts = (rest + d.toString()).split('\r\n')
    rest = parts.pop() ?? ''
    lines.push(...parts)
  })
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject))
  sock.write('MONITOR\r\n')
  const until = Date.now() + 5000
  while (!lines.includes('+OK') && Date.now() < until) await sleep(10)
  return { lines, stop: () => sock.destroy() }
}

/** `+1700000000.123 [0 127.0.0.1:5555] "HGETALL" "sgl:…"` -> the address and the command. */
function monitored(line: string): { from: string; command: string; key: string } | null {
  const m = /^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?/.exec(line)
  return m ? { from: m[1] ?? '', command: (m[2] ?? '').toUpperCase(), key: m[3] ?? '' } : null
}

describe('a scrape costs Redis once, on a connection of its own, for allowed addresses only', function () {
  this.timeout(60_000)
  let redis: PrivateRedis
  let dns: DnsServer
  let haraka: HarakaInstance
  let metricsPort: number
  let db: TestRedis
  /** The only address [metrics] allow lets scrape here. */
  const SCRAPER = '127.0.0.2'

  before(async function () {
    this.timeout(60_000)
    redis = await startPrivateRedis()
    dns = await DnsServer.start()
    dns.add(exchangeZone())
    metricsPort = await freePort()
    const ini = `[main]\ndelay=1\n[whitelist]\nproviders=false\n[awl]\npasses=0\n[metrics]\nenabled=true\nlisten=127.0.0.1:${metricsPort}\nstuck_every=0\ncache_ms=3000\nallow=${SCRAPER}/32\n`
    haraka = await HarakaInstance.start({ redisPort: redis.port, dnsPort: dns.port, ini })
    await haraka.waitFor(/\[smart-greylist\] connected to redis/)
    await haraka.waitFor(/metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/)
    await haraka.waitFor(/admin reads: connected to redis/)
    db = await connectRedis(redis.port)
  })
  after(async () => {
    await db?.quit().catch(() => undefined)
    await haraka?.stop()
    await dns?.close()
    await redis?.stop()
  })

  it('ten concurrent scrapes, and the scrapes that follow within cache_ms, read the site once', async () => {
    const before = await commandCalls(db, 'hgetall')
    const all = await Promise.all(Array.from({ length: 10 }, () => httpGet(metricsPort, '/metrics', SCRAPER)))
    for (const r of all) assert.equal(r.status, 200)
    assert.equal(value(all[0]?.body ?? '', 'smart_greylist_site_up'), 1)
    const concurrent = (await commandCalls(db, 'hgetall')) - before
    for (let i = 0; i < 3; i++) assert.equal((await httpGet(metricsPort, '/metrics', SCRAPER)).status, 200)
    const sequential = (await commandCalls(db, 'hgetall')) - before - concurrent
    if (process.env.SGL_SHOW_OUTPUT) console.log(`      HGETALL calls: 10 concurrent scrapes ${concurrent}, 3 more within cache_ms ${sequential}`)
    // 256 shards of the day's counters, the stuck count's hash and the provider refresh's status.
    assert.equal(concurrent, 258)
    assert.equal(sequential, 0)
  })

  it("the scrape's reads come on a connection of their own, not the decisions' one", async () => {
    const watch = await monitor(redis.port)
    try {
      const r = await deliver(haraka.port, { helo: EXCHANGE_HELO, from: 'alice@contoso.example', to: ['erin@example.com'], clientIp: EXCHANGE_IPS[0] })
      assert.equal(r.rcpt[0].code, 451)
      // Past cache_ms: this scrape reads Redis.
      await sleep(3100)
      assert.equal((await httpGet(metricsPort, '/metrics', SCRAPER)).status, 200)
      await sleep(200)
    } finally {
      watch.stop()
    }
    const seen = watch.lines.flatMap((l) => monitored(l) ?? [])
    const decisions = new Set(seen.filter((c) => c.command === 'EVALSHA' || c.command === 'EVAL').map((c) => c.from))
    const scrape = new Set(seen.filter((c) => c.command === 'HGETALL' && /\}st:/.test(c.key)).map((c) => c.from))
    assert.ok(decisions.size > 0, 'the decision was seen')
    assert.equal(scrape.size, 1, `the counters came on one connection: ${[...scrape].join(' ')}`)
    for (const a of scrape) assert.ok(!decisions.has(a), `the scrape's connection ${a} is not the decisions' (${[...decisions].join(' ')})`)
  })

  it('[metrics] allow: an address outside it is refused with 403 on our own listener', async () => {
    const r = await httpGet(metricsPort, '/metrics', '127.0.0.1')
    assert.equal(r.status, 403)
    assert.doesNotMatch(r.body, /smart_greylist/)
    assert.equal((await httpGet(metricsPort, '/metrics', SCRAPER)).status, 200)
  })
})
