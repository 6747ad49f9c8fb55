// End to end with Haraka's own HTTP server (http.ini, express) and haraka-plugin-watch, installed
// as a dev dependency and run by the same Haraka: watch broadcasts each decision as a cell named
// rcpt_to.smart-greylist, coloured by its own rules (pass green, fail red, anything else grey),
// and watch's browser code puts that cell under RCPT TO. The metrics are served on the same HTTP
// server, not on [metrics] listen.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import vm from 'node:vm'
import WebSocket from 'ws'
import { DnsServer } from '../../scripts/harness/dns-server'
import { HarakaInstance, ROOT } from '../../scripts/harness/haraka'
import { freePort, startPrivateRedis, type PrivateRedis } from '../../scripts/harness/redis-server'
import { deliver } from '../../scripts/harness/smtp'
import { httpGet } from '../helpers/http'
import { sleep } from '../helpers/wait'
import { EXCHANGE_HELO, EXCHANGE_IPS, exchangeZone } from '../helpers/world'

interface Cell {
  classy?: string
  title?: string
}
type Broadcast = Record<string, Cell | string | number | undefined>

const WATCH = path.join(ROOT, 'node_modules', 'haraka-plugin-watch')
const INI = '[main]\ndelay=1\n[whitelist]\nproviders=false\n[awl]\npasses=0\n[metrics]\nenabled=true\n'

/**
 * watch's browser code (html/client.js), run in a sandbox with a do-nothing jQuery, asked where
 * it puts a cell of a plugin it has not seen before.
 */
function watchColumns(names: string[]): { rcptTo: string[]; data: string[] } {
  const code = fs.readFileSync(path.join(WATCH, 'html', 'client.js'), 'utf8')
  const chain: unknown = new Proxy(function () {}, {
    get: (_t, k) => (k === Symbol.toPrimitive ? () => '' : k === 'length' ? 0 : chain),
    apply: () => chain,
  })
  const ctx = vm.createContext({ $: chain, document: { createTextNode: (s: string) => s, getElementById: () => null }, window: { location: {} } })
  const api = vm.runInContext(`${code}\n;({ rcpt_to_plugins, data_plugins, updateSeen })`, ctx) as {
    rcpt_to_plugins: string[]
    data_plugins: string[]
    updateSeen(name: string): void
  }
  for (const n of names) api.updateSeen(n)
  return { rcptTo: [...api.rcpt_to_plugins], data: [...api.data_plugins] }
}

