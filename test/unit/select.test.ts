import assert from 'node:assert/strict'
import type { RdnsFacts, SpfFacts } from '../../plugins/smart-greylist/core/identity'
import { evidenceOf, evidenceText, isListingAnswer, isTrusted, senderAuthenticated, zoneList } from '../../plugins/smart-greylist/core/select'

const rdns = (name: string, confirmed = true): RdnsFacts => ({ status: 'ok', names: [{ name, confirmed }] })
const pass = (domain: string, permissive = false): SpfFacts => ({ domain, result: 'pass', permissive })
const clean = { source: 'dns-list' as const, listed: [] }

describe('selective greylisting: evidence', () => {
  it("trusts a confirmed name with a trusted SPF pass for the sender's own domain and no listing", () => {
    const e = evidenceOf(rdns('mx1.partner.example'), pass('partner.example'), 'partner.example', clean)
    assert.equal(isTrusted(e), true)
    assert.equal(evidenceText(e), 'fcrdns:mx1.partner.example,spf:partner.example,dnsbl:clean(dns-list)')
  })

  it('does not trust what lacks any one part', () => {
    const cases: [string, ReturnType<typeof evidenceOf>][] = [
      ['no confirmed name', evidenceOf(rdns('mx1.partner.example', false), pass('partner.example'), 'partner.example', clean)],
      ['no rDNS', evidenceOf({ status: 'none' }, pass('partner.example'), 'partner.example', clean)],
      ['a permissive record (+all)', evidenceOf(rdns('mx1.partner.example'), pass('partner.example', true), 'partner.example', clean)],
      ['a pass for another domain (HELO)', evidenceOf(rdns('mx1.partner.example'), pass('other.example'), 'partner.example', clean)],
      ['softfail', evidenceOf(rdns('mx1.partner.example'), { domain: 'partner.example', result: 'softfail' }, 'partner.example', clean)],
      ['the null sender', evidenceOf(rdns('mx1.partner.example'), pass('partner.example'), null, clean)],
      ['listed', evidenceOf(rdns('mx1.partner.example'), pass('partner.example'), 'partner.example', { source: 'dns-list', listed: ['bl.test'] })],
      [
        'a DNSBL that did not answer',
        evidenceOf(rdns('mx1.partner.example'), pass('partner.example'), 'partner.example', { source: 'own', listed: [], failed: ['bl.test'] }),
      ],
    ]
    for (const [why, e] of cases) assert.equal(isTrusted(e), false, why)
    assert.match(evidenceText(cases[6][1]), /dnsbl:listed:bl\.test$/)
    assert.match(evidenceText(cases[7][1]), /dnsbl:unanswered:bl\.test$/)
  })

  it('authenticates a sender domain by trusted SPF or by a confirmed name inside it, not by a look-alike', () => {
    const none = { status: 'none' } as const
    const bySpf = evidenceOf(none, pass('partner.example'), 'partner.example', clean)
    assert.equal(senderAuthenticated(bySpf, none, 'partner.example'), true)
    const noSpf = evidenceOf(rdns('mx1.partner.example'), { domain: 'partner.example', result: 'none' }, 'partner.example', clean)
    assert.equal(senderAuthenticated(noSpf, rdns('mx1.partner.example'), 'partner.example'), true)
    assert.equal(senderAuthenticated(noSpf, rdns('mx1.evilpartner.example'), 'partner.example'), false)
    assert.equal(senderAuthenticated(noSpf, rdns('mx1.partner.example', false), 'partner.example'), false)
    assert.equal(senderAuthenticated(noSpf, rdns('mx1.partner.example'), null), false)
  })

  it('reads DNSBL answers and zone lists', () => {
    assert.equal(isListingAnswer('127.0.0.2'), true)
    assert.equal(isListingAnswer('127.0.1.4'), true)
    assert.equal(isListingAnswer('127.255.255.254'), false, "a zone's error code is not a listing")
    assert.equal(isListingAnswer('192.0.2.1'), false)
    assert.deepEqual(zoneList('zen.spamhaus.org, bl.spamcop.net  Psbl.surriel.com'), ['zen.spamhaus.org', 'bl.spamcop.net', 'psbl.surriel.com'])
  })
})
