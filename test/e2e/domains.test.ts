// End to end: per-domain policy (smart-greylist.domains) in a running Haraka. Four recipient
// domains with four rules and the default domain each get their own answer for the same
// clients; the log line names the rule's line; an edit takes effect without a restart; `check`
// shows the rule.
import assert from 'node:assert/strict'
import type { CheckReport } from '../../cli/commands/check'
import { deliver } from '../../scripts/harness/smtp'
import { runCli } from '../helpers/cli'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'

const DOMAINS = ['off.example  off', 'quick.example  delay=1', 'picky.example  policy=suspicious', 'trial.example  mode=shadow', ''].join('\n')
/** A client with trusted evidence: a confirmed name and a bounded SPF pass for its domain. */
const TRUSTED = { ip: '81.169.146.10', helo: 'mx1.trusted.example', from: 'news@trusted.example' }

describe('per-domain policy in a running Haraka', function () {
  this.timeout(60_000)
  const stack = useStack({
    ini: '[main]\ndelay=30\nretry_window=3600\n[whitelist]\nproviders=false\n[awl]\npasses=0\n',
    files: { host_list: 'example.com\noff.example\nquick.example\npicky.example\ntrial.example\n', 'smart-greylist.domains': DOMAINS },
    zones: [{ ptr: { [TRUSTED.ip]: [TRUSTED.helo] }, a: { [TRUSTED.helo]: [TRUSTED.ip] }, txt: { 'trusted.example': ['v=spf1 ip4:81.169.146.0/24 -all'] } }],
  })
  const lineFor = (to: string, from = 0): Promise<string> =>
    stack.haraka.waitFor(new RegExp(`\\[smart-greylist\\] .*to=<${to.replace(/\./g, '\\.')}>`), 10_000, from)
  const codes = async (env: { clientIp: string; helo?: string; from: string; to: string[] }): Promise<number[]> =>
    (await deliver(stack.haraka.port, env)).rcpt.map((r) => r.code)

  it('gives each domain its own answer, and names the rule in the log line', async () => {
    const ip = '85.214.77.9'
    const from = 'alice@sender.example'
    // Off: never greylisted.
    assert.deepEqual(await codes({ clientIp: ip, from, to: ['a@off.example'] }), [250])
    assert.match(await lineFor('a@off.example'), /skip reason=domain_off rule=smart-greylist\.domains:1 /)
    // A shorter delay: its retry 1.3 s later passes; the default domain's (30 s) is still early.
    assert.deepEqual(await codes({ clientIp: ip, from, to: ['b@quick.example', 'b@example.com'] }), [451, 451])
    assert.match(await lineFor('b@quick.example'), /defer reason=new .* rule=smart-greylist\.domains:2 .* retry_in=1s/)
    assert.match(await lineFor('b@example.com'), /defer reason=new .* retry_in=30s/)
    assert.doesNotMatch(await lineFor('b@example.com'), /rule=/)
    await sleep(1300)
    assert.deepEqual(await codes({ clientIp: ip, from, to: ['b@quick.example', 'b@example.com'] }), [250, 451])
    // policy=suspicious: the trusted client is accepted at first contact there, deferred elsewhere.
    assert.deepEqual(await codes({ clientIp: TRUSTED.ip, helo: TRUSTED.helo, from: TRUSTED.from, to: ['c@picky.example', 'c@example.com'] }), [250, 451])
    assert.match(await lineFor('c@picky.example'), /skip reason=trusted .* tuple=new rule=smart-greylist\.domains:3 /)
    // mode=shadow: logged and counted as a deferral, answered 250.
    assert.deepEqual(await codes({ clientIp: ip, from, to: ['d@trial.example'] }), [250])
    assert.match(await lineFor('d@trial.example'), /shadow-defer reason=new .* rule=smart-greylist\.domains:4 /)
    const stats = JSON.parse((await runCli(['stats', '--days', '2', '--json', '--config', stack.haraka.configDir])).stdout) as {
      total: { shadow: number; skipped: Record<string, number> }
    }
    assert.equal(stats.total.shadow, 1)
    assert.equal(stats.total.skipped.domain_off, 1)
  })

  it('check shows the rule; an edited file takes effect without a restart', async () => {
    const ip = '85.214.78.9'
    const args = [
      'check',
      '--ip',
      ip,
      '--from',
      'eve@sender.example',
      '--to',
      'e@example.com',
      '--config',
      stack.haraka.configDir,
      '--dns',
      `127.0.0.1:${stack.dns.port}`,
    ]
    assert.equal((JSON.parse((await runCli([...args, '--json'])).stdout) as CheckReport).kind, 'tuple')

    const mark = stack.haraka.log.length
    stack.haraka.writeConfig('smart-greylist.domains', `${DOMAINS}example.com delay=1 mode=shadow\n`)
    await stack.haraka.waitFor(/\[smart-greylist\] loaded: .*domains 5 rules/, 10_000, mark)
    const text = await runCli(args)
    assert.match(text.stdout, /^rule\s+example\.com delay=1 mode=shadow \(smart-greylist\.domains:5\)$/m)
    assert.equal(text.code, 0, 'shadow mode: it would be accepted')
    assert.deepEqual(await codes({ clientIp: ip, from: 'eve@sender.example', to: ['e@example.com'] }), [250])
    assert.match(await lineFor('e@example.com', mark), /shadow-defer reason=new .* rule=smart-greylist\.domains:5 .* retry_in=1s/)
  })
})
