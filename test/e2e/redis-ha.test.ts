// End to end on Redis high availability: two Haraka instances sharing a Redis Cluster (3 masters,
// 3 replicas), and one Haraka on a Sentinel set (1 master, 1 replica, 3 sentinels), all on
// loopback. Shown: greylisting across the instances, the Exchange-like pool grouped, and a master
// SIGKILLed under a steady trickle of RCPTs: every RCPT answered with 250 or 451 within
// timeout_ms + 1 s, greylisting resumes by itself once a replica is promoted, and a tuple written
// (and replicated) before the failure is still honoured; then the smart-greylist command lists,
// counts and flushes across the masters left. The figures are printed for the record.
import assert from 'node:assert/strict'
import { percentile, runLoad } from '../../scripts/harness/load'
import { DnsServer } from '../../scripts/harness/dns-server'
import { HarakaInstance } from '../../scripts/harness/haraka'
import { runCli } from '../helpers/cli'
import { deliver } from '../../scripts/harness/smtp'
import { sleep } from '../helpers/wait'
import { EXCHANGE_HELO, EXCHANGE_IPS, exchangeZone } from '../helpers/world'
import {
  redisCli,
  replicated,
  startPrivateCluster,
  startPrivateSentinelSet,
  type PrivateCluster,
  type PrivateSentinelSet,
} from '../../scripts/harness/redis-topologies'

const TIMEOUT_MS = 300
const iniFor = (redis: string): string =>
  [
    '[main]',
    'delay=1',
    'retry_window=120',
    '[whitelist]',
    'providers=false',
    '[redis]',
    `timeout_ms=${TIMEOUT_MS}`,
    'ping_interval_ms=200',
    'dead_after_ms=1500',
    redis,
    '',
  ].join('\n')

let n = 0
const sender = (): string => `ha${++n}@ha${n}-${Date.now()}.example.org`
// Clients of the trickle: 30 networks, each always the same sender, so after warming they pass.
const POOL = Array.from({ length: 30 }, (_, i) => `85.214.${60 + i}.${9 + i}`)
const trickle = (n: number) => ({ clientIp: POOL[n % POOL.length], from: `trickle${n % POOL.length}@trickle-corp.de`, to: `t${n % 3}@example.com` })

/** Until a brand-new tuple is deferred (greylisting at work, not failing open): ms, or -1 after `ms`. */
async function greylisting(port: number, ms: number): Promise<number> {
  const since = Date.now()
  while (Date.now() - since < ms) {
    const k = ++n
    const r = await deliver(port, { clientIp: `91.121.${k % 250}.${1 + (k % 200)}`, from: `probe${k}@probe-corp.de`, to: ['p@example.com'] })
    if (r.rcpt[0].code === 451) return Date.now() - since
    await sleep(100)
  }
  return -1
}

interface Failover {
  readonly harakas: readonly HarakaInstance[]
  /** Writes a pending tuple, finds the master holding it, waits for its replica: that master's port. */
  readonly pendingTuple: (from: string) => Promise<number>
  readonly kill: (master: number) => void
  /** True once a replica has taken over from `master`. */
  readonly promoted: (master: number) => boolean
}

