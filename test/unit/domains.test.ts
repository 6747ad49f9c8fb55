// smart-greylist.domains: per recipient domain, off or other settings; bad lines reported, the
// most specific rule applied, and the settings a recipient ends up with.
import assert from 'node:assert/strict'
import tlds from 'haraka-tld'
import { DomainPolicies, parseDomains, ruleText, withRule } from '../../plugins/smart-greylist/core/domains'
import { DEFAULTS } from '../../plugins/smart-greylist/core/settings'

before(() => tlds.ready)

const parse = (lines: string[]) => parseDomains(lines, 'd', (n) => tlds.is_public_suffix(n))

describe('parseDomains', () => {
  it('reads off, delay, policy and mode, with comments and blank lines', () => {
    const { rules, errors } = parse(['# mine', '', 'example.org   off', '*.example.net delay=60   # subdomains', 'Shop.Example  policy=suspicious MODE=shadow'])
    assert.deepEqual(errors, [])
    assert.deepEqual(
      rules.map((r) => [r.pattern, r.settings, r.origin]),
      [
        ['example.org', { off: true }, 'd:3'],
        ['*.example.net', { delay: 60 }, 'd:4'],
        ['Shop.Example', { policy: 'suspicious', mode: 'shadow' }, 'd:5'],
      ],
    )
    assert.equal(ruleText(rules[2]), 'Shop.Example policy=suspicious mode=shadow')
  })

  for (const [line, message] of [
    ['example.org', /expected "domain settings"/],
    ['example.org of', /unknown setting "of"/],
    ['example.org delay=-1', /delay is a whole number of seconds from 0 to 604800/],
    ['example.org delay=1e3', /delay is a whole number/],
    ['example.org policy=some', /policy is one of all, suspicious/],
    ['example.org mode=loud', /mode is one of enforce, shadow/],
    ['example.org delay=5 delay=6', /delay is given twice/],
    ['example.org off delay=5', /off takes no other settings/],
    ['example.org off=yes', /unknown setting "off=yes"/],
    ['*.co.uk off', /covers a public suffix/],
    ['com off', /not a domain|covers a public suffix/],
    ['mail.*.example off', /not a domain/],
    ['bad_domain! off', /not a domain/],
  ] as const) {
    it(`refuses "${line}"`, () => {
      const { rules, errors } = parse(['ok.example off', line])
      assert.equal(rules.length, 1, 'the good line still loads')
      assert.equal(errors.length, 1)
      assert.equal(errors[0]?.origin, 'd:2')
      assert.match(errors[0]?.message ?? '', message)
    })
  }

  it('refuses a second rule for the same domain (any case, trailing dot)', () => {
    const { rules, errors } = parse(['example.org off', 'EXAMPLE.org. delay=5'])
    assert.equal(rules.length, 1)
    assert.match(errors[0]?.message ?? '', /has a rule already \(d:1\)/)
  })
})

describe('DomainPolicies.ruleFor', () => {
  const policies = new DomainPolicies(parse(['example.net off', '*.example.net delay=60', '*.eu.example.net delay=5']).rules)
  it('picks the most specific rule: exact, then the longest *. suffix', () => {
    assert.deepEqual(policies.ruleFor('example.net')?.settings, { off: true })
    assert.deepEqual(policies.ruleFor('mx.example.net')?.settings, { delay: 60 })
    assert.deepEqual(policies.ruleFor('a.eu.example.net')?.settings, { delay: 5 })
    assert.equal(policies.ruleFor('example.org'), undefined)
    assert.equal(policies.ruleFor(null), undefined)
  })
})

describe('withRule', () => {
  it("applies a rule's delay, policy and mode to one recipient's settings, and nothing else", () => {
    const [rule] = parse(['shop.example delay=7 policy=suspicious mode=shadow']).rules
    const c = withRule(DEFAULTS, rule)
    assert.deepEqual([c.main.delay, c.select.policy, c.main.mode], [7, 'suspicious', 'shadow'])
    assert.equal(c.main.retry_window, DEFAULTS.main.retry_window)
    assert.deepEqual([DEFAULTS.main.delay, DEFAULTS.select.policy, DEFAULTS.main.mode], [300, 'all', 'enforce'], 'the shared settings are untouched')
    assert.equal(withRule(DEFAULTS, undefined), DEFAULTS)
  })
})
