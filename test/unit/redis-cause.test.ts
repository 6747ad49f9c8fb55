// How a Redis connection failure is named in the log (adapters/redis-client.ts causeOf): the
// errors node and node-redis give, as the plugin meets them.
import assert from 'node:assert/strict'
import { causeOf, causeText } from '../../plugins/smart-greylist/adapters/redis-client'

describe('Redis failure causes', () => {
  const err = (message: string, fields: Record<string, string> = {}): Error => Object.assign(new Error(message), fields)

  it('names refused, timed out, silent and closed connections; anything else is failed', () => {
    assert.equal(causeOf(err('connect ECONNREFUSED 127.0.0.1:6379', { code: 'ECONNREFUSED' })), 'refused')
    assert.equal(causeOf(err('Connection timeout', { name: 'ConnectionTimeoutError' })), 'timed out')
    assert.equal(causeOf(err('connect ETIMEDOUT 10.0.0.1:6379', { code: 'ETIMEDOUT' })), 'timed out')
    assert.equal(causeOf(err('accepted the connection but did not answer within 2000 ms', { name: 'RedisSilentError' })), 'silent')
    assert.equal(causeOf(err('Socket closed unexpectedly')), 'closed')
    assert.equal(causeOf(err('read ECONNRESET', { code: 'ECONNRESET' })), 'closed')
    assert.equal(causeOf(err('WRONGPASS invalid username-password pair')), 'failed')
    assert.equal(causeOf('not an error'), 'failed')
  })

  it('reads the cause first, then what node said', () => {
    assert.equal(causeText('refused', 'connect ECONNREFUSED 127.0.0.1:6379'), 'connection refused: connect ECONNREFUSED 127.0.0.1:6379')
    assert.equal(causeText('silent', ''), 'connected but silent')
  })
})
