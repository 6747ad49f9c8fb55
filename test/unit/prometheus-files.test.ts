// The shipped Prometheus rules and Grafana dashboard against what the plugin serves: a metric
// renamed in core/metrics.ts without them fails here. (promtool checks them in
// test/integration/prometheus-rules.test.ts; a real Prometheus runs them in test/e2e/prometheus.test.ts.)
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { parse } from 'yaml'
import { Histogram, renderMetrics } from '../../plugins/smart-greylist/core/metrics'
import { parseDay } from '../../plugins/smart-greylist/core/stats'
import {
  allPanels,
  asBool,
  DASHBOARD_FILE,
  dashboardQueries,
  exposedNames,
  loadDashboard,
  loadRules,
  metricNames,
  parseRules,
  RULE_TESTS_FILE,
  RULES_FILE,
  unknownNames,
} from '../helpers/prometheus-files'

const NOW = Date.UTC(2030, 0, 15, 12)

/** Every name the plugin can serve: a scrape with every part present (site, stuck count, refresh, each process series). */
function servedNames(): Set<string> {
  const h = new Histogram()
  h.observe(0.002)
  const text = renderMetrics(
    { today: parseDay('today', { 'defer:new': '1', 'fail_open:redis_timeout': '1' }), stuckPairs: 0, stuckCountedAt: NOW, refreshFailed: false },
    {
      host: 'mx1',
      pid: 1,
      redisUp: true,
      redisInFlight: 0,
      redisSeconds: h.snapshot(),
      dnsSeconds: { rdns: h.snapshot() },
      failOpen: { redis_timeout: 1 },
      providerAgeSeconds: { microsoft: 60 },
    },
    NOW,
  )
  return exposedNames(text)
}

describe('the shipped Prometheus rules and Grafana dashboard', () => {
  const rules = loadRules()
  const dashboard = loadDashboard()
  const queries = dashboardQueries(dashboard)

  it('use only metric names the plugin serves, names the rules record, and Prometheus\'s "up"', () => {
    const served = servedNames()
    assert.ok(served.has('smart_greylist_delay_seconds_bucket') && served.has('smart_greylist_provider_refresh_failed'), [...served].join(' '))
    assert.deepEqual(unknownNames(rules, queries, served), [])
    // Every expression names at least one metric: one with none would escape this check.
    for (const e of [...rules.records, ...rules.alerts, ...queries]) assert.ok(metricNames(e.expr).length > 0, `no metric name found in ${e.expr}`)
  })

  it('would catch a metric renamed in the plugin, in the rules or in the dashboard', () => {
    const served = servedNames()
    served.delete('smart_greylist_stuck_pairs')
    assert.deepEqual(unknownNames(rules, queries, served), [
      'smart_greylist_stuck_pairs (alert SmartGreylistSendersStuck)',
      'smart_greylist_stuck_pairs (panel "Stuck sender/recipient pairs")',
    ])
    const renamed = parseRules(readFileSync(RULES_FILE, 'utf8').replace('smart_greylist_site_up)', 'smart_greylist_site_upp)'))
    assert.deepEqual(unknownNames(renamed, [], servedNames()), ['smart_greylist_site_upp (alert SmartGreylistRedisDownForSite)'])
    const recordGone = parseRules(
      readFileSync(RULES_FILE, 'utf8').replace('record: job:smart_greylist_decisions:rate5m', 'record: job:smart_greylist_decisions:rate1m'),
    )
    assert.ok(unknownNames(recordGone, queries, servedNames()).includes('job:smart_greylist_decisions:rate5m (panel "Decisions by action")'))
  })

  it('reads names out of PromQL: not label values, not functions or label names', () => {
    assert.deepEqual(metricNames('sum by (job, le) (rate(smart_greylist_delay_seconds_bucket{job="smart_greylist_x", le="+Inf"}[5m]))'), [
      'smart_greylist_delay_seconds_bucket',
    ])
    assert.deepEqual(metricNames('job:smart_greylist_decisions:rate5m{job="$job"} and up{job="a:b"}'), ['job:smart_greylist_decisions:rate5m', 'up'])
    assert.equal(asBool('max(x) > 3 * 86400 and on (job) y{a!="b"} >= 10'), 'max(x) > bool 3 * 86400 and on (job) y{a!="b"} >= bool 10')
  })

  it('every alert has a severity, a summary and a description that names a smart-greylist command or what to check', () => {
    assert.equal(rules.alerts.length, 8)
    for (const a of rules.alerts) {
      assert.match(a.labels?.severity ?? '', /^(critical|warning)$/, a.alert)
      assert.ok((a.annotations?.summary ?? '').length > 10, `${a.alert}: summary`)
      assert.match(a.annotations?.description ?? '', /`smart-greylist [a-z]+/, `${a.alert}: a command to run`)
    }
  })

  it('every alert has promtool unit tests where it fires and where it stays quiet', () => {
    const doc = parse(readFileSync(RULE_TESTS_FILE, 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[] }
    const cases = doc.tests.flatMap((t) => t.alert_rule_test ?? [])
    for (const a of rules.alerts) {
      const mine = cases.filter((c) => c.alertname === a.alert)
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${a.alert}: no test where it fires`,
      )
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${a.alert}: no test where it stays quiet`,
      )
    }
  })

  it('ship in the npm package (package.json "files")', () => {
    const root = path.resolve(__dirname, '../..')
    const files = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { files: string[] }).files
    for (const f of [RULES_FILE, DASHBOARD_FILE]) {
      const rel = path.relative(root, f)
      assert.ok(
        files.some((entry) => rel === entry || rel.startsWith(entry.endsWith('/') ? entry : `${entry}/`)),
        `${rel} is not in package.json "files"`,
      )
    }
  })

  it('the dashboard takes its datasource from a variable, and has one row per concern', () => {
    const vars = dashboard.templating.list
    assert.equal(vars.find((v) => v.name === 'datasource')?.type, 'datasource')
    const panels = allPanels(dashboard)
    assert.deepEqual(
      panels.filter((p) => p.type === 'row').map((p) => p.title),
      ['Decisions', 'Identities', 'Delay paid', 'Fail-open', 'Redis', 'DNS', 'Stuck senders', 'Provider data', 'Scrapes'],
    )
    for (const p of panels.filter((x) => x.type !== 'row')) {
      assert.equal(p.datasource?.uid, '${datasource}', `panel "${p.title}"`)
      assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has no query`)
      for (const t of p.targets ?? []) {
        assert.equal(t.datasource?.uid, '${datasource}', `panel "${p.title}"`)
        assert.match(t.expr ?? '', /\{[^}]*job="\$job"/, `panel "${p.title}" selects the job`)
      }
    }
    assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique')
    assert.ok(panels.some((p) => p.type === 'heatmap'))
  })
})
