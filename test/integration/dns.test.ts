// Integration: FCrDNS lookups through Node's resolver against the loopback test DNS server.
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { promises as dnsp } from 'node:dns'
import { dnsblFromDnsListResults, lookupDnsbl, lookupRdns, rdnsFromFcrdnsResults } from '../../plugins/smart-greylist/adapters/dns'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import { DnsServer } from '../../scripts/harness/dns-server'

function resolverFor(port: number, timeoutMs = 500): dnsp.Resolver {
  const r = new dnsp.Resolver({ timeout: timeoutMs, tries: 1 })
  r.setServers([`127.0.0.1:${port}`])
  return r
}

describe('lookupRdns', () => {
  let dns: DnsServer
  before(async () => {
    dns = await DnsServer.start({
      ptr: {
        '40.107.22.92': ['mail-eopbgr220092.outbound.protection.outlook.com'],
        '91.198.174.33': ['liar.outbound.protection.outlook.com'],
        '2a01:111:f400:fe1e::5': ['mail-am6eur05on2005.outbound.protection.outlook.com'],
        '85.214.9.9': ['a.example.com', 'b.example.com', 'c.example.com'],
      },
      a: {
        'mail-eopbgr220092.outbound.protection.outlook.com': ['40.107.22.92'],
        'liar.outbound.protection.outlook.com': ['40.107.1.1'],
        'a.example.com': ['85.214.9.9'],
        'b.example.com': ['85.214.9.9'],
        'c.example.com': ['85.214.9.9'],
      },
      aaaa: { 'mail-am6eur05on2005.outbound.protection.outlook.com': ['2a01:111:f400:fe1e::5'] },
    })
  })
  after(() => dns.close())
  const opts = { timeoutMs: 1000, maxNames: 5 }

  it('confirms a name that resolves back to the address', async () => {
    const r = await lookupRdns(parseIp('40.107.22.92')!, resolverFor(dns.port), opts)
    assert.deepEqual(r, { status: 'ok', names: [{ name: 'mail-eopbgr220092.outbound.protection.outlook.com', confirmed: true }] })
  })
  it('confirms IPv6 through AAAA', async () => {
    const r = await lookupRdns(parseIp('2a01:111:f400:fe1e::5')!, resolverFor(dns.port), opts)
    assert.equal(r.status === 'ok' && r.names[0].confirmed, true)
  })
  it('does not confirm a name that resolves elsewhere', async () => {
    const r = await lookupRdns(parseIp('91.198.174.33')!, resolverFor(dns.port), opts)
    assert.deepEqual(r, { status: 'ok', names: [{ name: 'liar.outbound.protection.outlook.com', confirmed: false }] })
  })
  it('answers "none" for an address without PTR', async () => {
    assert.deepEqual(await lookupRdns(parseIp('85.214.1.1')!, resolverFor(dns.port), opts), { status: 'none' })
  })
  it('checks at most max_names names', async () => {
    const r = await lookupRdns(parseIp('85.214.9.9')!, resolverFor(dns.port), { timeoutMs: 1000, maxNames: 2 })
    assert.equal(r.status === 'ok' && r.names.length, 2)
  })
  it('gives up within its bound when the server never answers', async () => {
    const silent = dgram.createSocket('udp4')
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve))
    const started = Date.now()
    const r = await lookupRdns(parseIp('40.107.22.92')!, resolverFor(silent.address().port, 5000), { timeoutMs: 300, maxNames: 5 })
    silent.close()
    assert.equal(r.status, 'error')
    // The bound (300 ms) gives up long before the resolver's own 5000 ms timeout would.
    assert.ok(Date.now() - started < 2500, `${Date.now() - started} ms`)
  })
})