async function failoverUnderTrickle(name: string, f: Failover): Promise<void> {
  const [a, b] = [f.harakas[0], f.harakas[f.harakas.length - 1]]
  await runLoad({ port: a.port, concurrency: 5, durationMs: 1500, plan: trickle }) // warm: these tuples pass
  await sleep(1100)
  const from = sender()
  const master = await f.pendingTuple(from)
  const logFrom = b.log.length

  const loads = f.harakas.map((h) => runLoad({ port: h.port, concurrency: 4, durationMs: 9000, plan: trickle, rate: 25 }))
  await sleep(1500)
  const killedAt = Date.now()
  f.kill(master)
  let promotedAfter = -1
  while (Date.now() - killedAt < 20_000) {
    if (f.promoted(master)) {
      promotedAfter = Date.now() - killedAt
      break
    }
    await sleep(100)
  }
  const back = await Promise.all(f.harakas.map((h) => greylisting(h.port, 15_000)))
  const results = await Promise.all(loads)
  const ms = results.flatMap((r) => r.rcpt.map((s) => s.ms))
  const codes: Record<string, number> = {}
  for (const r of results) for (const [c, k] of Object.entries(r.codes)) codes[c] = (codes[c] ?? 0) + k
  const rcptCodes: Record<string, number> = {}
  for (const s of results.flatMap((r) => r.rcpt)) rcptCodes[s.code] = (rcptCodes[s.code] ?? 0) + 1

  // The tuple written before the failure: its retry passes as a retry, not as a new tuple.
  const retry = await deliver(b.port, { clientIp: '85.214.132.10', from, to: ['bob@example.com'] })
  console.log(
    `      ${name}: promoted ${promotedAfter} ms after SIGKILL; RCPTs ${ms.length}, p50 ${percentile(ms, 0.5)} ms, p99 ${percentile(ms, 0.99)} ms, ` +
      `max ${Math.max(...ms)} ms; RCPT replies ${JSON.stringify(rcptCodes)}, all replies ${JSON.stringify(codes)}; ` +
      `greylisting back ${back.map((x) => `${x} ms`).join(', ')} after promotion; earlier tuple's retry ${retry.rcpt[0].code}`,
  )
  assert.ok(promotedAfter >= 0, 'a replica was promoted')
  assert.equal(
    results.reduce((s, r) => s + r.broken, 0),
    0,
    'every session completed',
  )
  for (const code of Object.keys(codes)) assert.ok(Number(code) < 500, `a ${code} reply`)
  for (const code of Object.keys(rcptCodes)) assert.ok(code === '250' || code === '451', `RCPT answered ${code}`)
  assert.ok(Math.max(...ms) <= TIMEOUT_MS + 1000, `slowest RCPT ${Math.max(...ms)} ms`)
  for (const x of back) assert.ok(x >= 0, 'greylisting resumed by itself')
  assert.equal(retry.rcpt[0].code, 250)
  assert.ok(
    b.linesMatching(new RegExp(`pass reason=retry .*from=<${from.replace(/\./g, '\\.')}>`), logFrom).length === 1,
    'passed as a retry of the replicated tuple',
  )
}

async function deferThenPass(first: HarakaInstance, second: HarakaInstance): Promise<void> {
  const from = sender()
  const one = await deliver(first.port, { clientIp: '85.214.132.10', from, to: ['bob@example.com'] })
  assert.equal(one.rcpt[0].code, 451)
  await sleep(1200)
  const two = await deliver(second.port, { clientIp: '85.214.132.10', from, to: ['bob@example.com'] })
  assert.equal(two.rcpt[0].code, 250, 'the other instance sees the same tuple')
}

