import assert from 'node:assert/strict'
import tlds from 'haraka-tld'
import { awlEligible, nameEmbedsIp, poolDomain, resolveIdentity, type IdentityInputs, type RdnsFacts } from '../../plugins/smart-greylist/core/identity'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import { ProviderIndex, type Provider } from '../../plugins/smart-greylist/core/providers'
import type { SpfFacts } from '../../plugins/smart-greylist/core/identity'

const org = (n: string): string | null => tlds.get_organizational_domain(n)
const settings = { spf: true, rdns: true, pools: true, ipv4_prefix: 24, ipv6_prefix: 64 }
const ip = parseIp('40.107.22.92')!
const ok = (...names: [string, boolean][]): RdnsFacts => ({ status: 'ok', names: names.map(([name, confirmed]) => ({ name, confirmed })) })
const EOP = 'mail-eopbgr220092.outbound.protection.outlook.com'
const microsoft: Provider = {
  id: 'microsoft',
  name: 'Microsoft',
  source: '',
  spf: [],
  action: 'group',
  hosts: [],
  ips: ['40.107.0.0/16'],
  updated: null,
  origin: 'p:1',
  declared: new Set(),
}
const pools = new ProviderIndex([microsoft])
const noSpf: SpfFacts = { domain: 'contoso.com', result: 'none' }
const input = (over: Partial<IdentityInputs> = {}): IdentityInputs => ({ ip, spf: noSpf, rdns: { status: 'none' }, pool: undefined, ...over })

before(() => tlds.ready)

describe('poolDomain', () => {
  const cases: [string, string | null][] = [
    [EOP, 'outbound.protection.outlook.com'],
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
  it('SPF: a pass makes the domain the identity, whatever the address', () => {
    const id = resolveIdentity(input({ spf: { domain: 'contoso.com', result: 'pass', permissive: false }, rdns: ok([EOP, true]) }), settings, org)
    assert.deepEqual(id, { kind: 'spf', value: 'contoso.com', reason: 'spf_pass' })
  })
  it('SPF: a permissive record is passed over', () => {
    const id = resolveIdentity(input({ spf: { domain: 'spam.example', result: 'pass', permissive: true } }), settings, org)
    assert.deepEqual(id, { kind: 'net', value: '40.107.22.0/24', reason: 'spf_permissive,no_rdns,no_pool' })
  })
  it('FCrDNS: the parent domain of a forward-confirmed name, digits and all', () => {
    const id = resolveIdentity(input({ rdns: ok([EOP, true]), pool: pools.lookup(ip) }), settings, org)
    assert.deepEqual(id, { kind: 'host', value: 'outbound.protection.outlook.com', reason: 'fcrdns' })
  })
  it('pool: a client inside a provider range without usable rDNS', () => {
    const id = resolveIdentity(input({ rdns: ok([EOP, false]), pool: pools.lookup(ip) }), settings, org)
    assert.deepEqual(id, { kind: 'pool', value: 'microsoft', reason: 'pool_ip' })
  })
  it('net: the /24, with the reasons the other kinds did not apply', () => {
    assert.equal(resolveIdentity(input({ rdns: ok([EOP, false]) }), settings, org).reason, 'spf_none,not_confirmed,no_pool')
    assert.equal(
      resolveIdentity(input({ rdns: ok(['mail.example.com', true], ['mail.other.net', false]) }), settings, org).reason,
      'spf_none,ptr_disagree,no_pool',
    )
    assert.equal(resolveIdentity(input({ rdns: { status: 'error', error: 'ETIMEOUT' } }), settings, org).reason, 'spf_none,rdns_error,no_pool')
  })
  it('net: the /64 for IPv6 and the configured prefixes', () => {
    assert.equal(resolveIdentity(input({ ip: parseIp('2a01:111:f400:fe1e::5')! }), settings, org).value, '2a01:111:f400:fe1e::/64')
    assert.equal(resolveIdentity(input(), { ...settings, ipv4_prefix: 16 }, org).value, '40.107.0.0/16')
  })
  it('honours each kind being switched off', () => {
    const all = input({ spf: { domain: 'contoso.com', result: 'pass', permissive: false }, rdns: ok([EOP, true]), pool: pools.lookup(ip) })
    const off = { spf: false, rdns: false, pools: false, ipv4_prefix: 24, ipv6_prefix: 64 }
    assert.deepEqual(resolveIdentity(all, off, org), { kind: 'net', value: '40.107.22.0/24', reason: 'spf_off,rdns_off,pools_off' })
  })
})

describe('nameEmbedsIp', () => {
  const cases: [string, string, boolean][] = [
    [EOP, '40.107.22.92', true],
    ['a8-12.smtp-out.us-west-2.amazonses.com', '54.240.8.12', true],
    ['85-214-132-10.dyn.example.net', '85.214.132.10', true],
    ['mail-wm1-f41.google.com', '209.85.128.41', false],
    ['mx1.example.org', '85.214.132.10', false],
    ['smtp.example.org', '85.214.1.2', false],
  ]
  for (const [name, addr, expected] of cases) it(`${name} for ${addr}: ${expected}`, () => assert.equal(nameEmbedsIp(name, parseIp(addr)!), expected))
})

describe('awlEligible', () => {
  it('never for the null sender', () => {
    assert.equal(awlEligible({ kind: 'spf', value: 'x.example', reason: '' }, null, { status: 'none' }, ip), false)
  })
  it('for SPF, pool and subnet identities', () => {
    for (const kind of ['spf', 'pool', 'net'] as const) assert.equal(awlEligible({ kind, value: 'v', reason: '' }, 'contoso.com', { status: 'none' }, ip), true)
  })
  it('for an rDNS domain only when its names do not spell client addresses (not a residential pool)', () => {
    const host = { kind: 'host' as const, value: 'example.org', reason: 'fcrdns' }
    assert.equal(awlEligible(host, 'contoso.com', ok(['mx1.example.org', true]), parseIp('85.214.132.10')!), true)
    assert.equal(awlEligible(host, 'contoso.com', ok(['85-214-132-10.dyn.example.org', true]), parseIp('85.214.132.10')!), false)
  })
})
