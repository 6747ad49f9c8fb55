import assert from 'node:assert/strict'
import tlds from 'haraka-tld'
import {
  awlEligible,
  hostCandidate,
  poolDomain,
  resolveIdentity,
  type HostFacts,
  type IdentityInputs,
  type RdnsFacts,
} from '../../plugins/smart-greylist/core/identity'
import { nameEmbedsIp, nameKind, vouchingDomains } from '../../plugins/smart-greylist/core/sender-names'
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
const input = (over: Partial<IdentityInputs> = {}): IdentityInputs => ({ ip, spf: noSpf, host: { why: 'no_rdns' }, pool: undefined, ...over })
const EOP_HOST: HostFacts = { domain: 'outbound.protection.outlook.com', reason: 'fcrdns_spf' }

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
    const id = resolveIdentity(input({ spf: { domain: 'contoso.com', result: 'pass', permissive: false }, host: EOP_HOST }), settings)
    assert.deepEqual(id, { kind: 'spf', value: 'contoso.com', reason: 'spf_pass' })
  })
  it('SPF: a permissive record is passed over', () => {
    const id = resolveIdentity(input({ spf: { domain: 'spam.example', result: 'pass', permissive: true } }), settings)
    assert.deepEqual(id, { kind: 'net', value: '40.107.22.0/24', reason: 'spf_permissive,no_rdns,no_pool' })
  })
  it('rDNS: the domain the names give, with the reason they may group', () => {
    const id = resolveIdentity(input({ host: EOP_HOST, pool: pools.lookup(ip) }), settings)
    assert.deepEqual(id, { kind: 'host', value: 'outbound.protection.outlook.com', reason: 'fcrdns_spf' })
  })
  it('pool: a client inside a provider range without usable rDNS', () => {
    const id = resolveIdentity(input({ host: { why: 'not_confirmed' }, pool: pools.lookup(ip) }), settings)
    assert.deepEqual(id, { kind: 'pool', value: 'microsoft', reason: 'pool_ip' })
  })
  it('net: the /24, with the reasons the other kinds did not apply', () => {
    assert.equal(resolveIdentity(input({ host: { why: 'rdns_end_user' } }), settings).reason, 'spf_none,rdns_end_user,no_pool')
  })
  it('net: the /64 for IPv6 and the configured prefixes', () => {
    assert.equal(resolveIdentity(input({ ip: parseIp('2a01:111:f400:fe1e::5')! }), settings).value, '2a01:111:f400:fe1e::/64')
    assert.equal(resolveIdentity(input(), { ...settings, ipv4_prefix: 16 }).value, '40.107.0.0/16')
  })
  it('honours each kind being switched off', () => {
    const all = input({ spf: { domain: 'contoso.com', result: 'pass', permissive: false }, host: EOP_HOST, pool: pools.lookup(ip) })
    const off = { spf: false, rdns: false, pools: false, ipv4_prefix: 24, ipv6_prefix: 64 }
    assert.deepEqual(resolveIdentity(all, off), { kind: 'net', value: '40.107.22.0/24', reason: 'spf_off,rdns_off,pools_off' })
  })
})

describe('hostCandidate: an rDNS domain groups only what one sender operates', () => {
  const at = (addr: string, ...names: [string, boolean][]): ReturnType<typeof hostCandidate> => hostCandidate(ok(...names), parseIp(addr)!, org, false)
  it('why the names give no domain', () => {
    assert.deepEqual(at('40.107.22.92', [EOP, false]), { why: 'not_confirmed' })
    assert.deepEqual(at('85.214.132.10', ['mail.example.com', true], ['mail.other.net', false]), { why: 'ptr_disagree' })
    assert.deepEqual(hostCandidate({ status: 'error', error: 'ETIMEOUT' }, ip, org, false), { why: 'rdns_error' })
  })
  it('a name somebody chose groups as it is', () => {
    assert.deepEqual(at('198.51.100.7', ['mta12.esp-mailer.net', true]), { domain: 'esp-mailer.net', reason: 'fcrdns' })
    assert.deepEqual(at('209.85.221.41', ['mail-wr1-f41.google.com', true]), { domain: 'google.com', reason: 'fcrdns' })
  })
  it('a per-address name groups only once one of its domains vouches (organisational domain first)', () => {
    assert.deepEqual(at('40.107.22.92', [EOP, true]), {
      domain: 'outbound.protection.outlook.com',
      vouchers: ['outlook.com', 'protection.outlook.com', 'outbound.protection.outlook.com'],
    })
    assert.deepEqual(at('54.240.8.12', ['a8-12.smtp-out.us-west-2.amazonses.com', true]), {
      domain: 'smtp-out.us-west-2.amazonses.com',
      vouchers: ['amazonses.com', 'us-west-2.amazonses.com', 'smtp-out.us-west-2.amazonses.com'],
    })
  })
  it("an access network's generic names never group, whatever vouches", () => {
    assert.deepEqual(at('73.12.34.56', ['c-73-12-34-56.hsd1.ma.example-cable.net', true]), { why: 'rdns_end_user' })
    assert.deepEqual(at('85.1.2.3', ['dynamic-85-1-2-3.dsl.example-isp.de', true]), { why: 'rdns_end_user' })
  })
  it('a client a policy block list names as end-user space never groups, even with chosen names', () => {
    assert.deepEqual(hostCandidate(ok(['mta12.esp-mailer.net', true]), parseIp('198.51.100.7')!, org, true), { why: 'rdns_policy_listed' })
  })
})

