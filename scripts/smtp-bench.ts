// The SMTP-level part of `npm run bench`: real Harakas (fcrdns and spf loaded in each) under the
// same load, side by side: one without smart-greylist; one whose only addition is a plugin that
// defers every recipient and does nothing else (what Haraka itself spends on a deferral: the floor
// for any greylisting plugin); one with smart-greylist; and one with smart-greylist serving its
// metrics, scraped every second. The decision's own CPU is smart-greylist's minus the floor's.
// PROXY sessions from fresh random public addresses and from a pool of 200, at 10 and 50
// concurrent sessions, saturated and paced, and fresh addresses with STARTTLS.
//
// Built to measure differences of a few per cent on a small shared machine:
// - the Harakas get one CPU of their own (taskset, when there are two or more), the load
//   generator, Redis and DNS the others, as on an MX whose Redis runs elsewhere: a saturated
//   Haraka's throughput is then one CPU divided by its CPU time per session;
// - every instance is warmed up first (JIT), then each cell is run in rounds, the instances
//   taking turns in a rotating order, so a drift of the machine falls on all of them alike; the
//   ratio reported is the median of the rounds' ratios, with their range;
// - Haraka's own CPU time per session (/proc) is reported next to the throughput.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import { DnsServer } from './harness/dns-server'
import { HarakaInstance } from './harness/haraka'
import { percentile, runLoad, type SessionPlan } from './harness/load'
import { connectRedis } from './harness/redis'
import { freePort, type PrivateRedis } from './harness/redis-server'

export interface SmtpCell {
  readonly perSecond: number
  readonly p50: number
  readonly p99: number
  /** Haraka's CPU time (user + system) per session, ms; NaN where /proc is not there. */
  readonly cpuMsPerSession: number
}

export interface SmtpRow {
  readonly workload: string
  readonly concurrency: number
  /** Sessions started per second at most; null: as fast as they finish (saturation). */
  readonly rate: number | null
  readonly without: SmtpCell
  readonly deferOnly: SmtpCell
  readonly with: SmtpCell
  /** smart-greylist with [metrics] on, scraped once a second. */
  readonly withMetrics: SmtpCell
  /** Median over the rounds of with / without sessions per second, and the rounds' range. */
  readonly throughputRatio: number
  readonly ratioRange: readonly [number, number]
  /** The same for the defer-only plugin: what a deferral costs Haraka itself. */
  readonly deferOnlyRatio: number
  readonly cpuOverheadMs: number
  /** The decision's own CPU per session: smart-greylist's minus the defer-only floor's. */
  readonly decisionCpuMs: number
  /** What serving the metrics adds per session: with them on and scraped, minus without. */
  readonly metricsCpuMs: number
  readonly p50OverheadMs: number
  readonly p99OverheadMs: number
  readonly redisRoundTripsPerDecision: number
  readonly redisCommandsPerDecision: number
  readonly redisBytesPerDecision: number
}

export interface SmtpSetup {
  /** CPUs the Harakas ran on, and those of the load generator, Redis and DNS; null: not pinned. */
  readonly pinned: { harakas: string; rest: string } | null
  readonly rounds: number
  readonly warmupSeconds: number
}

// Random addresses in 85.0.0.0/8 and 62.0.0.0/8 (never contacted: PROXY headers only).
function freshIp(n: number): string {
  const x = (n * 2654435761) >>> 0
  return `${n % 2 ? 85 : 62}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${1 + (x & 127)}`
}
const POOL = Array.from({ length: 200 }, (_, i) => freshIp(1_000_003 + i))
const fresh = (n: number): SessionPlan => ({ clientIp: freshIp(n), from: `s${n}@sender${n % 997}.example.com`, to: `u${n % 7}@example.com` })
const pool = (n: number): SessionPlan => ({ clientIp: POOL[n % 200], from: `s${n % 200}@sender${n % 200}.example.com`, to: `u${n % 7}@example.com` })

/**
 * Saturated at 10 and 50 sessions, and 50 paced at 100 per second (about a quarter of what this
 * machine's Haraka handles), where the overhead is the plugin's own latency. The plain sessions
 * are the cheapest an MX sees (no TLS, no message), so the plugin's share is the largest there;
 * the STARTTLS row is the shape most mail arrives in today.
 */
