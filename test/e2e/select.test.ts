// End to end: [select] policy = suspicious and [correspondents] in a real Haraka, with the
// dns-list plugin asking a DNSBL zone served by the tests' loopback DNS server, and the relay
// plugin allowing one client (a local user's MUA). Each scenario's decision is asserted from the
// SMTP reply and the plugin's log line; the share of first contacts accepted is printed.
import assert from 'node:assert/strict'
import { runCli } from '../helpers/cli'
import { deliver } from '../../scripts/harness/smtp'
import { useStack } from '../helpers/stack'

const ZONE = 'bl.test.example'
const TRUSTED_IP = '93.184.10.5' // mx1.trusted-corp.example, SPF pass
const LISTED_IP = '93.184.10.6' // mx2.trusted-corp.example, SPF pass, in the DNSBL
const NOPTR_IP = '93.184.10.7' // SPF pass, no rDNS
const NOSPF_IP = '94.130.1.5' // mx.nospf-corp.example, SPF fails
const PARTNER_IP = '88.99.1.10' // mx.partner.example: no SPF record, confirmed rDNS in the domain
const ELSEWHERE_IP = '185.250.236.10' // no rDNS: a forged partner.example sender
const MUA_IP = '85.214.200.5' // relay ACL: a local user's client

const INI = (policy: string): string =>
  ['[main]', 'delay=1', 'retry_window=60', '[whitelist]', 'providers=false', '[select]', `policy=${policy}`, '[correspondents]', 'enabled=true', ''].join('\n')

