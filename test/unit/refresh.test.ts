// Provider data that refreshes itself: reading Microsoft's endpoints service, the record every
// MX shares, and which ranges win.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { decodeShared, encodeShared, endpointsVersion, exchangeSmtpRanges, withShared } from '../../plugins/smart-greylist/core/refresh'
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

describe('the shared record', () => {
  const s = { id: 'microsoft', ranges: ['40.92.0.0/15', '52.106.0.0/24'], updated: Date.UTC(2026, 11, 4), source: 'endpoints' as const, version: '2025113000' }
  it('reads back what was written, and ignores a record that is not one', () => {
    assert.deepEqual(decodeShared('microsoft', encodeShared(s)), s)
    assert.equal(decodeShared('microsoft', { ranges: '40.92.0.0/15 0.0.0.0/99', updated: '1', source: 'spf' }), null)
    assert.equal(decodeShared('microsoft', { ranges: '', updated: '1', source: 'spf' }), null)
    assert.equal(decodeShared('microsoft', { ranges: '40.92.0.0/15', updated: 'x', source: 'spf' }), null)
    assert.equal(decodeShared('microsoft', { ranges: '40.92.0.0/15', updated: '1', source: 'http' }), null)
  })
  it("replaces the files' ranges, unless the file's are of a later day", () => {
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
    const [older] = withShared([p('2026-11-28')], new Map([['microsoft', s]]))
    assert.deepEqual([older?.ips, older?.updated, older?.origin], [s.ranges, '2026-12-04', 'redis (endpoints 2025113000)'])
    const [newer] = withShared([p('2026-12-05')], new Map([['microsoft', s]]))
    assert.deepEqual(newer?.ips, ['40.92.0.0/15'])
    assert.deepEqual(withShared([p(null)], new Map())[0]?.ips, ['40.92.0.0/15'])
  })
})
