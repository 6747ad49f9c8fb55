// `smart-greylist stats`: the plugin's daily counters, the delay greylisting added, and the
// identities it delayed most.
import { dayOf, delayChart, delayPercentile, mergeDays, parseDay, type DayStats } from '../../plugins/smart-greylist/core/stats'
import { safeField } from '../../plugins/smart-greylist/core/text'
import { defineCommand, EXIT, UsageError, jsonText } from '../command'
import { providerData } from '../provider-data'

export const stats = defineCommand({
  name: 'stats',
  summary: 'daily counters: deferred, accepted after a delay, whitelisted, fail-open; delay added',
  usage: '[--days N] [--chart] [--config DIR] [--json]',
  description: [
    'Days are UTC. Delays are those of mail accepted after greylisting (first retry of a tuple, or of',
    'a message); the median, p90 and p99 are read from a histogram and given as the upper bound of',
    'their bucket, also per identity kind. --chart draws the histogram.',
  ],
  options: { days: { type: 'string', default: '7' }, chart: { type: 'boolean', default: false } },
  optionHelp: { days: 'how many days back, today included (default 7)', chart: 'a bar chart of the delays real mail paid' },
  async run({ values, io, ctx }) {
    const days = Number(values.days)
    if (!Number.isInteger(days) || days < 1 || days > 400) throw new UsageError('--days takes a whole number from 1 to 400')
    return ctx.withSession({ requireRedis: true }, async ({ deps, admin, refresh }) => {
      const prefix = deps.config.redis.prefix
      const now = deps.now()
      const rows: DayStats[] = []
      const identities = new Map<string, number>()
      for (let i = 0; i < days; i++) {
        const t = now - i * 86_400_000
        const day = await admin.day(prefix, t, 100)
        rows.push(parseDay(dayOf(t), day.counters))
        for (const { value, score } of day.identities) {
          identities.set(value, (identities.get(value) ?? 0) + score)
        }
      }
      const total = mergeDays(rows)
      const delay = {
        ...percentiles(total.delay.buckets, total.delay.maxSeconds),
        max: total.delay.count ? total.delay.maxSeconds : null,
        mean: total.delay.count ? Math.round(total.delay.sumSeconds / total.delay.count) : null,
        // Per kind, the maximum is known to its bucket only: the overall maximum caps it.
        byKind: Object.fromEntries(
          Object.entries(total.delayByKind).map(([kind, b]) => [
            kind,
            { count: Object.values(b).reduce((x, y) => x + y, 0), ...percentiles(b, total.delay.maxSeconds) },
          ]),
        ),
      }
      const top = [...identities]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10)
        .map(([identity, deferred]) => ({ identity, deferred }))
      if (values.json) {
        io.out(jsonText({ days: rows, total, delaySeconds: delay, topDelayedIdentities: top, providerData: providerData(refresh, now).json }, 2))
        return EXIT.ok
      }
      io.out('day          deferred  accepted-after-delay  known  whitelisted  auto-wl  shadow  fail-open')
      for (const r of [...rows, total]) {
        const wl = Object.values(r.whitelisted).reduce((a, b) => a + b, 0)
        io.out(
          `${r.day.padEnd(12)} ${String(r.deferred).padStart(8)}  ${String(r.acceptedAfterDelay).padStart(20)}  ${String(r.known).padStart(5)}  ${String(wl).padStart(11)}  ${String(r.autoWhitelisted).padStart(7)}  ${String(r.shadow).padStart(6)}  ${String(r.failOpen).padStart(9)}`,
        )
      }
      const by = (o: Record<string, number>): string =>
        Object.entries(o)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') || 'none'
      io.out(`deferred by state: ${by(total.deferredBy)}`)
      if (Object.keys(total.postponed).length || Object.keys(total.messagesDeferredBy).length) {
        io.out(
          `net_identity_greylist = message: recipients postponed ${by(total.postponed)}; messages deferred at the end of data ${by(total.messagesDeferredBy)}`,
        )
      }
      io.out(`whitelisted by kind: ${by(total.whitelisted)}`)
      io.out(`skipped: ${by(total.skipped)}`)
      const firstContacts = (o: Record<string, number>): number => (o.new ?? 0) + (o.expired ?? 0)
      const saved = firstContacts(total.trusted)
      const would = firstContacts(total.wouldTrust)
      if (saved) io.out(`select suspicious: ${saved} first contacts accepted on evidence (all would have deferred them)`)
      if (would) io.out(`select all: suspicious would have accepted ${would} of ${firstContacts(total.deferredBy)} first contacts deferred`)
      io.out(
        delay.max === null
          ? 'delay added: no mail was accepted after a delay'
          : `delay added: median <= ${delay.median} s, p90 <= ${delay.p90} s, p99 <= ${delay.p99} s, max ${delay.max} s, mean ${delay.mean} s (${total.delay.count} messages)`,
      )
      for (const [kind, k] of Object.entries(delay.byKind))
        io.out(`  ${`${kind}:`.padEnd(6)} median <= ${k.median} s, p90 <= ${k.p90} s, p99 <= ${k.p99} s (${k.count})`)
      if (values.chart) for (const line of delayChart(total.delay.buckets)) io.out(line)
      io.out('identities delayed most:')
      // An identity's value may be a domain a sender chose.
      for (const t of top) io.out(`  ${String(t.deferred).padStart(6)}  ${safeField(t.identity)}`)
      for (const l of providerData(refresh, now).lines) io.out(l)
      return EXIT.ok
    })
  },
})

function percentiles(buckets: Record<string, number>, maxSeconds: number): { median: number | null; p90: number | null; p99: number | null } {
  return { median: delayPercentile(buckets, 0.5, maxSeconds), p90: delayPercentile(buckets, 0.9, maxSeconds), p99: delayPercentile(buckets, 0.99, maxSeconds) }
}
