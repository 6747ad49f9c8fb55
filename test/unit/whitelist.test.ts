import assert from 'node:assert/strict'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import tlds from 'haraka-tld'
import { compileWhitelist, coveringRange, hostBitsSet, parseEntry, parseWhitelist } from '../../plugins/smart-greylist/core/whitelist'

const FILE = [
  '# comment line',
  '',
  'host:*outbound.protection.outlook.com   # Plesk form',
  'helo:*.outbound.protection.outlook.com',
  'ip:52.100.0.0/14',
  'from:*@partner.example',
  'to:postmaster@*',
  'host:mail.*.example.com',
  'pi:1.2.3.4',
  'ip:300.1.1.1',
  'justtext',
]

describe('parseWhitelist', () => {
  const parsed = parseWhitelist(FILE, 'smart-greylist.whitelist')

  it('loads the good lines, keeping where each came from', () => {
    assert.deepEqual(
      parsed.entries.map((e) => `${e.origin} ${e.kind}:${e.pattern}`),
      [
        'smart-greylist.whitelist:3 host:*outbound.protection.outlook.com',
        'smart-greylist.whitelist:4 helo:*.outbound.protection.outlook.com',
        'smart-greylist.whitelist:5 ip:52.100.0.0/14',
        'smart-greylist.whitelist:6 from:*@partner.example',
        'smart-greylist.whitelist:7 to:postmaster@*',
      ],
    )
  })

  it('reports each bad line with its file, line number and reason', () => {
    assert.deepEqual(
      parsed.errors.map((e) => e.origin),
      ['smart-greylist.whitelist:8', 'smart-greylist.whitelist:9', 'smart-greylist.whitelist:10', 'smart-greylist.whitelist:11'],
    )
    assert.match(parsed.errors[0].message, /leftmost label/)
    assert.match(parsed.errors[1].message, /unknown kind "pi"/)
    assert.match(parsed.errors[2].message, /not an IP address or CIDR/)
    assert.match(parsed.errors[3].message, /expected "kind:pattern"/)
  })
})

describe('parseEntry', () => {
  it('accepts one entry with the same rules as the files', () => {
    assert.ok(!('message' in parseEntry('ip:2a01:111:f400::/48')))
    assert.ok('message' in parseEntry('ip:2a01:111:f400::/148'))
  })
})

describe('Whitelist', () => {
  const wl = compileWhitelist([parseWhitelist(FILE, 'admin'), parseWhitelist(['ip:40.107.0.0/16', 'host:*.outbound.protection.outlook.com'], 'providers')])

  it('matches a forward-confirmed name against host: entries, the first file first', () => {
    const hit = wl.matchSender({ fcrdnsNames: ['mail-eopbgr220092.outbound.protection.outlook.com'] })
    assert.equal(hit?.origin, 'admin:3')
  })
  it('matches an address inside an ip: range', () => {
    assert.equal(wl.matchSender({ ip: parseIp('52.101.4.200') })?.origin, 'admin:5')
    assert.equal(wl.matchSender({ ip: parseIp('40.107.22.92') })?.origin, 'providers:1')
    assert.equal(wl.matchSender({ ip: parseIp('85.214.1.1') }), undefined)
  })
  it('matches helo: and from: only with what the caller passes (the caller decides what is backed)', () => {
    assert.equal(wl.matchSender({ helo: 'EUR01-DB5-obe.outbound.protection.outlook.com' })?.origin, 'admin:4')
    assert.equal(wl.matchSender({ from: 'news@partner.example' })?.origin, 'admin:6')
    assert.equal(wl.matchSender({ helo: null, from: null }), undefined)
  })
  it('matches recipients that opted out', () => {
    assert.equal(wl.matchRecipient('postmaster@example.com')?.origin, 'admin:7')
    assert.equal(wl.matchRecipient('bob@example.com'), undefined)
  })
})

describe('tooBroad, hostBitsSet, coveringRange (what `whitelist add` and the loader refuse)', () => {
  before(() => tlds.ready)
  const psl = (n: string): boolean => tlds.is_public_suffix(n)
  const refused: string[] = [
    'ip:0.0.0.0/0',
    'ip:::/0',
    'ip:::ffff:0.0.0.0/96',
    'ip:10.0.0.0/7',
    'ip:2a01::/15',
    'host:*.co.uk',
    'host:*.com',
    'host:co.uk',
    'helo:*',
    'from:*@*.co.uk',
    'from:postmaster@*',
    'to:*@*.com',
  ]
  for (const text of refused) {
    it(`refuses ${text}`, () => {
      const r = parseEntry(text, 'argument', psl)
      assert.ok('message' in r, `${text} was accepted`)
    })
  }
  const accepted = [
    'ip:40.107.0.0/16',
    'ip:2a01:111:f400::/48',
    'host:*.outbound.protection.outlook.com',
    'host:*outbound.protection.outlook.com',
    'host:mail-*.google.com',
    'from:*@example.co.uk',
    'to:postmaster@*',
  ]
  for (const text of accepted) {
    it(`accepts ${text}`, () => {
      const r = parseEntry(text, 'argument', psl)
      assert.ok(!('message' in r), 'message' in r ? r.message : '')
    })
  }
  it('sees host bits set below the prefix', () => {
    assert.equal(hostBitsSet({ kind: 'ip', pattern: '40.107.1.0/16' }), true)
    assert.equal(hostBitsSet({ kind: 'ip', pattern: '40.107.0.0/16' }), false)
    assert.equal(hostBitsSet({ kind: 'ip', pattern: '2a01:111:f400::1/48' }), true)
  })
  it('finds the listed range that holds a new one', () => {
    const listed = parseWhitelist(['ip:40.107.0.0/16', 'host:*.example.com'], 'w').entries
    assert.equal(coveringRange({ kind: 'ip', pattern: '40.107.22.0/24' }, listed)?.pattern, '40.107.0.0/16')
    assert.equal(coveringRange({ kind: 'ip', pattern: '40.107.0.0/15' }, listed), undefined)
    assert.equal(coveringRange({ kind: 'ip', pattern: '52.100.0.1' }, listed), undefined)
  })
})
