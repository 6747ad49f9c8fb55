// Under load and faults, end to end: 20 concurrent SMTP sessions that send a small message after
// an accepted RCPT, while Redis is killed and restarted, stopped and continued, paused, or the DNS
// server stops answering; once more with two Haraka workers. Each phase is bounded in time.
// Asserted: no 5xx; every accepted message is in the queue; every RCPT answered within Redis's
// timeout_ms + 1 s; Haraka's resident memory grows by at most 100 MB; greylisting works again
// within 2 s of recovery. The figures of each phase are printed for the record.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { startPrivateRedis } from '../../scripts/harness/redis-server'
import { percentile, runLoad, type LoadResult } from '../../scripts/harness/load'
import { connectRedis } from '../../scripts/harness/redis'
import { deliver } from '../../scripts/harness/smtp'
import { useStack, type Stack } from '../helpers/stack'
import { sleep } from '../helpers/wait'

const REDIS_TIMEOUT_MS = 300
const INI = [
  '[main]',
  'delay=1',
  'retry_window=60',
  'budget_ms=1100',
  '[dns]',
  'timeout_ms=400',
  'spf_timeout_ms=300',
  '[redis]',
  `timeout_ms=${REDIS_TIMEOUT_MS}`,
  'ping_interval_ms=200',
  'dead_after_ms=1500',
  '[whitelist]',
  'providers=false',
  '',
].join('\n')
// 40 clients in 40 /24s, each always the same sender: after the first second their tuples pass.
const POOL = Array.from({ length: 40 }, (_, i) => `85.214.${10 + i}.${7 + i}`)
const plan = (n: number) => ({ clientIp: POOL[n % POOL.length], from: `news${n % POOL.length}@sender-corp.de`, to: `u${n % 5}@example.com` })

/** Resident memory of a process and its children (the workers), in MB. */
function rssMb(pid: number): number {
  const own = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
  const children = fs
    .readdirSync(`/proc/${pid}/task`)
    .flatMap((t) => fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean))
  return own + children.map(Number).reduce((sum, c) => sum + (fs.existsSync(`/proc/${c}/status`) ? rssMb(c) : 0), 0)
}

let probes = 0
/** Until a brand-new tuple is deferred again (not failed open): ms after `since`, or -1. */
async function greylistingBack(stack: Stack, since: number): Promise<number> {
  while (Date.now() - since < 2000) {
    const k = ++probes
    const r = await deliver(stack.haraka.port, { clientIp: `91.121.${k % 250}.${1 + (k % 200)}`, from: `probe${k}@probe-corp.de`, to: ['p@example.com'] })
    if (r.rcpt[0].code === 451) return Date.now() - since
    await sleep(50)
  }
  return -1
}

interface Phase {
  readonly name: string
  readonly fault: (stack: Stack) => Promise<void>
  readonly recover: (stack: Stack) => Promise<void>
}

async function underLoad(stack: Stack, phase: Phase): Promise<void> {
  await runLoad({ port: stack.haraka.port, concurrency: 20, durationMs: 1500, plan, data: true }) // warm: tuples pass
  const rssBefore = rssMb(stack.haraka.pid)
  const loadStart = Date.now()
  const load = runLoad({ port: stack.haraka.port, concurrency: 20, durationMs: 6000, plan, data: true })
  await sleep(1000)
  const faultAt = Date.now()
  await phase.fault(stack)
  await sleep(2500)
  await phase.recover(stack)
  const back = await greylistingBack(stack, Date.now())
  const r: LoadResult = await load
  const rssGrowth = rssMb(stack.haraka.pid) - rssBefore
  const ms = r.rcpt.map((s) => s.ms)
  const from = faultAt - loadStart
  const during = r.rcpt.filter((s) => s.at >= from && s.at <= from + 2500).map((s) => s.ms)
  console.log(
    `      ${phase.name}: ${r.sessions} sessions, RCPT p50 ${percentile(ms, 0.5)} ms p99 ${percentile(ms, 0.99)} ms max ${Math.max(...ms)} ms ` +
      `(during the fault: p50 ${percentile(during, 0.5)} max ${Math.max(...during)}); replies ${JSON.stringify(r.codes)}; ` +
      `accepted ${r.accepted.length}; broken ${r.broken}; RSS +${rssGrowth.toFixed(1)} MB; greylisting back after ${back} ms`,
  )
  assert.equal(r.broken, 0, 'every session completed')
  for (const code of Object.keys(r.codes)) assert.ok(Number(code) < 500, `a ${code} reply: ${JSON.stringify(r.codes)}`)
  assert.ok(Math.max(...ms) <= REDIS_TIMEOUT_MS + 1000, `slowest RCPT ${Math.max(...ms)} ms`)
  for (const id of r.accepted) assert.ok(fs.existsSync(path.join(stack.haraka.dir, `mail_${id}.eml`)), `message ${id} is in the queue`)
  assert.ok(r.accepted.length > 0, 'mail was accepted during the phase')
  assert.ok(rssGrowth <= 100, `RSS grew ${rssGrowth} MB`)
  assert.ok(back >= 0 && back <= 2000, 'greylisting works again within 2 s')
  // A connection dropped under commands gets their replies late (SIGSTOP, SIGCONT): no raw error.
  assert.deepEqual(stack.haraka.linesMatching(/Cannot read properties|TypeError|ReferenceError/), [])
}

const PHASES: Phase[] = [
  {
    name: 'Redis SIGKILLed, then restarted',
    fault: async (s) => void s.redis.process.kill('SIGKILL'),
    recover: async (s) => {
      s.redis = await startPrivateRedis(s.redis.port)
    },
  },
  {
    name: 'Redis SIGSTOPped, then continued',
    fault: async (s) => void s.redis.process.kill('SIGSTOP'),
    recover: async (s) => void s.redis.process.kill('SIGCONT'),
  },
  {
    name: 'Redis CLIENT PAUSE 2.5 s',
    fault: async (s) => {
      const admin = await connectRedis(s.redis.port)
      await admin.sendCommand(['CLIENT', 'PAUSE', '2500', 'ALL'])
      await admin.quit()
    },
    recover: async () => sleep(100),
  },
  {
    name: 'DNS server stops answering',
    fault: async (s) => {
      s.dns.silent = true
    },
    recover: async (s) => {
      s.dns.silent = false
    },
  },
]

describe('smart-greylist under load and faults (one Haraka process)', function () {
  this.timeout(60_000)
  const stack = useStack({ ini: INI, queue: 'queue/test' })
  for (const phase of PHASES) it(`${phase.name}: no 5xx, no lost mail, RCPT bounded, recovers`, () => underLoad(stack, phase))
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(stack.haraka.log.slice(-25).join('\n'))
  })
})

describe('smart-greylist under load and faults (two Haraka workers sharing one Redis)', function () {
  this.timeout(60_000)
  const stack = useStack({ ini: INI, queue: 'queue/test', nodes: 2 })
  for (const phase of PHASES) it(`${phase.name}: no 5xx, no lost mail, RCPT bounded, recovers`, () => underLoad(stack, phase))
})
