// Serves the Prometheus metrics: on Haraka's own HTTP server (its express app, init_http) when
// http.ini has it listen, else on a server of our own at [metrics] listen; to [metrics] allow only,
// wherever they are served. A scrape shows the site's counters of today from Redis (every shard,
// so every MX and worker), the stuck count one process of the site makes every [metrics]
// stuck_every seconds, and this process's own state. The site's part is one read shared by the
// scrapes that come at once and reused for [metrics] cache_ms, on the admin reads' connection.
import http from 'node:http'
import os from 'node:os'
import { providerKeys, stuckCountKeys } from '../core/keys'
import type { CidrSet } from '../core/ip'
import { allowSet, mayScrape, providerAges, renderMetrics, SharedRead, type SiteMetrics } from '../core/metrics'
import { parseDay } from '../core/stats'
import { STUCK_MIN_DEFERRALS, StuckFinder } from '../core/stuck'
import type { Provider } from '../core/providers'
import type { SharedRanges } from '../core/refresh'
import type { Deps } from './deps'
import type { RedisClient } from './haraka-types'
import { AdminStore } from './redis-admin'
import type { Telemetry } from './telemetry'

export const METRICS_PATH = '/metrics'

/** What one read of the site brings back from Redis. */
interface SiteRead {
  readonly counters: Record<string, string>
  readonly stuck: Record<string, string>
  /** The last provider refresh's status (checked, error, by). */
  readonly refresh: Record<string, string>
}

export interface MetricsSources {
  readonly deps: () => Deps
  /** The admin reads' connection, not the decisions'. */
  readonly client: () => RedisClient | undefined
  readonly telemetry: Telemetry
  readonly providers: () => { list: readonly Provider[]; shared: ReadonlyMap<string, SharedRanges> }
  /** A Redis connection that answers (the health watch's word). */
  readonly redisUp: () => boolean
  readonly log: { loginfo(msg: string): void; logwarn(msg: string): void }
}

/** The minimal request and response both node:http and express hand a handler. */
interface Req {
  readonly method?: string
  readonly url?: string
  readonly socket?: { readonly remoteAddress?: string }
}
interface Res {
  writeHead(status: number, headers: Record<string, string>): unknown
  end(body?: string): unknown
}

export class MetricsEndpoint {
  private server?: http.Server
  private address?: string
  private counting = false
  private readonly admin: AdminStore
  private readonly siteRead = new SharedRead<SiteRead>()
  private allow?: { readonly list: readonly string[]; readonly set: CidrSet<true> }

  constructor(private readonly src: MetricsSources) {
    this.admin = new AdminStore(src.client, () => src.deps().config.redis.timeout_ms)
  }