const WORKLOADS: { name: string; plan: (n: number) => SessionPlan; fresh: boolean; tls?: boolean; cells: [number, number | null][] }[] = [
  {
    name: 'fresh IPs',
    plan: fresh,
    fresh: true,
    cells: [
      [10, null],
      [50, null],
      [50, 100],
    ],
  },
  {
    name: 'pool of 200',
    plan: pool,
    fresh: false,
    cells: [
      [10, null],
      [50, null],
      [50, 100],
    ],
  },
  { name: 'fresh, TLS', plan: fresh, fresh: true, tls: true, cells: [[50, null]] },
]

/** Defers every recipient with the reply smart-greylist gives, and does nothing else. */
const DEFER_ONLY = `
const constants = require('haraka-constants')
exports.register = function () { this.register_hook('rcpt_ok', 'defer') }
exports.defer = function (next) { next(constants.denysoft, '4.7.1 Greylisted, please try again later') }
`

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

const CLOCK_TICKS = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  return Number(r.stdout?.trim()) || 100
})()

/** CPU time (user + system, ms) a process has used, from /proc; NaN where there is none. */
function cpuMs(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
  } catch {
    return NaN
  }
}

/** Gives the Harakas the last CPU and everything else the others (Linux with taskset only). */
function pin(harakas: readonly HarakaInstance[], rest: readonly number[]): SmtpSetup['pinned'] {
  const n = os.cpus().length
  if (process.platform !== 'linux' || n < 2 || spawnSync('taskset', ['-V']).status !== 0) return null
  const last = String(n - 1)
  const others = n === 2 ? '0' : `0-${n - 2}`
  for (const h of harakas) execFileSync('taskset', ['-a', '-p', '-c', last, String(h.pid)], { stdio: 'ignore' })
  for (const pid of rest) execFileSync('taskset', ['-a', '-p', '-c', others, String(pid)], { stdio: 'ignore' })
  return { harakas: last, rest: others }
}

interface Slice {
  sessions: number
  elapsedMs: number
  cpuMs: number
  rcptMs: number[]
}

/** Fetches the metrics once a second while `work` runs, as a Prometheus server would (more often). */
async function scraped<T>(port: number | undefined, work: Promise<T>): Promise<T> {
  if (!port) return work
  const timer = setInterval(() => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => res.resume()).on('error', () => undefined)
  }, 1000)
  try {
    return await work
  } finally {
    clearInterval(timer)
  }
}

async function slice(
  h: HarakaInstance,
  concurrency: number,
  ms: number,
  rate: number | null,
  plan: (n: number) => SessionPlan,
  tls: boolean,
  metricsPort?: number,
): Promise<Slice> {
  const before = cpuMs(h.pid)
  const r = await scraped(metricsPort, runLoad({ port: h.port, concurrency, durationMs: ms, plan, tls, ...(rate ? { rate } : {}) }))
  // Sessions still closing are counted in the CPU time too: a moment for them to finish.
  await new Promise((res) => setTimeout(res, 100))
  h.log.length = 0
  return { sessions: r.sessions, elapsedMs: r.elapsedMs, cpuMs: cpuMs(h.pid) - before, rcptMs: r.rcpt.map((s) => s.ms) }
}

