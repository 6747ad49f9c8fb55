// The scheduled provider refresh (adapters/provider-refresh.ts) against a real redis-server, a
// loopback DNS server and loopback HTTP servers: what a hostile or broken source can and cannot
// do to the shared ranges, and the lock and deadline that keep one refresh from outliving its turn.
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { makeResolver } from '../../plugins/smart-greylist/adapters/dns'
import { MAX_ANSWER_BYTES, ProviderRefresher, rangesFromEndpoints, refreshTimes } from '../../plugins/smart-greylist/adapters/provider-refresh'
import { parseCidr } from '../../plugins/smart-greylist/core/ip'
import { providerKeys } from '../../plugins/smart-greylist/core/keys'
import type { Provider } from '../../plugins/smart-greylist/core/providers'
import { anchorsOf, type SharedRanges } from '../../plugins/smart-greylist/core/refresh'
import { parseSettings } from '../../plugins/smart-greylist/core/settings'
import { DnsServer } from '../../scripts/harness/dns-server'
import { usePrivateRedis } from '../helpers/private-redis'

const DAY = 86_400_000
const KEYS = providerKeys('sgl:')

function provider(id: string, spf: string[], ips: string[]): Provider {
  return { id, name: id, source: '', spf, action: 'skip', hosts: [], ips, updated: null, origin: 'test:1', declared: new Set() }
}

/** A loopback HTTP server answering with `handler`; counts the body bytes it managed to send. */
async function httpServer(handler: (req: http.IncomingMessage, res: http.ServerResponse, sent: { bytes: number }) => void) {
  const sent = { bytes: 0, requests: [] as string[] }
  const server = http.createServer((req, res) => {
    sent.requests.push(req.url ?? '')
    handler(req, res, sent)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

const VERSION = JSON.stringify({ instance: 'Worldwide', latest: '2025120100' })

describe("rangesFromEndpoints: what the endpoints service's answer may be", function () {
  this.timeout(30_000)

  it('refuses an endless body past the byte cap, without reading it all', async () => {
    let closed = false
    const srv = await httpServer((req, res, sent) => {
      res.setHeader('content-type', 'application/json')
      if (req.url?.startsWith('/version/')) return void res.end(VERSION)
      // No content-length: the cap must be counted as the body streams in.
      const chunk = Buffer.alloc(64 * 1024, 0x20)
      res.on('close', () => (closed = true))
      const pump = (): void => {
        while (!closed && sent.bytes < 512 * 1024 * 1024) {
          sent.bytes += chunk.length
          if (!res.write(chunk)) return void res.once('drain', pump)
        }
        res.end()
      }
      pump()
    })
    try {
      const heap = process.memoryUsage().heapUsed
      const r = await rangesFromEndpoints(srv.url, null, 20_000)
      assert.match((r as { error: string }).error, new RegExp(`more than ${MAX_ANSWER_BYTES} bytes`))
      await new Promise((res) => setTimeout(res, 200))
      assert.ok(closed, 'the download was cancelled')
      assert.ok(srv.sent.bytes < MAX_ANSWER_BYTES + 32 * 1024 * 1024, `the server sent ${srv.sent.bytes} bytes`)
      assert.ok(process.memoryUsage().heapUsed - heap < 64 * 1024 * 1024, 'the body was not kept')
    } finally {
      await srv.close()
    }
  })

  it('refuses a content-length past the cap before reading the body', async () => {
    const srv = await httpServer((req, res) => {
      res.setHeader('content-type', 'application/json')
      if (req.url?.startsWith('/version/')) return void res.end(VERSION)
      res.writeHead(200, { 'content-length': String(160 * 1024 * 1024) })
      res.write('[')
    })
    try {
      const r = await rangesFromEndpoints(srv.url, null, 5000)
      assert.match((r as { error: string }).error, /167772160 bytes, more than 4194304/)
    } finally {
      await srv.close()
    }
  })

  it('names what the server said escaped, so its headers cannot shape the log line', async () => {
    const srv = await httpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html" refresh=ok x="' }).end('{}'))
    try {
      const r = await rangesFromEndpoints(srv.url, null, 5000)
      assert.match((r as { error: string }).error, /content type "text\/html\\x22\\x20refresh\\x3dok\\x20x\\x3d\\x22", not JSON$/)
    } finally {
      await srv.close()
    }
  })

  it('refuses a redirect, and does not follow it', async () => {
    const elsewhere = await httpServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(VERSION))
    const srv = await httpServer((_req, res) => res.writeHead(302, { location: `${elsewhere.url}/version/Worldwide` }).end())
    try {
      const r = await rangesFromEndpoints(srv.url, null, 5000)
      assert.match((r as { error: string }).error, /HTTP 302 redirect to http:\/\/127\.0\.0\.1:\d+\/version\/Worldwide \(redirects are not followed\)/)
      assert.deepEqual(elsewhere.sent.requests, [], 'the redirect was not followed')
    } finally {
      await srv.close()
      await elsewhere.close()
    }
  })

  it('refuses an answer that is not of a JSON content type', async () => {
    const srv = await httpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(VERSION))
    try {
      const r = await rangesFromEndpoints(srv.url, null, 5000)
      assert.match((r as { error: string }).error, /content type "text\/html", not JSON/)
    } finally {
      await srv.close()
    }
  })
})

describe('rangesFromEndpoints past the refresh deadline', () => {
  it('asks nothing, and says the refresh ran out of time', async () => {
    const srv = await httpServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(VERSION))
    try {
      const r = await rangesFromEndpoints(srv.url, null, 5000, AbortSignal.abort())
      assert.deepEqual(r, { error: 'the refresh ran out of time' })
      assert.deepEqual(srv.sent.requests, [])
    } finally {
      await srv.close()
    }
  })
})

