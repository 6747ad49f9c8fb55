// End to end: identities beyond the rDNS (SPF, with its permissive-record guard), envelopes
// rewritten per attempt, and the auto-whitelist, through a real Haraka, Redis and loopback DNS.
import assert from 'node:assert/strict'
import { connectRedis } from '../../scripts/harness/redis'
import { deliver, type Envelope } from '../../scripts/harness/smtp'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'
import { EXCHANGE_HELO, EXCHANGE_IPS, NOPTR_IPS, OPEN_IPS, SES_IPS, exchangeZone, identityZone } from '../helpers/world'

const DELAY_MS = 1000
const INI = '[main]\ndelay=1\nretry_window=6\n[whitelist]\nproviders=false\n[awl]\npasses=3\n'

describe('smart-greylist identities in a running Haraka', function () {
  this.timeout(60_000)
  const stack = useStack({ zones: [identityZone(), exchangeZone()], ini: INI })

  /** First attempt from one address, retry after the delay from another: the retry's RCPT code. */
  async function retryFromElsewhere(first: Envelope, retry: Envelope): Promise<{ first: number; retry: number }> {
    const a = await deliver(stack.haraka.port, first)
    await sleep(DELAY_MS + 200)
    const b = await deliver(stack.haraka.port, retry)
    return { first: a.rcpt[0].code, retry: b.rcpt[0].code }
  }

  const logFor = (from: string): string[] => stack.haraka.linesMatching(new RegExp(`from=<${from.replace(/[.+=]/g, '\\$&')}>`))

  it('SPF: an SES-like sender (names with IP digits, different /24s and regions) passes at the first retry', async () => {
    const from = 'orders@shop.example'
    const r = await retryFromElsewhere({ clientIp: SES_IPS[0], from, to: ['a1@example.com'] }, { clientIp: SES_IPS[1], from, to: ['a1@example.com'] })
    assert.deepEqual(r, { first: 451, retry: 250 })
    for (const l of logFor(from)) assert.match(l, /identity=spf:shop\.example identity_reason=spf_pass/)
    const third = await deliver(stack.haraka.port, { clientIp: SES_IPS[2], from, to: ['a1@example.com'] })
    assert.equal(third.rcpt[0].code, 250)
  })

  it('SPF: a pool with no PTR at all passes at the first retry', async () => {
    const from = 'digest@news.example'
    const r = await retryFromElsewhere({ clientIp: NOPTR_IPS[0], from, to: ['a2@example.com'] }, { clientIp: NOPTR_IPS[1], from, to: ['a2@example.com'] })
    assert.deepEqual(r, { first: 451, retry: 250 })
    assert.match(logFor(from)[0], /identity=spf:news\.example/)
  })

  it('SPF: a domain with "v=spf1 +all" is not trusted as an identity', async () => {
    const from = 'win@open.example'
    const r = await retryFromElsewhere({ clientIp: OPEN_IPS[0], from, to: ['a3@example.com'] }, { clientIp: OPEN_IPS[1], from, to: ['a3@example.com'] })
    assert.deepEqual(r, { first: 451, retry: 451 })
    const lines = logFor(from)
    assert.match(lines[0], /identity=net:94\.23\.1\.0\/24 identity_reason=spf_permissive,no_rdns,no_pool/)
    assert.match(lines[1], /defer reason=new identity=net:94\.23\.77\.0\/24/)
    const db = await connectRedis(stack.redis.port)
    const verdicts = await Promise.all((await db.keys('sgl:s:*')).map((k) => db.get(k)))
    assert.ok(verdicts.includes('1:pass_all'), `the permissive verdict is shared through Redis: ${verdicts.join(' ')}`)
    assert.ok(verdicts.includes('0:bounded'), 'and so is the strict one')
    await db.quit()
  })

  it('a bounce (null sender) from an Exchange-like pool retried from another address passes', async () => {
    const env = { helo: EXCHANGE_HELO, from: '', to: ['a4@example.com'] }
    const r = await retryFromElsewhere({ ...env, clientIp: EXCHANGE_IPS[0] }, { ...env, clientIp: EXCHANGE_IPS[5] })
    assert.deepEqual(r, { first: 451, retry: 250 })
  })

  for (const [kind, first, retry] of [
    ['BATV', 'prvs=1234abcdef=alice@batv.example', 'prvs=9876fedcba=alice@batv.example'],
    ['SRS', 'SRS0=HhH1=TT=orig.example=bob@fwd.example', 'SRS0=XyZ9=UU=orig.example=bob@fwd.example'],
    ['VERP', 'bounce-12345678-carol@lists.example', 'bounce-87654321-carol@lists.example'],
  ] as const) {
    it(`${kind}: a retry whose sender carries a new tag passes`, async () => {
      const r = await retryFromElsewhere(
        { clientIp: '85.214.180.5', from: first, to: ['a5@example.com'] },
        { clientIp: '85.214.180.5', from: retry, to: ['a5@example.com'] },
      )
      assert.deepEqual(r, { first: 451, retry: 250 })
    })
  }

  it('auto-whitelist: after 3 successful retries of a pair, its new mail is accepted at once; another sender domain is not', async () => {
    const ip = '85.214.190.7'
    const to = ['w1@example.com', 'w2@example.com', 'w3@example.com']
    const first = await deliver(stack.haraka.port, { clientIp: ip, from: 'x@awl.example', to })
    assert.deepEqual(
      first.rcpt.map((r) => r.code),
      [451, 451, 451],
    )
    await sleep(DELAY_MS + 200)
    const retry = await deliver(stack.haraka.port, { clientIp: ip, from: 'x@awl.example', to })
    assert.deepEqual(
      retry.rcpt.map((r) => r.code),
      [250, 250, 250],
    )

    const fresh = await deliver(stack.haraka.port, { clientIp: ip, from: 'someone-else@awl.example', to: ['new@example.com'] })
    assert.equal(fresh.rcpt[0].code, 250, 'a new message of the pair is accepted at once')
    assert.match(logFor('someone-else@awl.example')[0], /pass reason=awl identity=net:85\.214\.190\.0\/24/)
    const other = await deliver(stack.haraka.port, { clientIp: ip, from: 'x@other-domain.example', to: ['new@example.com'] })
    assert.equal(other.rcpt[0].code, 451, 'another sender domain at the same identity is still greylisted')
  })
})

