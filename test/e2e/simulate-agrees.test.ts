// End to end: the simulator and a real Haraka agree. A handful of the simulated population's
// messages (one or two of every class) are replayed both ways: through the simulator (the
// decision path in process, simulated clock, DNS from memory) and over SMTP to a running Haraka
// with the plugin (PROXY clients from the same addresses, the same zone served by the loopback DNS
// server), with time compressed 300 times (delay 600 s simulated, 2 s real). Every attempt must
// get the same answer and be keyed on the same identity.
import assert from 'node:assert/strict'
import { parseVariant, runKeying, type TraceEntry } from '../../cli/sim/engine'
import { defaultMixPath, readMix } from '../../cli/sim/mix'
import { buildPopulation, CLASSES, type Population } from '../../cli/sim/population'
import { startPrivateRedis } from '../../scripts/harness/redis-server'
import { deliver } from '../../scripts/harness/smtp'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'

const SCALE = 300
const SIM_DELAY_S = 600
const HORIZON_MS = 2400_000
/** Attempts this close to the delay could fall either side of it in real time: such messages are not picked. */
const MARGIN_MS = 150_000

const pop: Population = buildPopulation(readMix(defaultMixPath()), { seed: 11, messages: 800 })

/** A message's attempt times (ms after its first) within the horizon, if every one were deferred. */
function offsets(m: number): number[] {
  const out = [0]
  for (let k = 0; ; k++) {
    const next = pop.nextAfter(m, k, out[k])
    if (next === null || next > HORIZON_MS) return out
    out.push(next)
  }
}

/** Two messages per class with distinct senders and recipients, none of whose attempts is near the delay. */
function pick(): number[] {
  const chosen: number[] = []
  const senders = new Set<string>()
  for (let c = 0; c < CLASSES.length; c++) {
    for (let m = 0; m < pop.count && chosen.filter((x) => pop.cls[x] === c).length < 2; m++) {
      if (pop.cls[m] !== c) continue
      const who = `${pop.sender_address(m)} ${pop.recipient_address(m)}`
      if (senders.has(pop.sender_address(m)) || senders.has(who)) continue
      if (offsets(m).some((t) => Math.abs(t - SIM_DELAY_S * 1000) < MARGIN_MS)) continue
      senders.add(pop.sender_address(m))
      chosen.push(m)
    }
  }
  return chosen
}

describe('the simulator agrees with a real Haraka', function () {
  this.timeout(120_000)
  const stack = useStack({
    ini: `[main]\ndelay=${SIM_DELAY_S / SCALE}\n[whitelist]\nproviders=false\n`,
    zones: [pop.zone],
    files: { host_list: `${pop.recipientDomain}\n` },
  })

  it('gives every attempt of a dozen senders the same answer and identity', async () => {
    const chosen = pick()
    assert.ok(chosen.length >= 15, `only ${chosen.length} messages picked`)
    // The simulator, on a Redis of its own.
    const redis = await startPrivateRedis()
    let trace: readonly TraceEntry[]
    try {
      const run = await runKeying(pop, parseVariant(`agree:main.delay=${SIM_DELAY_S},whitelist.providers=false`), {
        redis: { host: '127.0.0.1', port: redis.port },
        trace: true,
        only: new Set(chosen),
        horizonMs: HORIZON_MS,
      })
      trace = run.trace ?? []
    } finally {
      await redis.stop()
    }
    // Haraka: each message's attempts at its simulated offsets / SCALE, all messages at once.
    const real = new Map<number, { answer: string; line: string }[]>()
    const started = Date.now()
    await Promise.all(
      chosen.map(async (m) => {
        const times = offsets(m)
        const from = pop.sender_address(m)
        const got: { answer: string; line: string }[] = []
        real.set(m, got)
        for (const [k, t] of times.entries()) {
          await sleep(Math.max(0, started + t / SCALE - Date.now()))
          const a = pop.attempt(m, k)
          const logFrom = stack.haraka.linesMatching(/./).length
          const r = await deliver(stack.haraka.port, { clientIp: a.ip, helo: a.helo || a.ip, from, to: [pop.recipient_address(m)] })
          const code = r.rcpt[0]?.code
          assert.ok(code === 250 || code === 451, `message ${m} attempt ${k}: RCPT answered ${code}`)
          const line = await stack.haraka.waitFor(new RegExp(`from=<${from.replace(/[.+]/g, '\\$&')}>`), 5000, logFrom)
          got.push({ answer: code === 250 ? 'accept' : 'defer', line })
          if (code === 250) break
        }
      }),
    )
    for (const m of chosen) {
      const sim = trace.filter((t) => t.message === m).sort((a, b) => a.attempt - b.attempt)
      const smtp = real.get(m) ?? []
      const what = `${CLASSES[pop.cls[m]].id} message ${m}`
      assert.deepEqual(
        smtp.map((x) => x.answer),
        sim.map((x) => x.answer),
        `${what}: answers differ`,
      )
      for (const [k, t] of sim.entries()) {
        if (t.identity) assert.match(smtp[k].line, new RegExp(`identity=${t.identity.replace(/[.+]/g, '\\$&')} `), `${what} attempt ${k}`)
        else assert.match(smtp[k].line, /whitelist|skip/, `${what} attempt ${k}`)
      }
    }
    // What was compared: deferrals and acceptances, retries, and every kind of identity.
    const answers = trace.map((t) => t.answer)
    assert.ok(answers.includes('accept') && answers.includes('defer'))
    assert.ok(chosen.filter((m) => (real.get(m)?.length ?? 0) >= 3).length >= 3)
    assert.deepEqual(new Set(trace.map((t) => t.identity.split(':')[0]).filter(Boolean)), new Set(['spf', 'host', 'pool', 'net']))
  })
})
