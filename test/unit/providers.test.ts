import assert from 'node:assert/strict'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import { mergeProviders, parseProviders, ProviderIndex, writeRanges } from '../../plugins/smart-greylist/core/providers'
import { walkSpf } from '../../plugins/smart-greylist/adapters/spf-walk'
import { parseSpfRecord } from '../../plugins/smart-greylist/core/spf-record'

const FILE = [
  '# shipped',
  '[microsoft]',
  'name = Microsoft 365',
  'spf = spf.protection.outlook.com',
  'action = skip',
  'host = *.outbound.protection.outlook.com',
  'ip = 40.107.0.0/16',
  '# a comment between ranges',
  'ip = 52.100.0.0/14',
  '',
  '[mailchimp]',
  'action = group',
  'ip = 198.2.128.0/18',
  'ip = 2001:db8:1::/48',
  '',
  '[broken]',
  'action = maybe',
  'ip = 300.0.0.0/8',
  'colour = blue',
]

describe('parseProviders', () => {
  const parsed = parseProviders(FILE, 'p')
  it('reads each provider with its ranges, hosts, SPF roots and action', () => {
    const [ms, mc] = parsed.providers
    assert.deepEqual(
      [ms.id, ms.name, ms.action, ms.spf, ms.hosts, ms.ips],
      ['microsoft', 'Microsoft 365', 'skip', ['spf.protection.outlook.com'], ['*.outbound.protection.outlook.com'], ['40.107.0.0/16', '52.100.0.0/14']],
    )
    assert.deepEqual([mc.id, mc.action, mc.ips.length], ['mailchimp', 'group', 2])
  })
  it('reports bad lines with their line numbers', () => {
    assert.deepEqual(
      parsed.errors.map((e) => e.origin),
      ['p:17', 'p:18', 'p:19'],
    )
  })
})

describe('ProviderIndex', () => {
  const { providers } = parseProviders(FILE, 'p')
  it('finds the provider by address or by confirmed rDNS suffix, with its action', () => {
    const idx = new ProviderIndex(providers)
    assert.equal(idx.lookup(parseIp('52.101.4.200'))?.provider.id, 'microsoft')
    assert.equal(idx.lookup(parseIp('198.2.130.7'))?.action, 'group')
    assert.equal(idx.lookup(null, ['mail-x.outbound.protection.outlook.com'])?.via, 'host')
    assert.equal(idx.lookup(parseIp('85.214.1.1')), undefined)
  })
  it('applies the admin choice, leaving out providers switched off', () => {
    const idx = new ProviderIndex(providers, (p) => (p.id === 'microsoft' ? 'off' : 'skip'))
    assert.equal(idx.lookup(parseIp('40.107.1.1')), undefined)
    assert.equal(idx.lookup(parseIp('198.2.130.7'))?.action, 'skip')
  })
  it('finds a range among 100,000 (lookup cost: see npm run bench)', () => {
    const many = Array.from({ length: 100_000 }, (_, i) => `ip = ${20 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`)
    const big = new ProviderIndex(parseProviders(['[big]', ...many], 'big').providers)
    assert.equal(big.ranges, 100_000)
    assert.equal(big.lookup(parseIp('21.134.159.7'))?.provider.id, 'big')
    assert.equal(big.lookup(parseIp('85.214.1.1')), undefined)
  })
})

describe('writeRanges', () => {
  it("replaces only the refreshed providers' ip lines, sorted and dated, and keeps everything else", () => {
    const out = writeRanges(FILE, new Map([['microsoft', ['52.100.0.0/14', '40.92.0.0/15', '2a01:111:f400::/48']]]), '2026-11-28')
    assert.deepEqual(out.slice(0, 13), [
      '# shipped',
      '[microsoft]',
      'name = Microsoft 365',
      'spf = spf.protection.outlook.com',
      'action = skip',
      'host = *.outbound.protection.outlook.com',
      'updated = 2026-11-28',
      'ip = 40.92.0.0/15',
      'ip = 52.100.0.0/14',
      'ip = 2a01:111:f400::/48',
      '# a comment between ranges',
      '',
      '[mailchimp]',
    ])
    assert.deepEqual(out.slice(13), FILE.slice(11))
  })

  it('adds a section for a provider the file does not have yet, and replaces an old date', () => {
    const once = writeRanges(['# my providers'], new Map([['google', ['64.233.160.0/19']]]), '2026-11-01')
    assert.deepEqual(once, ['# my providers', '', '[google]', 'updated = 2026-11-01', 'ip = 64.233.160.0/19'])
    const twice = writeRanges(once, new Map([['google', ['66.102.0.0/20', '64.233.160.0/19']]]), '2026-11-28')
    assert.deepEqual(twice, ['# my providers', '', '[google]', 'updated = 2026-11-28', 'ip = 64.233.160.0/19', 'ip = 66.102.0.0/20'])
  })
})

