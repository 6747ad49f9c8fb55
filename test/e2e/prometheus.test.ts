// End to end: the shipped rules and dashboard in a real Prometheus (Debian's `prometheus`, on a
// loopback port, with its own config and storage in a temporary directory) scraping a real Haraka
// with the plugin every second and evaluating the rules every second. Redis is stopped while
// mail comes in: the fail-open and Redis alerts' expressions fire (the fail-open rule itself goes
// pending in Prometheus; no `for` is waited out here: promtool's unit tests cover `for`). Then, with
// Redis back and mail greylisted and accepted, every dashboard query and every rule's expression
// parses and returns series, and every metric name they use is in a real scrape.
import assert from 'node:assert/strict'
import { DnsServer } from '../../scripts/harness/dns-server'
import { HarakaInstance } from '../../scripts/harness/haraka'
import { hasPrometheus, PrometheusServer, type Series } from '../../scripts/harness/prometheus'
import { freePort, startPrivateRedis, type PrivateRedis } from '../../scripts/harness/redis-server'
import { deliver } from '../../scripts/harness/smtp'
import { httpGet } from '../helpers/http'
import { asBool, concrete, dashboardQueries, exposedNames, JOB, loadDashboard, loadRules, RULES_FILE, unknownNames } from '../helpers/prometheus-files'
import { sleep } from '../helpers/wait'
import { EXCHANGE_HELO, EXCHANGE_IPS, exchangeZone } from '../helpers/world'

const show = (text: string): void => {
  if (process.env.SGL_SHOW_OUTPUT) console.log(`      ${text}`)
}

