// The operator's command against a running Haraka and a private redis-server, as an admin uses
// it: whitelist edits that the running Haraka picks up, check, stats after real SMTP traffic,
// list and flush; shadow mode and the X-Greylist header end to end.
import assert from 'node:assert/strict'
import type { CheckReport } from '../../cli/commands/check'
import { KEY_PATTERNS } from '../../plugins/smart-greylist/core/keys'
import { runCli } from '../helpers/cli'
import { connectRedis, type TestRedis } from '../../scripts/harness/redis'
import { deliver } from '../../scripts/harness/smtp'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'
import { EXCHANGE_HELO, EXCHANGE_IPS, exchangeZone } from '../helpers/world'

const INI = '[main]\ndelay=2\nretry_window=30\nheader=true\n[whitelist]\nproviders=false\n[awl]\npasses=0\n'

describe('smart-greylist command with a running Haraka', function () {
  this.timeout(90_000)
  let db: TestRedis
  // Before the stack's own hooks, so this client quits while its Redis still runs.
  after(() => db?.quit().catch(() => undefined))
  const stack = useStack({ zones: [exchangeZone()], ini: INI, queue: 'queue/test' })
  const cli = (...args: string[]): ReturnType<typeof runCli> => runCli([...args, '--config', stack.haraka.configDir])
  before(async () => {
    db = await connectRedis(stack.redis.port)
  })

  it('whitelist add: validates, refuses duplicates, and the running Haraka takes the new entry', async () => {
    const ip = '85.214.201.9'
    const before = await deliver(stack.haraka.port, { clientIp: ip, from: 'wl@one.example', to: ['bob@example.com'] })
    assert.equal(before.rcpt[0].code, 451)

    const bad = await cli('whitelist', 'add', 'ip:85.214.201.0/33')
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /refused "ip:85\.214\.201\.0\/33": .*not an IP address or CIDR range/)

    const mark = stack.haraka.log.length
    const add = await cli('whitelist', 'add', 'ip:85.214.201.0/24', 'host:*outbound.protection.outlook.com', '--comment', 'added by test')
    assert.equal(add.code, 0, add.stderr)
    assert.match(add.stdout, /added ip:85\.214\.201\.0\/24 {2}# added by test/)
    const dup = await cli('whitelist', 'add', 'host:*.outbound.protection.outlook.com')
    assert.equal(dup.code, 1)
    assert.match(dup.stderr, /already listed \(smart-greylist\.whitelist:\d+\)/)

    await stack.haraka.waitFor(/loaded: whitelist 2 entries/, 15_000, mark)
    const after = await deliver(stack.haraka.port, { clientIp: ip, from: 'wl@one.example', to: ['bob@example.com'], data: true })
    assert.equal(after.rcpt[0].code, 250)
    assert.match(
      stack.haraka.queuedMessage(after.message!.text),
      /^X-Greylist: passed by smart-greylist; whitelist entry ip:85\.214\.201\.0\/24 \(smart-greylist\.whitelist:\d+\)/m,
    )

    const listed = await cli('whitelist', 'list', '--json')
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { entries: { kind: string }[] }).entries.map((e) => e.kind),
      ['ip', 'host'],
    )
    const beforeRemove = stack.haraka.log.length
    const rm = await cli('whitelist', 'remove', 'host:*.outbound.protection.outlook.com', 'ip:85.214.201.0/24')
    assert.equal(rm.code, 0, rm.stderr)
    await stack.haraka.waitFor(/loaded: whitelist 0 entries/, 15_000, beforeRemove)
    assert.equal((await cli('whitelist', 'remove', 'ip:85.214.201.0/24')).code, 1, 'not listed any more')
  })

  it('check explains the decision and changes nothing', async () => {
    const args = [
      'check',
      '--ip',
      EXCHANGE_IPS[0],
      '--helo',
      EXCHANGE_HELO,
      '--from',
      'alice@contoso.example',
      '--to',
      'carol@example.com',
      '--dns',
      `127.0.0.1:${stack.dns.port}`,
    ]
    const keysBefore = (await db.keys(KEY_PATTERNS.tuples('sgl:'))).length
    const fresh = await cli(...args)
    assert.equal(fresh.code, 1, fresh.stderr)
    assert.match(fresh.stdout, /rDNS\s+mail-eopbgr220092\.outbound\.protection\.outlook\.com \(forward-confirmed\)/)
    assert.match(fresh.stdout, /identity\s+host:outbound\.protection\.outlook\.com \(fcrdns_spf\)/)
    assert.match(fresh.stdout, /tuple\s+not seen before/)
    assert.match(fresh.stdout, /decision\s+defer: new; a retry is accepted in 2 s/)
    assert.equal((await db.keys(KEY_PATTERNS.tuples('sgl:'))).length, keysBefore, 'check wrote nothing')

    const first = await deliver(stack.haraka.port, { clientIp: EXCHANGE_IPS[0], helo: EXCHANGE_HELO, from: 'alice@contoso.example', to: ['carol@example.com'] })
    assert.equal(first.rcpt[0].code, 451)
    const pending = await runCli([...args.slice(0, 2), EXCHANGE_IPS[3], ...args.slice(3), '--json', '--config', stack.haraka.configDir])
    const report = JSON.parse(pending.stdout) as CheckReport
    assert.ok(report.kind === 'tuple', pending.stdout)
    assert.deepEqual(report.identity, { kind: 'host', value: 'outbound.protection.outlook.com', reason: 'fcrdns_spf' })
    assert.equal(report.stored?.tuple?.passedAt, null)
    assert.equal(report.verdict.status, 'early')
    assert.ok(report.verdict.retryInMs >= 0 && report.verdict.retryInMs <= 2000)

    const listed = await runCli(['list', '--pending', '--config', stack.haraka.configDir])
    assert.match(listed.stdout, /host:outbound\.protection\.outlook\.com {2}<alice@contoso\.example> -> <carol@example\.com>/)

    await sleep(2200)
    const retry = await deliver(stack.haraka.port, {
      clientIp: EXCHANGE_IPS[4],
      helo: EXCHANGE_HELO,
      from: 'alice@contoso.example',
      to: ['carol@example.com'],
      data: true,
    })
    assert.equal(retry.rcpt[0].code, 250)
    assert.match(
      stack.haraka.queuedMessage(retry.message!.text),
      /^X-Greylist: delayed ([2-9]|1[0-9]) seconds by smart-greylist; identity=host:outbound\.protection\.outlook\.com/m,
    )
    const passed = await cli('list', '--passed', '--json')
    assert.equal((JSON.parse(passed.stdout) as { total: number }).total, 1)
  })

  it('stats reports the real traffic: deferred, accepted after a delay, whitelisted, delay added, identities', async () => {
    const r = await cli('stats', '--days', '2', '--json')
    assert.equal(r.code, 0, r.stderr)
    const s = JSON.parse(r.stdout) as {
      total: { deferred: number; deferredBy: Record<string, number>; acceptedAfterDelay: number; whitelisted: Record<string, number> }
      delaySeconds: { median: number; max: number; byKind: Record<string, { count: number; median: number }> }
      topDelayedIdentities: { identity: string; deferred: number }[]
    }
    assert.deepEqual(s.total.deferredBy, { new: 2 })
    assert.equal(s.total.acceptedAfterDelay, 1)
    assert.deepEqual(s.total.whitelisted, { ip: 1 })
    assert.ok(s.delaySeconds.max >= 2 && s.delaySeconds.max <= 20, JSON.stringify(s.delaySeconds))
    assert.equal(s.delaySeconds.median, s.delaySeconds.max)
    assert.deepEqual(Object.keys(s.delaySeconds.byKind), ['host'], 'the delay is counted for its identity kind')
    assert.equal(s.delaySeconds.byKind.host?.count, 1)
    assert.deepEqual(s.topDelayedIdentities.map((t) => `${t.identity} ${t.deferred}`).sort(), [
      'host:outbound.protection.outlook.com 1',
      'net:85.214.201.0/24 1',
    ])
    const text = await cli('stats', '--days', '2')
    assert.match(text.stdout, /delay added: median <= \d+ s, p90 <= \d+ s, p99 <= \d+ s, max \d+ s/)
    assert.match(text.stdout, /^ {2}host: {2}median <= \d+ s, p90 <= \d+ s, p99 <= \d+ s \(\d+\)$/m)
    assert.match(text.stdout, /host:outbound\.protection\.outlook\.com/)
    const chart = (await cli('stats', '--days', '2', '--chart')).stdout
    assert.match(chart, /^ +<= \d+ s \| #{40} +1$/m, chart)
  })

  it('shadow mode logs and counts the would-be deferral but accepts the mail', async () => {
    const mark = stack.haraka.log.length
    stack.haraka.writeConfig('smart-greylist.ini', INI.replace('[main]\n', '[main]\nmode=shadow\n'))
    await stack.haraka.waitFor(/loaded: whitelist/, 15_000, mark)
    const t = await deliver(stack.haraka.port, { clientIp: '85.214.210.1', from: 'shadow@two.example', to: ['dan@example.com'], data: true })
    assert.equal(t.rcpt[0].code, 250)
    assert.equal(t.message?.code, 250)
    assert.ok(stack.haraka.linesMatching(/\[smart-greylist\] shadow-defer reason=new identity=net:85\.214\.210\.0\/24/, mark).length)
    assert.match(stack.haraka.queuedMessage(t.message.text), /^X-Greylist: passed by smart-greylist; shadow mode, would have been deferred/m)
    const s = JSON.parse((await cli('stats', '--days', '2', '--json')).stdout) as { total: { shadow: number } }
    assert.equal(s.total.shadow, 1)
    const back = stack.haraka.log.length
    stack.haraka.writeConfig('smart-greylist.ini', INI)
    await stack.haraka.waitFor(/loaded: whitelist/, 15_000, back)
  })

  it('flush forgets a sender, an identity, or everything', async () => {
    await deliver(stack.haraka.port, { clientIp: '85.214.220.1', from: 'f1@three.example', to: ['x@example.com', 'y@example.com'] })
    assert.match((await cli('flush', '--sender', 'F1@Three.example')).stdout, /removed 2 keys/)
    assert.match((await cli('flush', '--identity', 'host:outbound.protection.outlook.com')).stdout, /removed 1 key$/m)
    const noYes = await cli('flush', '--all')
    assert.equal(noYes.code, 2)
    assert.match(noYes.stderr, /add --yes/)
    assert.equal((await cli('flush', '--all', '--yes')).code, 0)
    assert.deepEqual(await db.keys(KEY_PATTERNS.tuples('sgl:')), [])
    assert.ok((await db.keys('sgl:{*}st:*')).length, 'statistics are kept')
  })
})