function cell(slices: readonly Slice[]): SmtpCell {
  const sum = (f: (s: Slice) => number): number => slices.reduce((a, s) => a + f(s), 0)
  const ms = slices.flatMap((s) => s.rcptMs)
  return {
    perSecond: Math.round((sum((s) => s.sessions) * 1000) / sum((s) => s.elapsedMs)),
    p50: percentile(ms, 0.5),
    p99: percentile(ms, 0.99),
    cpuMsPerSession: Math.round((sum((s) => s.cpuMs) / sum((s) => s.sessions)) * 1000) / 1000,
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  // An even count has two middles: their mean, not the upper one (which would flatter).
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const round2 = (x: number): number => Math.round(x * 100) / 100

export async function smtpBenchmark(
  redis: PrivateRedis,
  seconds: number,
  opts: { rounds?: number; warmupSeconds?: number } = {},
): Promise<{ setup: SmtpSetup; rows: SmtpRow[] }> {
  const rounds = opts.rounds ?? 5
  const warmupSeconds = opts.warmupSeconds ?? 8
  const dns = await DnsServer.start()
  const common = { redisPort: redis.port, dnsPort: dns.port, pluginsBefore: ['fcrdns', 'spf'], ini: '[main]\ndelay=300\n', tls: true }
  const started: HarakaInstance[] = []
  try {
    const without = await HarakaInstance.start({ ...common, withoutPlugin: true })
    started.push(without)
    const deferOnly = await HarakaInstance.start({ ...common, withoutPlugin: true, localPlugins: { bench_defer_only: DEFER_ONLY } })
    started.push(deferOnly)
    const withPlugin = await HarakaInstance.start(common)
    started.push(withPlugin)
    await withPlugin.waitFor(/\[smart-greylist\] connected to redis/, 15_000)
    const metricsPort = await freePort()
    const withMetrics = await HarakaInstance.start({ ...common, ini: `${common.ini}[metrics]\nenabled=true\nlisten=127.0.0.1:${metricsPort}\n` })
    started.push(withMetrics)
    await withMetrics.waitFor(/\[smart-greylist\] connected to redis/, 15_000)
    const instances = [without, deferOnly, withPlugin, withMetrics]
    const n = instances.length
    const pinned = pin(instances, [process.pid, redis.process.pid ?? 0].filter(Boolean))
    let offset = 10_000_000
    for (const h of instances) {
      const base = (offset += 1_000_000)
      await runLoad({ port: h.port, concurrency: 50, durationMs: warmupSeconds * 1000, plan: (n) => fresh(base + n) })
      h.log.length = 0
    }
    const rows: SmtpRow[] = []
    for (const { name: workload, plan, cells, ...w } of WORKLOADS) {
      for (const [concurrency, rate] of cells) {
        const sliceMs = (seconds * 1000) / rounds
        const taken: Slice[][] = instances.map(() => [])
        let redisBefore = { scripts: 0, commands: 0, bytes: 0 }
        let redisDelta = { scripts: 0, commands: 0, bytes: 0, rcpts: 0 }
        for (let r = 0; r < rounds; r++) {
          for (let k = 0; k < n; k++) {
            const i = (r + k) % n
            // Fresh addresses never repeat across slices; the pool is the same 200 throughout.
            const base = w.fresh ? (offset += 1_000_000) : 0
            if (i === 2) redisBefore = await redisCounters(redis.port)
            const s = await slice(instances[i], concurrency, sliceMs, rate, (x) => plan(base + x), Boolean(w.tls), i === 3 ? metricsPort : undefined)
            taken[i].push(s)
            if (i === 2) {
              const after = await redisCounters(redis.port)
              redisDelta = {
                scripts: redisDelta.scripts + after.scripts - redisBefore.scripts,
                // INFO's own two commands taken away.
                commands: redisDelta.commands + after.commands - redisBefore.commands - 2,
                bytes: redisDelta.bytes + after.bytes - redisBefore.bytes,
                rcpts: redisDelta.rcpts + s.rcptMs.length,
              }
            }
          }
        }
        const [a, d, b, m] = taken.map(cell)
        // Each round's throughput against the baseline's in the same round.
        const toBaseline = (slices: readonly Slice[]): number[] =>
          slices.map((s, r) => s.sessions / s.elapsedMs / (taken[0][r].sessions / taken[0][r].elapsedMs))
        const ratios = toBaseline(taken[2])
        const deferRatios = toBaseline(taken[1])
        rows.push({
          workload,
          concurrency,
          rate,
          without: a,
          deferOnly: d,
          with: b,
          withMetrics: m,
          throughputRatio: round2(median(ratios)),
          ratioRange: [round2(Math.min(...ratios)), round2(Math.max(...ratios))],
          deferOnlyRatio: round2(median(deferRatios)),
          cpuOverheadMs: Math.round((b.cpuMsPerSession - a.cpuMsPerSession) * 1000) / 1000,
          decisionCpuMs: Math.round((b.cpuMsPerSession - d.cpuMsPerSession) * 1000) / 1000,
          metricsCpuMs: Math.round((m.cpuMsPerSession - b.cpuMsPerSession) * 1000) / 1000,
          p50OverheadMs: round2(b.p50 - a.p50),
          p99OverheadMs: round2(b.p99 - a.p99),
          redisRoundTripsPerDecision: round2(redisDelta.scripts / redisDelta.rcpts),
          redisCommandsPerDecision: Math.round((redisDelta.commands / redisDelta.rcpts) * 10) / 10,
          redisBytesPerDecision: Math.round(redisDelta.bytes / redisDelta.rcpts),
        })
      }
    }
    return { setup: { pinned, rounds, warmupSeconds }, rows }
  } finally {
    for (const h of started) await h.stop()
    await dns.close()
  }
}
