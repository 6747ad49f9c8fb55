// Provider data that refreshes itself: reading Microsoft's endpoints service, the record every
// MX shares, and which ranges win.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {
  anchorsOf,
  decodeShared,
  encodeShared,
  endpointsVersion,
  exchangeSmtpRanges,
  implausible,
  maxRanges,
  withShared,
  type RefreshBounds,
} from '../../plugins/smart-greylist/core/refresh'
import { parseCidr } from '../../plugins/smart-greylist/core/ip'
import type { Provider } from '../../plugins/smart-greylist/core/providers'

const ENDPOINTS = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'endpoints-worldwide.json'), 'utf8')) as unknown

describe("Microsoft's endpoints web service", () => {
  it('takes the Exchange endpoint sets of TCP port 25 only', () => {
    assert.deepEqual(exchangeSmtpRanges(ENDPOINTS), [
      '40.92.0.0/15',
      '40.107.0.0/16',
      '52.100.0.0/14',
      '52.106.0.0/24',
      '104.47.0.0/17',
      '2a01:111:f400::/48',
      '2a01:111:f403::/48',
    ])
  })
  it('refuses what is not an answer of the service', () => {
    assert.deepEqual(exchangeSmtpRanges({ error: 'throttled' }), { error: 'the endpoints answer is not a list of endpoint sets' })
    assert.deepEqual(exchangeSmtpRanges([{ serviceArea: 'SharePoint', tcpPorts: '25', ips: ['1.2.3.0/24'] }]), {
      error: 'no Exchange endpoint set for TCP port 25',
    })
    assert.match(
      (exchangeSmtpRanges([{ serviceArea: 'Exchange', tcpPorts: '25', ips: ['40.92.0.0/15', 'bogus'] }]) as { error: string }).error,
      /"bogus", not a range/,
    )
  })
  it("reads the version answer's latest", () => {
    assert.equal(endpointsVersion({ instance: 'Worldwide', latest: '2025113000' }), '2025113000')
    for (const bad of [null, {}, { latest: 2025 }, { latest: '<html>' }]) assert.equal(endpointsVersion(bad), null)
  })
})

/** Microsoft's shipped ranges: the anchor of the cases below. */
const MICROSOFT = ['40.92.0.0/15', '40.107.0.0/16', '52.100.0.0/14', '104.47.0.0/17', '2a01:111:f400::/48', '2a01:111:f403::/48']
const BOUNDS: RefreshBounds = { accepted: [], widestIpv4: 16, widestIpv6: 32 }

/** IPv4 addresses the ranges cover (overlaps counted once). */
function ipv4Space(ranges: readonly string[]): number {
  const iv = ranges
    .map((r) => parseCidr(r)!)
    .filter((c) => c.ip.kind() === 'ipv4')
    .map((c) => {
      const start = c.ip.toByteArray().reduce((n, b) => n * 256 + b, 0)
      return [start, start + 2 ** (32 - c.prefix)] as const
    })
    .sort((a, b) => a[0] - b[0])
  let total = 0
  let end = 0
  for (const [a, b] of iv) {
    if (b <= end) continue
    total += b - Math.max(a, end)
    end = b
  }
  return total
}

