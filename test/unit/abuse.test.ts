// What a sender who controls its own DNS, envelopes and names can no longer do (issue 8), through
// the pure decision path: assess() with the facts handed in.
import assert from 'node:assert/strict'
import tlds from 'haraka-tld'
import { assess, type Assessment, type FactSources } from '../../plugins/smart-greylist/core/assess'
import { normaliseRecipient } from '../../plugins/smart-greylist/core/envelope'
import { awlEligible, type RdnsFacts, type SpfFacts } from '../../plugins/smart-greylist/core/identity'
import { perMachineLabel } from '../../plugins/smart-greylist/core/sender-names'
import { DomainPolicies } from '../../plugins/smart-greylist/core/domains'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import { globMatch, NameMatcher } from '../../plugins/smart-greylist/core/names'
import { ProviderIndex } from '../../plugins/smart-greylist/core/providers'
import { parseSettings } from '../../plugins/smart-greylist/core/settings'
import { compileWhitelist, parseWhitelist } from '../../plugins/smart-greylist/core/whitelist'

before(() => tlds.ready)

const policy = (whitelist: string[], ini: Record<string, Record<string, unknown>> = {}) => ({
  config: parseSettings(ini).config,
  whitelist: compileWhitelist([parseWhitelist(whitelist, 'w', (n) => tlds.is_public_suffix(n))]),
  providers: new ProviderIndex([]),
  orgDomain: (n: string) => tlds.get_organizational_domain(n),
  domains: new DomainPolicies([]),
})
const facts = (rdns: RdnsFacts, spf: SpfFacts): FactSources => ({ rdns: async () => rdns, spf: async () => spf })
const subject = (over: Partial<{ ip: string; helo: string; sender: string; recipient: string }> = {}) => ({
  ip: parseIp(over.ip ?? '85.214.10.5'),
  helo: over.helo ?? null,
  sender: over.sender ?? 'a@carve.example',
  recipient: over.recipient ?? 'bob@example.com',
  relaying: false,
  isPrivate: false,
})
const NO_RDNS: RdnsFacts = { status: 'none' }
const tupleKey = (a: Assessment): string => (a.kind === 'tuple' ? a.key : `not a tuple: ${a.kind}`)

describe('from: entries (verify_from)', () => {
  it('do not count on a pass from a permissive record', async () => {
    const p = policy(['from:*@carve.example'])
    const permissive = await assess(p, subject(), facts(NO_RDNS, { domain: 'carve.example', result: 'pass', permissive: true }))
    assert.equal(permissive.kind, 'tuple')
    const strict = await assess(p, subject(), facts(NO_RDNS, { domain: 'carve.example', result: 'pass', permissive: false }))
    assert.equal(strict.kind, 'whitelist')
  })
  it('do not count through an SRS-normalised address, nor on a pass SPF gave another domain', async () => {
    // The key spells the sender as carve.example's, but SPF passed for the forwarder that
    // rewrote it: that pass speaks for forwarder.example, not for the address the entry names.
    const p = policy(['from:*@carve.example'])
    const pass = (domain: string): SpfFacts => ({ domain, result: 'pass', permissive: false })
    const srs = await assess(p, subject({ sender: 'SRS0=HHH=TT=carve.example=alice@forwarder.example' }), facts(NO_RDNS, pass('forwarder.example')))
    assert.equal(srs.kind, 'tuple', 'SPF vouches for the forwarder only')
    // A fact source that answers for a different domain (HELO's, a cached neighbour's) vouches for nothing here.
    const other = await assess(p, subject({ sender: 'alice@carve.example' }), facts(NO_RDNS, pass('forwarder.example')))
    assert.equal(other.kind, 'tuple', 'a pass for forwarder.example is not one for carve.example')
    const direct = await assess(p, subject({ sender: 'alice@carve.example' }), facts(NO_RDNS, pass('carve.example')))
    assert.equal(direct.kind, 'whitelist')
  })
})