  /** The request handler, for our server and for Haraka's express app alike. */
  readonly handle = (req: Req, res: Res): void => {
    const url = (req.url ?? '').split('?')[0]
    const off = !this.src.deps().config.metrics.enabled
    if (off || url !== METRICS_PATH || (req.method && req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain' })
      res.end('not found\n')
      return
    }
    // The TCP peer, not express's req.ip: a forwarded-for header is the client's to write.
    if (!mayScrape(this.allowed(), req.socket?.remoteAddress)) {
      res.writeHead(403, { 'Content-Type': 'text/plain' })
      res.end('forbidden: not in [metrics] allow\n')
      return
    }
    this.render()
      .then((body) => {
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' })
        res.end(req.method === 'HEAD' ? undefined : body)
      })
      .catch((err: unknown) => {
        res.writeHead(500, { 'Content-Type': 'text/plain' })
        res.end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`)
      })
  }

  async render(): Promise<string> {
    const deps = this.src.deps()
    const now = deps.now()
    const site = await this.site(deps, now)
    const { list, shared } = this.src.providers()
    const t = this.src.telemetry
    return renderMetrics(
      site,
      {
        host: os.hostname(),
        pid: process.pid,
        redisUp: this.src.redisUp(),
        redisInFlight: deps.decisions.pending,
        redisSeconds: t.redis.snapshot(),
        dnsSeconds: Object.fromEntries(Object.entries(t.dns).map(([k, h]) => [k, h.snapshot()])),
        failOpen: Object.fromEntries(t.failOpen),
        providerAgeSeconds: providerAges(list, shared, now),
      },
      now,
    )
  }

  /** `[metrics] allow` as a set, made again when a reload gave another list. */
  private allowed(): CidrSet<true> {
    const list = this.src.deps().config.metrics.allow
    if (this.allow?.list !== list) this.allow = { list, set: allowSet(list) }
    return this.allow.set
  }

  /** What Redis says of the whole site; a Redis that fails leaves the process's own series. */
  private async site(deps: Deps, now: number): Promise<SiteMetrics> {
    const none = { today: null, stuckPairs: null, stuckCountedAt: null, refreshFailed: null }
    // A silent Redis would only queue the reads, whichever connection they are on.
    if (!this.src.redisUp()) return none
    const read = await this.siteRead.get(now, deps.config.metrics.cache_ms, () => this.readSite(deps, now)).catch(() => null)
    if (!read) return none
    const { counters, stuck, refresh } = read
    return {
      today: parseDay('today', counters),
      stuckPairs: stuck.n === undefined ? null : Number(stuck.n),
      stuckCountedAt: stuck.at === undefined ? null : Number(stuck.at),
      refreshFailed: refresh.checked === undefined ? null : Boolean(refresh.error),
    }
  }

  /** The one read of the site a burst of scrapes shares; it fails whole, so no failure is kept. */
  private async readSite(deps: Deps, now: number): Promise<SiteRead> {
    const { prefix } = deps.config.redis
    const [counters, stuck, refresh] = await Promise.all([
      this.admin.counters(prefix, now),
      this.admin.hash(stuckCountKeys(prefix).count),
      this.admin.hash(providerKeys(prefix).status),
    ])
    const at = stuck.at === undefined ? null : Number(stuck.at)
    const every = deps.config.metrics.stuck_every * 1000
    if (every > 0 && (at === null || now - at >= every)) this.countStuck(deps, now)
    return { counters, stuck, refresh }
  }

  /**
   * Counts the stuck pairs in the background, when this process passes the site's gate (one
   * process of all MXs per stuck_every): a SCAN of the tuples, a batch at a time.
   */
  private countStuck(deps: Deps, now: number): void {
    if (this.counting) return
    const { config } = deps
    const keys = stuckCountKeys(config.redis.prefix)
    const periodMs = config.metrics.stuck_every * 1000
    this.counting = true
    const work = async (): Promise<void> => {
      const gate = await this.admin.setIfAbsent(keys.gate, `${os.hostname()}:${process.pid}`, periodMs)
      if (!gate) return
      const finder = new StuckFinder(now, {
        minDeferrals: STUCK_MIN_DEFERRALS,
        windowMs: config.main.retry_window * 1000,
        orgDomain: deps.orgDomain,
        netIdentityGreylist: config.main.net_identity_greylist,
      })
      for await (const batch of this.admin.tupleBatches(config.redis.prefix)) for (const t of batch) finder.add(t)
      await this.admin.setHash(keys.count, { n: String(finder.pairs().length), at: String(now) }, 3 * periodMs)
    }
    work()
      .catch((err: unknown) => this.src.log.logwarn(`metrics: stuck senders not counted (${err instanceof Error ? err.message : String(err)})`))
      .finally(() => {
        this.counting = false
      })
  }

  /** Our own server, for when Haraka's HTTP server is off; listening already there: nothing to do. */
  async listen(address: string): Promise<void> {
    if (this.server && this.address === address) return
    this.close()
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address)
    const host = m?.[1] ?? m?.[2]
    if (!m || !host) throw new Error(`[metrics] listen: not host:port: ${address}`)
    const server = http.createServer(this.handle)
    this.server = server
    this.address = address
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => {
        if (this.server === server) this.close()
        reject(err)
      })
      server.listen(Number(m[3]), host, () => resolve())
    })
    this.src.log.loginfo(`metrics at http://${address}${METRICS_PATH}`)
  }

  close(): void {
    this.server?.close()
    this.server = undefined
    this.address = undefined
  }
}
