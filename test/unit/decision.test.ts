import assert from 'node:assert/strict'
import { decide } from '../../plugins/smart-greylist/core/decision'
import { DECISION_CASES, TIMING } from '../helpers/decision-cases'

describe('decide', () => {
  for (const c of DECISION_CASES) {
    it(`${c.status.toUpperCase()}: ${c.name}`, () => {
      const { verdict, write } = decide(c.stored, c.now, TIMING)
      assert.equal(verdict.action, c.action)
      assert.equal(verdict.status, c.status)
      assert.equal(verdict.waitedMs, c.waitedMs)
      assert.equal(verdict.retryInMs, c.retryInMs)
      assert.equal(write.op, c.write)
    })
  }

  it('ignores the auto-whitelist when it is off or the pair is not eligible', () => {
    assert.equal(decide({ tuple: null, awlCount: 99, started: 0 }, 0, { ...TIMING, awlPasses: 0 }).verdict.status, 'new')
    assert.equal(decide({ tuple: null, awlCount: null, started: 0 }, 0, TIMING).verdict.status, 'new')
    const retry = decide({ tuple: { firstSeen: 0, passedAt: null }, awlCount: null, started: 0 }, TIMING.delayMs, TIMING).write
    assert.deepEqual(retry, { op: 'pass', passedAt: TIMING.delayMs, ttlMs: TIMING.passTtlMs, awlIncrement: false })
  })

  it('never lets a tuple pass before the delay, whatever the clock does', () => {
    for (let first = 0; first < 2000; first += 97) {
      for (let now = first - 500; now < first + TIMING.delayMs; now += 101) {
        const stored = { tuple: { firstSeen: first, passedAt: null }, awlCount: 2, started: 0 }
        assert.equal(decide(stored, now, TIMING).verdict.action, 'defer', `first=${first} now=${now}`)
      }
    }
  })
})
