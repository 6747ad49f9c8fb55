import assert from 'node:assert/strict'
import { DELAY_BUCKETS, dayOf, delayChart, delayPercentile, mergeDays, parseDay, statsKeys } from '../../plugins/smart-greylist/core/stats'
import { canonicalEntry } from '../../plugins/smart-greylist/core/whitelist'

describe('stats', () => {
  it('names one hash and one sorted set per UTC day', () => {
    assert.equal(dayOf(Date.UTC(2026, 10, 28, 23, 59)), '2026-11-28')
    // The day's text is kept between calls: crossing midnight either way still changes it.
    for (const [t, day] of [
      [Date.UTC(2026, 10, 28, 23, 59, 59, 999), '2026-11-28'],
      [Date.UTC(2026, 10, 29), '2026-11-29'],
      [Date.UTC(2026, 10, 28), '2026-11-28'],
      [-1, '1969-12-31'],
      [0, '1970-01-01'],
    ] as const) {
      assert.equal(dayOf(t), day)
    }
    assert.deepEqual(statsKeys('sgl:', Date.UTC(2026, 10, 28), 17), { counters: 'sgl:{17}st:2026-11-28', identities: 'sgl:{17}si:2026-11-28' })
  })

  const day = parseDay('2026-11-28', {
    'defer:new': '10',
    'defer:early': '4',
    'shadow:new': '2',
    retry: '8',
    known: '30',
    awl: '5',
    'wl:host': '7',
    'wl:provider': '3',
    'skip:relaying': '9',
    fail_open: '1',
    'd:300': '5',
    'd:420': '2',
    'd:3600': '1',
    dsum: '4000',
    dmax: '3100',
  })

  it('reads a day hash into named counters', () => {
    assert.equal(day.deferred, 14)
    assert.deepEqual(day.deferredBy, { new: 10, early: 4 })
    assert.equal(day.shadow, 2)
    assert.equal(day.acceptedAfterDelay, 8)
    assert.deepEqual(day.whitelisted, { host: 7, provider: 3 })
    assert.equal(day.failOpen, 1)
    assert.equal(day.delay.count, 8)
  })

  it('reads the delay histogram per identity kind, and draws it', () => {
    const d = parseDay('2026-11-28', { 'd:300': '3', 'd:inf': '1', 'dk:spf:300': '2', 'dk:net:300': '1', 'dk:net:inf': '1' })
    assert.deepEqual(d.delayByKind, { spf: { '300': 2 }, net: { '300': 1, inf: 1 } })
    assert.deepEqual(mergeDays([d, d]).delayByKind.net, { '300': 2, inf: 2 })
    const lines = delayChart(d.delay.buckets, 10)
    assert.equal(lines[0], '     <= 300 s | ########## 3')
    assert.equal(lines.at(-1), '   > 172800 s | ###        1')
    assert.equal(lines.length, DELAY_BUCKETS.length - DELAY_BUCKETS.indexOf(300) + 1, 'from the first bucket that holds mail to the last')
    assert.deepEqual(delayChart({}), [])
  })

  it('counts messages deferred at the end of data as deferrals, and postponed recipients apart', () => {
    const weak = parseDay('2026-11-28', { 'defer:new': '1', 'message:new': '3', 'message:early': '1', 'postponed:new': '4', 'postponed:early': '2' })
    assert.equal(weak.deferred, 5)
    assert.deepEqual(weak.messagesDeferredBy, { new: 3, early: 1 })
    assert.deepEqual(weak.postponed, { new: 4, early: 2 })
    assert.deepEqual(mergeDays([weak, weak]).messagesDeferredBy, { new: 6, early: 2 })
  })

  it('reads percentiles from the histogram as bucket bounds, capped by the maximum', () => {
    assert.equal(delayPercentile(day.delay.buckets, 0.5, 3100), 300)
    assert.equal(delayPercentile(day.delay.buckets, 0.8, 3100), 420)
    assert.equal(delayPercentile(day.delay.buckets, 1, 3100), 3100)
    assert.equal(delayPercentile({}, 0.5, 0), null)
  })

  it('adds days up', () => {
    const total = mergeDays([day, day])
    assert.equal(total.deferred, 28)
    assert.deepEqual(total.whitelisted, { host: 14, provider: 6 })
    assert.equal(total.delay.maxSeconds, 3100)
    assert.equal(total.delay.buckets['300'], 10)
  })
})

describe('canonicalEntry', () => {
  it('spells equal entries alike, so duplicates are found', () => {
    assert.equal(canonicalEntry({ kind: 'host', pattern: '*Outbound.Protection.Outlook.com.' }), 'host:*.outbound.protection.outlook.com')
    assert.equal(canonicalEntry({ kind: 'ip', pattern: '::ffff:40.107.0.0/112' }), 'ip:40.107.0.0/16')
    assert.equal(canonicalEntry({ kind: 'from', pattern: 'example.org' }), 'from:*@example.org')
    assert.equal(canonicalEntry({ kind: 'to', pattern: '@example.org' }), 'to:*@example.org')
  })
})
