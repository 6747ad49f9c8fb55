// End to end: provider data that refreshes itself. Two Harakas share one Redis; a loopback
// stand-in for Microsoft's endpoints service and a loopback DNS server (a provider's SPF record)
// are the sources. A new Microsoft range is picked up and a client in it is grouped as
// pool:microsoft on both MXs without a restart; a service that is down, broken or silent keeps
// the last good data, and `config check` and `stats` say so.
import assert from 'node:assert/strict'
import { DnsServer } from '../../scripts/harness/dns-server'
import { HarakaInstance } from '../../scripts/harness/haraka'
import { startPrivateRedis, type PrivateRedis } from '../../scripts/harness/redis-server'
import { deliver } from '../../scripts/harness/smtp'
import { runCli } from '../helpers/cli'
import { EndpointsServer } from '../helpers/endpoints-server'

describe('provider data that refreshes itself, shared by two MXs', function () {
  this.timeout(90_000)
  let redis: PrivateRedis
  let dns: DnsServer
  let endpoints: EndpointsServer
  const mx: HarakaInstance[] = []

  before(async function () {
    this.timeout(60_000)
    redis = await startPrivateRedis()
    dns = await DnsServer.start()
    dns.add({ txt: { 'spf.partner-esp.example': ['v=spf1 ip4:185.12.80.0/22 ip4:185.12.84.0/24 -all'] } })
    endpoints = await EndpointsServer.start()
    const ini =
      '[main]\ndelay=30\n[whitelist]\nproviders=false\n[awl]\npasses=0\n' +
      `[refresh]\nevery=2\ncheck_every=1\ntimeout_ms=800\nmicrosoft_endpoints_url=${endpoints.url}\n`
    const files = { 'smart-greylist.providers.local': '[partneresp]\nname = A partner ESP\nspf = spf.partner-esp.example\nip = 185.12.80.0/22\n' }
    for (let i = 0; i < 2; i++) mx.push(await HarakaInstance.start({ redisPort: redis.port, dnsPort: dns.port, ini, files }))
    for (const h of mx) await h.waitFor(/\[smart-greylist\] connected to redis/)
  })
  after(async () => {
    for (const h of mx) await h.stop()
    await endpoints?.close()
    await dns?.close()
    await redis?.stop()
  })

  /** The identity one MX logs for a first contact from `ip`. */
  async function identityVia(h: HarakaInstance, ip: string, to: string): Promise<string> {
    const mark = h.log.length
    await deliver(h.port, { clientIp: ip, from: 'alice@contoso.example', to: [to] })
    const line = await h.waitFor(new RegExp(`\\[smart-greylist\\] defer .*to=<${to.replace(/\./g, '\\.')}>`), 10_000, mark)
    return /identity=(\S+)/.exec(line)?.[1] ?? ''
  }
  const refreshLine = (re: RegExp, from: number[]): Promise<string> =>
    Promise.any(mx.map((h, i) => h.waitFor(new RegExp(`provider refresh: .*${re.source}`), 20_000, from[i])))
  const marks = (): number[] => mx.map((h) => h.log.length)
  const configCheck = async (): Promise<string> => (await runCli(['config', 'check', '--config', mx[0].configDir])).stdout

  it("picks up a new Microsoft range and a provider's new SPF range on both MXs, without a restart", async () => {
    // The service is down at first: the files' ranges are in force.
    const down = marks()
    assert.match(await refreshLine(/kept the last good data of microsoft: .*HTTP 503/, down), /partneresp 2 ranges from spf/)
    assert.equal(await identityVia(mx[0], '52.106.0.9', 'a1@example.com'), 'net:52.106.0.0/24')

    endpoints.mode = { kind: 'up', version: '2025113000' }
    const up = marks()
    await refreshLine(/microsoft 7 ranges from endpoints/, up)
    await Promise.all(mx.map((h, i) => h.waitFor(/\[smart-greylist\] loaded: .*providers \d+ \(\d+ ranges, 2 refreshed\)/, 20_000, up[i])))
    assert.equal(await identityVia(mx[0], '52.106.0.10', 'a2@example.com'), 'pool:microsoft')
    assert.equal(await identityVia(mx[1], '52.106.0.11', 'a3@example.com'), 'pool:microsoft', 'the other MX has the range too')
    assert.equal(await identityVia(mx[1], '185.12.84.9', 'a4@example.com'), 'pool:partneresp', "the provider's new SPF range")
    assert.match(await configCheck(), /^provider data: microsoft 7 ranges from endpoints 2025113000, refreshed \d+ s ago$/m)

    // Asked again only when the version moves.
    const asked = endpoints.requests.filter((r) => r.startsWith('/endpoints/')).length
    await refreshLine(/refreshed/, marks())
    assert.equal(endpoints.requests.filter((r) => r.startsWith('/endpoints/')).length, asked, 'the same version is not fetched again')
  })

  for (const [mode, says] of [
    [{ kind: 'broken', version: '2025120100' }, /microsoft: .*not JSON/],
    [{ kind: 'silent' }, /microsoft: no answer within 800 ms/],
  ] as const) {
    it(`keeps the last good data when the service is ${mode.kind}, and says so`, async () => {
      endpoints.mode = mode
      await refreshLine(new RegExp(`kept the last good data of .*${says.source}`), marks())
      assert.match(await configCheck(), new RegExp(`^provider data: the last refresh .* kept the last good data of .*${says.source}`, 'm'))
      assert.match(await configCheck(), /^provider data: microsoft 7 ranges from endpoints 2025113000/m)
      const stats = (await runCli(['stats', '--days', '2', '--config', mx[1].configDir])).stdout
      assert.match(stats, /^provider data: microsoft 7 ranges from endpoints 2025113000/m)
      assert.equal(await identityVia(mx[1], '52.106.0.12', `b-${mode.kind}@example.com`), 'pool:microsoft')
    })
  }
})
