import assert from 'node:assert/strict'
import { ConfigError, DEFAULTS, parseConfig } from '../plugins/smart-greylist/config'

describe('parseConfig', () => {
  it('returns the defaults for an empty file', () => {
    assert.deepEqual(parseConfig({}), DEFAULTS)
    assert.deepEqual(parseConfig(undefined), DEFAULTS)
  })

  it('reads numbers, booleans and choices as haraka-config hands them over (strings or typed)', () => {
    const c = parseConfig({
      main: { delay: '60', retry_window: 7200, defer_at: 'DATA', on_error: 'defer' },
      skip: { private: false },
      whitelist: { providers: 'no' },
      identity: { ipv4_prefix: '20' },
      redis: { prefix: 'mx1:', timeout_ms: '250' },
    })
    assert.equal(c.main.delay, 60)
    assert.equal(c.main.retry_window, 7200)
    assert.equal(c.main.defer_at, 'data')
    assert.equal(c.main.on_error, 'defer')
    assert.equal(c.skip.private, false)
    assert.equal(c.whitelist.providers, false)
    assert.equal(c.identity.ipv4_prefix, 20)
    assert.equal(c.redis.prefix, 'mx1:')
    assert.equal(c.redis.timeout_ms, 250)
  })

  it('returns a frozen object', () => {
    const c = parseConfig({})
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.main))
  })

  const bad: [string, Record<string, Record<string, unknown>>, RegExp][] = [
    ['a negative delay', { main: { delay: '-5' } }, /\[main\] delay = -5/],
    ['a window shorter than the delay', { main: { delay: 600, retry_window: 300 } }, /retry_window .* longer than delay/],
    ['an unknown defer_at', { main: { defer_at: 'helo' } }, /defer_at = helo: expected one of rcpt, data/],
    ['a prefix with spaces', { redis: { prefix: 'a b' } }, /\[redis\] prefix/],
    ['a reply text with control characters', { main: { text: 'x\r\n250 ok' } }, /\[main\] text/],
    ['a fractional prefix length', { identity: { ipv4_prefix: '24.5' } }, /ipv4_prefix must be a whole number/],
    ['a boolean that is not one', { skip: { private: 'maybe' } }, /private = maybe: expected true or false/],
  ]
  for (const [what, raw, message] of bad) {
    it(`refuses ${what} with a message naming the key`, () => {
      assert.throws(() => parseConfig(raw), (err: unknown) => err instanceof ConfigError && message.test(err.message))
    })
  }
})
