// The plugin and the command read one Redis database: with [redis] db = 12 in smart-greylist.ini,
// a real 451 -> 250 cycle is counted by `stats` and its pending tuple shown by `check`.
import assert from 'node:assert/strict'
import type { CheckReport } from '../../cli/commands/check'
import { runCli } from '../helpers/cli'
import { connectRedis, type TestRedis } from '../../scripts/harness/redis'
import { deliver } from '../../scripts/harness/smtp'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'

describe('smart-greylist with [redis] db = 12', function () {
  this.timeout(60_000)
  let db: TestRedis
  after(() => db?.quit().catch(() => undefined))
  const stack = useStack({ ini: '[main]\ndelay=2\nretry_window=60\n[redis]\ndb = 12\n' })
  before(async () => {
    db = await connectRedis(stack.redis.port)
  })
  const env = { clientIp: '85.214.132.10', from: 'dora@sender-corp.de', to: ['erin@example.com'] }

  it('writes to db 12; check shows the pending tuple, stats counts the cycle', async () => {
    const cli = (...args: string[]) => runCli([...args, '--config', stack.haraka.configDir, '--json'])
    const first = await deliver(stack.haraka.port, env)
    assert.equal(first.rcpt[0].code, 451)
    const keyspace = await db.info('keyspace')
    assert.match(keyspace, /^db12:keys=\d+/m)
    assert.doesNotMatch(keyspace, /^db0:/m, 'nothing in db 0')

    const check = await cli('check', '--ip', env.clientIp, '--from', env.from, '--to', env.to[0], '--dns', `127.0.0.1:${stack.dns.port}`)
    assert.equal(check.code, 1, check.stdout + check.stderr)
    const report = JSON.parse(check.stdout) as CheckReport
    assert.ok(report.stored?.tuple, 'the pending tuple is found')
    assert.equal(report.stored.tuple.passedAt, null)
    assert.deepEqual([report.kind, report.answer, report.kind === 'tuple' && report.verdict.status], ['tuple', 'defer', 'early'])

    await sleep(2100)
    const retry = await deliver(stack.haraka.port, env)
    assert.equal(retry.rcpt[0].code, 250)
    const stats = await cli('stats', '--days', '2')
    assert.equal(stats.code, 0, stats.stderr)
    const s = JSON.parse(stats.stdout) as { total: { deferredBy: Record<string, number>; acceptedAfterDelay: number } }
    assert.deepEqual(s.total.deferredBy, { new: 1 })
    assert.equal(s.total.acceptedAfterDelay, 1)
  })
})
