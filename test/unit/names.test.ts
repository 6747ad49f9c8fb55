import assert from 'node:assert/strict'
import { AddressMatcher, NameMatcher, normaliseHost, PatternError } from '../../plugins/smart-greylist/core/names'

describe('normaliseHost', () => {
  it('lower-cases and drops the trailing dot', () => {
    assert.equal(normaliseHost('Mail-EOPBGR220092.Outbound.Protection.Outlook.com.'), 'mail-eopbgr220092.outbound.protection.outlook.com')
  })
  it('rejects what is not a DNS name', () => {
    for (const bad of ['', 'localhost', 'a..b', '-a.example.com', 'a b.example.com', 'x'.repeat(64) + '.com', '[1.2.3.4]']) {
      assert.equal(normaliseHost(bad), null, bad)
    }
  })
})

describe('NameMatcher', () => {
  const m = new NameMatcher<string>()
  m.add('*.outbound.protection.outlook.com', 'suffix')
  m.add('*amazonses.com', 'plesk')
  m.add('mail-*.google.com', 'label-glob')
  m.add('mx.example.org', 'exact')

  const cases: [string, string | undefined][] = [
    ['mail-eopbgr220092.outbound.protection.outlook.com', 'suffix'],
    ['EUR01-DB5-obe.outbound.protection.outlook.com.', 'suffix'],
    ['outbound.protection.outlook.com', undefined], // "*." needs at least one label
    ['evil-outbound.protection.outlook.com', undefined], // label-aware: no partial-label suffix
    ['outbound.protection.outlook.com.evil.net', undefined],
    ['a8-12.smtp-out.us-west-2.amazonses.com', 'plesk'],
    ['mail-wm1-f41.google.com', 'label-glob'],
    ['smtp.google.com', undefined],
    ['mail-x.y.google.com', undefined], // "*" inside a label does not cross dots
    ['mx.example.org', 'exact'],
    ['a.mx.example.org', undefined],
    ['not a name', undefined],
  ]
  for (const [name, expected] of cases) {
    it(`${expected ? 'matches' : 'does not match'} ${name}`, () => assert.equal(m.match(name), expected))
  }

  it('refuses wildcards outside the leftmost label', () => {
    assert.throws(() => new NameMatcher().add('mail.*.example.com', 1), PatternError)
    assert.throws(() => new NameMatcher().add('*.*.example.com', 1), PatternError)
    assert.throws(() => new NameMatcher().add('*.com$', 1), PatternError)
  })
})

describe('AddressMatcher', () => {
  const m = new AddressMatcher<string>()
  m.add('alice@example.org', 'exact')
  m.add('*@example.net', 'domain')
  m.add('example.com', 'bare-domain')
  m.add('*@*.example.edu', 'subdomains')
  m.add('postmaster@*', 'local')

  const cases: [string, string | undefined][] = [
    ['Alice@Example.org', 'exact'],
    ['bob@example.org', undefined],
    ['bob@example.net', 'domain'],
    ['bob@mail.example.net', undefined],
    ['carol@example.com', 'bare-domain'],
    ['dave@cs.example.edu', 'subdomains'],
    ['dave@example.edu', undefined],
    ['postmaster@anything.test', 'local'],
    ['', undefined],
    ['no-at-sign', undefined],
  ]
  for (const [addr, expected] of cases) {
    it(`${expected ? 'matches' : 'does not match'} "${addr}"`, () => assert.equal(m.match(addr), expected))
  }

  it('refuses a pattern matching every address, and globs inside a local part', () => {
    assert.throws(() => new AddressMatcher().add('*@*', 1), /every address/)
    assert.throws(() => new AddressMatcher().add('a*@example.org', 1), PatternError)
  })
})