describe('recipients', () => {
  it('are lower-cased and lose +ext, and nothing else', () => {
    assert.equal(normaliseRecipient('Bob+Lists@Example.COM.', true), 'bob@example.com')
    assert.equal(normaliseRecipient('bob+lists@example.com', false), 'bob+lists@example.com')
    assert.equal(normaliseRecipient('prvs=1234abcd=postmaster@example.com', true), 'prvs=1234abcd=postmaster@example.com')
  })
  it('with different digits are different tuples', async () => {
    const p = policy([])
    const a = await assess(p, subject({ recipient: 'user1234567@example.com' }), facts(NO_RDNS, { domain: 'carve.example', result: 'none' }))
    const b = await assess(p, subject({ recipient: 'user7654321@example.com' }), facts(NO_RDNS, { domain: 'carve.example', result: 'none' }))
    assert.notEqual(tupleKey(a), tupleKey(b))
  })
  it('match a to: entry whose local part has many digits', async () => {
    const r = await assess(
      policy(['to:ticket1234567@example.com']),
      subject({ recipient: 'Ticket1234567@example.com' }),
      facts(NO_RDNS, { domain: null, result: 'none' }),
    )
    assert.equal(r.kind, 'whitelist')
  })
})

describe('auto-whitelist eligibility of rDNS identities', () => {
  const ip = parseIp('85.214.10.5')!
  const host = { kind: 'host' as const, value: 'contaboserver.net', reason: 'fcrdns' }
  const named = (name: string): RdnsFacts => ({ status: 'ok', names: [{ name, confirmed: true }] })
  it('excludes per-machine names of shared hosting and hex-encoded addresses', () => {
    assert.equal(awlEligible(host, 'shop.example', named('vmi123456.contaboserver.net'), ip), false)
    assert.equal(awlEligible(host, 'shop.example', named('c0a80101.static.example.net'), ip), false)
    assert.equal(perMachineLabel('mail2.example.net'), false)
    assert.equal(awlEligible(host, 'shop.example', named('mail.shop.example'), ip), true)
  })
})

describe('auto-whitelist passes', () => {
  it('are not earned by a client a DNSBL lists', async () => {
    const p = policy([])
    const spf: SpfFacts = { domain: 'carve.example', result: 'none' }
    const dnsbl = (listed: string[]): FactSources => ({ ...facts(NO_RDNS, spf), dnsbl: async () => ({ source: 'own', listed }) })
    const clean = await assess(p, subject(), dnsbl([]))
    assert.ok(clean.kind === 'tuple' && clean.awlKey, 'the same client unlisted may earn passes')
    const listed = await assess(p, subject(), dnsbl(['zen.spamhaus.org']))
    assert.equal(listed.kind, 'tuple')
    assert.equal(listed.kind === 'tuple' && listed.awlKey, undefined, 'a listed client waits the delay every time')
  })
})

