import assert from 'node:assert/strict'
import { CidrSet, parseCidr, parseIp, subnetOf } from '../../plugins/smart-greylist/core/ip'

describe('parseIp', () => {
  it('folds IPv4-mapped IPv6 to IPv4', () => {
    assert.equal(parseIp('::ffff:40.107.22.92')?.toString(), '40.107.22.92')
    assert.equal(parseIp('::ffff:40.107.22.92')?.kind(), 'ipv4')
  })
  it('returns null for anything that is not an address', () => {
    for (const bad of ['', 'mail.example.com', '1.2.3', '1.2.3.4.5', '::g']) assert.equal(parseIp(bad), null, bad)
  })
})

describe('subnetOf', () => {
  it('gives the /24 of an IPv4 and the /64 of an IPv6 address', () => {
    assert.equal(subnetOf(parseIp('40.107.22.92')!, 24), '40.107.22.0/24')
    assert.equal(subnetOf(parseIp('2a01:111:f400:fe1e::5')!, 64), '2a01:111:f400:fe1e::/64')
    assert.equal(subnetOf(parseIp('52.100.133.7')!, 14), '52.100.0.0/14')
  })
})

describe('CidrSet', () => {
  const set = new CidrSet<string>()
  for (const c of ['40.107.0.0/16', '52.100.0.0/14', '104.47.0.0/17', '2a01:111:f400::/48', '198.51.100.7', '::ffff:10.0.0.0/104']) {
    const p = parseCidr(c)!
    set.add(p.ip, p.prefix, c)
  }
  const cases: [string, string | undefined][] = [
    ['40.107.22.92', '40.107.0.0/16'],
    ['52.103.255.1', '52.100.0.0/14'],
    ['52.104.0.1', undefined],
    ['104.47.127.255', '104.47.0.0/17'],
    ['104.47.128.0', undefined],
    ['2a01:111:f400:fe1e::5', '2a01:111:f400::/48'],
    ['2a01:111:f401::1', undefined],
    ['::ffff:40.107.1.1', '40.107.0.0/16'],
    ['198.51.100.7', '198.51.100.7'],
    ['10.200.1.1', '::ffff:10.0.0.0/104'],
  ]
  for (const [ip, expected] of cases) {
    it(`${expected ? 'finds' : 'does not find'} ${ip}`, () => assert.equal(set.lookup(parseIp(ip)!), expected))
  }
  it('reports the most specific range', () => {
    const s = new CidrSet<string>()
    s.add(parseIp('40.0.0.0')!, 8, 'wide')
    s.add(parseIp('40.107.0.0')!, 16, 'narrow')
    assert.equal(s.lookup(parseIp('40.107.1.1')!), 'narrow')
  })
  it('handles the ends of IPv4: /0, /32 and addresses with the top bit set', () => {
    const s = new CidrSet<string>()
    s.add(parseIp('240.0.0.0')!, 4, 'class E')
    s.add(parseIp('255.255.255.255')!, 32, 'broadcast')
    assert.equal(s.lookup(parseIp('255.255.255.255')!), 'broadcast')
    assert.equal(s.lookup(parseIp('255.255.255.254')!), 'class E')
    assert.equal(s.lookup(parseIp('239.255.255.255')!), undefined)
    s.add(parseIp('0.0.0.0')!, 0, 'all')
    assert.equal(s.lookup(parseIp('1.2.3.4')!), 'all')
    assert.equal(CidrSet.isNetworkAddress(parseIp('128.0.0.0')!, 1), true)
    assert.equal(CidrSet.isNetworkAddress(parseIp('192.0.0.1')!, 1), false)
  })
  it('refuses malformed ranges', () => {
    for (const bad of ['40.107.0.0/33', '40.107.0.0/a', '1.2.3.4/8/9', 'example.com/24', '2a01::/129']) assert.equal(parseCidr(bad), null, bad)
  })
})
