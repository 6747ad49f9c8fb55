// The permissive-record guard against a DNS server on loopback: records judged by what they
// authorise and by probes, verdicts cached by the record's text (in memory per domain, bounded).
import assert from 'node:assert/strict'
import { makeResolver } from '../../plugins/smart-greylist/adapters/dns'
import { randomRoutable, SpfGuardCache, type FlagStore } from '../../plugins/smart-greylist/adapters/spf-guard'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import { DEFAULTS } from '../../plugins/smart-greylist/core/settings'
import { DnsServer } from '../../scripts/harness/dns-server'

class MemoryFlags implements FlagStore {
  readonly flags = new Map<string, string>()
  async getFlag(key: string): Promise<string | null> {
    return this.flags.get(key) ?? null
  }
  async setFlag(key: string, value: string): Promise<void> {
    this.flags.set(key, value)
  }
}

describe('SpfGuardCache (loopback DNS)', function () {
  this.timeout(20_000)
  let dns: DnsServer
  let clock = 1_800_000_000_000
  const spf = () => ({ resolver: makeResolver(2000, [`127.0.0.1:${dns.port}`]) as never, timeoutMs: 2000, helo: null })
  const guard = (flags = new MemoryFlags()) => new SpfGuardCache(flags, DEFAULTS, () => clock, { random: () => 0.42 })

  before(async () => {
    dns = await DnsServer.start({
      txt: {
        'carve.example': ['v=spf1 -ip4:192.0.2.1 -ip6:2001:db8::1 +all'],
        'broad.example': ['v=spf1 ip4:0.0.0.0/2 ip4:64.0.0.0/3 ip4:96.0.0.0/4 -all'],
        'macro.example': ['v=spf1 exists:%{i}.macro.example -all'],
        'strict.example': ['v=spf1 ip4:185.250.236.0/22 -all'],
        'anyone.example': ['v=spf1 exists:yes.anyone.example -all'],
        '*.wild.example': ['v=spf1 ip4:185.250.236.0/22 -all'],
      },
      a: { 'yes.anyone.example': ['127.0.0.2'] },
    })
  })
  after(() => dns.close())

  const cases: [string, RegExp | null][] = [
    ['carve.example', /^pass_all$/],
    ['broad.example', /^wide_ipv4/],
    ['macro.example', /^client_macro/],
    ['anyone.example', /^probe_pass 192\.0\.2\.1$/],
    ['strict.example', null],
  ]
  for (const [domain, why] of cases) {
    it(`${domain}: ${why ? 'permissive' : 'bounded'}`, async () => {
      const v = await guard().judge(domain, spf())
      assert.equal(v.permissive, why !== null, v.why)
      if (why) assert.match(v.why, why)
    })
  }

  it('judges a changed record anew (the verdict is keyed by its text)', async () => {
    const g = guard()
    dns.add({ txt: { 'turns.example': ['v=spf1 ip4:185.250.236.0/22 -all'] } })
    assert.equal((await g.judge('turns.example', spf())).permissive, false)
    dns.add({ txt: { 'turns.example': ['v=spf1 ip4:185.250.236.0/22 +all'] } })
    clock += 61_000 // past the one minute a domain's record is trusted in memory
    assert.equal((await g.judge('turns.example', spf())).permissive, true)
  })

  it('wildcard subdomains that publish one record cost one judgement', async () => {
    const flags = new MemoryFlags()
    await guard(flags).judge('a1.wild.example', spf())
    const mark = dns.queries.length
    const v = await guard(flags).judge('a2.wild.example', spf())
    assert.equal(v.permissive, false)
    assert.deepEqual(
      dns.queries.slice(mark).map((q) => `${q.type} ${q.name}`),
      ['TXT a2.wild.example'],
      'only the record itself is read again',
    )
    assert.equal(flags.flags.size, 1)
  })

  it('keeps at most maxEntries domains in memory, however many share one record', async () => {
    // A sender picks its domains freely: 20,000 tenants of one provider's record once left
    // 20,000 entries under a bound of 100. Their record comes from memory here, as 20,000
    // loopback queries would take seconds and test the DNS, not the bound.
    const oneRecord = { resolveTxt: async () => [['v=spf1 ip4:185.250.236.0/22 -all']] }
    const tenants = { resolver: oneRecord as never, timeoutMs: 2000, helo: null }
    const flags = new MemoryFlags()
    const g = new SpfGuardCache(flags, DEFAULTS, () => clock, { maxEntries: 100, random: () => 0.42 })
    for (let i = 0; i < 20_000; i++) {
      assert.equal((await g.judge(`t${i}.tenant.example`, tenants)).permissive, false)
      if (g.size > 100) assert.fail(`${g.size} domains held after ${i + 1}`)
    }
    // Past the bound the least recently used sixteenth goes at once (100 - 6).
    assert.ok(g.size > 90, `${g.size} domains held: the cache still serves`)
    assert.equal(flags.flags.size, 1, 'in Redis one verdict still serves them all')
  })

  it('evicts the least recently used domain, not the first one judged', async () => {
    const g = new SpfGuardCache(new MemoryFlags(), DEFAULTS, () => clock, { maxEntries: 3, random: () => 0.42 })
    const asked = async (domain: string): Promise<boolean> => {
      const mark = dns.queries.length
      await g.judge(domain, spf())
      return dns.queries.slice(mark).some((q) => q.name === domain)
    }
    for (const d of ['u1', 'u2', 'u3']) assert.equal(await asked(`${d}.wild.example`), true)
    assert.equal(await asked('u1.wild.example'), false, 'held: answered from memory')
    assert.equal(await asked('u4.wild.example'), true) // evicts u2, the least recently used
    assert.equal(await asked('u1.wild.example'), false, 'used recently, so it survived')
    assert.equal(await asked('u2.wild.example'), true, 'evicted, so its record is read again')
  })

  it('does not trust a record it cannot read in time', async () => {
    const v = await guard().judge('missing.example', spf())
    assert.equal(v.permissive, true)
    assert.match(v.why, /^unjudged/)
  })

  it('draws probe addresses from public unicast space only', () => {
    let seed = 1
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647
    for (let i = 0; i < 500; i++) {
      for (const family of ['ipv4', 'ipv6'] as const) {
        const ip = parseIp(randomRoutable(family, random))!
        assert.equal(ip.range(), 'unicast')
        assert.equal(ip.kind(), family)
      }
    }
  })
})