describe('rdnsFromFcrdnsResults', () => {
  const ip = parseIp('40.107.22.92')!
  it('re-checks confirmation strictly: an address in the same /24 is not enough', () => {
    const r = rdnsFromFcrdnsResults(
      {
        ptr_names: ['mail-eopbgr220092.outbound.protection.outlook.com', 'other.example.com'],
        ptr_name_to_ip: { 'mail-eopbgr220092.outbound.protection.outlook.com': ['40.107.22.92'], 'other.example.com': ['40.107.22.93'] },
      },
      ip,
    )
    assert.deepEqual(r, {
      status: 'ok',
      names: [
        { name: 'mail-eopbgr220092.outbound.protection.outlook.com', confirmed: true },
        { name: 'other.example.com', confirmed: false },
      ],
    })
  })
  it('reads "no PTR" from a has_rdns failure, and nothing from an empty result', () => {
    assert.deepEqual(rdnsFromFcrdnsResults({ ptr_names: [], fail: ['has_rdns'] }, ip), { status: 'none' })
    assert.equal(rdnsFromFcrdnsResults({ ptr_names: [] }, ip), undefined)
    assert.equal(rdnsFromFcrdnsResults(undefined, ip), undefined)
  })
})

describe('lookupDnsbl ([select] zones, when the dns-list plugin did not run)', () => {
  let dns: DnsServer
  before(async () => {
    dns = await DnsServer.start({
      a: {
        '6.10.184.93.bl.test.example': ['127.0.0.2'],
        '6.10.184.93.refused.test.example': ['127.255.255.254'],
        '6.10.184.93.zen.spamhaus.org': ['127.0.0.4'],
        '7.10.184.93.zen.spamhaus.org': ['127.0.0.10'],
        '7.10.184.93.pbl.spamhaus.org': ['127.0.0.10'],
      },
    })
  })
  after(() => dns.close())
  const ip = (s: string) => parseIp(s)!

  it("names the zones that list a client, and not a zone's error code", async () => {
    const zones = ['bl.test.example', 'refused.test.example', 'clean.test.example']
    assert.deepEqual(await lookupDnsbl(ip('93.184.10.6'), zones, resolverFor(dns.port), 1000), {
      source: 'own',
      listed: ['bl.test.example'],
      failed: [],
      policy: [],
    })
    assert.deepEqual(await lookupDnsbl(ip('93.184.10.5'), zones, resolverFor(dns.port), 1000), { source: 'own', listed: [], failed: [], policy: [] })
  })

  it("names the zones whose answer says end-user space (Spamhaus PBL), not zen's spam sightings", async () => {
    const zones = ['zen.spamhaus.org', 'pbl.spamhaus.org']
    const exploited = await lookupDnsbl(ip('93.184.10.6'), zones, resolverFor(dns.port), 1000)
    assert.deepEqual(exploited, { source: 'own', listed: ['zen.spamhaus.org'], failed: [], policy: [] }, 'XBL (127.0.0.4) is a listing, not a policy one')
    const enduser = await lookupDnsbl(ip('93.184.10.7'), zones, resolverFor(dns.port), 1000)
    assert.deepEqual(enduser.policy, ['zen.spamhaus.org', 'pbl.spamhaus.org'])
  })

  it('reports a zone that does not answer in time as failed, never as clean', async () => {
    dns.silent = true
    try {
      const started = Date.now()
      const r = await lookupDnsbl(ip('93.184.10.5'), ['bl.test.example'], resolverFor(dns.port, 200), 300)
      assert.deepEqual(r, { source: 'own', listed: [], failed: ['bl.test.example'], policy: [] })
      assert.ok(Date.now() - started < 1000)
    } finally {
      dns.silent = false
    }
  })

  it("reads the dns-list plugin's results: fail entries are listings", () => {
    assert.deepEqual(dnsblFromDnsListResults({ fail: ['zen.spamhaus.org'], pass: ['bl.spamcop.net'] }), { source: 'dns-list', listed: ['zen.spamhaus.org'] })
    assert.equal(dnsblFromDnsListResults(undefined), undefined)
    // Its shipped dns-list.ini names zen's 127.0.0.10 and .11 `PBL`: the one code it keeps.
    assert.deepEqual(dnsblFromDnsListResults({ fail: ['zen.spamhaus.org', 'bl.spamcop.net'], msg: ['PBL'] })?.policy, ['zen.spamhaus.org'])
    assert.deepEqual(dnsblFromDnsListResults({ fail: ['pbl.spamhaus.org'] })?.policy, ['pbl.spamhaus.org'])
  })
})
