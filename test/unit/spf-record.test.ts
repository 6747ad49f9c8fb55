import assert from 'node:assert/strict'
import { parseSpfRecord, permissiveWhy } from '../../plugins/smart-greylist/core/spf-record'

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
