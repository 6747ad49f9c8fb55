import assert from 'node:assert/strict'
import { watchResult, type RecipientDecision } from '../../plugins/smart-greylist/core/recipient'
import { DEFAULTS } from '../../plugins/smart-greylist/core/settings'
import type { Verdict } from '../../plugins/smart-greylist/core/decision'

const identity = { kind: 'net', value: '2.58.10.0/24', reason: 'no_rdns' } as const
const evidence = { fcrdns: null, spf: null, dnsbl: { source: 'none', listed: [] } } as const
const verdict = (action: Verdict['action'], status: Verdict['status']): Verdict => ({ action, status, waitedMs: 0, retryInMs: 0 })
const tuple = (v: Verdict, over: Partial<Extract<RecipientDecision, { kind: 'tuple' }>> = {}): RecipientDecision => ({
  kind: 'tuple',
  identity,
  verdict: v,
  wouldTrust: false,
  evidence,
  shadow: false,
  ...over,
})

// haraka-plugin-watch colours an unknown plugin's cell by its result: pass green, fail red, err
// yellow, anything else grey.
describe('watchResult', () => {
  const cases: [string, RecipientDecision, Record<string, string>][] = [
    ['a deferral fails', tuple(verdict('defer', 'new')), { fail: 'greylisted:new' }],
    ['an accepted retry passes', tuple(verdict('pass', 'retry')), { pass: 'greylist:retry' }],
    ['an auto-whitelisted pair passes', tuple(verdict('pass', 'awl')), { pass: 'greylist:awl' }],
    ['a whitelist entry passes', { kind: 'whitelist', what: 'host', entry: 'host:*.example.com', origin: 'w:1' }, { pass: 'whitelist:host' }],
    ['shadow mode accepted it: neither', tuple(verdict('defer', 'new'), { shadow: true }), { skip: 'shadow' }],
    ['a skip is grey', { kind: 'skip', reason: 'private_ip' }, { skip: 'private_ip' }],
    ['a trusted first contact is grey', { kind: 'trusted', identity, verdict: verdict('defer', 'new'), evidence }, { skip: 'trusted' }],
    ['a failure is yellow', { kind: 'failed', identity, cause: 'redis_timeout', message: 'x', shadow: false }, { err: 'redis_timeout' }],
  ]
  for (const [name, d, expected] of cases) {
    it(name, () => {
      assert.deepEqual(watchResult(d, DEFAULTS, 'the line'), { ...expected, human_html: 'the line' })
    })
  }
})
