// End to end: mail an SRS forwarder re-sends. SPF speaks for the envelope as sent (the
// forwarder's own domain), so the forwarder's pool is grouped by its SPF identity and the spf
// plugin's result for that domain is reused; the tuple key still uses the original sender, so
// a retry whose SRS hash and timestamp changed matches. A from: entry for the original sender
// does not let the forwarded copy through: no SPF pass speaks for that address.
import assert from 'node:assert/strict'
import { deliver } from '../../scripts/harness/smtp'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'

/** A forwarder's outbound pool: two addresses in two /24s, no PTR, a bounded SPF record. */
const FORWARDER_IPS = ['212.227.126.130', '212.227.17.10']

describe('SRS-forwarded mail in a running Haraka with the spf plugin', function () {
  this.timeout(60_000)
  const stack = useStack({
    pluginsBefore: ['spf'],
    zones: [
      {
        txt: {
          'fwd.example': ['v=spf1 ip4:212.227.126.0/24 ip4:212.227.17.0/24 -all'],
          // The original sender's record does not list the forwarder: checked against it, SPF fails.
          'orig.example': ['v=spf1 ip4:85.214.0.0/24 -all'],
        },
      },
    ],
    ini: '[main]\ndelay=1\nretry_window=20\n[whitelist]\nproviders=false\n[awl]\npasses=0\n',
    whitelist: 'from:*@orig.example\n',
  })

  it("is grouped by spf:<forwarder domain>, reuses the spf plugin's result, and passes at the first retry from another /24", async () => {
    const txtQueries = (): number => stack.dns.queries.filter((q) => q.name.toLowerCase() === 'fwd.example' && q.type === 'TXT').length
    const first = await deliver(stack.haraka.port, {
      clientIp: FORWARDER_IPS[0],
      helo: 'mout.fwd.example',
      from: 'SRS0=HhH1=TT=orig.example=bob@fwd.example',
      to: ['carol@example.com'],
    })
    assert.equal(first.rcpt[0].code, 451)
    const deferred = await stack.haraka.waitFor(/\[smart-greylist\] defer reason=new .*to=<carol@example\.com>/)
    assert.match(deferred, /identity=spf:fwd\.example identity_reason=spf_pass/)

    await sleep(1300)
    const before = txtQueries()
    const retry = await deliver(stack.haraka.port, {
      clientIp: FORWARDER_IPS[1],
      helo: 'mout.fwd.example',
      from: 'SRS0=XyZ9=UU=orig.example=bob@fwd.example',
      to: ['carol@example.com'],
    })
    assert.equal(retry.rcpt[0].code, 250, "the retry from the forwarder's other network matches the tuple")
    assert.match(await stack.haraka.waitFor(/\[smart-greylist\] pass reason=retry .*to=<carol@example\.com>/), /identity=spf:fwd\.example/)
    // The spf plugin asked once for this transaction; our own evaluation would be a second query
    // (the guard's verdict on the record is cached since the first message).
    assert.equal(txtQueries() - before, 1, 'only the spf plugin asked for fwd.example: its result was reused')
  })

  it("is not whitelisted by a from: entry for the original sender: SPF passed for the forwarder's domain only", async () => {
    const r = await deliver(stack.haraka.port, {
      clientIp: FORWARDER_IPS[0],
      helo: 'mout.fwd.example',
      from: 'SRS0=AbC2=TT=orig.example=bob@fwd.example',
      to: ['dave@example.com'],
    })
    assert.equal(r.rcpt[0].code, 451)
    assert.match(await stack.haraka.waitFor(/\[smart-greylist\] defer reason=new .*to=<dave@example\.com>/), /identity=spf:fwd\.example/)
  })
})