describe('Redis Cluster: two Haraka instances, 3 masters and 3 replicas', function () {
  this.timeout(120_000)
  let cluster: PrivateCluster
  let dns: DnsServer
  const harakas: HarakaInstance[] = []

  before(async () => {
    cluster = await startPrivateCluster()
    dns = await DnsServer.start()
    dns.add(exchangeZone())
    const seeds = cluster.nodes.map((node) => `127.0.0.1:${node.port}`).join(' ')
    for (let i = 0; i < 2; i++) {
      const h = await HarakaInstance.start({ ini: iniFor(`cluster = ${seeds}`), redisPort: 1, dnsPort: dns.port })
      await h.waitFor(/\[smart-greylist\] connected to redis-cluster:\/\//)
      harakas.push(h)
    }
  })
  after(async () => {
    await Promise.all(harakas.map((h) => h.stop()))
    await dns?.close()
    await cluster?.stop()
  })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') for (const h of harakas) console.log(h.log.slice(-30).join('\n'))
  })

  it('defers on one instance and accepts the retry on the other', () => deferThenPass(harakas[0], harakas[1]))

  it('groups the Exchange-like pool across instances and networks', async () => {
    const from = sender()
    const attempt = (i: number) => deliver(harakas[i % 2].port, { clientIp: EXCHANGE_IPS[i], helo: EXCHANGE_HELO, from, to: ['frank@example.com'] })
    assert.equal((await attempt(0)).rcpt[0].code, 451)
    assert.equal((await attempt(1)).rcpt[0].code, 451, 'too early, from another instance and /16')
    await sleep(1200)
    for (const i of [2, 3, 4, 5]) assert.equal((await attempt(i)).rcpt[0].code, 250, `retry ${i} from another /16`)
    const lines = harakas.flatMap((h) => h.linesMatching(new RegExp(`from=<${from.replace(/\./g, '\\.')}>`)))
    assert.equal(lines.length, 6)
    for (const l of lines) assert.match(l, /identity=host:outbound\.protection\.outlook\.com/)
  })

  it('rides out a master SIGKILLed under a trickle of RCPTs', () => {
    let replica = 0
    return failoverUnderTrickle('cluster master SIGKILL', {
      harakas,
      async pendingTuple(from) {
        const r = await deliver(harakas[0].port, { clientIp: '85.214.132.10', from, to: ['bob@example.com'] })
        assert.equal(r.rcpt[0].code, 451)
        const holds = (port: number): boolean =>
          redisCli(port, '--scan', '--pattern', 'sgl:{*}t:*')
            .split('\n')
            .filter(Boolean)
            .some((key) => redisCli(port, 'HGET', key, 's') === from)
        const holder = cluster.masters().find(holds)
        assert.ok(holder, 'the pending tuple is on a master')
        await replicated(holder)
        replica = cluster.replicaOf(holder)
        return holder
      },
      kill: (master) => cluster.nodes.find((node) => node.port === master)!.kill(),
      promoted: () => /role:master/.test(redisCli(replica, 'INFO', 'replication')),
    })
  })

  it('lists, counts and flushes across every master, reading the same settings as the plugin', async () => {
    const cfg = ['--config', harakas[0].configDir]
    const deferredNew = async (): Promise<number> => {
      const stats = await runCli(['stats', '--days', '2', '--json', ...cfg])
      assert.equal(stats.code, 0, stats.stderr)
      return (JSON.parse(stats.stdout) as { total: { deferredBy: Record<string, number> } }).total.deferredBy.new ?? 0
    }
    const before = await deferredNew()
    // Enough identities that their tuples land on all three masters.
    for (let i = 0; i < 12; i++) {
      const r = await deliver(harakas[0].port, { clientIp: `85.214.${100 + i}.10`, from: `list${i}@cluster-corp.de`, to: ['bob@example.com'] })
      assert.equal(r.rcpt[0].code, 451)
    }
    const onMasters = cluster.masters().filter((port) => redisCli(port, '--scan', '--pattern', 'sgl:{*}t:*').length > 0)
    assert.equal(onMasters.length, 3, 'tuples on every master')

    const listed = await runCli(['list', '--pending', '--json', ...cfg])
    assert.equal(listed.code, 0, listed.stderr)
    const rows = (JSON.parse(listed.stdout) as { tuples: { sender: string }[] }).tuples.filter((t) => t.sender.endsWith('@cluster-corp.de'))
    assert.equal(rows.length, 12)

    assert.equal((await deferredNew()) - before, 12, 'the shards of the day add up')

    const flushed = await runCli(['flush', '--all', '--yes', '--json', ...cfg])
    assert.equal(flushed.code, 0, flushed.stderr)
    assert.ok((JSON.parse(flushed.stdout) as { removed: number }).removed >= 24, flushed.stdout)
    for (const port of cluster.masters()) assert.equal(redisCli(port, '--scan', '--pattern', 'sgl:{*}[tn]:*'), '')
  })
})

describe('Redis Sentinel: 1 master, 1 replica, 3 sentinels', function () {
  this.timeout(120_000)
  let set: PrivateSentinelSet
  let dns: DnsServer
  let haraka: HarakaInstance

  before(async () => {
    set = await startPrivateSentinelSet()
    dns = await DnsServer.start()
    const sentinels = set.sentinels.map((s) => `127.0.0.1:${s.port}`).join(' ')
    haraka = await HarakaInstance.start({ ini: iniFor(`sentinels = ${sentinels}\nsentinel_name = ${set.name}`), redisPort: 1, dnsPort: dns.port })
    await haraka.waitFor(/\[smart-greylist\] connected to redis-sentinel:\/\//)
  })
  after(async () => {
    await haraka?.stop()
    await dns?.close()
    await set?.stop()
  })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(haraka.log.slice(-30).join('\n'))
  })

  it('greylists through the master the sentinels name', () => deferThenPass(haraka, haraka))

  it('rides out the master SIGKILLed under a trickle of RCPTs', () =>
    failoverUnderTrickle('sentinel master SIGKILL', {
      harakas: [haraka],
      async pendingTuple(from) {
        const r = await deliver(haraka.port, { clientIp: '85.214.132.10', from, to: ['bob@example.com'] })
        assert.equal(r.rcpt[0].code, 451)
        await replicated(set.master.port)
        return set.master.port
      },
      kill: () => set.master.kill(),
      promoted: () => set.masterPort() === set.replica.port,
    }))
})
