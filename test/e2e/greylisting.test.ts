// End to end: real Haraka with the packed plugin, real redis-server, loopback DNS, SMTP over TCP.
import assert from 'node:assert/strict'
import { deliver } from '../../scripts/harness/smtp'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'
import { EXCHANGE_HELO, EXCHANGE_IPS, FORGED_PTR_IP, exchangeName, exchangeZone, forgedZone } from '../helpers/world'

const DELAY_S = 1
const WINDOW_S = 3
const INI = `[main]\ndelay=${DELAY_S}\nretry_window=${WINDOW_S}\n[whitelist]\nproviders=false\n[redis]\ntimeout_ms=300\n`

function is451(code: number, text: string): boolean {
  return code === 451 && /4\.7\.1/.test(text)
}

describe('smart-greylist in a running Haraka', function () {
  this.timeout(60_000)
  let n = 0
  /** A fresh sender (and sender domain) for each use, so tests share no tuple and no auto-whitelist entry. */
  const sender = (): string => `alice${++n}@s${n}-${Date.now()}.example.org`

  const stack = useStack({
    zones: [exchangeZone(), forgedZone()],
    ini: INI,
    pluginsBefore: ['relay'],
    files: { relay_acl_allow: '85.214.200.0/24\n' },
  })

  describe('a sender with no rDNS (identity: its /24)', () => {
    const ip = '85.214.132.10'

    it('defers a new tuple with 451 4.7.1, defers an early retry, accepts a retry after the delay', async () => {
      const from = sender()
      const first = await deliver(stack.haraka.port, { clientIp: ip, from, to: ['bob@example.com'] })
      assert.ok(is451(first.rcpt[0].code, first.rcpt[0].text), first.rcpt[0].text)
      assert.match(first.rcpt[0].text, /Greylisted, please try again later/)

      const early = await deliver(stack.haraka.port, { clientIp: '85.214.132.77', from, to: ['bob@example.com'] })
      assert.ok(is451(early.rcpt[0].code, early.rcpt[0].text), 'a retry from the same /24 before the delay is deferred')

      await sleep(DELAY_S * 1000 + 200)
      const retry = await deliver(stack.haraka.port, { clientIp: ip, from, to: ['bob@example.com'], data: true })
      assert.equal(retry.rcpt[0].code, 250)
      assert.equal(retry.message?.code, 250)

      const known = await deliver(stack.haraka.port, { clientIp: ip, from, to: ['bob@example.com'] })
      assert.equal(known.rcpt[0].code, 250)
      const lines = stack.haraka.linesMatching(new RegExp(`from=<${from.replace(/\./g, '\\.')}>`))
      assert.ok(
        lines.some((l) => /defer reason=new identity=net:85\.214\.132\.0\/24 identity_reason=spf_none,no_rdns,no_pool/.test(l)),
        lines.join('\n'),
      )
      assert.ok(lines.some((l) => /defer reason=early/.test(l)))
      assert.ok(
        lines.some((l) => /accept|pass reason=retry .* waited=[12]s/.test(l)),
        lines.join('\n'),
      )
      assert.ok(lines.some((l) => /pass reason=known/.test(l)))
    })

    it('defers again when the retry comes after the retry window', async () => {
      const from = sender()
      const first = await deliver(stack.haraka.port, { clientIp: ip, from, to: ['carol@example.com'] })
      assert.ok(is451(first.rcpt[0].code, first.rcpt[0].text))
      await sleep(WINDOW_S * 1000 + 500)
      const late = await deliver(stack.haraka.port, { clientIp: ip, from, to: ['carol@example.com'] })
      assert.ok(is451(late.rcpt[0].code, late.rcpt[0].text), 'a retry after the window starts over')
      await sleep(DELAY_S * 1000 + 200)
      const retry = await deliver(stack.haraka.port, { clientIp: ip, from, to: ['carol@example.com'] })
      assert.equal(retry.rcpt[0].code, 250)
    })

    it('greylists each recipient on its own', async () => {
      const from = sender()
      await deliver(stack.haraka.port, { clientIp: ip, from, to: ['dave@example.com'] })
      await sleep(DELAY_S * 1000 + 200)
      const t = await deliver(stack.haraka.port, { clientIp: ip, from, to: ['dave@example.com', 'erin@example.com'] })
      assert.equal(t.rcpt[0].code, 250)
      assert.ok(is451(t.rcpt[1].code, t.rcpt[1].text))
    })

    it('groups an IPv6 client by its /64', async () => {
      const from = sender()
      const first = await deliver(stack.haraka.port, { clientIp: '2a00:6020:1000:40::25', from, to: ['bob@example.com'] })
      assert.ok(is451(first.rcpt[0].code, first.rcpt[0].text))
      await sleep(DELAY_S * 1000 + 200)
      const retry = await deliver(stack.haraka.port, { clientIp: '2a00:6020:1000:40::99', from, to: ['bob@example.com'] })
      assert.equal(retry.rcpt[0].code, 250)
      assert.match(stack.haraka.linesMatching(new RegExp(`from=<${from.replace(/\./g, '\\.')}>`))[0], /identity=net:2a00:6020:1000:40::\/64/)
    })

    it('greylists the null sender like any other sender', async () => {
      const t = await deliver(stack.haraka.port, { clientIp: '85.214.133.5', from: '', to: ['bob@example.com'] })
      assert.ok(is451(t.rcpt[0].code, t.rcpt[0].text))
    })
  })

  describe('an Exchange-Online-like pool (identity: the FCrDNS parent domain)', () => {
    it('accepts the first retry after the delay although every attempt comes from another /16', async () => {
      const from = sender()
      const to = ['frank@example.com']
      const attempt = (i: number): ReturnType<typeof deliver> =>
        deliver(stack.haraka.port, { clientIp: EXCHANGE_IPS[i], helo: EXCHANGE_HELO, from, to, data: true })

      const first = await attempt(0)
      assert.ok(is451(first.rcpt[0].code, first.rcpt[0].text))
      const early = await attempt(1)
      assert.ok(is451(early.rcpt[0].code, early.rcpt[0].text), 'too early, even from another address')
      await sleep(DELAY_S * 1000 + 200)
      const retry = await attempt(2)
      assert.equal(retry.rcpt[0].code, 250, 'first retry after the delay, from a third /16')
      assert.equal(retry.message?.code, 250)
      for (const i of [3, 4, 5]) assert.equal((await attempt(i)).rcpt[0].code, 250)

      const lines = stack.haraka.linesMatching(new RegExp(`from=<${from.replace(/\./g, '\\.')}>`))
      assert.equal(lines.length, 6)
      for (const l of lines) assert.match(l, /identity=host:outbound\.protection\.outlook\.com identity_reason=fcrdns/)
    })

    it('asked DNS only the loopback test server, with a PTR and a forward query per client', () => {
      for (const ip of EXCHANGE_IPS) {
        assert.ok(
          stack.dns.queries.some((q) => q.type === 'PTR' && q.name.startsWith(ip.split('.').reverse().join('.'))),
          ip,
        )
        assert.ok(
          stack.dns.queries.some((q) => q.type === 'A' && q.name === exchangeName(ip).toLowerCase()),
          ip,
        )
      }
    })
  })

  describe('sessions that are never greylisted', () => {
    it('skips relaying clients (here: the relay ACL)', async () => {
      const t = await deliver(stack.haraka.port, { clientIp: '85.214.200.5', from: sender(), to: ['bob@example.com'] })
      assert.equal(t.rcpt[0].code, 250)
      assert.ok(stack.haraka.linesMatching(/\[smart-greylist\] skip reason=relaying/).length)
    })

    it('skips private clients by default', async () => {
      const t = await deliver(stack.haraka.port, { clientIp: '10.20.30.40', from: sender(), to: ['bob@example.com'] })
      assert.equal(t.rcpt[0].code, 250)
      assert.ok(stack.haraka.linesMatching(/\[smart-greylist\] skip reason=private_ip/).length)
    })
  })

  describe('whitelist', () => {
    it('does not trust a PTR name that is not forward-confirmed, nor a HELO the connection does not back', async () => {
      stack.haraka.writeConfig('smart-greylist.whitelist', 'host:*.outbound.protection.outlook.com\nhelo:*.outbound.protection.outlook.com\n')
      await stack.haraka.waitFor(/loaded: whitelist 2 entries/)
      const from = sender()
      const forgedPtr = await deliver(stack.haraka.port, { clientIp: FORGED_PTR_IP, helo: 'client.example.net', from, to: ['gina@example.com'] })
      assert.ok(is451(forgedPtr.rcpt[0].code, forgedPtr.rcpt[0].text), 'PTR not confirmed: greylisted')
      const forgedHelo = await deliver(stack.haraka.port, { clientIp: '85.214.140.9', helo: EXCHANGE_HELO, from, to: ['gina@example.com'] })
      assert.ok(is451(forgedHelo.rcpt[0].code, forgedHelo.rcpt[0].text), 'HELO without rDNS behind it: greylisted')
      const line = stack.haraka.linesMatching(/85\.214\.140\.0\/24/).at(-1) ?? ''
      assert.match(line, /identity_reason=spf_none,no_rdns,no_pool/)

      const real = await deliver(stack.haraka.port, { clientIp: EXCHANGE_IPS[4], helo: EXCHANGE_HELO, from: sender(), to: ['gina@example.com'] })
      assert.equal(real.rcpt[0].code, 250, 'a confirmed Exchange name is whitelisted')
      assert.ok(
        stack.haraka.linesMatching(/accept reason=whitelist:host entry="host:\*\.outbound\.protection\.outlook\.com" \(smart-greylist\.whitelist:1\)/).length,
      )
    })

    it('takes an edit of the whitelist file without a restart', async () => {
      const ip = '85.214.150.20'
      const from = sender()
      const before = await deliver(stack.haraka.port, { clientIp: ip, from, to: ['hank@example.com'] })
      assert.ok(is451(before.rcpt[0].code, before.rcpt[0].text))
      const mark = stack.haraka.log.length
      stack.haraka.writeConfig('smart-greylist.whitelist', `# added while running\nip:85.214.150.0/24\nto:postmaster@example.com\nbogus line\n`)
      await stack.haraka.waitFor(/loaded: whitelist 2 entries/, 10_000, mark)
      assert.ok(stack.haraka.linesMatching(/smart-greylist\.whitelist:4: ignoring "bogus line"/, mark).length, 'a bad line is reported with its line number')
      const after = await deliver(stack.haraka.port, { clientIp: ip, from, to: ['hank@example.com'] })
      assert.equal(after.rcpt[0].code, 250)
      const optOut = await deliver(stack.haraka.port, { clientIp: '85.214.151.1', from: sender(), to: ['postmaster@example.com'] })
      assert.equal(optOut.rcpt[0].code, 250, 'a to: entry opts the recipient out')
    })
  })
})