describe('the shipped rules and dashboard in a real Prometheus scraping a real Haraka', function () {
  this.timeout(120_000)
  const rules = loadRules()
  const queries = dashboardQueries(loadDashboard())
  const alertExpr = (name: string): string => {
    const a = rules.alerts.find((x) => x.alert === name)
    if (!a) throw new Error(`no alert ${name} in ${RULES_FILE}`)
    return a.expr
  }
  let redis: PrivateRedis
  let dns: DnsServer
  let haraka: HarakaInstance
  let prom: PrometheusServer
  let metricsPort = 0

  /** Polls `read` until `done` says so or `ms` pass; the last value read either way. */
  async function until<T>(ms: number, read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
    const deadline = Date.now() + ms
    let v = await read()
    while (!done(v) && Date.now() < deadline) {
      await sleep(250)
      v = await read()
    }
    return v
  }
  const show1 = (s: readonly Series[]): string => s.map((x) => `${JSON.stringify(x.metric)} ${x.value[1]}`).join('; ')

  before(async function () {
    this.timeout(90_000)
    assert.ok(hasPrometheus(), 'prometheus and promtool are not installed (Debian: apt-get install prometheus; .ci/run does)')
    redis = await startPrivateRedis()
    dns = await DnsServer.start()
    dns.add(exchangeZone())
    metricsPort = await freePort()
    // Scraped every second: stuck counted every second, the site's read kept 500 ms; a provider
    // refresh at once (its SPF walks reach only the loopback DNS server; no endpoints service).
    const ini = [
      '[main]\ndelay=1\nretry_window=600',
      '[whitelist]\nproviders=false',
      '[awl]\npasses=0',
      '[redis]\ntimeout_ms=300',
      `[metrics]\nenabled=true\nlisten=127.0.0.1:${metricsPort}\nstuck_every=1\ncache_ms=500`,
      '[refresh]\ncheck_every=1\ntimeout_ms=500\nmicrosoft_endpoints_url=',
    ].join('\n')
    haraka = await HarakaInstance.start({ redisPort: redis.port, dnsPort: dns.port, ini: `${ini}\n` })
    await haraka.waitFor(/\[smart-greylist\] connected to redis/)
    await haraka.waitFor(/metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/)
    prom = await PrometheusServer.start({ job: JOB, targets: [`127.0.0.1:${metricsPort}`], ruleFiles: [RULES_FILE], interval: '1s' })
    const up = await until(
      30_000,
      () => prom.query(`up{job="${JOB}"} == 1`),
      (s) => s.length === 1,
    )
    assert.equal(up.length, 1, 'Prometheus scrapes the Haraka')
  })
  after(async () => {
    await prom?.stop()
    await haraka?.stop()
    await dns?.close()
    await redis?.stop()
  })

  it('loads every rule of the shipped file and evaluates each without error', async () => {
    type Groups = Awaited<ReturnType<PrometheusServer['rules']>>
    const unhealthy = (g: Groups): string[] =>
      g.flatMap((x) => x.rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`))
    const groups = await until(
      20_000,
      () => prom.rules(),
      (g) => unhealthy(g).length === 0,
    )
    assert.deepEqual(Object.fromEntries(groups.map((g) => [g.name, g.rules.length])), {
      'smart-greylist.records': rules.records.length,
      'smart-greylist.alerts': rules.alerts.length,
    })
    assert.deepEqual(unhealthy(groups), [])
  })

  it("while Redis is stopped: the fail-open alert's expression fires, and the Redis alerts' expressions", async () => {
    const port = redis.port
    await redis.stop()
    // The counter of fail-open decisions rises over at least two scrapes: mail keeps coming.
    const failingOpen = alertExpr('SmartGreylistFailingOpen')
    let fired: Series[] = []
    const deadline = Date.now() + 40_000
    for (let i = 0; fired.length === 0 && Date.now() < deadline; i++) {
      const r = await deliver(haraka.port, { clientIp: '85.214.160.2', from: `down${i}@sender.example.org`, to: ['bob@example.com'] })
      assert.equal(r.rcpt[0].code, 250, 'fails open while Redis is down')
      fired = await until(
        1500,
        () => prom.query(failingOpen),
        (s) => s.length > 0,
      )
    }
    assert.equal(fired.length, 1, `${failingOpen} fires while Redis is stopped`)
    assert.equal(fired[0]?.metric.pid, String(haraka.pid))
    show(`SmartGreylistFailingOpen: ${show1(fired)}`)
    for (const name of ['SmartGreylistRedisDownForSite', 'SmartGreylistRedisDownForProcess']) {
      const s = await until(
        20_000,
        () => prom.query(alertExpr(name)),
        (x) => x.length > 0,
      )
      assert.equal(s.length, 1, `${name} fires while Redis is stopped`)
      show(`${name}: ${show1(s)}`)
    }
    // The rule itself, as Prometheus evaluates it: active, pending for its `for` of 5 minutes.
    const pending = await until(
      10_000,
      () => prom.alerts(),
      (a) => a.some((x) => x.labels.alertname === 'SmartGreylistFailingOpen'),
    )
    const mine = pending.find((x) => x.labels.alertname === 'SmartGreylistFailingOpen')
    assert.equal(mine?.state, 'pending')
    assert.equal(mine?.labels.severity, 'warning')
    show(`alerts active in Prometheus: ${pending.map((a) => `${a.labels.alertname} (${a.state})`).join(', ')}`)

    redis = await startPrivateRedis(port)
    const back = await until(
      30_000,
      () => prom.query('smart_greylist_site_up == 1 and on () smart_greylist_redis_up == 1'),
      (s) => s.length > 0,
    )
    assert.equal(back.length, 1, 'the plugin reads Redis again')
    for (const name of ['SmartGreylistRedisDownForSite', 'SmartGreylistRedisDownForProcess'])
      assert.deepEqual(await prom.query(alertExpr(name)), [], `${name} is quiet with Redis back`)
  })

  it('with mail greylisted and accepted: every dashboard query and every rule expression returns series', async () => {
    const env = { helo: EXCHANGE_HELO, from: 'alice@contoso.example', to: ['carol@example.com'] }
    const first = await deliver(haraka.port, { ...env, clientIp: EXCHANGE_IPS[0] })
    assert.equal(first.rcpt[0].code, 451)
    // Retried until past [main] delay (1 s); an early retry is deferred again.
    const passed = await until(
      15_000,
      () => deliver(haraka.port, { ...env, clientIp: EXCHANGE_IPS[3] }),
      (r) => r.rcpt[0].code === 250,
    )
    assert.equal(passed.rcpt[0].code, 250)

    // Each expression as Prometheus answers it: a query that does not parse throws at once.
    const exprs = [
      ...queries.map((q) => ({ where: q.where, expr: concrete(q.expr) })),
      ...rules.records.map((r) => ({ where: `record ${r.record}`, expr: r.expr })),
      // An alert's condition made `bool`: the series it looks at, past its threshold or not.
      ...rules.alerts.map((a) => ({ where: `alert ${a.alert}`, expr: asBool(a.expr) })),
    ]
    const empty = async (): Promise<string[]> => {
      const out: string[] = []
      for (const e of exprs) if ((await prom.query(e.expr)).length === 0) out.push(`${e.where}: ${e.expr}`)
      return out
    }
    assert.deepEqual(await until(40_000, empty, (x) => x.length === 0), [])
    for (const a of rules.alerts) await prom.query(a.expr)
    show(
      `${exprs.length} expressions answered with series (${queries.length} dashboard queries, ${rules.records.length} records, ${rules.alerts.length} alerts)`,
    )

    // The job variable (the first query) offers the scrape job.
    assert.deepEqual(
      (await prom.query(concrete(queries[0]?.expr ?? ''))).map((s) => s.metric.job),
      [JOB],
    )
    // The site's last provider refresh failed: its SPF walks reached only the test's DNS server.
    const refresh = await until(
      20_000,
      () => prom.query(alertExpr('SmartGreylistProviderRefreshFailed')),
      (s) => s.length > 0,
    )
    assert.equal(refresh.length, 1, 'the refresh failed against the loopback DNS server')
    const firing: string[] = []
    for (const a of rules.alerts) if ((await prom.query(a.expr)).length > 0) firing.push(a.alert)
    show(`alert expressions past their threshold now: ${firing.join(', ')}`)
    assert.ok(firing.includes('SmartGreylistProviderRefreshFailed'))
    assert.ok(!firing.includes('SmartGreylistMetricsDown') && !firing.includes('SmartGreylistRedisDownForSite'), firing.join(', '))
  })

  it('every metric name the rules and the dashboard use is in a real scrape of the plugin', async () => {
    const r = await httpGet(metricsPort, '/metrics')
    assert.equal(r.status, 200)
    const served = exposedNames(r.body)
    assert.ok(served.has('smart_greylist_process_fail_open_total'), 'the scrape shows the fail-open counter')
    assert.deepEqual(unknownNames(rules, queries, served), [])
  })
})
