// `smart-greylist pools refresh` as an operator runs it, against a DNS server on loopback.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { runCli } from '../helpers/cli'
import { DnsServer } from '../helpers/dns-server'
import { configDir } from '../helpers/fixtures'

const PROVIDERS = `# test providers
[microsoft]
name = Microsoft 365
spf = spf.protection.outlook.com
host = *.outbound.protection.outlook.com
ip = 40.107.0.0/16
ip = 104.47.0.0/17

[mailchimp]
spf = servers.mcsv.net
action = group
ip = 205.201.128.0/20

[static]
# no spf line: never touched
ip = 17.0.0.0/8
`

describe('smart-greylist pools refresh', function () {
  this.timeout(20_000)
  let dns: DnsServer
  before(async () => {
    dns = await DnsServer.start({
      txt: {
        'spf.protection.outlook.com': ['v=spf1 include:spfa.protection.outlook.com include:spfb.protection.outlook.com -all'],
        'spfa.protection.outlook.com': ['v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip6:2a01:111:f400::/48 -all'],
        'spfb.protection.outlook.com': ['v=spf1 ip4:52.100.0.0/14 ip6:2a01:111:f403::/48 -all'],
      },
    })
  })
  after(() => dns.close())

  it('rebuilds ranges from the include chain, reports the changes, keeps a failed provider and the rest of the file', async () => {
    const dir = path.join(configDir({ 'smart-greylist.providers': PROVIDERS }), 'config')
    const r = await runCli(['pools', 'refresh', '--config', dir, '--dns', `127.0.0.1:${dns.port}`, '--timeout-ms', '1000'])
    assert.equal(r.code, 1, `exit 1: mailchimp's record is missing\n${r.stdout}${r.stderr}`)
    assert.match(r.stdout, /microsoft\s+changed: 5 ranges \+40\.92\.0\.0\/15 \+52\.100\.0\.0\/14 \+2a01:111:f400::\/48 \+2a01:111:f403::\/48 -104\.47\.0\.0\/17/)
    assert.match(r.stdout, /mailchimp\s+kept 1 ranges: ENOTFOUND/)
    const text = fs.readFileSync(path.join(dir, 'smart-greylist.providers'), 'utf8')
    assert.match(text, /^# test providers/)
    assert.match(text, /ip = 40\.92\.0\.0\/15\nip = 40\.107\.0\.0\/16\nip = 52\.100\.0\.0\/14\nip = 2a01:111:f400::\/48\nip = 2a01:111:f403::\/48\n\n\[mailchimp\]/)
    assert.match(text, /\[mailchimp\]\nspf = servers\.mcsv\.net\naction = group\nip = 205\.201\.128\.0\/20/)
    assert.match(text, /\[static\]\n# no spf line: never touched\nip = 17\.0\.0\.0\/8/)

    const again = await runCli(['pools', 'refresh', '--config', dir, '--dns', `127.0.0.1:${dns.port}`, '--timeout-ms', '1000', '--json'])
    const report = JSON.parse(again.stdout) as { written: string | null; providers: { id: string; status: string }[] }
    assert.equal(report.written, null, 'nothing changed, nothing written')
    assert.deepEqual(report.providers.map((p) => `${p.id}:${p.status}`), ['microsoft:unchanged', 'mailchimp:kept'])
  })

  it('writes nothing on --dry-run', async () => {
    const dir = path.join(configDir({ 'smart-greylist.providers': PROVIDERS }), 'config')
    const r = await runCli(['pools', 'refresh', '--config', dir, '--dns', `127.0.0.1:${dns.port}`, '--timeout-ms', '1000', '--dry-run'])
    assert.match(r.stdout, /dry run: nothing written/)
    assert.equal(fs.readFileSync(path.join(dir, 'smart-greylist.providers'), 'utf8'), PROVIDERS)
  })

  it('lists the providers with the action smart-greylist.ini gives them', async () => {
    const dir = path.join(configDir({ 'smart-greylist.providers': PROVIDERS, 'smart-greylist.ini': '[providers]\nmicrosoft=group\nstatic=off\n' }), 'config')
    const r = await runCli(['pools', 'list', '--config', dir, '--json'])
    assert.equal(r.code, 0)
    const rows = (JSON.parse(r.stdout) as { providers: { id: string; action: string }[] }).providers
    assert.deepEqual(rows.map((p) => `${p.id}:${p.action}`), ['microsoft:group', 'mailchimp:group', 'static:off'])
  })

  it('answers a usage error with exit 2 and the usage line', async () => {
    const r = await runCli(['pools', 'refresh', '--bogus'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /usage: smart-greylist pools refresh/)
    assert.equal((await runCli(['frobnicate'])).code, 2)
    const help = await runCli(['pools', 'refresh', '--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /--dry-run\s+report the changes without writing the file/)
  })
})
