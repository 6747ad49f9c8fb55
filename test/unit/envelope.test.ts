import assert from 'node:assert/strict'
import { domainOf, normaliseAddress, NULL_SENDER } from '../../plugins/smart-greylist/core/envelope'
import { digest, tupleKey } from '../../plugins/smart-greylist/core/keys'

describe('normaliseAddress', () => {
  it('lower-cases the address and drops a trailing dot of the domain', () => {
    assert.equal(normaliseAddress('Alice@Example.ORG.'), 'alice@example.org')
  })
  it('spells the null sender "<>"', () => {
    assert.equal(normaliseAddress(''), NULL_SENDER)
    assert.equal(normaliseAddress('<>'), NULL_SENDER)
    assert.equal(normaliseAddress(null), NULL_SENDER)
  })
  it('finds the domain', () => {
    assert.equal(domainOf('alice@example.org'), 'example.org')
    assert.equal(domainOf(NULL_SENDER), null)
  })
})

describe('tupleKey', () => {
  it('holds the prefix and a fixed-length digest, never the input', () => {
    const hostile = 'x'.repeat(5000) + '\r\n*:{}'
    const key = tupleKey('sgl:', 'host:outbound.protection.outlook.com', hostile, 'bob@example.com')
    assert.match(key, /^sgl:\{\d{1,3}\}t:[A-Za-z0-9_-]{22}$/)
    assert.ok(!key.includes('outbound'))
  })
  it('keeps fields apart: moving text from one field to the next gives another key', () => {
    assert.notEqual(digest('ab', 'c'), digest('a', 'bc'))
  })
})