describe("implausible: fresh ranges bounded by the files' ranges", () => {
  const cases: [string, readonly string[], readonly string[], RegExp | null, Partial<RefreshBounds>?][] = [
    ['takes the same ranges', MICROSOFT, MICROSOFT, null],
    ['takes a few new narrow ranges', MICROSOFT, [...MICROSOFT, '52.106.0.0/24', '198.2.128.0/21'], null],
    ['refuses no ranges', MICROSOFT, [], /no ranges/],
    ['refuses what is not a range', MICROSOFT, ['40.92.0.0/99'], /not a range/],
    ['refuses a range wider than /12', ['40.107.0.0/16'], ['0.0.0.0/0'], /0\.0\.0\.0\/0 is wider than \/12/],
    ['refuses an IPv6 range wider than /24', ['2a01:111:f400::/48'], ['2a00::/16'], /wider than \/24/],
    ["takes a wide range that lies inside the files' ones", ['17.0.0.0/8'], ['17.0.0.0/8'], null],
    ['refuses a new range wider than /20', MICROSOFT, [...MICROSOFT, '13.0.0.0/16'], /13\.0\.0\.0\/16 is new and wider than \/20 \(\[refresh\] accept_new/],
    ['refuses a new IPv6 range wider than /40', MICROSOFT, [...MICROSOFT, '2001:db8::/36'], /new and wider than \/40/],
    ['takes a new wide range [refresh] accept_new covers', MICROSOFT, [...MICROSOFT, '13.0.0.0/16'], null, { accepted: ['13.0.0.0/8'] }],
    [
      "refuses more than 4x the files' space (+ a /16)",
      ['40.107.0.0/16'],
      ['40.96.0.0/12'],
      /IPv4 space would be 2\^20 addresses, more than 4 x the files' 2\^16 \+ 2\^16/,
    ],
    ["takes 4x the files' space + a /16", ['40.107.0.0/16'], ['40.104.0.0/14', ...Array.from({ length: 16 }, (_, i) => `185.${i}.0.0/20`)], null],
    [
      'refuses, with no ranges in the files, more than one /16 in total',
      [],
      Array.from({ length: 17 }, (_, i) => `185.${i}.0.0/20`),
      /more than 4 x the files' 0 \+ 2\^16/,
    ],
    ['takes, with no ranges in the files, one /16 in /20s', [], Array.from({ length: 16 }, (_, i) => `185.${i}.0.0/20`), null],
    ['refuses, with no ranges in the files, a /19', [], ['185.12.0.0/19'], /new and wider than \/20/],
    [
      'refuses more ranges than anchor + 64',
      ['40.107.0.0/16', '104.47.0.0/17'],
      Array.from({ length: 67 }, (_, i) => `40.107.${i}.0/24`),
      /67 ranges, more than the 66 allowed for 2/,
    ],
    ['takes anchor + 64 ranges', ['40.107.0.0/16', '104.47.0.0/17'], Array.from({ length: 66 }, (_, i) => `40.107.${i}.0/24`), null],
  ]
  for (const [what, anchor, fresh, refused, bounds] of cases) {
    it(what, () => {
      const why = implausible(anchor, fresh, { ...BOUNDS, ...bounds })
      if (refused) assert.match(why ?? 'null', refused)
      else assert.equal(why, null)
    })
  }
  it('caps the count at 1024 however many ranges the files give', () => {
    assert.equal(maxRanges(7), 71)
    assert.equal(maxRanges(100), 400)
    assert.equal(maxRanges(1000), 1024)
    const anchor = Array.from({ length: 1000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`)
    assert.match(implausible(anchor, [...anchor, ...Array.from({ length: 25 }, (_, i) => `10.9.${i}.0/24`)], BOUNDS) ?? '', /1025 ranges, more than the 1024/)
  })

  it('seven daily hostile refreshes, each 4x the last, leave the pool within its cap', () => {
    const cap = 4 * ipv4Space(MICROSOFT) + 2 ** 16
    // Each day's answer quadruples the ranges in force: every range two bits wider.
    const quadruple = (ranges: readonly string[]): string[] =>
      ranges.map((r) => {
        const c = parseCidr(r)!
        const prefix = Math.max(0, c.prefix - 2)
        const net = c.ip.kind() === 'ipv4' ? (c.ip.toByteArray().reduce((n, b) => n * 256 + b, 0) >>> 0) & (prefix ? ~(2 ** (32 - prefix) - 1) >>> 0 : 0) : 0
        return c.ip.kind() === 'ipv4' ? `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.')}/${prefix}` : r
      })
    let inForce = MICROSOFT
    let refusedOn: number | null = null
    for (let day = 1; day <= 7; day++) {
      const answer = quadruple(inForce)
      const why = implausible(MICROSOFT, answer, BOUNDS)
      if (why) refusedOn ??= day
      else inForce = answer
      assert.ok(ipv4Space(inForce) <= cap, `day ${day}: 2^${Math.log2(ipv4Space(inForce)).toFixed(1)} addresses in force`)
    }
    assert.equal(refusedOn, 2, 'the first quadrupling is within the cap, the second is not')
    assert.ok(!inForce.some((r) => r.startsWith('8.')), 'not all of IPv4')
  })
})

describe('anchorsOf', () => {
  it("joins each provider's shipped and local ranges", () => {
    const p = (id: string, ips: string[]): Provider => ({
      id,
      name: id,
      source: '',
      spf: [],
      action: 'skip',
      hosts: [],
      ips,
      updated: null,
      origin: 'f:1',
      declared: new Set(),
    })
    const a = anchorsOf([p('microsoft', ['40.92.0.0/15', '40.107.0.0/16'])], [p('microsoft', ['40.107.0.0/16', '104.47.0.0/17']), p('corp', ['192.0.2.1'])])
    assert.deepEqual(a.get('microsoft'), ['40.92.0.0/15', '40.107.0.0/16', '104.47.0.0/17'])
    assert.deepEqual(a.get('corp'), ['192.0.2.1/32'])
  })
})

describe('the shared record', () => {
  const now = Date.UTC(2026, 11, 8)
  const s = { id: 'microsoft', ranges: ['40.92.0.0/15', '52.106.0.0/24'], updated: Date.UTC(2026, 11, 4), source: 'endpoints' as const, version: '2025113000' }
  const check = { anchor: MICROSOFT, bounds: BOUNDS, now }
  const read = (h: Record<string, string>): unknown => decodeShared('microsoft', h, check)
  const good = encodeShared(s)
  it('reads back what was written; nothing stored is null', () => {
    assert.deepEqual(read(good), s)
    assert.equal(read({}), null)
  })
  for (const [what, h, why] of [
    ['a range that is not one', { ...good, ranges: '40.92.0.0/15 0.0.0.0/99' }, /not a range/],
    ['no ranges', { ...good, ranges: '' }, /no ranges/],
    ['every client (0.0.0.0/0 ::/0)', { ...good, ranges: '0.0.0.0/0 ::/0' }, /0\.0\.0\.0\/0 is wider than \/12/],
    ['100k ranges', { ...good, ranges: Array.from({ length: 100_000 }, (_, i) => `40.92.${i & 255}.${i >> 8}/32`).join(' ') }, /characters long/],
    ['1100 ranges in few characters', { ...good, ranges: Array.from({ length: 1100 }, () => '40.92.0.0/15').join(' ') }, /1100 ranges/],
    ["growth past the files' bound", { ...good, ranges: '40.80.0.0/12 52.96.0.0/12' }, /IPv4 space/],
    ['updated = 1e300', { ...good, updated: '1e300' }, /updated "1e300" is not a time/],
    ['updated not a number', { ...good, updated: 'x' }, /updated "x"/],
    ['updated before 2020', { ...good, updated: String(Date.UTC(2019, 11, 31)) }, /not a time between 2020/],
    ['updated two days ahead', { ...good, updated: String(now + 2 * 86_400_000) }, /not a time between 2020 and tomorrow/],
    ['another source', { ...good, source: 'http' }, /source "http"/],
  ] as const) {
    it(`refuses a record with ${what}, and says why`, () => {
      const r = read(h) as { refused?: string }
      assert.match(r.refused ?? 'accepted', why)
    })
  }
  it('says why in one short line, whatever the record holds', () => {
    const forged = { ...good, source: `spf\n[smart-greylist] pass reason=whitelist ${'x'.repeat(10_000)}` }
    const r = read(forged) as { refused?: string }
    assert.match(r.refused ?? '', /^source "spf\\x0a\[smart-greylist\]\\x20pass/)
    assert.ok(!/[\n\r]/.test(r.refused ?? '') && (r.refused ?? '').length < 200, r.refused)
  })
  it('takes a record dated a little ahead (clocks differ)', () => {
    assert.deepEqual(read({ ...good, updated: String(now + 3_600_000) }), { ...s, updated: now + 3_600_000 })
  })
  const p = (updated: string | null): Provider => ({
    id: 'microsoft',
    name: 'm',
    source: '',
    spf: [],
    action: 'skip',
    hosts: [],
    ips: ['40.92.0.0/15'],
    updated,
    origin: 'f:1',
    declared: new Set(),
  })
  it("replaces the files' ranges, unless the file's are of a later day", () => {
    const [older] = withShared([p('2026-11-28')], new Map([['microsoft', s]]))
    assert.deepEqual([older?.ips, older?.updated, older?.origin], [s.ranges, '2026-12-04', 'redis (endpoints 2025113000)'])
    const [newer] = withShared([p('2026-12-05')], new Map([['microsoft', s]]))
    assert.deepEqual(newer?.ips, ['40.92.0.0/15'])
    assert.deepEqual(withShared([p(null)], new Map())[0]?.ips, ['40.92.0.0/15'])
  })
  it("does not throw on a time Date cannot hold: the files' ranges stay", () => {
    const [kept] = withShared([p(null)], new Map([['microsoft', { ...s, updated: 1e300 }]]))
    assert.deepEqual(kept?.ips, ['40.92.0.0/15'])
  })
})
