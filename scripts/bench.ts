// `npm run bench`: decision latency of the rcpt_ok hook against a private redis-server on
// loopback, Redis memory per pending tuple, whitelist lookup cost against list size, and the
// heap of the SPF guard's in-memory verdicts.
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { parseIp } from '../plugins/smart-greylist/core/ip'
import { identityKeys } from '../plugins/smart-greylist/core/keys'
import { DecisionStore } from '../plugins/smart-greylist/adapters/redis-decision'
import { AdminStore } from '../plugins/smart-greylist/adapters/redis-admin'
import { StuckFinder } from '../plugins/smart-greylist/core/stuck'
import { compileWhitelist, parseWhitelist } from '../plugins/smart-greylist/core/whitelist'
import { timingFrom } from '../plugins/smart-greylist/core/decision'
import { DEFAULTS } from '../plugins/smart-greylist/core/settings'
import { callRcptOk, configDir, connection, makePlugin, type FixturePlugin } from './harness/fixtures'
import { connectRedis } from './harness/redis'
import { startPrivateRedis } from './harness/redis-server'
import { DnsServer, useDnsServer } from './harness/dns-server'
import { parseProviders, ProviderIndex } from '../plugins/smart-greylist/core/providers'
import { smtpBenchmark } from './smtp-bench'
import { shardCapacity } from './capacity'
import { percentile } from './harness/load'
import { bodyDigest } from '../plugins/smart-greylist/adapters/message'
import { OUTLOOK_SPF } from './harness/senders'
import { gcNote, spfGuardMemory } from './spf-guard-memory'

// Haraka's own message store, as a transaction holds the message.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const MessageStream = require('haraka-message-stream') as new (
  cfg: object,
  id: string,
  headers: string[],
) => { add_line(line: string): void; add_line_end(cb: () => void): void; pipe(dest: NodeJS.WritableStream, opts?: object): unknown }

