// `npm run bench`: decision latency of the rcpt_ok hook against a private redis-server on
// loopback, Redis memory per pending tuple, and whitelist lookup cost against list size.
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { parseIp } from '../plugins/smart-greylist/ip'
import { tupleKey } from '../plugins/smart-greylist/keys'
import { TupleStore } from '../plugins/smart-greylist/store'
import { compileWhitelist, parseWhitelist } from '../plugins/smart-greylist/whitelist'
import { timingFrom } from '../plugins/smart-greylist/decision'
import { DEFAULTS } from '../plugins/smart-greylist/config'
import { callRcptOk, configDir, connection, makePlugin } from '../test/helpers/fixtures'
import { connectRedis } from '../test/helpers/redis'
import { startPrivateRedis } from './redis-server'

const { values: args } = parseArgs({
  options: {
    decisions: { type: 'string', default: '20000' },
    tuples: { type: 'string', default: '100000' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log('usage: npm run bench -- [--decisions N] [--tuples N] [--json]')
  process.exit(0)
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

async function decisionLatency(port: number, n: number): Promise<Record<string, number>> {
  const db = await connectRedis(port)
  await db.flushDb()
  const plugin = makePlugin(configDir({ 'smart-greylist.ini': '[main]\ndelay=300\n', 'smart-greylist.whitelist': '' }), db)
  const fcrdns = (ip: string): Record<string, unknown> => {
    const name = `mail-eopbgr${ip.replace(/\./g, '')}.outbound.protection.outlook.com`
    return { ptr_names: [name], ptr_name_to_ip: { [name]: [ip] } }
  }
  const samples: number[] = []
  const warmup = 500
  for (let i = 0; i < n + warmup; i++) {
    // Half new tuples (deferred, one write), half repeats of an earlier tuple (early, read only).
    const k = i % 2 === 0 ? i : i - 1
    const ip = `52.100.${(k >> 8) & 255}.${k & 255}`
    const conn = connection({ ip, from: `sender${k}@example.org` })
    conn.results.add({ name: 'fcrdns' }, fcrdns(ip))
    const t0 = performance.now()
    await callRcptOk(plugin, conn, `rcpt${k}@example.com`)
    const dt = performance.now() - t0
    if (i >= warmup) samples.push(dt)
  }
  await db.quit()
  samples.sort((a, b) => a - b)
  const total = samples.reduce((a, b) => a + b, 0)
  return {
    decisions: n,
    median_ms: percentile(samples, 50),
    p90_ms: percentile(samples, 90),
    p99_ms: percentile(samples, 99),
    max_ms: samples[samples.length - 1],
    per_second_sequential: Math.round(n / (total / 1000)),
  }
}

async function memoryPerTuple(port: number, n: number): Promise<Record<string, number>> {
  const db = await connectRedis(port)
  await db.flushDb()
  const store = new TupleStore(() => db, () => 5000)
  const timing = timingFrom(DEFAULTS)
  const used = async (): Promise<number> => Number(/used_memory:(\d+)/.exec(await db.info('memory'))![1])
  const before = await used()
  const now = Date.now()
  const batch = 500
  for (let i = 0; i < n; i += batch) {
    const work: Promise<unknown>[] = []
    for (let j = i; j < Math.min(n, i + batch); j++) {
      work.push(store.check(tupleKey('sgl:', `host:pool${j % 97}.example.net`, `s${j}@example.org`, `r${j}@example.com`), now, timing))
    }
    await Promise.all(work)
  }
  const after = await used()
  const sample = tupleKey('sgl:', 'host:pool0.example.net', 's0@example.org', 'r0@example.com')
  const pendingKey = (await db.memoryUsage(sample)) ?? 0
  await store.check(sample, now + timing.delayMs, timing)
  const passedKey = (await db.memoryUsage(sample)) ?? 0
  const keys = await db.dbSize()
  await db.quit()
  return { tuples: n, keys, bytes_per_pending_tuple: Math.round((after - before) / n), memory_usage_pending_key: pendingKey, memory_usage_passed_key: passedKey }
}

function whitelistScaling(): Record<string, number>[] {
  const rows: Record<string, number>[] = []
  for (const size of [10, 1_000, 100_000]) {
    const lines: string[] = []
    for (let i = 0; i < size / 2; i++) lines.push(`host:*.pool${i}.example.net`)
    for (let i = 0; i < size / 2; i++) lines.push(`ip:${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`)
    const wl = compileWhitelist([parseWhitelist(lines, 'bench')])
    const names = Array.from({ length: 1000 }, (_, i) => [`mail-${i}.pool${(i * 7919) % (size / 2)}.example.net`])
    const misses = Array.from({ length: 1000 }, (_, i) => [`mail-${i}.other${i}.example.org`])
    const ips = Array.from({ length: 1000 }, (_, i) => parseIp(`${100 + (i % 100)}.${i & 255}.1.1`))
    const lookups = 300_000
    const t0 = performance.now()
    let hits = 0
    for (let i = 0; i < lookups; i++) {
      const m = i % 3
      const q = m === 0 ? { fcrdnsNames: names[i % 1000] } : m === 1 ? { fcrdnsNames: misses[i % 1000] } : { ip: ips[i % 1000] }
      if (wl.matchSender(q)) hits++
    }
    const dt = performance.now() - t0
    rows.push({ entries: size, lookups, hits, ns_per_lookup: Math.round((dt * 1e6) / lookups) })
  }
  return rows
}

async function main(): Promise<void> {
  const redis = await startPrivateRedis()
  try {
    const latency = await decisionLatency(redis.port, Number(args.decisions))
    const memory = await memoryPerTuple(redis.port, Number(args.tuples))
    const whitelist = whitelistScaling()
    const result = { node: process.version, latency, memory, whitelist }
    if (args.json) {
      console.log(JSON.stringify(result, null, 2))
      return
    }
    const f = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(3))
    console.log(`rcpt_ok decision latency, Redis on loopback (${latency.decisions} decisions, half new, half early retries)`)
    for (const [k, v] of Object.entries(latency)) if (k !== 'decisions') console.log(`  ${k.padEnd(24)} ${f(v)}`)
    console.log(`Redis memory for ${memory.tuples} pending tuples`)
    for (const [k, v] of Object.entries(memory)) if (k !== 'tuples') console.log(`  ${k.padEnd(24)} ${f(v)}`)
    console.log('whitelist lookup cost by list size (host: suffixes + ip: ranges; hits, misses, addresses)')
    for (const r of whitelist) console.log(`  ${String(r.entries).padStart(7)} entries  ${r.ns_per_lookup} ns/lookup  (${r.hits}/${r.lookups} hits)`)
  } finally {
    await redis.stop()
  }
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message)
  process.exit(2)
})
