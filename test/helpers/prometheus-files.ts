// The Prometheus rules and the Grafana dashboard the package ships (docs/prometheus), read the
// way the tests need them: every PromQL expression with where it comes from, the metric names it
// uses, and the dashboard's queries made concrete (its variables filled in) for a real Prometheus.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { parse } from 'yaml'

export const PROMETHEUS_DIR = path.resolve(__dirname, '../../docs/prometheus')
export const RULES_FILE = path.join(PROMETHEUS_DIR, 'smart-greylist.rules.yml')
export const DASHBOARD_FILE = path.join(PROMETHEUS_DIR, 'smart-greylist.dashboard.json')
export const RULE_TESTS_FILE = path.resolve(__dirname, '../prometheus/smart-greylist.test.yml')
/** The scrape job the rules assume (SmartGreylistMetricsDown names it) and the tests use. */
export const JOB = 'smart-greylist'

export interface RecordingRule {
  readonly record: string
  readonly expr: string
}
export interface AlertingRule {
  readonly alert: string
  readonly expr: string
  readonly for?: string
  readonly labels?: Readonly<Record<string, string>>
  readonly annotations?: Readonly<Record<string, string>>
}
export interface Rules {
  readonly records: RecordingRule[]
  readonly alerts: AlertingRule[]
}

export function parseRules(text: string): Rules {
  const doc = parse(text) as { groups: { name: string; rules: (Partial<RecordingRule> & Partial<AlertingRule>)[] }[] }
  const records: RecordingRule[] = []
  const alerts: AlertingRule[] = []
  for (const g of doc.groups)
    for (const r of g.rules) {
      if (typeof r.expr !== 'string') throw new Error(`${g.name}: a rule without an expression`)
      if (r.record) records.push({ record: r.record, expr: r.expr })
      else if (r.alert) alerts.push(r as AlertingRule)
      else throw new Error(`${g.name}: a rule neither recorded nor alerting`)
    }
  return { records, alerts }
}

export function loadRules(): Rules {
  return parseRules(readFileSync(RULES_FILE, 'utf8'))
}

interface Target {
  readonly expr?: string
}
interface Panel {
  readonly id: number
  readonly type: string
  readonly title: string
  readonly datasource?: { readonly type?: string; readonly uid?: string }
  readonly targets?: (Target & { readonly datasource?: { readonly uid?: string } })[]
  readonly panels?: Panel[]
}
export interface Dashboard {
  readonly title: string
  readonly uid: string
  readonly panels: Panel[]
  readonly templating: { readonly list: { readonly name: string; readonly type: string; readonly query: unknown; readonly datasource?: { uid?: string } }[] }
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard
}

/** Every panel of the dashboard, those inside collapsed rows too, in order. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])])
}

/**
 * Every query of the dashboard as PromQL, with its panel: the panels' targets, and the template
 * variables' `label_values(metric, label)`, which Grafana asks as a series query and is here
 * the same question in PromQL.
 */
export function dashboardQueries(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = []
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string }).query
    const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(q ?? '')
    if (!m) throw new Error(`variable ${v.name}: not label_values(metric, label): ${q}`)
    out.push({ where: `variable $${v.name}`, expr: `group by (${m[2]}) (${m[1]})` })
  }
  for (const p of allPanels(d)) for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr })
  return out
}

/** A dashboard query as Grafana would send it for job `job`, with a rate window of `rate`. */
export function concrete(expr: string, job = JOB, rate = '1m'): string {
  return expr.replaceAll('$job', job).replaceAll('$__rate_interval', rate)
}

/**
 * The metric names an expression uses: the plugin's (`smart_greylist_…`), recorded ones
 * (`level:metric:operations`, with colons) and Prometheus's own `up`. Label values (quoted) are
 * left out, so `{job="smart-greylist"}` names nothing.
 */
export function metricNames(expr: string): string[] {
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')
  const names = bare.match(/\b(?:[a-z_]+:[a-z0-9_:]+|smart_greylist_[a-z0-9_]+|up(?=\s*\{))/g) ?? []
  return [...new Set(names)]
}

/**
 * The exposition's metric names: each sample's name, and each family its TYPE line declares
 * (a histogram's as _bucket, _sum, _count), samples or not.
 */
export function exposedNames(exposition: string): Set<string> {
  const names = new Set<string>()
  for (const line of exposition.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type?.[1]) {
      const base = type[1]
      for (const n of type[2] === 'histogram' ? [`${base}_bucket`, `${base}_sum`, `${base}_count`] : [base]) names.add(n)
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)/.exec(line)
    if (m?.[1]) names.add(m[1])
  }
  return names
}

/**
 * The names used by the rules and the dashboard that are none of: served by the plugin,
 * recorded by the rules, Prometheus's `up`; with where each is used.
 */
export function unknownNames(rules: Rules, queries: readonly { where: string; expr: string }[], served: ReadonlySet<string>): string[] {
  const recorded = new Set(rules.records.map((r) => r.record))
  const uses = [
    ...rules.records.map((r) => ({ where: `record ${r.record}`, expr: r.expr })),
    ...rules.alerts.map((a) => ({ where: `alert ${a.alert}`, expr: a.expr })),
    ...queries,
  ]
  const out: string[] = []
  for (const u of uses) for (const n of metricNames(u.expr)) if (n !== 'up' && !served.has(n) && !recorded.has(n)) out.push(`${n} (${u.where})`)
  return out
}

/**
 * An alert's expression with every comparison made a `bool` one: it answers for every series the
 * condition looks at (0 or 1) rather than only those past the threshold, so a real Prometheus
 * shows whether the expression finds its series even while the alert is quiet. Comparisons are
 * written with spaces around them, label matchers without.
 */
export function asBool(expr: string): string {
  return expr.replace(/ (==|!=|>=|<=|>|<) /g, ' $1 bool ')
}
