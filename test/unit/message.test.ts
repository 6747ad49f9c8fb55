// The message as the key of a weak identity's deferral: what names it, what the record is asked.
import assert from 'node:assert/strict'
import { isPostponed, messagePlan, messageRecord, provenTiming, type PostponedRecipient } from '../../plugins/smart-greylist/core/message'
import { messageDigest, messageKeys } from '../../plugins/smart-greylist/core/keys'
import { parseSettings } from '../../plugins/smart-greylist/core/settings'
import type { TupleStatus } from '../../plugins/smart-greylist/core/decision'

const config = parseSettings({ main: { delay: '300', net_identity_greylist: 'message' } }).config
const identity = { kind: 'net', value: '85.214.1.0/24', reason: 'spf_none,no_rdns,no_pool' } as const

function postponed(status: TupleStatus, delayMs = 300_000): PostponedRecipient {
  return {
    kind: 'tuple',
    identity,
    verdict: { action: 'defer', status, waitedMs: 0, retryInMs: delayMs },
    wouldTrust: false,
    evidence: { fcrdns: null, spf: null, dnsbl: { source: 'none', listed: [] } },
    shadow: false,
    postponed: { shard: 1, key: 'k', startedKey: 's', identity, sender: 'a@x.example', recipient: 'b@example.com', delayMs },
  }
}
const facts = { sender: 'A@X.example', recipients: ['c@example.com', 'B@example.com'], messageId: '<id@x.example>\n', bodyDigest: 'abc' }

describe('messageDigest', () => {
  it('is the same for the same message whatever the order of recipients or the spelling of the addresses', () => {
    const a = messagePlan([postponed('new')], facts, config).digest
    const b = messagePlan(
      [postponed('new')],
      { ...facts, sender: 'a@x.example', recipients: ['b@example.com', 'C@example.com'], messageId: '<id@x.example>' },
      config,
    ).digest
    assert.equal(a, b)
  })
  it('differs when the body, the Message-ID, the sender or a recipient differs', () => {
    const base = messageDigest('a@x', ['b@y'], 'id', 'body')
    for (const other of [
      messageDigest('a@x', ['b@y'], 'id', 'body2'),
      messageDigest('a@x', ['b@y'], 'id2', 'body'),
      messageDigest('z@x', ['b@y'], 'id', 'body'),
      messageDigest('a@x', ['b@y', 'c@y'], 'id', 'body'),
    ]) {
      assert.notEqual(other, base)
    }
  })
})

describe('messagePlan', () => {
  it("asks the message's own record (no identity counter) with the strictest delay", () => {
    const plan = messagePlan([postponed('new', 60_000), postponed('early', 300_000)], facts, config)
    assert.equal(plan.ref.key, messageKeys('sgl:', plan.digest).key)
    assert.equal(plan.ref.startedKey, '')
    assert.equal(plan.timing.delayMs, 300_000)
    assert.equal(plan.timing.pendingCap, Number.MAX_SAFE_INTEGER)
  })
  it('makes no record for a message that started no new tuple (every tuple early)', () => {
    assert.equal(messagePlan([postponed('early'), postponed('capped')], facts, config).timing.pendingCap, 0)
    assert.equal(messagePlan([postponed('early'), postponed('expired')], facts, config).timing.pendingCap, Number.MAX_SAFE_INTEGER)
  })
  it('lets a proven tuple pass at once', () => {
    assert.equal(provenTiming(messagePlan([postponed('new')], facts, config).timing).delayMs, 0)
  })
})

describe('messageRecord and isPostponed', () => {
  it('says the message, its state, identity and timing in one line', () => {
    const r = messageRecord(
      { verdict: { action: 'defer', status: 'new', waitedMs: 0, retryInMs: 300_000 }, digest: 'f'.repeat(64), identity, recipients: 2 },
      'a@x.example',
    )
    assert.equal(
      r.line,
      `message defer reason=new message=${'f'.repeat(16)} identity=net:85.214.1.0/24 from=<a@x.example> recipients=2 waited=0s retry_in=300s`,
    )
    assert.deepEqual(r.result, { fail: 'greylisted:message_new', identity: 'net:85.214.1.0/24', message: 'f'.repeat(16) })
  })
  it('tells a postponed recipient from others', () => {
    assert.equal(isPostponed(postponed('new')), true)
    const { postponed: _p, ...plain } = postponed('new')
    assert.equal(isPostponed(plain), false)
    assert.equal(isPostponed({ kind: 'skip', reason: 'relaying' }), false)
  })
})
