import assert from 'node:assert/strict'
import { allowSet, Histogram, mayScrape, providerAges, renderMetrics, SharedRead, type ProcessMetrics } from '../../plugins/smart-greylist/core/metrics'
import { parseDay } from '../../plugins/smart-greylist/core/stats'

const NOW = Date.UTC(2030, 0, 15, 12)

function proc(over: Partial<ProcessMetrics> = {}): ProcessMetrics {
  const h = new Histogram([0.001, 0.01])
  return {
    host: 'mx1',
    pid: 42,
    redisUp: true,
    redisInFlight: 3,
    redisSeconds: h.snapshot(),
    dnsSeconds: {},
    failOpen: {},
    providerAgeSeconds: {},
    ...over,
  }
}

/** Every sample line of a family, without its HELP and TYPE. */
function samples(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
}

describe('Histogram', () => {
  it('counts each observation in the first bucket whose bound holds it, the rest in +Inf', () => {
    const h = new Histogram([0.001, 0.01, 0.1])
    for (const v of [0.0005, 0.001, 0.002, 0.05, 3]) h.observe(v)
    const s = h.snapshot()
    assert.deepEqual(s.counts, [2, 1, 1, 1])
    assert.equal(s.count, 5)
    assert.ok(Math.abs(s.sum - 3.0535) < 1e-9)
  })
})