const { values: args } = parseArgs({
  options: {
    decisions: { type: 'string', default: '20000' },
    tuples: { type: 'string', default: '100000' },
    'capacity-decisions': { type: 'string', default: '100000' },
    'guard-domains': { type: 'string', default: '1000000' },
    'smtp-seconds': { type: 'string', default: '15' },
    'smtp-rounds': { type: 'string', default: '5' },
    'smtp-only': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log(
    'usage: npm run bench -- [--decisions N] [--tuples N] [--capacity-decisions N] [--guard-domains N (0 = skip)] [--smtp-seconds N per cell (0 = skip)] [--smtp-rounds N] [--smtp-only] [--json]',
  )
  process.exit(0)
}

/**
 * The rcpt_ok hook, end to end in-process. `plugins`: rDNS and SPF facts come from the fcrdns and
 * spf plugins' results (as when they run first). `own`: the plugin does its own PTR, A and SPF
 * lookups per connection against a DNS server on loopback.
 */
async function decisionLatency(port: number, dns: DnsServer, n: number, mode: 'plugins' | 'own' | 'own-named'): Promise<Record<string, number>> {
  const db = await connectRedis(port)
  await db.flushDb()
  const plugin = makePlugin(configDir({ 'smart-greylist.ini': '[main]\ndelay=300\n[whitelist]\nproviders=false\n', 'smart-greylist.whitelist': '' }), db)
  const samples: number[] = []
  const warmup = 500
  const queriesBefore = dns.queries.length
  for (let i = 0; i < n + warmup; i++) {
    // Half new tuples (deferred, one write), half repeats of an earlier tuple (early, read only).
    const k = i % 2 === 0 ? i : i - 1
    const ip = `52.100.${(k >> 8) & 255}.${k & 255}`
    // Exchange Online's names spell the address: their domain is asked to vouch (outlook.com's
    // SPF). `own-named`: names chosen per machine, which group without asking.
    const name =
      mode === 'own-named'
        ? `mta-${letters(k)}.relay.esp-mailer.com`
        : `mail-eopbgr${(k >> 8) & 255}0${String(k & 255).padStart(3, '0')}.outbound.protection.outlook.com`
    const domain = `sender${k % 50}.example`
    if (mode !== 'plugins' && i % 2 === 0) dns.add({ ptr: { [ip]: [name] }, a: { [name]: [ip] } })
    const conn = connection({ ip, from: `user${k}@${domain}` })
    if (mode === 'plugins') {
      conn.results.add({ name: 'fcrdns' }, { ptr_names: [name], ptr_name_to_ip: { [name]: [ip] } })
      conn.transaction!.results.add({ name: 'spf' }, { scope: 'mfrom', result: 'Pass', domain })
    }
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
    median_ms: percentile(samples, 0.5),
    p90_ms: percentile(samples, 0.9),
    p99_ms: percentile(samples, 0.99),
    max_ms: samples[samples.length - 1],
    per_second_sequential: Math.round(n / (total / 1000)),
    // Each decision comes on a connection of its own.
    dns_queries_per_connection: Math.round(((dns.queries.length - queriesBefore) / (n + warmup)) * 100) / 100,
  }
}

/** `k` in letters (a name that spells no address and numbers no machine: a name somebody chose). */
function letters(k: number): string {
  let s = ''
  do {
    s = String.fromCharCode(97 + (k % 26)) + s
    k = Math.floor(k / 26)
  } while (k > 0)
  return s
}

/**
 * CPU time of this process per decision through the real rcpt_ok hook, 50 in flight, facts from
 * the fcrdns and spf plugins' results, Redis on loopback (its own CPU not counted): the plugin's
 * code and the Redis client's, without Haraka's session around it and with its log suppressed.
 * With [metrics] off and on, in alternating rounds (a drift of the machine falls on both), the
 * median of each.
 */
async function decisionCpu(port: number, n: number, rounds = 6): Promise<{ off_us: number; on_us: number }> {
  const db = await connectRedis(port)
  await db.flushDb()
  const plugins = [false, true].map((on) =>
    makePlugin(
      configDir({
        'smart-greylist.ini': `[main]\ndelay=300\n[whitelist]\nproviders=false\n${on ? '[metrics]\nenabled=true\n' : ''}`,
        'smart-greylist.whitelist': '',
      }),
      db,
    ),
  )
  const make = (i: number): ReturnType<typeof connection> => {
    const ip = `52.100.${(i >> 8) & 255}.${i & 255}`
    const name = `mail-eopbgr${(i >> 8) & 255}0${String(i & 255).padStart(3, '0')}.outbound.protection.outlook.com`
    const domain = `sender${i % 50}.example`
    const conn = connection({ ip, from: `user${i}@${domain}` })
    conn.results.add({ name: 'fcrdns' }, { ptr_names: [name], ptr_name_to_ip: { [name]: [ip] } })
    conn.transaction!.results.add({ name: 'spf' }, { scope: 'mfrom', result: 'Pass', domain })
    return conn
  }
  let from = 1_000_000
  const run = async (plugin: FixturePlugin, count: number): Promise<number> => {
    // The connections are made before the clock starts: Haraka makes them, not the plugin.
    const base = (from += 1_000_000)
    const conns = Array.from({ length: count }, (_, i) => make(base + i))
    const cpu0 = process.cpuUsage()
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < count) {
        const i = next++
        await callRcptOk(plugin, conns[i], `rcpt${base + i}@example.com`)
      }
    }
    await Promise.all(Array.from({ length: 50 }, worker))
    const used = process.cpuUsage(cpu0)
    return (used.user + used.system) / count
  }
  for (const p of plugins) await run(p, 3000) // warm-up (JIT)
  const taken: number[][] = [[], []]
  for (let r = 0; r < rounds; r++) for (const k of r % 2 ? [1, 0] : [0, 1]) taken[k].push(await run(plugins[k], Math.ceil(n / rounds)))
  await db.quit()
  const med = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b)
    return Math.round(((s[(s.length - 1) >> 1] ?? 0) + (s[s.length >> 1] ?? 0)) / 2)
  }
  return { off_us: med(taken[0]), on_us: med(taken[1]) }
}

function poolScaling(): Record<string, number>[] {
  const rows: Record<string, number>[] = []
  for (const size of [10, 1_000, 100_000]) {
    const lines = ['[bench]', ...Array.from({ length: size }, (_, i) => `ip = ${20 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`)]
    const index = new ProviderIndex(parseProviders(lines, 'bench').providers)
    const ips = Array.from({ length: 1000 }, (_, i) => parseIp(i % 2 ? `20.0.${i % Math.min(size, 250)}.9` : `100.${i & 255}.1.1`))
    const lookups = 300_000
    let hits = 0
    const t0 = performance.now()
    for (let i = 0; i < lookups; i++) if (index.lookup(ips[i % 1000])) hits++
    rows.push({ ranges: size, lookups, hits, ns_per_lookup: Math.round(((performance.now() - t0) * 1e6) / lookups) })
  }
  return rows
}