describe("haraka-plugin-watch and metrics on Haraka's HTTP server", function () {
  this.timeout(90_000)
  let redis: PrivateRedis
  let dns: DnsServer
  let haraka: HarakaInstance
  let httpPort: number
  let ws: WebSocket
  const seen: Broadcast[] = []

  before(async function () {
    this.timeout(60_000)
    redis = await startPrivateRedis()
    dns = await DnsServer.start()
    dns.add(exchangeZone())
    httpPort = await freePort()
    const server = `host=127.0.0.1\nport=${redis.port}\n`
    haraka = await HarakaInstance.start({
      redisPort: redis.port,
      dnsPort: dns.port,
      ini: INI,
      // haraka-results publishes results through the redis plugin's shared client; watch reads them on [pubsub].
      pluginsBefore: ['redis', 'watch'],
      files: { 'http.ini': `[main]\nlisten=127.0.0.1:${httpPort}\n`, 'redis.ini': `[server]\n${server}[pubsub]\n${server}` },
    })
    await haraka.waitFor(/\[smart-greylist\] connected to redis/)
    await haraka.waitFor(/metrics at \/metrics on Haraka's HTTP server/)
    await haraka.waitFor(/admin reads: connected to redis/)
    await haraka.waitFor(/watch init_wss done/)
    ws = new WebSocket(`ws://127.0.0.1:${httpPort}/`)
    ws.on('message', (data: Buffer) => seen.push(JSON.parse(data.toString()) as Broadcast))
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
  })
  after(async () => {
    ws?.close()
    await haraka?.stop()
    await dns?.close()
    await redis?.stop()
  })

  async function cellFor(uuidPrefix: string, name: string, from: number): Promise<Cell> {
    const deadline = Date.now() + 10_000
    for (;;) {
      const hit = seen.slice(from).find((b) => typeof b.uuid === 'string' && b.uuid.startsWith(uuidPrefix) && typeof b[name] === 'object')
      if (hit) return hit[name] as Cell
      if (Date.now() > deadline) throw new Error(`no ${name} cell for ${uuidPrefix}: ${JSON.stringify(seen.slice(from))}`)
      await sleep(50)
    }
  }
  const uuidOf = (reply: string): string => /\b([0-9A-F]{8}-[0-9A-F-]{27})/i.exec(reply)?.[1] ?? ''

  it('a deferral is a red cell and an accepted retry a green one, named rcpt_to.smart-greylist', async () => {
    const env = { helo: EXCHANGE_HELO, from: 'alice@contoso.example', to: ['carol@example.com'] }
    let mark = seen.length
    const first = await deliver(haraka.port, { ...env, clientIp: EXCHANGE_IPS[0] })
    assert.equal(first.rcpt[0].code, 451)
    const deferred = await cellFor(uuidOf(first.mail.text), 'rcpt_to.smart-greylist', mark)
    assert.equal(deferred.classy, 'bg_red')
    assert.match(deferred.title ?? '', /^defer reason=new identity=host:outbound\.protection\.outlook\.com/)

    await sleep(1300)
    mark = seen.length
    const retry = await deliver(haraka.port, { ...env, clientIp: EXCHANGE_IPS[2] })
    assert.equal(retry.rcpt[0].code, 250)
    const passed = await cellFor(uuidOf(retry.mail.text), 'rcpt_to.smart-greylist', mark)
    assert.equal(passed.classy, 'bg_green')
    assert.match(passed.title ?? '', /^pass reason=retry /)

    mark = seen.length
    const local = await deliver(haraka.port, { clientIp: '127.0.0.1', from: 'me@example.com', to: ['carol@example.com'] })
    assert.equal(local.rcpt[0].code, 250)
    const skipped = await cellFor(uuidOf(local.mail.text), 'rcpt_to.smart-greylist', mark)
    assert.equal(skipped.classy, 'bg_lgrey', 'a skip is neither pass nor fail')
    // Each decision is published once: haraka-results' own publish of the result it stores would
    // be a second, uncategorized cell named after the plugin. (watch's own deny hook marks the
    // plugin that answered 451 in a cell of that name, dark yellow: that one is watch's, not ours.)
    const twice = seen.filter((b) => typeof b.uuid === 'string' && b['smart-greylist'] !== undefined)
    for (const b of twice) assert.deepEqual(b['smart-greylist'], { classy: 'bg_dyellow' }, `a second cell of a decision: ${JSON.stringify(b)}`)
    assert.ok(twice.length <= 1, JSON.stringify(twice))
  })

  it("watch's page puts that cell under RCPT TO, and its stylesheet colours it", () => {
    const cols = watchColumns(['rcpt_to.smart-greylist'])
    assert.ok(cols.rcptTo.includes('rcpt_to.smart-greylist'), JSON.stringify(cols))
    assert.ok(!cols.data.includes('rcpt_to.smart-greylist'))
    const css = fs.readFileSync(path.join(WATCH, 'html', 'watch.css'), 'utf8')
    for (const c of ['bg_green', 'bg_red', 'bg_lgrey']) assert.match(css, new RegExp(`\\.${c}\\b[^{]*\\{[^}]*background`))
  })

  it("serves the metrics on Haraka's HTTP server", async () => {
    const r = await httpGet(httpPort, '/metrics')
    assert.equal(r.status, 200)
    assert.match(r.body, /^smart_greylist_decisions_total\{action="defer",reason="new"\} 1$/m)
    assert.match(r.body, /^smart_greylist_decisions_total\{action="pass",reason="retry"\} 1$/m)
    assert.match(r.body, /^smart_greylist_decisions_total\{action="skip",reason="private_ip"\} 1$/m)
    assert.equal((await httpGet(httpPort, '/watch/')).status, 200, "watch's page is served beside them")
  })

  it("[metrics] allow holds on Haraka's HTTP server too: an address outside it gets 403", async () => {
    const mark = haraka.log.length
    haraka.writeConfig('smart-greylist.ini', `${INI}allow=127.0.0.2/32\n`)
    await haraka.waitFor(/loaded: whitelist/, 15_000, mark)
    const refused = await httpGet(httpPort, '/metrics', '127.0.0.1')
    assert.equal(refused.status, 403)
    assert.doesNotMatch(refused.body, /smart_greylist/)
    const allowed = await httpGet(httpPort, '/metrics', '127.0.0.2')
    assert.equal(allowed.status, 200)
    assert.match(allowed.body, /^smart_greylist_site_up 1$/m)
    assert.equal((await httpGet(httpPort, '/watch/', '127.0.0.1')).status, 200, "watch's page is not ours to guard")
  })
})