describe('renderMetrics', () => {
  const today = parseDay('today', {
    'defer:new': '4',
    'defer:early': '1',
    'shadow:new': '2',
    retry: '3',
    known: '10',
    'wl:host': '5',
    'skip:private_ip': '7',
    'would_trust:new': '1',
    'id:host': '12',
    'id:net': '6',
    fail_open: '5',
    'fo:redis_timeout': '3',
    'd:60': '1',
    'd:300': '2',
    dsum: '700',
    dmax: '400',
    'dk:host:300': '2',
    'dk:net:60': '1',
    'dks:host': '640',
    'dks:net': '60',
  })

  it("names the site's decisions by action and reason, from today's counters", () => {
    const text = renderMetrics({ today, stuckPairs: 2, stuckCountedAt: NOW - 30_000, refreshFailed: true }, proc(), NOW)
    assert.deepEqual(samples(text, 'smart_greylist_decisions_total'), [
      'smart_greylist_decisions_total{action="defer",reason="early"} 1',
      'smart_greylist_decisions_total{action="defer",reason="new"} 4',
      'smart_greylist_decisions_total{action="shadow_defer",reason="new"} 2',
      'smart_greylist_decisions_total{action="pass",reason="awl"} 0',
      'smart_greylist_decisions_total{action="pass",reason="known"} 10',
      'smart_greylist_decisions_total{action="pass",reason="retry"} 3',
      'smart_greylist_decisions_total{action="whitelist",reason="host"} 5',
      'smart_greylist_decisions_total{action="skip",reason="private_ip"} 7',
    ])
    assert.deepEqual(samples(text, 'smart_greylist_identity_decisions_total'), [
      'smart_greylist_identity_decisions_total{kind="host"} 12',
      'smart_greylist_identity_decisions_total{kind="net"} 6',
    ])
    assert.deepEqual(samples(text, 'smart_greylist_would_trust_total'), ['smart_greylist_would_trust_total{reason="new"} 1'])
    // Counted before causes were recorded: the rest of the total.
    assert.deepEqual(samples(text, 'smart_greylist_fail_open_total'), [
      'smart_greylist_fail_open_total{cause="redis_timeout"} 3',
      'smart_greylist_fail_open_total{cause="unknown"} 2',
    ])
    assert.deepEqual(samples(text, 'smart_greylist_stuck_pairs'), ['smart_greylist_stuck_pairs 2'])
    assert.deepEqual(samples(text, 'smart_greylist_stuck_count_age_seconds'), ['smart_greylist_stuck_count_age_seconds 30'])
    assert.deepEqual(samples(text, 'smart_greylist_provider_refresh_failed'), ['smart_greylist_provider_refresh_failed 1'])
    assert.match(text, /^# TYPE smart_greylist_decisions_total counter$/m)
    assert.match(text, /^# HELP smart_greylist_decisions_total .+00:00 UTC$/m)
  })

  it('writes the delay as a cumulative histogram, overall and per identity kind', () => {
    const text = renderMetrics({ today, stuckPairs: null, stuckCountedAt: null, refreshFailed: false }, proc(), NOW)
    const buckets = samples(text, 'smart_greylist_delay_seconds_bucket')
    assert.equal(buckets[0], 'smart_greylist_delay_seconds_bucket{le="60"} 1')
    assert.ok(buckets.includes('smart_greylist_delay_seconds_bucket{le="240"} 1'))
    assert.ok(buckets.includes('smart_greylist_delay_seconds_bucket{le="300"} 3'))
    assert.equal(buckets.at(-1), 'smart_greylist_delay_seconds_bucket{le="+Inf"} 3')
    assert.deepEqual(samples(text, 'smart_greylist_delay_seconds_sum'), ['smart_greylist_delay_seconds_sum 700'])
    assert.deepEqual(samples(text, 'smart_greylist_delay_seconds_count'), ['smart_greylist_delay_seconds_count 3'])
    assert.ok(samples(text, 'smart_greylist_delay_by_kind_seconds_bucket').includes('smart_greylist_delay_by_kind_seconds_bucket{kind="net",le="60"} 1'))
    assert.deepEqual(samples(text, 'smart_greylist_delay_by_kind_seconds_sum'), [
      'smart_greylist_delay_by_kind_seconds_sum{kind="host"} 640',
      'smart_greylist_delay_by_kind_seconds_sum{kind="net"} 60',
    ])
    assert.deepEqual(samples(text, 'smart_greylist_stuck_pairs'), [], 'no count yet: no sample')
    assert.deepEqual(samples(text, 'smart_greylist_provider_refresh_failed'), ['smart_greylist_provider_refresh_failed 0'], 'the last refresh went well')
  })

  it("labels the process's own series, and escapes label values", () => {
    const h = new Histogram([0.001, 0.01])
    h.observe(0.0005)
    h.observe(0.02)
    const text = renderMetrics(
      { today: null, stuckPairs: null, stuckCountedAt: null, refreshFailed: null },
      proc({ host: 'mx"1\\', redisSeconds: h.snapshot(), failOpen: { redis_timeout: 2 }, providerAgeSeconds: { microsoft: 86_400, unknown: null } }),
      NOW,
    )
    assert.deepEqual(samples(text, 'smart_greylist_site_up'), ['smart_greylist_site_up 0'])
    assert.deepEqual(samples(text, 'smart_greylist_decisions_total'), [], 'no site series without Redis')
    assert.deepEqual(samples(text, 'smart_greylist_provider_refresh_failed'), [], 'no refresh recorded: no sample')
    assert.deepEqual(samples(text, 'smart_greylist_redis_request_seconds_bucket'), [
      'smart_greylist_redis_request_seconds_bucket{host="mx\\"1\\\\",pid="42",le="0.001"} 1',
      'smart_greylist_redis_request_seconds_bucket{host="mx\\"1\\\\",pid="42",le="0.01"} 1',
      'smart_greylist_redis_request_seconds_bucket{host="mx\\"1\\\\",pid="42",le="+Inf"} 2',
    ])
    assert.deepEqual(samples(text, 'smart_greylist_process_fail_open_total'), [
      'smart_greylist_process_fail_open_total{host="mx\\"1\\\\",pid="42",cause="redis_timeout"} 2',
    ])
    assert.deepEqual(samples(text, 'smart_greylist_provider_data_age_seconds'), [
      'smart_greylist_provider_data_age_seconds{host="mx\\"1\\\\",pid="42",provider="microsoft"} 86400',
    ])
    assert.deepEqual(samples(text, 'smart_greylist_redis_in_flight'), ['smart_greylist_redis_in_flight{host="mx\\"1\\\\",pid="42"} 3'])
    // Every line is a comment or a sample: the text format has nothing else.
    for (const line of text.trimEnd().split('\n')) assert.match(line, /^(# (HELP|TYPE) \S+ .+|[a-z_]+(\{.*\})? \S+)$/)
  })
})

describe('providerAges', () => {
  it("takes a refresh's own time, else the day the file names", () => {
    const ages = providerAges(
      [
        { id: 'microsoft', updated: '2030-01-10', origin: 'redis (endpoints 2030011000)' },
        { id: 'google', updated: '2030-01-14', origin: 'smart-greylist.providers:40' },
        { id: 'local', updated: null, origin: 'smart-greylist.providers.local:1' },
      ],
      new Map([['microsoft', { updated: NOW - 3_600_000 }]]),
      NOW,
    )
    assert.deepEqual(ages, { microsoft: 3600, google: 36 * 3600, local: null })
  })
})

describe('SharedRead', () => {
  /** A read the test finishes by hand, counting how often it was started. */
  function reads(): { read: () => Promise<string>; started: () => number; settle: (v: string | Error) => void } {
    let n = 0
    const pending: ((v: string | Error) => void)[] = []
    return {
      read: () => {
        n++
        return new Promise<string>((resolve, reject) => pending.push((v) => (v instanceof Error ? reject(v) : resolve(v))))
      },
      started: () => n,
      settle: (v) => pending.shift()?.(v),
    }
  }

  it('callers while a read is in flight share it', async () => {
    const shared = new SharedRead<string>()
    const r = reads()
    const all = [shared.get(NOW, 0, r.read), shared.get(NOW + 10, 0, r.read), shared.get(NOW + 20, 0, r.read)]
    r.settle('site')
    assert.deepEqual(await Promise.all(all), ['site', 'site', 'site'])
    assert.equal(r.started(), 1)
  })

  it('keeps a read for keepMs from when it started, then reads again', async () => {
    const shared = new SharedRead<string>()
    const r = reads()
    const first = shared.get(NOW, 5000, r.read)
    r.settle('one')
    assert.equal(await first, 'one')
    assert.equal(await shared.get(NOW + 4999, 5000, r.read), 'one')
    assert.equal(r.started(), 1)
    const again = shared.get(NOW + 5000, 5000, r.read)
    r.settle('two')
    assert.equal(await again, 'two')
    assert.equal(r.started(), 2)
  })

  it('keeps nothing with keepMs = 0', async () => {
    const shared = new SharedRead<string>()
    const r = reads()
    const first = shared.get(NOW, 0, r.read)
    r.settle('one')
    await first
    const second = shared.get(NOW, 0, r.read)
    r.settle('two')
    assert.equal(await second, 'two')
  })

  it('does not keep a failed read: its callers see the failure, the next caller reads again', async () => {
    const shared = new SharedRead<string>()
    const r = reads()
    const both = [shared.get(NOW, 5000, r.read), shared.get(NOW, 5000, r.read)]
    r.settle(new Error('Redis timeout'))
    for (const p of both) await assert.rejects(p, /Redis timeout/)
    const next = shared.get(NOW + 1, 5000, r.read)
    r.settle('fresh')
    assert.equal(await next, 'fresh')
    assert.equal(r.started(), 2)
  })

  it('reads again when the clock went back, rather than keep an old read until it catches up', async () => {
    const shared = new SharedRead<string>()
    const r = reads()
    const first = shared.get(NOW, 5000, r.read)
    r.settle('one')
    await first
    const back = shared.get(NOW - 60_000, 5000, r.read)
    r.settle('two')
    assert.equal(await back, 'two')
  })
})

describe('mayScrape', () => {
  const cases: [string, readonly string[], string | undefined, boolean][] = [
    ['loopback, by default', ['127.0.0.0/8', '::1/128'], '127.0.0.1', true],
    ['IPv6 loopback, by default', ['127.0.0.0/8', '::1/128'], '::1', true],
    ['an IPv4-mapped peer as its IPv4 address', ['127.0.0.2/32'], '::ffff:127.0.0.2', true],
    ['a neighbour outside the network', ['127.0.0.2/32'], '127.0.0.1', false],
    ['a mapped neighbour outside the network', ['127.0.0.2/32'], '::ffff:127.0.0.1', false],
    ['an outside address, by default', ['127.0.0.0/8', '::1/128'], '192.0.2.1', false],
    ['a peer whose address is unknown (socket gone)', ['127.0.0.0/8'], undefined, false],
    ['anyone with an empty list', [], '127.0.0.1', false],
    ['anyone when the admin allows all', ['0.0.0.0/0', '::/0'], '2001:db8::1', true],
  ]
  for (const [what, allow, remote, expected] of cases) {
    it(`${expected ? 'allows' : 'refuses'} ${what}`, () => assert.equal(mayScrape(allowSet(allow), remote), expected))
  }
})