describe('smart-greylist against bots behind a permissive SPF record', function () {
  this.timeout(60_000)
  const BOTS = ['85.214.10.5', '62.75.1.9', '91.121.4.4', '151.80.2.2']
  const stack = useStack({
    ini: '[main]\ndelay=1\nretry_window=30\n[awl]\npasses=2\n',
    zones: [
      {
        txt: {
          // 0.3.0's probes (192.0.2.1, 2001:db8::1) fail, every other address passes.
          'carve.example': ['v=spf1 -ip4:192.0.2.1 -ip6:2001:db8::1 +all'],
          // Bounded, but listing three unrelated networks: one identity for all three.
          'corp.example': ['v=spf1 ip4:85.214.10.0/24 ip4:62.75.1.0/24 ip4:91.121.4.0/24 -all'],
        },
      },
    ],
  })

  /** Two messages from `ip` retried after the delay: two passes, the auto-whitelist is earned. */
  async function earn(ip: string, domain: string): Promise<void> {
    for (const n of [1, 2]) {
      const env = { clientIp: ip, from: `m${n}@${domain}`, to: [`u${n}@example.com`] }
      assert.equal((await deliver(stack.haraka.port, env)).rcpt[0].code, 451)
      await sleep(1100)
      assert.equal((await deliver(stack.haraka.port, env)).rcpt[0].code, 250)
    }
    const next = await deliver(stack.haraka.port, { clientIp: ip, from: `m3@${domain}`, to: ['u3@example.com'] })
    assert.equal(next.rcpt[0].code, 250, 'auto-whitelisted')
  }

  it('a bot that earned the auto-whitelist does not let bots in three other networks in', async () => {
    await earn(BOTS[0], 'carve.example')
    for (const ip of BOTS.slice(1)) {
      const r = await deliver(stack.haraka.port, { clientIp: ip, from: 'spam@carve.example', to: ['victim@example.com'] })
      assert.equal(r.rcpt[0].code, 451, `${ip} is greylisted at first contact`)
    }
    const lines = stack.haraka.linesMatching(/from=<spam@carve\.example>/)
    assert.equal(lines.length, 3)
    for (const l of lines) assert.match(l, /defer reason=new identity=net:\S+ identity_reason=spf_permissive/)
  })

  it('an auto-whitelist entry is earned for one network: the same SPF identity elsewhere is greylisted', async () => {
    await earn(BOTS[0], 'corp.example')
    for (const ip of BOTS.slice(1, 3)) {
      const r = await deliver(stack.haraka.port, { clientIp: ip, from: 'other@corp.example', to: [`x${ip}@example.com`] })
      assert.equal(r.rcpt[0].code, 451, `${ip}: another /16`)
    }
    assert.ok(stack.haraka.linesMatching(/defer reason=new identity=spf:corp\.example .*from=<other@corp\.example>/).length === 2)
  })
})