describe('selective greylisting and correspondents in a running Haraka', function () {
  this.timeout(60_000)
  const stack = useStack({
    ini: INI('suspicious'),
    pluginsBefore: ['dns-list', 'relay'],
    files: {
      relay_acl_allow: '85.214.200.0/24\n',
      'dns-list.ini': `[main]\nperiodic_checks=0\nzones=${ZONE}\nsearch=all\n[${ZONE}]\ntype=block\nreject=false\n`,
    },
    zones: [
      {
        ptr: {
          [TRUSTED_IP]: ['mx1.trusted-corp.example'],
          [LISTED_IP]: ['mx2.trusted-corp.example'],
          [NOSPF_IP]: ['mx.nospf-corp.example'],
          [PARTNER_IP]: ['mx.partner.example'],
        },
        a: {
          'mx1.trusted-corp.example': [TRUSTED_IP],
          'mx2.trusted-corp.example': [LISTED_IP],
          'mx.nospf-corp.example': [NOSPF_IP],
          'mx.partner.example': [PARTNER_IP],
          [`${LISTED_IP.split('.').reverse().join('.')}.${ZONE}`]: ['127.0.0.2'],
        },
        txt: { 'trusted-corp.example': ['v=spf1 ip4:93.184.10.0/24 -all'], 'nospf-corp.example': ['v=spf1 ip4:198.51.100.0/24 -all'] },
      },
    ],
  })
  const line = (from: string): string => stack.haraka.linesMatching(new RegExp(`\\[smart-greylist\\] .*from=<${from.replace(/[.+]/g, '\\$&')}>`)).join('\n')
  const cli = (...args: string[]) => runCli([...args, '--config', stack.haraka.configDir])
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(stack.haraka.log.slice(-30).join('\n'))
  })

  it('accepts a trusted sender at first contact, with its evidence logged', async () => {
    const r = await deliver(stack.haraka.port, {
      clientIp: TRUSTED_IP,
      helo: 'mx1.trusted-corp.example',
      from: 'news@trusted-corp.example',
      to: ['bob@example.com'],
      data: true,
    })
    assert.equal(r.rcpt[0].code, 250)
    assert.equal(r.message?.code, 250)
    assert.match(
      line('news@trusted-corp.example'),
      /skip reason=trusted evidence=fcrdns:mx1\.trusted-corp\.example,spf:trusted-corp\.example,dnsbl:clean\(dns-list\) identity=spf:trusted-corp\.example tuple=new/,
    )
  })

  it('greylists the same sender from a client the DNSBL lists', async () => {
    const r = await deliver(stack.haraka.port, {
      clientIp: LISTED_IP,
      helo: 'mx2.trusted-corp.example',
      from: 'offers@trusted-corp.example',
      to: ['bob@example.com'],
    })
    assert.equal(r.rcpt[0].code, 451)
    assert.match(line('offers@trusted-corp.example'), /defer reason=new/)
  })

  it('greylists without rDNS, and without an SPF pass', async () => {
    const noPtr = await deliver(stack.haraka.port, { clientIp: NOPTR_IP, from: 'billing@trusted-corp.example', to: ['bob@example.com'] })
    assert.equal(noPtr.rcpt[0].code, 451)
    const noSpf = await deliver(stack.haraka.port, {
      clientIp: NOSPF_IP,
      helo: 'mx.nospf-corp.example',
      from: 'info@nospf-corp.example',
      to: ['bob@example.com'],
    })
    assert.equal(noSpf.rcpt[0].code, 451)
  })

  it('lets the partner a local user wrote to reach that user at first contact, and no one else', async () => {
    const before = await deliver(stack.haraka.port, {
      clientIp: PARTNER_IP,
      helo: 'mx.partner.example',
      from: 'carol@partner.example',
      to: ['alice@example.com'],
    })
    assert.equal(before.rcpt[0].code, 451, 'not yet a correspondent, and not trusted (no SPF)')

    const out = await deliver(stack.haraka.port, {
      clientIp: MUA_IP,
      from: 'Alice+work@Example.com',
      to: ['bob@partner.example', 'ops@example.com'],
      data: true,
    })
    assert.equal(out.message?.code, 250)
    await stack.haraka.waitFor(/correspondents recorded: <alice@example\.com> wrote to partner\.example$/)

    const reply = await deliver(stack.haraka.port, {
      clientIp: PARTNER_IP,
      helo: 'mx.partner.example',
      from: 'dan@partner.example',
      to: ['alice@example.com', 'dave@example.com'],
    })
    assert.deepEqual(
      reply.rcpt.map((x) => x.code),
      [250, 451],
      'alice wrote to partner.example; dave did not',
    )
    assert.match(
      line('dan@partner.example'),
      /skip reason=correspondent domain=partner\.example identity=net:88\.99\.1\.0\/24 from=<dan@partner\.example> to=<alice@example\.com>/,
    )

    const forged = await deliver(stack.haraka.port, { clientIp: ELSEWHERE_IP, from: 'ceo@partner.example', to: ['alice@example.com'] })
    assert.equal(forged.rcpt[0].code, 451, 'a partner.example sender from elsewhere is not authenticated')

    const listed = await cli('correspondents', 'list', '--json')
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { correspondents: { mailbox: string; domain: string }[] }).correspondents.map((c) => [c.mailbox, c.domain]),
      [['alice@example.com', 'partner.example']],
    )
    const checked = await cli(
      'check',
      '--ip',
      PARTNER_IP,
      '--from',
      'frank@partner.example',
      '--to',
      'Alice@example.com',
      '--dns',
      `127.0.0.1:${stack.dns.port}`,
    )
    assert.equal(checked.code, 0, checked.stdout + checked.stderr)
    assert.match(checked.stdout, /decision\s+accept: correspondent: <alice@example\.com> wrote to partner\.example/)
    assert.match((await cli('correspondents', 'forget', '--mailbox', 'alice@example.com', '--domain', 'partner.example')).stdout, /forgot 1 correspondent/)
    const after = await deliver(stack.haraka.port, {
      clientIp: PARTNER_IP,
      helo: 'mx.partner.example',
      from: 'erin@partner.example',
      to: ['alice@example.com'],
    })
    assert.equal(after.rcpt[0].code, 451, 'forgotten')
  })

  it('counts what each policy did and what the other would have done', async () => {
    const mix = JSON.parse((await cli('stats', '--days', '2', '--json')).stdout) as {
      total: { deferredBy: Record<string, number>; trusted: Record<string, number>; skipped: Record<string, number> }
    }
    const accepted = mix.total.trusted.new ?? 0
    const deferred = mix.total.deferredBy.new ?? 0
    console.log(
      `      suspicious, the mix so far: ${accepted} of ${accepted + deferred} first contacts accepted on evidence; skipped ${JSON.stringify(mix.total.skipped)}`,
    )
    assert.equal(accepted, 1)
    assert.ok(mix.total.skipped.trusted >= 1 && mix.total.skipped.correspondent >= 1)

    // Back to `all`, no restart: the trusted sender's new tuple is deferred, and the log and
    // statistics say that suspicious would have accepted it.
    const mark = stack.haraka.log.length
    stack.haraka.writeConfig('smart-greylist.ini', INI('all'))
    await stack.haraka.waitFor(/\[smart-greylist\] loaded: /, 10_000, mark)
    const r = await deliver(stack.haraka.port, {
      clientIp: TRUSTED_IP,
      helo: 'mx1.trusted-corp.example',
      from: 'news2@trusted-corp.example',
      to: ['bob@example.com'],
    })
    assert.equal(r.rcpt[0].code, 451)
    assert.match(line('news2@trusted-corp.example'), /defer reason=new .* suspicious_would=accept evidence=fcrdns:mx1\.trusted-corp\.example/)
    const checked = await cli(
      'check',
      '--ip',
      TRUSTED_IP,
      '--from',
      'news3@trusted-corp.example',
      '--to',
      'bob@example.com',
      '--dns',
      `127.0.0.1:${stack.dns.port}`,
    )
    assert.equal(checked.code, 1, 'deferred under all')
    assert.match(checked.stdout, /evidence\s+fcrdns:mx1\.trusted-corp\.example,spf:trusted-corp\.example,dnsbl:not_asked \(trusted; \[select\] policy = all\)/)
    const text = (await cli('stats', '--days', '2')).stdout
    assert.match(text, /select all: suspicious would have accepted 1 of \d+ first contacts deferred/)
    assert.match(text, /select suspicious: 1 first contacts accepted on evidence/)
  })
})
