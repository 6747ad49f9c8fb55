import assert from 'node:assert/strict'
import tlds from 'haraka-tld'
import { poolDomain, resolveIdentity, type RdnsFacts } from '../plugins/smart-greylist/identity'
import { parseIp } from '../plugins/smart-greylist/ip'

const org = (n: string): string | null => tlds.get_organizational_domain(n)
const settings = { rdns: true, ipv4_prefix: 24, ipv6_prefix: 64 }

describe('poolDomain', () => {
  before(() => tlds.ready)
  const cases: [string, string | null][] = [
    ['mail-eopbgr220092.outbound.protection.outlook.com', 'outbound.protection.outlook.com'],
    ['a8-12.smtp-out.us-west-2.amazonses.com', 'smtp-out.us-west-2.amazonses.com'],
    ['mail-wm1-f41.google.com', 'google.com'],
    ['mx.example.co.uk', 'example.co.uk'],
    ['example.co.uk', 'example.co.uk'], // the registered domain itself: kept whole
    ['host.invalid-tld-zzz', null],
  ]
  for (const [name, expected] of cases) {
    it(`${name} -> ${expected}`, () => assert.equal(poolDomain(name, org), expected))
  }
})

describe('resolveIdentity', () => {
  before(() => tlds.ready)
  const ip = parseIp('40.107.22.92')!
  const ok = (...names: [string, boolean][]): RdnsFacts => ({ status: 'ok', names: names.map(([name, confirmed]) => ({ name, confirmed })) })

  it('uses the parent domain of a forward-confirmed name, digits and all', () => {
    const id = resolveIdentity(ip, ok(['mail-eopbgr220092.outbound.protection.outlook.com', true]), settings, org)
    assert.deepEqual(id, { kind: 'host', value: 'outbound.protection.outlook.com', reason: 'fcrdns' })
  })
  it('falls back to the /24 when the name is not confirmed', () => {
    const id = resolveIdentity(ip, ok(['mail-eopbgr220092.outbound.protection.outlook.com', false]), settings, org)
    assert.deepEqual(id, { kind: 'net', value: '40.107.22.0/24', reason: 'not_confirmed' })
  })
  it('falls back to the /24 when PTR names disagree on the domain', () => {
    const id = resolveIdentity(ip, ok(['mail.example.com', true], ['mail.other.net', false]), settings, org)
    assert.equal(id.kind, 'net')
    assert.equal(id.reason, 'ptr_disagree')
  })
  it('falls back when there is no PTR, or when DNS failed', () => {
    assert.equal(resolveIdentity(ip, { status: 'none' }, settings, org).reason, 'no_rdns')
    assert.equal(resolveIdentity(ip, { status: 'error', error: 'ETIMEOUT' }, settings, org).reason, 'rdns_error')
  })
  it('uses the /64 for IPv6 and honours the configured prefixes', () => {
    assert.equal(resolveIdentity(parseIp('2a01:111:f400:fe1e::5')!, { status: 'none' }, settings, org).value, '2a01:111:f400:fe1e::/64')
    assert.equal(resolveIdentity(ip, { status: 'none' }, { ...settings, ipv4_prefix: 16 }, org).value, '40.107.0.0/16')
  })
  it('ignores rDNS when identity.rdns is off', () => {
    const id = resolveIdentity(ip, ok(['mail-eopbgr220092.outbound.protection.outlook.com', true]), { ...settings, rdns: false }, org)
    assert.deepEqual(id, { kind: 'net', value: '40.107.22.0/24', reason: 'rdns_off' })
  })
})