/** Envelopes of three shapes: the short synthetic ones, typical lengths, and the longest stored. */
const SHAPES = {
  short: (j: number) => ({ identity: `pool${j % 97}.example.net`, sender: `s${j}@example.org`, recipient: `r${j}@example.com`, client: '', rdnsName: '' }),
  typical: (j: number) => ({
    identity: `outbound${j % 97}.protection.example.net`,
    sender: `newsletter-${j}@mail.shop-example.com`,
    recipient: `firstname.lastname${j}@example.com`,
    client: `40.107.${(j >> 8) & 255}.${j & 255}`,
    rdnsName: `mail-eopbgr${(j >> 8) & 255}0${j & 255}.outbound.protection.outlook.com`,
  }),
  longest: (j: number) => ({
    identity: `${'h'.repeat(50)}${j % 97}.example.net`,
    sender: `${'s'.repeat(60)}${j}@example.org`,
    recipient: `${'r'.repeat(60)}${j}@example.com`,
    client: `2a01:111:f400:${(j >> 16).toString(16)}:${(j & 65535).toString(16)}::1234:5678`,
    rdnsName: `?${'n'.repeat(50)}${j}.example.net`,
  }),
}

async function memoryPerTuple(port: number, n: number): Promise<Record<string, number>> {
  const db = await connectRedis(port)
  const timing = timingFrom(DEFAULTS)
  const used = async (): Promise<number> => Number(/used_memory:(\d+)/.exec(await db.info('memory'))![1])
  const store = new DecisionStore(
    () => db,
    () => 5000,
    { storedChars: () => DEFAULTS.limits.stored_chars },
  )
  const now = Date.now()
  const out: Record<string, number> = { tuples: n }
  for (const [shape, make] of Object.entries(SHAPES)) {
    await db.flushDb()
    const before = await used()
    const batch = 500
    for (let i = 0; i < n; i += batch) {
      const work: Promise<unknown>[] = []
      for (let j = i; j < Math.min(n, i + batch); j++) {
        const e = make(j)
        const id = `host:${e.identity}`
        const k = identityKeys('sgl:', id)
        const ref = {
          shard: k.shard,
          key: k.tuple(e.sender, e.recipient),
          startedKey: k.started,
          identity: { kind: 'host' as const, value: e.identity, reason: 'fcrdns' },
          sender: e.sender,
          recipient: e.recipient,
          client: e.client,
          rdnsName: e.rdnsName,
        }
        work.push(store.check(ref, now, { ...timing, pendingCap: n }, { prefix: 'sgl:', shadow: false, ttlDays: 35 }))
      }
      await Promise.all(work)
    }
    out[`bytes_per_pending_tuple_${shape}`] = Math.round(((await used()) - before) / n)
    if (shape === 'typical') {
      // What the metrics' stuck count (one process of the site every stuck_every) costs: a SCAN
      // of every tuple, read and sorted through here.
      const admin = new AdminStore(
        () => db,
        () => 5000,
      )
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      const finder = new StuckFinder(now, { minDeferrals: 3, windowMs: timing.windowMs, orgDomain: () => null, netIdentityGreylist: 'recipient' })
      for await (const batch of admin.tupleBatches('sgl:')) for (const t of batch) finder.add(t)
      finder.pairs()
      const cpu = process.cpuUsage(cpu0)
      out.stuck_count_ms = Math.round(performance.now() - t0)
      out.stuck_count_cpu_ms = Math.round((cpu.user + cpu.system) / 1000)
    }
  }
  const e = SHAPES.short(0)
  const sk = identityKeys('sgl:', `host:${e.identity}`)
  const sample = sk.tuple(e.sender, e.recipient)
  const sampleRef = {
    shard: sk.shard,
    key: sample,
    startedKey: sk.started,
    identity: { kind: 'host' as const, value: e.identity, reason: 'fcrdns' },
    sender: e.sender,
    recipient: e.recipient,
  }
  await store.check(sampleRef, now, timing, { prefix: 'sgl:', shadow: false, ttlDays: 35 })
  out.memory_usage_pending_key = (await db.memoryUsage(sample)) ?? 0
  await store.check(sampleRef, now + timing.delayMs, timing, { prefix: 'sgl:', shadow: false, ttlDays: 35 })
  out.memory_usage_passed_key = (await db.memoryUsage(sample)) ?? 0
  // What one identity can hold at most while pending: the cap times the longest record.
  out.pending_cap_per_identity = DEFAULTS.limits.pending_per_identity
  out.max_pending_bytes_per_identity = out.pending_cap_per_identity * out.bytes_per_pending_tuple_longest
  await db.quit()
  return out
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

/**
 * net_identity_greylist = message: the CPU of one end-of-data digest (haraka-message-stream piping the
 * message into the bounded hash), by message size, at the default [main] data_hash_bytes.
 */
async function messageDigestCost(): Promise<Record<string, number>[]> {
  const rows: Record<string, number>[] = []
  for (const kb of [2, 10, 100, 1000]) {
    // Line by line, as Haraka stores a message it receives.
    const stream = new MessageStream({ main: {} }, 'bench', [])
    for (const header of ['From: <a@x.example>\r\n', 'Message-ID: <m@x.example>\r\n', '\r\n']) stream.add_line(header)
    const line = `${'0123456789abcdef'.repeat(4)}0123456789abcd\r\n`
    for (let i = 0; i < (kb * 1024) / line.length; i++) stream.add_line(line)
    await new Promise<void>((resolve) => stream.add_line_end(() => resolve()))
    const n = kb >= 1000 ? 50 : 500
    const cpu0 = process.cpuUsage()
    for (let i = 0; i < n; i++) await bodyDigest(stream, DEFAULTS.main.data_hash_bytes, 5000)
    const cpu = process.cpuUsage(cpu0)
    rows.push({ message_kb: kb, digests: n, cpu_us_per_digest: Math.round((cpu.user + cpu.system) / n) })
  }
  return rows
}

async function inProcessBenchmarks(port: number, dns: DnsServer) {
  return {
    cpu: await decisionCpu(port, 3 * Number(args.decisions)),
    latency: await decisionLatency(port, dns, Number(args.decisions), 'plugins'),
    latencyOwnDns: await decisionLatency(port, dns, Number(args.decisions), 'own'),
    latencyOwnNamed: await decisionLatency(port, dns, Number(args.decisions), 'own-named'),
    memory: await memoryPerTuple(port, Number(args.tuples)),
    capacity: await shardCapacity(port, Number(args['capacity-decisions'])),
    whitelist: whitelistScaling(),
    pools: poolScaling(),
    messageDigest: await messageDigestCost(),
    spfGuard: Number(args['guard-domains']) > 0 ? await spfGuardMemory(Number(args['guard-domains'])) : [],
  }
}

function printInProcess({
  cpu,
  latency,
  latencyOwnDns,
  latencyOwnNamed,
  memory,
  capacity,
  whitelist,
  pools,
  messageDigest,
  spfGuard,
}: Awaited<ReturnType<typeof inProcessBenchmarks>>): void {
  const f = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(3))
  console.log(
    `rcpt_ok decision CPU in process (hook and Redis client, 50 in flight, new tuples, median of 6 alternating rounds): ${cpu.off_us} us; with [metrics] on ${cpu.on_us} us`,
  )
  console.log(`rcpt_ok decision latency, Redis on loopback (${latency.decisions} decisions, half new, half early retries)`)
  console.log("  (own lookups against a loopback DNS server: Exchange names, vouched for by outlook.com's SPF; chosen names, not asked)")
  console.log('                            rDNS, SPF from plugins   own, Exchange names   own, chosen names')
  for (const [k, v] of Object.entries(latencyOwnDns)) {
    if (k !== 'decisions')
      console.log(`  ${k.padEnd(28)} ${(k in latency ? f(latency[k] ?? 0) : '-').padEnd(24)} ${f(v).padEnd(21)} ${f(latencyOwnNamed[k] ?? 0)}`)
  }
  console.log(`Redis memory for ${memory.tuples} pending tuples`)
  for (const [k, v] of Object.entries(memory)) if (k !== 'tuples') console.log(`  ${k.padEnd(24)} ${f(v)}`)
  console.log(`one Redis shard with the tuple script (${capacity[0]?.decisions} decisions per phase, 256 in flight, statistics on)`)
  console.log('  phase                            decisions/s (this client)  Redis usec/call  decisions per Redis CPU second')
  for (const r of capacity)
    console.log(
      `  ${r.phase.padEnd(32)} ${String(r.perSecond).padStart(26)}  ${String(r.usecPerCall).padStart(15)}  ${String(r.perRedisCpuSecond).padStart(30)}`,
    )
  console.log('whitelist lookup cost by list size (host: suffixes + ip: ranges; hits, misses, addresses)')
  for (const r of whitelist) console.log(`  ${String(r.entries).padStart(7)} entries  ${r.ns_per_lookup} ns/lookup  (${r.hits}/${r.lookups} hits)`)
  console.log('provider pool lookup cost by number of ranges')
  for (const r of pools) console.log(`  ${String(r.ranges).padStart(7)} ranges   ${r.ns_per_lookup} ns/lookup  (${r.hits}/${r.lookups} hits)`)
  console.log(`end-of-data message digest (net_identity_greylist = message, first ${DEFAULTS.main.data_hash_bytes} bytes of the body), CPU per digest`)
  for (const r of messageDigest) console.log(`  ${String(r.message_kb).padStart(7)} KB message  ${r.cpu_us_per_digest} us`)
  if (spfGuard.length) console.log(`SPF guard verdicts in memory for ${spfGuard[0]?.domains} sender domains on one record (heap after a full GC${gcNote()})`)
  for (const r of spfGuard)
    console.log(
      `  maxEntries ${String(r.maxEntries).padStart(7)}  ${String(r.held).padStart(7)} held  ${(r.heapBytes / 1e6).toFixed(1).padStart(6)} MB  ${r.bytesPerEntry} bytes/entry  (${r.seconds} s)`,
    )
}

