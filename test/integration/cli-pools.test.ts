// `smart-greylist pools refresh` as an operator runs it, against a DNS server on loopback.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { runCli } from '../helpers/cli'
import { DnsServer } from '../../scripts/harness/dns-server'
import { configDir } from '../../scripts/harness/fixtures'
import { ROOT } from '../../scripts/harness/haraka'
import { providerKeys } from '../../plugins/smart-greylist/core/keys'
import { usePrivateRedis } from '../helpers/private-redis'

describe('smart-greylist pools refresh', function () {
  this.timeout(20_000)
  let dns: DnsServer
  before(async () => {
    dns = await DnsServer.start({
      txt: {
        'spf.protection.outlook.com': ['v=spf1 include:spfa.protection.outlook.com include:spfb.protection.outlook.com -all'],
        'spfa.protection.outlook.com': ['v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip6:2a01:111:f400::/48 -all'],
        'spfb.protection.outlook.com': ['v=spf1 ip4:52.100.0.0/14 ip6:2a01:111:f403::/48 -all'],
        'spf.grows.example': ['v=spf1 include:all.grows.example -all'],
        'all.grows.example': ['v=spf1 ip4:0.0.0.0/0 -all'],
        'spf.open.example': ['v=spf1 ip4:85.214.0.0/16 include:open2.example -all'],
        'open2.example': ['v=spf1 +all'],
        'spf.newwide.example': ['v=spf1 ip4:85.214.0.0/16 ip4:13.64.0.0/16 -all'],
      },
    })
  })
  after(() => dns.close())

  // The admin's file: microsoft's ranges written by hand, and two providers of its own.
  const LOCAL = `# my providers
[microsoft]
ip = 40.107.0.0/16
ip = 104.47.0.0/17

[corpmail]
spf = servers.corpmail.example
action = group
ip = 205.201.128.0/20

[static]
# no spf line: never touched
ip = 17.0.0.0/8
`
  const SHIPPED = path.join(ROOT, 'config', 'smart-greylist.providers')

  it('writes what it finds to smart-greylist.providers.local, dated, keeps a failed provider, never touches the shipped file', async () => {
    const shippedBefore = fs.readFileSync(SHIPPED, 'utf8')
    const dir = path.join(configDir({ 'smart-greylist.providers.local': LOCAL }), 'config')
    const r = await runCli(['pools', 'refresh', '--config', dir, '--dns', `127.0.0.1:${dns.port}`, '--timeout-ms', '1000'])
    assert.equal(r.code, 1, `exit 1: corpmail's record is missing\n${r.stdout}${r.stderr}`)
    assert.match(
      r.stdout,
      /microsoft\s+changed: 5 ranges \+40\.92\.0\.0\/15 \+52\.100\.0\.0\/14 \+2a01:111:f400::\/48 \+2a01:111:f403::\/48 -104\.47\.0\.0\/17/,
    )
    assert.match(r.stdout, /corpmail\s+kept 1 ranges: ENOTFOUND/)
    const text = fs.readFileSync(path.join(dir, 'smart-greylist.providers.local'), 'utf8')
    const today = new Date().toISOString().slice(0, 10)
    assert.match(text, /^# my providers/)
    assert.match(
      text,
      new RegExp(
        `\\[microsoft\\]\\nupdated = ${today}\\nip = 40\\.92\\.0\\.0/15\\nip = 40\\.107\\.0\\.0/16\\nip = 52\\.100\\.0\\.0/14\\nip = 2a01:111:f400::/48\\nip = 2a01:111:f403::/48\\n\\n\\[corpmail\\]`,
      ),
    )
    assert.match(text, /\[corpmail\]\nspf = servers\.corpmail\.example\naction = group\nip = 205\.201\.128\.0\/20/)
    assert.match(text, /\[static\]\n# no spf line: never touched\nip = 17\.0\.0\.0\/8/)
    assert.equal(fs.readFileSync(SHIPPED, 'utf8'), shippedBefore)
    assert.ok(!fs.existsSync(path.join(dir, 'smart-greylist.providers')), 'no copy of the shipped file in the instance')

    const again = await runCli(['pools', 'refresh', '--config', dir, '--dns', `127.0.0.1:${dns.port}`, '--timeout-ms', '1000', '--json'])
    const report = JSON.parse(again.stdout) as { written: string | null; providers: { id: string; status: string }[] }
    assert.equal(report.written, null, 'nothing changed, nothing written')
    assert.equal(report.providers.find((p) => p.id === 'microsoft')?.status, 'unchanged')
    assert.equal(report.providers.find((p) => p.id === 'corpmail')?.status, 'kept')
  })

  it('refuses an include chain that suddenly covers the Internet, unless --force', async () => {
    const local = '[grows]\nspf = spf.grows.example\naction = group\nip = 85.214.0.0/16\n'
    const dir = path.join(configDir({ 'smart-greylist.providers.local': local }), 'config')
    const args = ['pools', 'refresh', '--config', dir, '--dns', `127.0.0.1:${dns.port}`, '--timeout-ms', '1000']
    const r = await runCli(args)
    assert.equal(r.code, 1)
    assert.match(r.stdout, /grows\s+kept 1 ranges: refused \(--force writes it\): 0\.0\.0\.0\/0 is wider than \/12/)
    // (The shipped microsoft differs from this zone's and is written; grows is not.)
    const text = fs.readFileSync(path.join(dir, 'smart-greylist.providers.local'), 'utf8')
    assert.ok(text.startsWith(local), text)
    assert.doesNotMatch(text, /0\.0\.0\.0\/0/)
    const forced = await runCli([...args, '--force'])
    assert.match(forced.stdout, /grows\s+changed: 1 ranges \+0\.0\.0\.0\/0 -85\.214\.0\.0\/16/)
    assert.match(fs.readFileSync(path.join(dir, 'smart-greylist.providers.local'), 'utf8'), /ip = 0\.0\.0\.0\/0/)
  })

  it('refuses a chain that reaches a record passing for any client, even with --force', async () => {
    const local = '[open]\nspf = spf.open.example\naction = group\nip = 85.214.0.0/16\n'
    const dir = path.join(configDir({ 'smart-greylist.providers.local': local }), 'config')
    const r = await runCli(['pools', 'refresh', '--config', dir, '--dns', `127.0.0.1:${dns.port}`, '--timeout-ms', '1000', '--force'])
    assert.match(r.stdout, /open\s+kept 1 ranges: refused: a record under spf\.open\.example passes for any client \(pass_all\)/)
  })

  it('refuses a new range wider than /20, unless [refresh] accept_new covers it', async () => {
    const local = '[newwide]\nspf = spf.newwide.example\naction = group\nip = 85.214.0.0/16\n'
    const args = (dir: string): string[] => ['pools', 'refresh', '--config', dir, '--dns', `127.0.0.1:${dns.port}`, '--timeout-ms', '1000', '--dry-run']
    const refused = await runCli(args(path.join(configDir({ 'smart-greylist.providers.local': local }), 'config')))
    assert.match(refused.stdout, /newwide\s+kept 1 ranges: refused \(--force writes it\): 13\.64\.0\.0\/16 is new and wider than \/20/)
    const ini = '[refresh]\naccept_new = 13.64.0.0/11\n'
    const accepted = await runCli(args(path.join(configDir({ 'smart-greylist.providers.local': local, 'smart-greylist.ini': ini }), 'config')))
    assert.match(accepted.stdout, /newwide\s+changed: 2 ranges \+13\.64\.0\.0\/16/)
  })

  describe('config check, with the shared ranges in Redis', () => {
    const redis = usePrivateRedis()
    it('names a shared record every MX ignores, and exits 1', async () => {
      const keys = providerKeys('sgl:')
      await redis.db.hSet(keys.ranges('google'), { ranges: '0.0.0.0/0 ::/0', updated: String(Date.now()), source: 'spf' })
      await redis.db.hSet(keys.ranges('microsoft'), { ranges: '40.92.0.0/15', updated: '1e300', source: 'endpoints' })
      await redis.db.hSet(keys.status, { checked: '1e300', error: '', by: 'forged' })
      const dir = path.join(configDir({ 'redis.ini': `[server]\nhost=127.0.0.1\nport=${redis.server.port}\n` }), 'config')
      const r = await runCli(['config', 'check', '--config', dir])
      assert.equal(r.code, 1, r.stdout + r.stderr)
      assert.match(r.stdout, /^provider data: never refreshed through Redis/m, 'a status dated 1e300 is no status')
      assert.match(r.stdout, /^provider data: ignoring the shared record of google in Redis \(its files' ranges stay\): 0\.0\.0\.0\/0 is wider than \/12$/m)
      assert.match(r.stdout, /^provider data: ignoring the shared record of microsoft in Redis .*updated "1e300" is not a time/m)
      const json = JSON.parse((await runCli(['config', 'check', '--json', '--config', dir])).stdout) as { providerData: { refused: { id: string }[] } }
      assert.deepEqual(
        json.providerData.refused.map((x) => x.id),
        ['microsoft', 'google'],
      )
    })
  })

  it('writes nothing on --dry-run', async () => {
    const dir = path.join(configDir({ 'smart-greylist.providers.local': LOCAL }), 'config')
    const r = await runCli(['pools', 'refresh', '--config', dir, '--dns', `127.0.0.1:${dns.port}`, '--timeout-ms', '1000', '--dry-run'])
    assert.match(r.stdout, /dry run: nothing written/)
    assert.equal(fs.readFileSync(path.join(dir, 'smart-greylist.providers.local'), 'utf8'), LOCAL)
  })

  it('lists the shipped and local providers with the action smart-greylist.ini gives them', async () => {
    const dir = path.join(configDir({ 'smart-greylist.providers.local': LOCAL, 'smart-greylist.ini': '[providers]\nmicrosoft=group\nstatic=off\n' }), 'config')
    const r = await runCli(['pools', 'list', '--config', dir, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const rows = (JSON.parse(r.stdout) as { providers: { id: string; action: string; ranges: number; from: string }[] }).providers
    const row = (id: string) => rows.find((p) => p.id === id)
    assert.equal(row('microsoft')?.action, 'group')
    assert.equal(row('microsoft')?.ranges, 2, "the admin's hand-written ranges")
    assert.equal(row('microsoft')?.from, 'smart-greylist.providers.local')
    assert.equal(row('google')?.action, 'skip')
    assert.equal(row('google')?.from, 'smart-greylist.providers')
    assert.equal(row('corpmail')?.action, 'group')
    assert.equal(row('static')?.action, 'off')
  })

  it('warns that an old copy of the shipped file in the instance is not read', async () => {
    const dir = path.join(configDir({ 'smart-greylist.providers': '[old]\nip = 17.0.0.0/8\n' }), 'config')
    const r = await runCli(['config', 'check', '--offline', '--config', dir])
    assert.equal(r.code, 1)
    assert.match(r.stdout, /smart-greylist\.providers is not read: the package's copy is .*smart-greylist\.providers\.local/)
  })

  it("notes, without a problem, an instance copy identical to the package's file", async () => {
    const shipped = fs.readFileSync(path.join(ROOT, 'config', 'smart-greylist.providers'), 'utf8')
    const dir = path.join(configDir({ 'smart-greylist.providers': shipped }), 'config')
    const r = await runCli(['config', 'check', '--offline', '--config', dir])
    assert.equal(r.code, 0, r.stdout)
    assert.match(r.stdout, /^note: .*smart-greylist\.providers is a copy of the package's file and is not read: it can be deleted$/m)
    assert.match(r.stdout, /^no problems;/m)
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
