import assert from 'node:assert/strict'
import tlds from 'haraka-tld'
import { commonSuffix, stuckPairs, type StuckOptions, type TupleSeen } from '../../plugins/smart-greylist/core/stuck'

const NOW = Date.UTC(2030, 0, 15, 12)
const MIN = 60_000
const opts: StuckOptions = {
  minDeferrals: 3,
  windowMs: 25 * 60 * MIN,
  orgDomain: (n) => tlds.get_organizational_domain(n),
  netIdentityGreylist: 'recipient',
}
const tuple = (over: Partial<TupleSeen>): TupleSeen => ({
  firstSeen: NOW - 30 * MIN,
  passedAt: null,
  identity: 'net:2.58.10.0/24',
  sender: 'alice@pool.example',
  recipient: 'bob@example.com',
  client: '2.58.10.5',
  rdns: '',
  ...over,
})
// An unlisted six-address pool without rDNS: each retry from another /16.
const POOL = ['2.58.10.5', '31.13.70.9', '45.83.1.7', '77.111.240.3', '91.198.174.8', '185.15.58.2']
const poolTuples = POOL.map((ip, i) => tuple({ client: ip, identity: `net:${ip.replace(/\.\d+$/, '.0')}/24`, firstSeen: NOW - (60 - 10 * i) * MIN }))

describe('stuckPairs', () => {
  before(() => tlds.ready)

  it('finds a pool deferred from six networks without passing, and suggests net_identity_greylist = message', () => {
    const [p, ...rest] = stuckPairs(poolTuples, NOW, opts)
    assert.equal(rest.length, 0)
    assert.ok(p)
    assert.equal(p.senderDomain, 'pool.example')
    assert.equal(p.recipient, 'bob@example.com')
    assert.equal(p.deferrals, 6)
    assert.equal(p.identities.length, 6)
    assert.deepEqual(
      p.networks,
      POOL.map((ip) => `${ip.replace(/\.\d+$/, '.0')}/24`),
    )
    assert.deepEqual(p.names, [])
    assert.equal(p.firstSeen, NOW - 60 * MIN)
    assert.equal(p.lastSeen, NOW - 10 * MIN)
    assert.equal(p.suggestion, '[main] net_identity_greylist = message')
    assert.equal(stuckPairs(poolTuples, NOW, { ...opts, netIdentityGreylist: 'message' })[0]?.suggestion, null)
  })

  it('is not stuck once one of its tuples passed within the window', () => {
    const through = tuple({ client: '2.58.11.5', identity: 'net:2.58.11.0/24', passedAt: NOW - 5 * MIN })
    assert.deepEqual(stuckPairs([...poolTuples, through], NOW, opts), [])
    // A pass older than the window does not count: the sender is stuck again.
    const old = { ...through, firstSeen: NOW - 40 * 24 * 60 * MIN, passedAt: NOW - 30 * 24 * 60 * MIN }
    assert.equal(stuckPairs([...poolTuples, old], NOW, opts).length, 1)
  })

  it('needs several deferrals from more than one identity or network, within the window', () => {
    assert.deepEqual(stuckPairs(poolTuples.slice(0, 2), NOW, opts), [], 'two deferrals are not several')
    assert.equal(stuckPairs(poolTuples.slice(0, 2), NOW, { ...opts, minDeferrals: 2 }).length, 1)
    const oneNet = [1, 2, 3].map((i) => tuple({ sender: `u${i}@pool.example` }))
    assert.deepEqual(stuckPairs(oneNet, NOW, opts), [], 'one identity in one network is ordinary greylisting')
    const stale = poolTuples.map((t) => ({ ...t, firstSeen: NOW - 26 * 60 * MIN }))
    assert.deepEqual(stuckPairs(stale, NOW, opts), [], 'older than the retry window')
  })

  it('groups by sender domain and recipient, and lists the worst first', () => {
    const other = POOL.slice(0, 3).map((ip) => tuple({ client: ip, identity: `net:${ip}/32`, sender: 'x@other.example' }))
    const pairs = stuckPairs([...other, ...poolTuples.map((t, i) => ({ ...t, sender: `user${i}@pool.example` }))], NOW, opts)
    assert.deepEqual(
      pairs.map((p) => `${p.senderDomain} ${p.deferrals}`),
      ['pool.example 6', 'other.example 3'],
    )
  })

  it('suggests a host: line when forward-confirmed names share a domain under the public suffix', () => {
    const names = ['mail-a1.eur.mail.bigsender.example.com', 'mail-b2.nam.mail.bigsender.example.com', 'mail-c3.mail.bigsender.example.com']
    const confirmed = names.map((n, i) => tuple({ client: POOL[i], identity: `host:${n.slice(n.indexOf('.') + 1)}`, rdns: n }))
    const [p] = stuckPairs(confirmed, NOW, opts)
    assert.equal(p?.suggestion, 'host:*.mail.bigsender.example.com')
    assert.equal(p?.note, null)
    // The same names, not forward-confirmed: a host: entry would not match them.
    const [u] = stuckPairs(
      confirmed.map((t) => ({ ...t, identity: `net:${t.client}/24`, rdns: `?${t.rdns}` })),
      NOW,
      opts,
    )
    assert.equal(u?.suggestion, null)
    assert.match(u?.note ?? '', /share mail\.bigsender\.example\.com but not all are forward-confirmed/)
  })

  it('never suggests a public suffix, and warns when the names number machines', () => {
    const spread = ['a.one.co.uk', 'b.two.co.uk', 'c.three.co.uk'].map((n, i) => tuple({ client: POOL[i], identity: `host:${n}`, rdns: n }))
    assert.equal(stuckPairs(spread, NOW, opts)[0]?.suggestion, null)
    const spelled = POOL.slice(0, 3).map((ip) => tuple({ client: ip, identity: 'host:x', rdns: `${ip.replace(/\./g, '-')}.out.ispnet.net` }))
    const [p] = stuckPairs(spelled, NOW, opts)
    assert.equal(p?.suggestion, 'host:*.out.ispnet.net')
    assert.match(p?.note ?? '', /number machines/)
  })

  it("never suggests a line for an access network's customer names", () => {
    const dyn = POOL.slice(0, 3).map((ip) => tuple({ client: ip, identity: `net:${ip}`, rdns: `${ip.replace(/\./g, '-')}.dyn.ispnet.net` }))
    const [p] = stuckPairs(dyn, NOW, opts)
    assert.equal(p?.suggestion, null)
    assert.match(p?.note ?? '', /access network's customer lines under dyn\.ispnet\.net/)
  })
})

describe('commonSuffix', () => {
  it('is the trailing labels every name shares; a single host gives its parent', () => {
    assert.equal(commonSuffix(['a.b.example.com', 'c.b.example.com']), 'b.example.com')
    assert.equal(commonSuffix(['a.example.com', 'a.example.com']), 'example.com')
    assert.equal(commonSuffix(['a.example.com', 'a.example.org']), null)
    assert.equal(commonSuffix([]), null)
  })
})