describe('nameKind: the big senders and the access networks tried', () => {
  const cases: [string, string, ReturnType<typeof nameKind>][] = [
    // Senders: their own names, spelling the address or not.
    [EOP, '40.107.22.92', 'per_address'],
    ['mail-eopbgr1300105.outbound.protection.outlook.com', '40.107.130.105', 'per_address'],
    ['a8-12.smtp-out.us-west-2.amazonses.com', '54.240.8.12', 'per_address'],
    ['mail-wr1-f41.google.com', '209.85.221.41', 'named'],
    ['mail-yw1-x1130.google.com', '2607:f8b0:4864:20::1130', 'per_address'],
    ['mail131.suw121.mcdlv.net', '198.2.131.12', 'named'],
    ['o1678912x172.outbound-mail.sendgrid.net', '167.89.12.172', 'per_address'],
    ['mta12.esp-mailer.net', '198.51.100.7', 'named'],
    ['mx1.example.org', '85.214.132.10', 'named'],
    // Access networks: generic names, the words say whose line it is.
    ['c-73-12-34-56.hsd1.ma.example-cable.net', '73.12.34.56', 'end_user'],
    ['dynamic-85-1-2-3.dsl.example-isp.de', '85.1.2.3', 'end_user'],
    ['cpe-70-12-34-56.nc.res.rr.com', '70.12.34.56', 'end_user'],
    ['pool-71-105-12-34.nycmny.fios.verizon.net', '71.105.12.34', 'end_user'],
    ['p5dc3a1b2.dip0.t-ipconnect.de', '93.195.161.178', 'end_user'],
    ['ip-88-152-12-34.hsi03.unitymediagroup.de', '88.152.12.34', 'end_user'],
    ['static.56.34.12.88.clients.your-server.de', '88.12.34.56', 'end_user'],
    ['lfbn-idf1-1-234-56.w86-12.abo.wanadoo.fr', '86.12.234.56', 'end_user'],
    ['2a02-8108-1-2.dyn.example-cable.de', '2a02:8108::1:2', 'end_user'],
    ['syn-072-012-034-056.res.spectrum.com', '72.12.34.56', 'end_user'], // zero-padded octets
    ['dhcp-077-251-012-034.chello.nl', '77.251.12.34', 'end_user'],
    ['dslb-094-222-012-034.094.222.pools.vodafone-ip.de', '94.222.12.34', 'end_user'],
    ['88-123-34-56.subs.proxad.net', '88.123.34.56', 'end_user'],
    ['85-1-34-56.dclient.hispeed.ch', '85.1.34.56', 'end_user'],
    // End-user words without the address: its domain must vouch.
    ['cpe1c1b0d9e8f7a-cm1c1b0d9e8f70.cpe.net.cable.rogers.com', '99.230.1.2', 'per_address'],
    ['aczw236.neoplus.adsl.tpnet.pl', '83.24.1.236', 'per_address'],
    // Spelled, with nothing to tell: its domain must vouch.
    ['d54c2deb3.access.telenet.be', '84.194.222.179', 'per_address'], // the address in hex after a letter
    ['99-12-34-56.lightspeed.sndgca.sbcglobal.net', '99.12.34.56', 'per_address'],
    ['vmi123456.contaboserver.net', '185.2.3.4', 'per_address'],
  ]
  for (const [name, addr, kind] of cases) it(`${name} for ${addr}: ${kind}`, () => assert.equal(nameKind(name, parseIp(addr)!, org), kind))
  it('words of the organisational domain do not count (a sender may be called pool or cable)', () => {
    assert.equal(nameKind('85-1-2-3.out.dsl-mailer.com', parseIp('85.1.2.3')!, org), 'per_address')
  })
})

describe('vouchingDomains', () => {
  it('the organisational domain, then down to the parent, at most three', () => {
    assert.deepEqual(vouchingDomains('outbound.protection.outlook.com', org), ['outlook.com', 'protection.outlook.com', 'outbound.protection.outlook.com'])
    assert.deepEqual(vouchingDomains('a.b.c.example.com', org), ['example.com', 'c.example.com', 'b.c.example.com'])
    assert.deepEqual(vouchingDomains('google.com', org), ['google.com'])
    assert.deepEqual(vouchingDomains('host.invalid-tld-zzz', org), [])
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
