// Integration: a small simulated day (a few hundred messages) through the plugin's own decision
// path on a real redis-server, its results asserted, so the simulator cannot drift from the
// plugin unnoticed. Seconds, not minutes: the simulated clock moves, the wall clock does not.
import assert from 'node:assert/strict'
import { KEYINGS, parseVariant, runKeying, type KeyingRun } from '../../cli/sim/engine'
import { defaultMixPath, readMix } from '../../cli/sim/mix'
import { buildPopulation, CLASSES, type Population } from '../../cli/sim/population'
import { keyingReport } from '../../cli/sim/report'
import { usePrivateRedis } from '../helpers/private-redis'

const DELAY_MS = 300_000

describe('simulate: a small day through the decision path', function () {
  this.timeout(60_000)
  const redis = usePrivateRedis({ flushEach: false })
  let pop: Population
  const runs = new Map<string, KeyingRun>()
  const classIndex = (id: string): number => CLASSES.findIndex((c) => c.id === id)
  const messagesOf = (id: string): number[] => Array.from({ length: pop.count }, (_, m) => m).filter((m) => pop.cls[m] === classIndex(id))

  before(async () => {
    pop = buildPopulation(readMix(defaultMixPath()), { seed: 7, messages: 600 })
    const opts = { redis: { host: '127.0.0.1', port: redis.server.port }, trace: true }
    // The shipped settings, and the same without the providers list: the identities alone.
    for (const k of [KEYINGS[0], parseVariant('nolist:whitelist.providers=false'), KEYINGS[1]]) runs.set(k.name, await runKeying(pop, k, opts))
  })

  it('accepts no spam that never retries, under any keying', () => {
    for (const run of runs.values()) {
      const spam = messagesOf('spam_no_retry')
      assert.ok(spam.length > 50)
      for (const m of spam) assert.equal(run.delayMs[m], -1, `${run.keying.name}: message ${m} got in`)
      assert.equal(keyingReport(pop, run).classes[classIndex('spam_no_retry')]?.delivered, 0)
    }
  })

  it('delivers a single-address MTA at its first retry after one delay', () => {
    const run = runs.get('plugin')!
    const mta = messagesOf('company_mta')
    assert.ok(mta.length > 10)
    let delayed = 0
    for (const m of mta) {
      const d = run.delayMs[m]
      assert.ok(d >= 0, `message ${m} was lost`)
      if (d === 0) continue // its tuple had passed before: no delay
      delayed++
      assert.equal(run.attempts[m], 2, `message ${m}: ${run.attempts[m]} attempts`)
      assert.ok(d >= DELAY_MS && d < 2 * DELAY_MS, `message ${m} waited ${d} ms`)
    }
    assert.ok(delayed > 5)
    assert.equal(run.failures, 0)
  })

  it('delivers Exchange Online at once (shipped list), and without the list at its first retry after the delay', () => {
    for (const m of messagesOf('exchange_online')) assert.equal(runs.get('plugin')!.delayMs[m], 0)
    const run = runs.get('nolist')!
    const eop = new Set(messagesOf('exchange_online'))
    const byMessage = new Map<number, { at: number; answer: string; identity: string }[]>()
    for (const t of run.trace ?? []) if (eop.has(t.message)) byMessage.set(t.message, [...(byMessage.get(t.message) ?? []), t])
    let delayed = 0
    for (const [m, attempts] of byMessage) {
      const first = pop.arrival[m]
      // Every attempt is keyed on the pool's rDNS domain, whichever address it comes from.
      for (const a of attempts) assert.equal(a.identity, 'host:outbound.protection.outlook.com')
      const accepted = attempts.findIndex((a) => a.answer === 'accept')
      assert.ok(accepted >= 0, `message ${m} was never accepted`)
      if (accepted === 0) continue
      delayed++
      const due = attempts.findIndex((a) => a.at - first >= DELAY_MS)
      assert.equal(accepted, due, `message ${m}: accepted at attempt ${accepted}, the first after the delay was ${due}`)
    }
    assert.ok(delayed > 10)
    // The classic exact-address keying loses some of the same messages (each retry from another address).
    assert.ok([...eop].some((m) => runs.get('exact')!.delayMs[m] === -1))
  })
})
