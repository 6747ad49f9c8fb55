// End to end: what happens around the happy path. Redis dying and coming back, deferral at DATA,
// and identities taken from the fcrdns plugin's results.
import assert from 'node:assert/strict'
import { DnsServer } from '../../scripts/harness/dns-server'
import { HarakaInstance } from '../../scripts/harness/haraka'
import { deliver, SmtpSession } from '../../scripts/harness/smtp'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'
import { connectRedis } from '../../scripts/harness/redis'
import { freePort, startPrivateRedis, type PrivateRedis } from '../../scripts/harness/redis-server'
import { EXCHANGE_HELO, EXCHANGE_IPS, exchangeName, exchangeZone } from '../helpers/world'

describe('smart-greylist when Redis fails', function () {
  this.timeout(60_000)
  const stack = useStack({ ini: '[main]\ndelay=1\nretry_window=5\n[redis]\ntimeout_ms=300\n' })

  it('accepts mail promptly while Redis is down, stays alive, and greylists again once Redis is back', async () => {
    const before = await deliver(stack.haraka.port, { clientIp: '85.214.160.1', from: 'x1@sender.example.org', to: ['bob@example.com'] })
    assert.equal(before.rcpt[0].code, 451)

    // A Redis that answers too slowly: every client paused for 1.5 s.
    const admin = await connectRedis(stack.redis.port)
    await admin.sendCommand(['CLIENT', 'PAUSE', '1500', 'ALL'])
    const slow = await deliver(stack.haraka.port, { clientIp: '85.214.160.9', from: 'slow@sender.example.org', to: ['bob@example.com'] })
    assert.equal(slow.rcpt[0].code, 250, 'fails open on a timeout')
    assert.ok(slow.elapsedMs < 1000, `answered in ${slow.elapsedMs} ms although Redis was paused`)
    assert.ok(stack.haraka.linesMatching(/\[smart-greylist\] error \(redis_timeout\): Redis took longer than 300 ms/).length)
    await admin.quit().catch(() => undefined)
    await sleep(1600)

    const port = stack.redis.port
    const beforeStop = stack.haraka.log.length
    await stack.redis.stop()
    const mark = stack.haraka.log.length
    for (let i = 0; i < 3; i++) {
      const t = await deliver(stack.haraka.port, { clientIp: '85.214.160.2', from: `down${i}@sender.example.org`, to: ['bob@example.com'], data: true })
      assert.equal(t.rcpt[0].code, 250, 'fails open')
      assert.equal(t.message?.code, 250)
      assert.ok(t.elapsedMs < 1500, `answered in ${t.elapsedMs} ms`)
    }
    assert.ok(stack.haraka.linesMatching(/\[smart-greylist\] error \(redis_(unavailable|timeout)\).*on_error=accept/, mark).length >= 3)
    assert.ok(stack.haraka.alive)

    stack.redis = await startPrivateRedis(port)
    const deadline = Date.now() + 15_000
    let code = 0
    while (Date.now() < deadline) {
      const t = await deliver(stack.haraka.port, { clientIp: '85.214.160.3', from: `back${Date.now()}@sender.example.org`, to: ['bob@example.com'] })
      code = t.rcpt[0].code
      if (code === 451) break
      await sleep(250)
    }
    assert.equal(code, 451, 'greylisting resumes by itself when Redis returns')
    // One line when it was lost, one when it came back; none per reconnect attempt.
    const changes = stack.haraka.linesMatching(/\[smart-greylist\] Redis redis:\/\/\S+ (lost|unreachable|still unreachable)/, beforeStop)
    assert.equal(changes.length, 1, changes.join('\n'))
    assert.match(changes[0], / lost \(connection closed: /)
    await stack.haraka.waitFor(/greylisting resumed after \d+ s unreachable; [1-9]\d* decision\(s\) failed open meanwhile/, 5000, mark)
  })
})

describe("smart-greylist started while Redis is down (an admin's first day)", function () {
  this.timeout(150_000)
  const OUTAGE_MS = 60_000
  const WINDOW_MS = 20_000
  let redis: PrivateRedis | undefined
  let dns: DnsServer
  let haraka: HarakaInstance

  after(async () => {
    await haraka?.stop()
    await dns?.close()
    if (redis) {
      redis.process.kill('SIGCONT')
      await redis.stop()
    }
  })

  it('fails open through a minute of outage with a log that does not grow per attempt; one line says greylisting resumed', async () => {
    const port = await freePort()
    dns = await DnsServer.start()
    const started = Date.now()
    haraka = await HarakaInstance.start({
      redisPort: port,
      dnsPort: dns.port,
      ini: '[main]\ndelay=1\nretry_window=5\n[redis]\ntimeout_ms=300\nping_interval_ms=200\ndead_after_ms=1500\n',
    })
    assert.ok(Date.now() - started < 10_000, 'start-up does not wait for Redis')
    await haraka.waitFor(/\[smart-greylist\] loaded: whitelist/)
    // Three windows of 20 s, one mail at the start of each: the same number of per-mail lines in
    // each, so what differs is what the connection itself logs.
    const t0 = Date.now()
    const marks = [haraka.log.length]
    for (let w = 0; w < OUTAGE_MS / WINDOW_MS; w++) {
      const t = await deliver(haraka.port, { clientIp: '85.214.170.1', from: `early${w}@sender.example.org`, to: ['bob@example.com'], data: true })
      assert.equal(t.rcpt[0].code, 250, 'fails open')
      assert.equal(t.message?.code, 250)
      await sleep(t0 + (w + 1) * WINDOW_MS - Date.now())
      marks.push(haraka.log.length)
    }
    const problems = (from: number, to: number): string[] => haraka.log.slice(from, to).filter((l) => /\[(WARN|ERROR|CRIT|EMERG)\]/.test(l))
    const perWindow = marks.slice(1).map((m, i) => problems(marks[i], m).length)
    console.log(`      warning and error lines per 20 s of the outage: ${perWindow.join(', ')}`)
    assert.ok(perWindow[perWindow.length - 1] <= perWindow[0], `the last 20 s (${perWindow.join(', ')}) log no more than the first`)
    assert.ok(perWindow[0] <= 4, problems(marks[0], marks[1]).join('\n'))
    assert.equal(haraka.linesMatching(/\[smart-greylist\] Redis redis:\/\/127\.0\.0\.1:\d+\/0 unreachable \(connection refused: .*failing open/).length, 1)

    redis = await startPrivateRedis(port)
    const resumed = await haraka.waitFor(/\[smart-greylist\] connected to redis:\/\/.*: greylisting resumed after/, 15_000, marks[marks.length - 1])
    assert.match(resumed, /greylisting resumed after 1 min( \d+ s)? unreachable; [1-9]\d* decision\(s\) failed open meanwhile/)
    const admin = await connectRedis(port)
    try {
      await sleep(2000)
      const clients =
        String(await admin.sendCommand(['CLIENT', 'LIST']))
          .split('\n')
          .filter(Boolean).length - 1
      console.log(`      connections Redis sees from the one Haraka process once it is up: ${clients}`)
      assert.ok(clients >= 1 && clients <= 2, `${clients} connections`)
    } finally {
      await admin.quit().catch(() => undefined)
    }
    assert.equal(haraka.linesMatching(/greylisting resumed/).length, 1, 'one line says so')
    assert.equal(haraka.linesMatching(/\[smart-greylist\] loaded: whitelist/).length, 1, 'one `loaded:` line for the one load at start')
    const later = await deliver(haraka.port, { clientIp: '85.214.170.1', from: 'later@sender.example.org', to: ['bob@example.com'] })
    assert.equal(later.rcpt[0].code, 451, 'greylisting is back')
  })

  it('a frozen then continued Redis (SIGSTOP, SIGCONT) leaves no raw JavaScript error in the log', async () => {
    const mark = haraka.log.length
    redis?.process.kill('SIGSTOP')
    // Commands in flight on the connection that is then dropped: their replies come late.
    for (let i = 0; i < 3; i++) {
      const t = await deliver(haraka.port, { clientIp: `85.214.171.${i + 1}`, from: `frozen${i}@sender.example.org`, to: ['bob@example.com'] })
      assert.equal(t.rcpt[0].code, 250, 'fails open')
    }
    await haraka.waitFor(/\[smart-greylist\] Redis no answer for 1500 ms/, 10_000, mark)
    await sleep(1500)
    redis?.process.kill('SIGCONT')
    await haraka.waitFor(/greylisting resumed after/, 15_000, mark)
    const deadline = Date.now() + 10_000
    let code = 0
    while (Date.now() < deadline && code !== 451) {
      code = (await deliver(haraka.port, { clientIp: '85.214.172.1', from: `thawed${Date.now()}@sender.example.org`, to: ['bob@example.com'] })).rcpt[0].code
      await sleep(200)
    }
    assert.equal(code, 451, 'greylisting is back')
    await sleep(1000)
    assert.deepEqual(haraka.linesMatching(/Cannot read properties|TypeError|ReferenceError|reading '/, mark), [])
  })
})

describe('smart-greylist with defer_at = data and the fcrdns plugin', function () {
  this.timeout(60_000)
  const stack = useStack({
    zones: [exchangeZone()],
    ini: '[main]\ndelay=1\nretry_window=5\ndefer_at=data\n[whitelist]\nproviders=false\n',
    pluginsBefore: ['fcrdns'],
  })
  // fcrdns reads haraka-tld's lists without waiting for them to load: until then it calls every
  // name's TLD invalid and confirms nothing. Wait until it reads a name as a later client's would.
  const WARMUP = EXCHANGE_IPS[5]
  before(async function () {
    this.timeout(30_000)
    const deadline = Date.now() + 20_000
    while (!stack.haraka.linesMatching(new RegExp(`\\[fcrdns\\] ip=${WARMUP.replace(/\./g, '\\.')} .*invalid_tlds=0`)).length) {
      if (Date.now() > deadline) throw new Error('fcrdns never read the TLD lists')
      const s = await SmtpSession.open(stack.haraka.port, WARMUP)
      await s.quit()
      await sleep(100)
    }
  })

  it('records every recipient at RCPT and defers once at DATA; the retry delivers to all', async () => {
    const env = {
      helo: EXCHANGE_HELO,
      from: 'ivan@sender.example.org',
      to: ['a@example.com', 'b@example.com', 'c@example.com'],
      data: true,
    }
    const first = await deliver(stack.haraka.port, { ...env, clientIp: EXCHANGE_IPS[0] })
    assert.deepEqual(
      first.rcpt.map((r) => r.code),
      [250, 250, 250],
    )
    assert.equal(first.data?.code, 451)
    assert.match(first.data?.text ?? '', /4\.7\.1 Greylisted/)
    await sleep(1200)
    const retry = await deliver(stack.haraka.port, { ...env, clientIp: EXCHANGE_IPS[3] })
    assert.deepEqual(
      retry.rcpt.map((r) => r.code),
      [250, 250, 250],
    )
    assert.equal(retry.data?.code, 354)
    assert.equal(retry.message?.code, 250)
  })

  it("takes the rDNS names from the fcrdns plugin's results instead of asking again", async () => {
    const lines = stack.haraka.linesMatching(/\[smart-greylist\] (defer|pass) .*from=<ivan@/)
    assert.equal(lines.length, 6)
    for (const l of lines) assert.match(l, /identity=host:outbound\.protection\.outlook\.com identity_reason=fcrdns/)
    // fcrdns asks one PTR per connection; a second lookup by this plugin would double them.
    // fcrdns flags these production-style names as generic; the identity still groups them.
    assert.ok(stack.haraka.linesMatching(/\[fcrdns\] ip=40\.107\.22\.92 .*generic_rdns=true/).length)
    // fcrdns asks one A query per PTR name; a lookup of this plugin's own would ask a second.
    const forward = stack.dns.queries.filter((q) => q.type === 'A' && q.name !== exchangeName(WARMUP)).map((q) => q.name)
    assert.deepEqual(forward.sort(), ['mail-eopbgr220092.outbound.protection.outlook.com', 'mail-eopbgr40200.outbound.protection.outlook.com'])
  })
})
