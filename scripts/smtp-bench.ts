// The SMTP-level part of `npm run bench`: a real Haraka (fcrdns and spf loaded) with and without
// smart-greylist, the same load against both, side by side: PROXY sessions from fresh random
// public addresses and from a pool of 200, at 10 and 50 concurrent sessions. Reported: sessions
// per second and RCPT p50/p99 for each, the overhead, and Redis round trips, commands (those inside
// the decision's script included) and bytes per decision.
import { DnsServer } from '../test/helpers/dns-server'
import { HarakaInstance } from '../test/helpers/haraka'
import { percentile, runLoad, type SessionPlan } from '../test/helpers/load'
import { connectRedis } from '../test/helpers/redis'
import type { PrivateRedis } from './redis-server'

export interface SmtpRow {
  readonly workload: string
  readonly concurrency: number
  /** Sessions started per second at most; null: as fast as they finish (saturation). */
  readonly rate: number | null
  readonly without: { perSecond: number; p50: number; p99: number }
  readonly with: { perSecond: number; p50: number; p99: number }
  readonly throughputRatio: number
  readonly p50OverheadMs: number
  readonly p99OverheadMs: number
  readonly redisRoundTripsPerDecision: number
  readonly redisCommandsPerDecision: number
  readonly redisBytesPerDecision: number
}

// Random addresses in 85.0.0.0/8 and 62.0.0.0/8 (never contacted: PROXY headers only).
function freshIp(n: number): string {
  const x = (n * 2654435761) >>> 0
  return `${n % 2 ? 85 : 62}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${1 + (x & 127)}`
}
const POOL = Array.from({ length: 200 }, (_, i) => freshIp(1_000_003 + i))
const WORKLOADS: Record<string, (n: number) => SessionPlan> = {
  'fresh IPs': (n) => ({ clientIp: freshIp(n), from: `s${n}@sender${n % 997}.example.com`, to: `u${n % 7}@example.com` }),
  'pool of 200': (n) => ({ clientIp: POOL[n % 200], from: `s${n % 200}@sender${n % 200}.example.com`, to: `u${n % 7}@example.com` }),
}

async function redisCounters(port: number): Promise<{ scripts: number; commands: number; bytes: number }> {
  const db = await connectRedis(port)
  const stats = `${await db.info('stats')}\n${await db.info('commandstats')}`
  await db.quit()
  const n = (k: string): number => Number(new RegExp(`${k}:(?:calls=)?(\\d+)`).exec(stats)?.[1] ?? 0)
  return {
    // A decision is one EVALSHA (EVAL after a script flush): its round trip.
    scripts: n('cmdstat_evalsha') + n('cmdstat_eval'),
    // Every command Redis ran, those inside the script included (INFO's own taken away by the caller).
    commands: n('total_commands_processed'),
    bytes: n('total_net_input_bytes') + n('total_net_output_bytes'),
  }
}

export async function smtpBenchmark(redis: PrivateRedis, seconds: number): Promise<SmtpRow[]> {
  const dns = await DnsServer.start()
  const common = { redisPort: redis.port, dnsPort: dns.port, pluginsBefore: ['fcrdns', 'spf'], ini: '[main]\ndelay=300\n' }
  const without = await HarakaInstance.start({ ...common, withoutPlugin: true })
  const withPlugin = await HarakaInstance.start(common)
  await withPlugin.waitFor(/\[smart-greylist\] connected to redis/, 15_000)
  const rows: SmtpRow[] = []
  try {
    for (const [workload, plan] of Object.entries(WORKLOADS)) {
      // Saturated at 10 and 50 sessions, and 50 sessions paced at 100 per second (about a quarter
      // of what this machine's Haraka handles), where the overhead is the plugin's own latency.
      for (const [concurrency, rate] of [[10, null], [50, null], [50, 100]] as const) {
        const run = async (h: HarakaInstance) => {
          const r = await runLoad({ port: h.port, concurrency, durationMs: seconds * 1000, plan, ...(rate ? { rate } : {}) })
          const ms = r.rcpt.map((s) => s.ms)
          return { perSecond: Math.round((r.sessions * 1000) / r.elapsedMs), p50: percentile(ms, 0.5), p99: percentile(ms, 0.99), rcpts: r.rcpt.length }
        }
        const a = await run(without)
        const before = await redisCounters(redis.port)
        const b = await run(withPlugin)
        const after = await redisCounters(redis.port)
        rows.push({
          workload,
          concurrency,
          rate,
          without: { perSecond: a.perSecond, p50: a.p50, p99: a.p99 },
          with: { perSecond: b.perSecond, p50: b.p50, p99: b.p99 },
          throughputRatio: Math.round((b.perSecond / a.perSecond) * 100) / 100,
          p50OverheadMs: Math.round((b.p50 - a.p50) * 100) / 100,
          p99OverheadMs: Math.round((b.p99 - a.p99) * 100) / 100,
          redisRoundTripsPerDecision: Math.round(((after.scripts - before.scripts) / b.rcpts) * 100) / 100,
          redisCommandsPerDecision: Math.round(((after.commands - before.commands - 2) / b.rcpts) * 10) / 10,
          redisBytesPerDecision: Math.round((after.bytes - before.bytes) / b.rcpts),
        })
      }
    }
  } finally {
    await without.stop()
    await withPlugin.stop()
    await dns.close()
  }
  return rows
}