describe('ProviderRefresher (real Redis, loopback DNS)', function () {
  this.timeout(30_000)
  const redis = usePrivateRedis()
  let dns: DnsServer
  before(async () => {
    dns = await DnsServer.start()
  })
  after(() => dns.close())
  afterEach(() => {
    dns.delayMs = 0
  })

  function refresher(providers: Provider[], ini: Record<string, Record<string, string>>, clock: { now: number }) {
    const { config } = parseSettings({ ...ini, refresh: { microsoft_endpoints_url: '', ...ini.refresh } })
    const log: string[] = []
    const shared: ReadonlyMap<string, SharedRanges>[] = []
    const anchors = anchorsOf([], providers)
    const r = new ProviderRefresher({
      config: () => config,
      providers: () => providers,
      anchors: () => anchors,
      resolver: () => makeResolver(2000, [`127.0.0.1:${dns.port}`]),
      client: () => redis.db,
      now: () => clock.now,
      onShared: (s) => shared.push(s),
      log: { loginfo: (m) => log.push(`info ${m}`), logwarn: (m) => log.push(`warn ${m}`) },
    })
    return { r, log, shared, config }
  }

  const ipv4Space = (ranges: readonly string[]): number =>
    ranges.map((x) => parseCidr(x)!).reduce((n, c) => (c.ip.kind() === 'ipv4' ? n + 2 ** (32 - c.prefix) : n), 0)

  it('seven daily hostile refreshes, each answering 4x the last, leave the pool within its cap', async () => {
    const anchor = ['185.12.80.0/22']
    const p = provider('partneresp', ['spf.partner-esp.example'], anchor)
    const clock = { now: Date.UTC(2026, 11, 1) }
    const { r, log } = refresher([p], { refresh: { every: '86400' } }, clock)
    const cap = 4 * ipv4Space(anchor) + 2 ** 16
    let answer = anchor
    const refused: number[] = []
    for (let day = 1; day <= 7; day++) {
      // The hostile answer quadruples what it answered the day before, accepted or not.
      answer = answer.map((x) => {
        const c = parseCidr(x)!
        const prefix = c.prefix - 2
        const net = c.ip.toByteArray().reduce((n, b) => n * 256 + b, 0) & ~(2 ** (32 - prefix) - 1)
        return `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.')}/${prefix}`
      })
      dns.add({ txt: { 'spf.partner-esp.example': [`v=spf1 ${answer.map((a) => `ip4:${a}`).join(' ')} -all`] } })
      clock.now += DAY
      const mark = log.length
      await r.tick()
      if (log.slice(mark).some((l) => /kept the last good data of partneresp: refused/.test(l))) refused.push(day)
      const stored = (await redis.db.hGetAll(KEYS.ranges('partneresp'))).ranges?.split(' ') ?? anchor
      assert.ok(ipv4Space(stored) <= cap, `day ${day}: ${stored.join(' ')} in force, more than the cap`)
    }
    assert.deepEqual(refused, [4, 5, 6, 7], 'refused once past 4x the files + a /16, every day after')
  })

  it('gives up at its deadline when a slow SPF walk would outlast it, and writes no ranges', async () => {
    // A chain of 20 includes, each answer 150 ms late: within the per-lookup bound, 3 s in all.
    const txt: Record<string, string[]> = {}
    for (let i = 0; i < 20; i++) txt[`c${i}.slow.example`] = [`v=spf1 ip4:198.51.100.${i}/32${i < 19 ? ` include:c${i + 1}.slow.example` : ''} -all`]
    dns.add({ txt })
    dns.delayMs = 150
    const clock = { now: Date.UTC(2026, 11, 1) }
    const providers = [provider('slow', ['c0.slow.example'], ['198.51.100.0/24']), provider('after', ['spf.after.example'], ['203.0.113.0/24'])]
    dns.add({ txt: { 'spf.after.example': ['v=spf1 ip4:203.0.113.0/24 -all'] } })
    const { r, log, config } = refresher(providers, { refresh: { every: '60', timeout_ms: '200' } }, clock)
    const { deadlineMs, holdMs } = refreshTimes(2, config)
    assert.ok(deadlineMs < holdMs)
    const started = Date.now()
    await r.tick()
    const took = Date.now() - started
    assert.ok(took < deadlineMs + 500, `took ${took} ms, deadline ${deadlineMs} ms`)
    assert.deepEqual({ ...(await redis.db.hGetAll(KEYS.ranges('slow'))) }, {})
    assert.match((await redis.db.hGetAll(KEYS.status)).error ?? '', /slow: the refresh ran out of time; after: the refresh ran out of time/)
    assert.ok(!dns.queries.some((q) => q.name === 'spf.after.example'), 'nothing is asked after the deadline')
    assert.ok(
      log.some((l) => /kept the last good data of slow: the refresh ran out of time/.test(l)),
      log.join('\n'),
    )
  })

  it('writes nothing once its lock has passed to another MX', async () => {
    const txt: Record<string, string[]> = {}
    for (let i = 0; i < 4; i++) txt[`c${i}.late.example`] = [`v=spf1 ip4:198.51.100.${i}/32${i < 3 ? ` include:c${i + 1}.late.example` : ''} -all`]
    dns.add({ txt })
    dns.delayMs = 100
    const clock = { now: Date.UTC(2026, 11, 1) }
    const { r, log } = refresher([provider('late', ['c0.late.example'], ['198.51.100.0/24'])], { refresh: { every: '60', timeout_ms: '300' } }, clock)
    const tick = r.tick()
    // While it walks, its lock expires and another MX takes it.
    await new Promise((res) => setTimeout(res, 150))
    assert.ok(await redis.db.get(KEYS.lock), 'the refresh holds the lock')
    await redis.db.set(KEYS.lock, 'other-mx:1:x')
    await tick
    assert.deepEqual({ ...(await redis.db.hGetAll(KEYS.ranges('late'))) }, {}, 'no ranges written')
    assert.deepEqual({ ...(await redis.db.hGetAll(KEYS.status)) }, {}, 'no status written')
    assert.equal(await redis.db.get(KEYS.lock), 'other-mx:1:x', "the other MX's lock is left alone")
    assert.ok(
      log.some((l) => /warn provider refresh: the lock passed to another MX before the results were written/.test(l)),
      log.join('\n'),
    )
  })

  it("ignores a poisoned shared record, says so once per change, and keeps the files' ranges", async () => {
    const clock = { now: Date.UTC(2026, 11, 1) }
    const ms = provider('microsoft', [], ['40.92.0.0/15', '40.107.0.0/16'])
    const { r, log, shared } = refresher([ms], { refresh: { every: '0' } }, clock)
    const good = { ranges: '40.92.0.0/15 40.107.0.0/16 52.106.0.0/24', updated: String(clock.now - DAY), source: 'endpoints', version: '1' }
    await redis.db.hSet(KEYS.ranges('microsoft'), good)
    await r.tick()
    assert.deepEqual(shared.at(-1)?.get('microsoft')?.ranges, good.ranges.split(' '), 'a good record is used')
    for (const [poison, why] of [
      [{ ranges: '0.0.0.0/0 ::/0' }, /0\.0\.0\.0\/0 is wider than \/12/],
      [{ updated: '1e300' }, /updated "1e300" is not a time/],
      [{ ranges: Array.from({ length: 100_000 }, (_, i) => `40.92.${i & 255}.${(i >> 8) & 255}/32`).join(' ') }, /characters long/],
    ] as const) {
      await redis.db.hSet(KEYS.ranges('microsoft'), { ...good, ...poison })
      const mark = log.length
      await r.tick()
      await r.tick()
      const warned = log.slice(mark).filter((l) => l.startsWith('warn'))
      assert.equal(warned.length, 1, `logged once per change: ${warned.join('\n')}`)
      assert.match(warned[0] ?? '', new RegExp(`ignoring the shared record of microsoft in Redis \\(its files' ranges stay\\): .*${why.source}`))
      assert.equal(shared.at(-1)?.has('microsoft'), false, "the files' ranges are in force")
    }
  })
})
