import assert from 'node:assert/strict'
import { parseSpfRecord, permissiveWhy } from '../../plugins/smart-greylist/core/spf-record'
import { VOUCH_BREADTH } from '../../plugins/smart-greylist/core/sender-names'

const B = { widestIpv4: 16, widestIpv6: 32 }
const why = (...records: string[]): string | null => permissiveWhy(records.map(parseSpfRecord), B)

describe('permissiveWhy (what an SPF record authorises)', () => {
  const cases: [string, string[], RegExp | null][] = [
    ['a strict record', ['v=spf1 ip4:185.250.236.0/22 ip6:2a01:4f8::/48 -all'], null],
    ['+all behind negative probes (0.3.0 judged it strict)', ['v=spf1 -ip4:192.0.2.1 -ip6:2001:db8::1 +all'], /^pass_all$/],
    ['a bare all', ['v=spf1 ip4:185.250.236.0/22 all'], /^pass_all$/],
    ['?all and ~all are not passes', ['v=spf1 ip4:185.250.236.0/22 ?all'], null],
    ['broad ranges that skip the probes', ['v=spf1 ip4:0.0.0.0/2 ip4:64.0.0.0/3 -all'], /^wide_ipv4/],
    ['ranges that add up past a /16', ['v=spf1 ip4:54.240.0.0/17 ip4:69.169.0.0/17 ip4:23.249.0.0/24 -all'], /^wide_ipv4/],
    ['a wide IPv6 range', ['v=spf1 ip6:2000::/8 -all'], /^wide_ipv6/],
    ['a wide a/8 network', ['v=spf1 a/8 -all'], /^wide_ipv4/],
    ['a client-address macro in exists:', ['v=spf1 exists:%{i}.bots.example -all'], /^client_macro exists:%\{i\}/],
    ['a HELO macro in a:', ['v=spf1 a:%{h} -all'], /^client_macro/],
    ['an included +all', ['v=spf1 include:spf.example -all', 'v=spf1 +all'], /^pass_all$/],
    ['a negated client macro does not authorise', ['v=spf1 -exists:%{i}.block.example ip4:185.250.236.0/22 -all'], null],
  ]
  for (const [what, records, expected] of cases) {
    it(`${expected ? 'permissive' : 'bounded'}: ${what}`, () => {
      const got = why(...records)
      if (expected) assert.match(got ?? 'null', expected)
      else assert.equal(got, null)
    })
  }
})

describe('permissiveWhy at the breadth that vouches for rDNS names', () => {
  const vouch = (...records: string[]): string | null => permissiveWhy(records.map(parseSpfRecord), VOUCH_BREADTH)
  it("refuses a pass-qualified ptr, its own or an include's: it would vouch for every name the ISP gives", () => {
    assert.match(vouch('v=spf1 a mx ptr ~all') ?? 'null', /^ptr ptr$/)
    assert.match(vouch('v=spf1 include:spf.isp.example ?all', 'v=spf1 +ptr:isp.example -all') ?? 'null', /^ptr \+ptr:isp\.example$/)
    assert.equal(vouch('v=spf1 -ptr ip4:40.107.0.0/16 -all'), null, 'a ptr that fails authorises nothing')
    assert.equal(why('v=spf1 a mx ptr ~all'), null, "a sender's own record may still use ptr")
  })
  it('takes what Exchange Online sends from (2^19 addresses), not an access network /8', () => {
    assert.equal(vouch('v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip4:52.100.0.0/14 ip4:104.47.0.0/17 -all'), null)
    assert.match(vouch('v=spf1 ip4:101.0.0.0/8 -all') ?? 'null', /^wide_ipv4/)
  })
})