describe('mergeProviders (shipped file + smart-greylist.providers.local)', () => {
  const shipped = parseProviders(['[google]', 'action = skip', 'host = mail-*.google.com', 'updated = 2026-11-28', 'ip = 64.233.160.0/19'], 'shipped').providers
  const local = (lines: string[]) => parseProviders(lines, 'local').providers

  it('a local section sets only the keys it names; a new id adds a provider', () => {
    const { providers } = mergeProviders(shipped, local(['[google]', 'action = group', '[corp]', 'ip = 85.214.0.0/16']))
    const google = providers.find((p) => p.id === 'google')!
    assert.equal(google.action, 'group')
    assert.deepEqual(google.hosts, ['mail-*.google.com'])
    assert.deepEqual(google.ips, ['64.233.160.0/19'])
    assert.deepEqual(providers.find((p) => p.id === 'corp')?.ips, ['85.214.0.0/16'])
  })

  it('refreshed ranges win until the package ships newer ones; hand-written ranges always win', () => {
    const newer = mergeProviders(shipped, local(['[google]', 'updated = 2026-12-01', 'ip = 66.102.0.0/20']))
    assert.deepEqual(newer.providers[0].ips, ['66.102.0.0/20'])
    const older = mergeProviders(shipped, local(['[google]', 'updated = 2026-10-01', 'ip = 66.102.0.0/20']))
    assert.deepEqual(older.providers[0].ips, ['64.233.160.0/19'])
    assert.match(older.notes[0], /shipped ranges \(2026-11-28\) are newer/)
    const byHand = mergeProviders(shipped, local(['[google]', 'ip = 66.102.0.0/20']))
    assert.deepEqual(byHand.providers[0].ips, ['66.102.0.0/20'])
  })
})

describe('parseSpfRecord', () => {
  it('collects pass-qualified ranges, includes and redirect; notes host mechanisms', () => {
    const t = parseSpfRecord(
      'v=spf1 ip4:40.92.0.0/15 +ip4:40.107.0.0/16 -ip4:10.0.0.0/8 ip6:2a01:111:f400::/48 include:a.example ~include:b.example a mx:x.example redirect=c.example -all',
    )
    assert.deepEqual(t.ranges, ['40.92.0.0/15', '40.107.0.0/16', '2a01:111:f400::/48'])
    assert.deepEqual(t.includes, ['a.example'])
    assert.equal(t.redirect, 'c.example')
    assert.deepEqual(t.ignored, ['a', 'mx:x.example'])
  })
  it('refuses what is not an SPF record', () => {
    assert.throws(() => parseSpfRecord('google-site-verification=abc'))
  })
})

describe('walkSpf', () => {
  const zone: Record<string, string[][]> = {
    'spf.example': [['v=spf1 include:a.spf.example include:b.spf.example -all'], ['other text']],
    'a.spf.example': [['v=spf1 ip4:192.0.2.0/24 ', 'include:spf.example ~all']],
    'b.spf.example': [['v=spf1 ip6:2001:db8::/32 redirect=c.spf.example']],
    'c.spf.example': [['v=spf1 ip4:198.51.100.0/24 -all']],
    'loop.example': [['v=spf1 include:loop.example -all']],
    'two.example': [['v=spf1 -all'], ['v=spf1 +all']],
  }
  const resolver = {
    resolveTxt: async (name: string): Promise<string[][]> => {
      if (zone[name]) return zone[name]
      throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' })
    },
  }
  it('follows includes and redirects, once each, joining split TXT strings', async () => {
    const r = await walkSpf('spf.example', resolver, { maxLookups: 10, timeoutMs: 1000 })
    assert.deepEqual(r.ranges.sort(), ['192.0.2.0/24', '198.51.100.0/24', '2001:db8::/32'])
    assert.equal(r.lookups, 4)
  })
  it('survives loops, refuses two records and missing names', async () => {
    assert.equal((await walkSpf('loop.example', resolver, { maxLookups: 10, timeoutMs: 1000 })).lookups, 1)
    await assert.rejects(walkSpf('two.example', resolver, { maxLookups: 10, timeoutMs: 1000 }), /2 SPF records/)
    await assert.rejects(walkSpf('missing.example', resolver, { maxLookups: 10, timeoutMs: 1000 }), /ENOTFOUND/)
    await assert.rejects(walkSpf('spf.example', resolver, { maxLookups: 2, timeoutMs: 1000 }), /more than 2 lookups/)
  })
  it('gives up at its deadline, and starts no lookup after it', async () => {
    const asked: string[] = []
    // Each answer takes 150 ms: within the per-lookup bound, not within the deadline.
    const slow = {
      resolveTxt: async (name: string): Promise<string[][]> => {
        asked.push(name)
        await new Promise((r) => setTimeout(r, 150))
        return resolver.resolveTxt(name)
      },
    }
    const started = Date.now()
    await assert.rejects(walkSpf('spf.example', slow, { maxLookups: 10, timeoutMs: 1000, deadline: AbortSignal.timeout(30) }), { name: 'TimeoutError' })
    assert.ok(Date.now() - started < 120, `gave up after ${Date.now() - started} ms, not at the deadline`)
    await new Promise((r) => setTimeout(r, 200))
    assert.deepEqual(asked, ['spf.example'], 'no lookup after the deadline')
    const gone = AbortSignal.abort(new Error('over'))
    await assert.rejects(walkSpf('spf.example', slow, { maxLookups: 10, timeoutMs: 1000, deadline: gone }), /over/)
    assert.equal(asked.length, 1, 'a walk past its deadline asks nothing')
  })
})