describe('helo: entries (verify_helo)', () => {
  const rdns = (name: string): RdnsFacts => ({ status: 'ok', names: [{ name, confirmed: true }] })
  const none: SpfFacts = { domain: null, result: 'none' }
  it('count only for the confirmed name itself or a name under the same parent', async () => {
    const p = policy(['helo:mx1.bigcorp.example.com', 'helo:*.outbound.protection.outlook.com'])
    const dorm = await assess(p, subject({ helo: 'mx1.bigcorp.example.com' }), facts(rdns('dyn-7.dorm.bigcorp.example.com'), none))
    assert.equal(dorm.kind, 'tuple', 'another host of the organisation does not vouch for mx1')
    const same = await assess(p, subject({ helo: 'mx1.bigcorp.example.com' }), facts(rdns('mx1.bigcorp.example.com'), none))
    assert.equal(same.kind, 'whitelist')
  })
  it("a per-address name backs another name only when its domain vouches for the client; an access network's backs nothing", async () => {
    const p = policy(['helo:*.outbound.protection.outlook.com', 'helo:*.hsd1.ma.example-cable.net'])
    const asked: string[][] = []
    const vouching = (rdnsFacts: RdnsFacts, answer: { domain: string } | { why: string }): FactSources => ({
      ...facts(rdnsFacts, none),
      vouch: async (domains) => (asked.push([...domains]), answer),
    })
    const eopHelo = subject({ ip: '40.107.20.200', helo: 'EUR01-DB5-obe.outbound.protection.outlook.com' })
    const eopName = rdns('mail-eopbgr200200.outbound.protection.outlook.com')
    assert.equal((await assess(p, eopHelo, vouching(eopName, { domain: 'outlook.com' }))).kind, 'whitelist')
    assert.deepEqual(asked, [['outlook.com', 'protection.outlook.com', 'outbound.protection.outlook.com']])
    assert.equal((await assess(p, eopHelo, vouching(eopName, { why: 'unvouched' }))).kind, 'tuple', 'not vouched: not backed')
    assert.equal((await assess(p, eopHelo, facts(eopName, none))).kind, 'tuple', 'nobody to ask: not backed')

    const listed: FactSources = {
      ...vouching(eopName, { domain: 'outlook.com' }),
      dnsbl: async () => ({ source: 'own', listed: ['zen.spamhaus.org'], policy: ['zen.spamhaus.org'] }),
    }
    assert.equal((await assess(p, eopHelo, listed)).kind, 'tuple', 'end-user space by a policy list: not backed')
    const twoNames: RdnsFacts = {
      status: 'ok',
      names: [{ name: 'relay.outbound.protection.outlook.com', confirmed: true }, ...(eopName.status === 'ok' ? eopName.names : [])],
    }
    assert.equal((await assess(p, eopHelo, vouching(twoNames, { why: 'unvouched' }))).kind, 'tuple', 'one per-address name among them: it must be vouched for')

    asked.length = 0
    const bot = subject({ ip: '73.12.34.56', helo: 'mx.hsd1.ma.example-cable.net' })
    const botName = rdns('c-73-12-34-56.hsd1.ma.example-cable.net')
    assert.equal((await assess(p, bot, vouching(botName, { domain: 'example-cable.net' }))).kind, 'tuple')
    assert.deepEqual(asked.length, 0, 'an end-user name is not worth asking about')
  })
  it('do not count for a sibling whose parent is a public suffix', async () => {
    // Anyone can register evil.co.uk and forward-confirm it; sharing "co.uk" with bank.co.uk
    // says nothing about who runs either.
    const p = policy(['helo:bank.co.uk'])
    const squatter = await assess(p, subject({ helo: 'bank.co.uk' }), facts(rdns('evil.co.uk'), none))
    assert.equal(squatter.kind, 'tuple', 'a name under co.uk does not vouch for bank.co.uk')
    const own = await assess(p, subject({ helo: 'bank.co.uk' }), facts(rdns('bank.co.uk'), none))
    assert.equal(own.kind, 'whitelist')
  })
})

describe('name patterns', () => {
  it('match in time linear in the name, whatever the stars', () => {
    const m = new NameMatcher<string>()
    m.add('*a*a*a*a*a*a*a*a*b.example.com', 'x')
    const label = 'a'.repeat(60)
    const started = process.hrtime.bigint()
    for (let i = 0; i < 1000; i++) assert.equal(m.match(`${label}.example.com`), undefined)
    const perMatchUs = Number(process.hrtime.bigint() - started) / 1000 / 1000
    assert.ok(perMatchUs < 100, `${perMatchUs} µs per match`)
    assert.equal(m.match(`${label}b.example.com`), 'x')
  })
  it('agree with the obvious reading', () => {
    const cases: [string, string, boolean][] = [
      ['mail-*', 'mail-eopbgr1', true],
      ['mail-*', 'mail', false],
      ['*-out-*', 'smtp-out-12', true],
      ['a*b*c', 'abc', true],
      ['a*b*c', 'acb', false],
      ['*x*', 'x', true],
      ['ab*ba', 'aba', false],
      ['ab*ba', 'abba', true],
    ]
    for (const [p, s, want] of cases) assert.equal(globMatch(p.split('*'), s), want, `${p} ~ ${s}`)
  })
})
