// End to end: a pool we cannot name ([main] net_identity_greylist = message). Six addresses in six /16s,
// no PTR, an SPF record too wide to trust: every retry comes from another network, so the
// identity is only a /24 and no tuple ever matches. Deferred at the end of data and keyed on the
// message, the first retry of the same message after the delay passes, from any address; bots
// that each send another body once are all deferred; and what one body sent by many bots gains.
import assert from 'node:assert/strict'
import { deliver } from '../../scripts/harness/smtp'
import { connectRedis } from '../../scripts/harness/redis'
import { KEY_PATTERNS } from '../../plugins/smart-greylist/core/keys'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'

/** Six addresses in six /16s (and /24s), none with a PTR. */
const POOL = ['2.58.10.5', '31.13.70.9', '45.60.12.3', '77.88.21.7', '93.184.11.2', '109.70.40.1']
/** Six bots elsewhere. */
const BOTS = ['5.188.62.14', '37.49.230.8', '46.161.27.3', '80.82.77.33', '89.248.167.131', '103.76.228.10']

describe('a pool we cannot name, deferred at the end of data', function () {
  this.timeout(60_000)
  const stack = useStack({
    ini: '[main]\ndelay=1\nretry_window=60\nnet_identity_greylist=message\nheader=true\n[whitelist]\nproviders=false\n[awl]\npasses=0\n',
    // Wider than [identity] spf_widest_ipv4 (a /16): a pass from it is not trusted as an identity.
    zones: [{ txt: { 'bigpool.example': ['v=spf1 ip4:0.0.0.0/1 -all'], 'spam.example': ['v=spf1 ip4:0.0.0.0/1 -all'] } }],
    queue: 'queue/test',
  })
  const message = { id: 'newsletter-2026-12@bigpool.example', body: 'Our December issue.\n\nRead it online.\n' }
  const messageLines = (from = 0): string[] => stack.haraka.linesMatching(/\[smart-greylist\] message /, from)

  it('accepts the first retry of the same message from another /16; the tuples it came through pass with it', async () => {
    const env = { from: 'news@bigpool.example', to: ['bob@example.com'], message }
    const first = await deliver(stack.haraka.port, { ...env, clientIp: POOL[0] })
    assert.equal(first.rcpt[0]?.code, 250, 'RCPT is accepted: the deferral waits for the message')
    assert.equal(first.message?.code, 451)
    assert.match(
      await stack.haraka.waitFor(/\[smart-greylist\] postpone reason=new identity=net:2\.58\.10\.0\/24 .* to=<bob@example\.com>/),
      /identity_reason=spf_permissive,no_rdns,no_pool/,
    )
    assert.match(
      await stack.haraka.waitFor(/\[smart-greylist\] message defer reason=new /),
      /identity=net:2\.58\.10\.0\/24 from=<news@bigpool\.example> recipients=1 waited=0s retry_in=1s/,
    )

    // Too early, from a third network: still deferred (the message's clock, not the tuple's).
    const early = await deliver(stack.haraka.port, { ...env, clientIp: POOL[2] })
    assert.equal(early.message?.code, 451)
    assert.match(messageLines().at(-1) ?? '', /message defer reason=early /)

    await sleep(1300)
    const mark = stack.haraka.log.length
    const retry = await deliver(stack.haraka.port, { ...env, clientIp: POOL[1] })
    assert.equal(retry.rcpt[0]?.code, 250)
    assert.equal(retry.message?.code, 250, 'the same message from another /16 passes at its first retry after the delay')
    assert.match(messageLines(mark)[0] ?? '', /message pass reason=retry .* identity=net:31\.13\.70\.0\/24 .* waited=[12]s/)
    assert.match(
      stack.haraka.queuedMessage(retry.message?.text ?? ''),
      /^X-Greylist: delayed [12] seconds by smart-greylist \(its message, retried\); identity=net:31\.13\.70\.0\/24/m,
    )

    // The tuple the retry came through passed with it: that network's next message is known.
    const next = await deliver(stack.haraka.port, { from: 'news@bigpool.example', to: ['bob@example.com'], clientIp: POOL[1], data: true })
    assert.equal(next.rcpt[0]?.code, 250)
    assert.equal(next.message?.code, 250)
    assert.match(await stack.haraka.waitFor(/\[smart-greylist\] pass reason=known identity=net:31\.13\.70\.0\/24/, 5000, mark), /to=<bob@example\.com>/)
  })

  it('defers six bots that each send another body once, and keeps one record per message', async () => {
    const db = await connectRedis(stack.redis.port)
    const before = (await db.keys(KEY_PATTERNS.messages('sgl:'))).length
    const mark = stack.haraka.log.length
    const replies = await Promise.all(
      BOTS.map((ip, i) =>
        deliver(stack.haraka.port, {
          clientIp: ip,
          from: 'deals@spam.example',
          to: ['carol@example.com'],
          message: { id: `${i}.${ip}@spam.example`, body: `Offer number ${i}` },
        }),
      ),
    )
    assert.deepEqual(
      replies.map((r) => r.message?.code),
      [451, 451, 451, 451, 451, 451],
    )
    assert.equal(messageLines(mark).filter((l) => /message defer reason=new /.test(l)).length, 6)
    assert.equal((await db.keys(KEY_PATTERNS.messages('sgl:'))).length - before, 6, 'one record per message')
    await db.quit()
  })

  it('lets one body that many bots send through at its first copy after the delay (what a retrying botnet gains)', async () => {
    const spam = { from: 'deals@spam.example', to: ['dave@example.com'], message: { id: 'same@spam.example', body: 'One offer for all' } }
    const first = await Promise.all(BOTS.slice(0, 3).map((ip) => deliver(stack.haraka.port, { ...spam, clientIp: ip })))
    assert.deepEqual(
      first.map((r) => r.message?.code),
      [451, 451, 451],
      'copies within the delay are all deferred',
    )
    await sleep(1300)
    const later = await deliver(stack.haraka.port, { ...spam, clientIp: BOTS[3] })
    assert.equal(later.message?.code, 250, 'a copy after the delay, from any bot, is the retry of that message: it passes')
    const other = await deliver(stack.haraka.port, { ...spam, to: ['erin@example.com'], clientIp: BOTS[4] })
    assert.equal(other.message?.code, 451, 'for other recipients it is another message: deferred')
  })
})
