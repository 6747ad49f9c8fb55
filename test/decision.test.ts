import assert from 'node:assert/strict'
import { decide, type TupleState } from '../plugins/smart-greylist/decision'
import { DECISION_CASES, TIMING } from './helpers/decision-cases'

describe('decide', () => {
  for (const c of DECISION_CASES) {
    it(`${c.outcome.toUpperCase()}: ${c.name}`, () => {
      const { verdict, write } = decide(c.state, c.now, TIMING)
      assert.equal(verdict.action, c.action)
      assert.equal(verdict.outcome, c.outcome)
      assert.equal(verdict.waitedMs, c.waitedMs)
      assert.equal(verdict.retryInMs, c.retryInMs)
      assert.equal(write.op, c.write)
    })
  }

  it('never lets a tuple pass before the delay, whatever the clock does', () => {
    for (let first = 0; first < 2000; first += 97) {
      for (let now = first - 500; now < first + TIMING.delayMs; now += 101) {
        const state: TupleState = { firstSeen: first, passedAt: null }
        assert.equal(decide(state, now, TIMING).verdict.action, 'defer', `first=${first} now=${now}`)
      }
    }
  })
})