async function main(): Promise<void> {
  const redis = await startPrivateRedis()
  // Every lookup of this process goes to a DNS server on loopback, never the machine's resolver.
  const dns = await DnsServer.start({
    txt: {
      ...Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`sender${i}.example`, ['v=spf1 ip4:52.100.0.0/14 -all']])),
      ...OUTLOOK_SPF,
    },
  })
  useDnsServer(`127.0.0.1:${dns.port}`)
  try {
    const inProcess = args['smtp-only'] ? null : await inProcessBenchmarks(redis.port, dns)
    const smtpSeconds = Number(args['smtp-seconds'])
    const smtp = smtpSeconds > 0 ? await smtpBenchmark(redis, smtpSeconds, { rounds: Number(args['smtp-rounds']) }) : null
    if (args.json) {
      console.log(JSON.stringify({ node: process.version, ...inProcess, smtp }, null, 2))
      return
    }
    if (inProcess) printInProcess(inProcess)
    if (smtp) {
      const { setup, rows } = smtp
      const where = setup.pinned ? `Harakas on CPU ${setup.pinned.harakas}, load generator, Redis and DNS on CPU ${setup.pinned.rest}` : 'not pinned to CPUs'
      console.log(`SMTP sessions through real Harakas (fcrdns, spf in each): without -> defer-only plugin -> smart-greylist`)
      console.log(`  ${smtpSeconds} s per cell in ${setup.rounds} rounds taking turns, after ${setup.warmupSeconds} s of warm-up each; ${where}`)
      console.log('  workload     c   rate  sessions/s           ratio (range)      defer-only  RCPT p50 ms     RCPT p99 ms      Redis per decision')
      for (const r of rows) {
        console.log(
          `  ${r.workload.padEnd(12)} ${String(r.concurrency).padStart(2)}  ${String(r.rate ?? 'max').padStart(4)}  ${`${r.without.perSecond} -> ${r.deferOnly.perSecond} -> ${r.with.perSecond}`.padEnd(19)}  ${`${r.throughputRatio} (${r.ratioRange[0]}-${r.ratioRange[1]})`.padEnd(17)}  ${String(r.deferOnlyRatio).padEnd(10)}  ${`${r.without.p50} -> ${r.with.p50}`.padEnd(14)}  ${`${r.without.p99} -> ${r.with.p99}`.padEnd(15)}  ${r.redisRoundTripsPerDecision} round trip, ${r.redisCommandsPerDecision} commands, ${r.redisBytesPerDecision} bytes`,
        )
      }
      console.log(
        "Haraka's CPU per session (one recipient), ms: the decision's own = smart-greylist - floor (defer-only); metrics = on and scraped every second - off",
      )
      console.log("  workload     c   rate  without  floor   smart-greylist  + metrics   decision's own  metrics add")
      const ms = (x: number): string => x.toFixed(3)
      for (const r of rows) {
        console.log(
          `  ${r.workload.padEnd(12)} ${String(r.concurrency).padStart(2)}  ${String(r.rate ?? 'max').padStart(4)}  ${ms(r.without.cpuMsPerSession).padStart(7)}  ${ms(r.deferOnly.cpuMsPerSession).padStart(6)}  ${ms(r.with.cpuMsPerSession).padStart(14)}  ${ms(r.withMetrics.cpuMsPerSession).padStart(9)}  ${ms(r.decisionCpuMs).padStart(14)}  ${ms(r.metricsCpuMs).padStart(11)}`,
        )
      }
    }
  } finally {
    await dns.close()
    await redis.stop()
  }
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message)
  process.exit(2)
})
