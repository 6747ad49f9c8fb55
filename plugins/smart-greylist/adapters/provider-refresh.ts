// Provider ranges from their sources: the SPF include walk (`pools refresh` and the scheduled
// refresh), Microsoft's endpoints web service, and the refresh every MX runs on a timer: read the
// shared ranges from Redis, and when they are due, refresh them under a lock so one MX does it.
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { providerKeys } from '../core/keys'
import type { Provider } from '../core/providers'
import {
  canonicalRange,
  decodeShared,
  encodeShared,
  endpointsVersion,
  exchangeSmtpRanges,
  implausible,
  type RefreshStatus,
  type SharedRanges,
} from '../core/refresh'
import type { Config } from '../core/settings'
import type { Resolver } from './dns'
import type { RedisClient } from './haraka-types'
import { BoundedRedis } from './redis-client'
import { walkSpf, type TxtResolver } from './spf-walk'
import { withTimeout } from './timeout'

/** A provider's ranges from its published SPF records (include: and redirect= followed). */
export async function rangesFromSpf(
  p: Provider,
  resolver: TxtResolver,
  timeoutMs: number,
): Promise<{ ranges: string[]; ignored: string[] } | { error: string }> {
  try {
    const ranges = new Set<string>()
    const ignored: string[] = []
    for (const root of p.spf) {
      const r = await walkSpf(root, resolver, { maxLookups: 50, timeoutMs })
      r.ranges.forEach((x) => ranges.add(x))
      ignored.push(...r.ignored)
    }
    if (!ranges.size) return { error: 'the SPF records list no ip4/ip6 ranges' }
    return { ranges: [...ranges], ignored }
  } catch (err) {
    const e = err as { code?: string; message?: string }
    return { error: e.code ? `${e.code} ${e.message ?? ''}`.trim() : String(e.message ?? err) }
  }
}

/** One installation's id for the service's `clientrequestid` (Microsoft asks for one per client). */
const CLIENT_REQUEST_ID = randomUUID()

async function getJson(url: string, timeoutMs: number): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
  if (!res.ok) throw new Error(`${url.replace(/\?.*$/, '')}: HTTP ${res.status}`)
  const text = await withTimeout(res.text(), timeoutMs, `reading ${url.replace(/\?.*$/, '')}`)
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new Error(`${url.replace(/\?.*$/, '')}: not JSON`)
  }
}

/**
 * Exchange Online's sending ranges from the endpoints web service, asked only when its version
 * moved past `knownVersion` (Microsoft asks clients to poll the version, at most hourly).
 */
export async function rangesFromEndpoints(
  baseUrl: string,
  knownVersion: string | null,
  timeoutMs: number,
): Promise<{ ranges: string[]; version: string } | { unchanged: string } | { error: string }> {
  const base = baseUrl.replace(/\/+$/, '')
  try {
    const version = endpointsVersion(await getJson(`${base}/version/Worldwide?clientrequestid=${CLIENT_REQUEST_ID}`, timeoutMs))
    if (!version) return { error: 'the version answer has no "latest"' }
    if (version === knownVersion) return { unchanged: version }
    const ranges = exchangeSmtpRanges(await getJson(`${base}/endpoints/Worldwide?ServiceAreas=Exchange&clientrequestid=${CLIENT_REQUEST_ID}`, timeoutMs))
    return 'error' in ranges ? ranges : { ranges, version }
  } catch (err) {
    const e = err as Error
    return { error: e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : e.message }
  }
}

/** What the timer needs from the plugin. */
export interface RefreshHost {
  readonly config: () => Config
  /** The providers as the files give them (before shared ranges are applied). */
  readonly providers: () => readonly Provider[]
  readonly resolver: () => Resolver
  readonly client: () => RedisClient | undefined
  readonly now: () => number
  /** The shared ranges changed: rebuild the provider index with them. */
  readonly onShared: (shared: ReadonlyMap<string, SharedRanges>) => void
  readonly log: { loginfo(msg: string): void; logwarn(msg: string): void }
}

/** Reads the shared ranges and the last attempt's status (for every MX, `config check` and `stats`). */
export async function readShared(
  redis: BoundedRedis,
  prefix: string,
  ids: readonly string[],
): Promise<{ shared: Map<string, SharedRanges>; status: (RefreshStatus & { by: string }) | null }> {
  const keys = providerKeys(prefix)
  const shared = new Map<string, SharedRanges>()
  for (const id of ids) {
    const s = decodeShared(id, await redis.run((db) => db.hGetAll(keys.ranges(id))))
    if (s) shared.set(id, s)
  }
  const st = await redis.run((db) => db.hGetAll(keys.status))
  const status = st.checked ? { checked: Number(st.checked), error: st.error || null, by: st.by ?? '' } : null
  return { shared, status }
}

/** Kept while refreshes keep running; gone a month after the last, and the files' ranges apply again. */
const SHARED_TTL_MS = 30 * 86_400_000

export class ProviderRefresher {
  private timer?: NodeJS.Timeout
  private running = false
  private seen = ''
  private readonly redis: BoundedRedis

  constructor(private readonly host: RefreshHost) {
    this.redis = new BoundedRedis(host.client, () => Math.max(1000, host.config().redis.timeout_ms))
  }

  start(): void {
    if (this.timer) return
    const schedule = (): void => {
      this.timer = setTimeout(() => {
        this.tick()
          .catch((err: Error) => this.host.log.logwarn(`provider refresh: ${err.message}`))
          .finally(schedule)
      }, this.host.config().refresh.check_every * 1000)
      this.timer.unref()
    }
    schedule()
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
  }

  /** Reads the shared ranges; refreshes them first when they are due and this MX gets the lock. */
  async tick(): Promise<void> {
    if (this.running || !this.host.client()) return
    this.running = true
    try {
      const cfg = this.host.config()
      const ids = this.host.providers().map((p) => p.id)
      const read = await readShared(this.redis, cfg.redis.prefix, ids)
      let { shared } = read
      const due = cfg.refresh.every > 0 && (!read.status || this.host.now() - read.status.checked >= cfg.refresh.every * 1000)
      if (due && (await this.lock(cfg))) {
        try {
          await this.refresh(cfg, shared)
        } finally {
          await this.unlock(cfg).catch(() => undefined)
        }
        shared = (await readShared(this.redis, cfg.redis.prefix, ids)).shared
      }
      const text = JSON.stringify([...shared.values()].map((s) => [s.id, s.updated, s.ranges]))
      if (text !== this.seen) {
        this.seen = text
        this.host.onShared(shared)
      }
    } finally {
      this.running = false
    }
  }

  private readonly holder = `${hostname()}:${process.pid}:${randomUUID()}`

  private async lock(cfg: Config): Promise<boolean> {
    const { lock } = providerKeys(cfg.redis.prefix)
    // Held at most for the longest a refresh can take: a refresh that died frees it by itself.
    const holdMs = Math.max(60_000, (this.host.providers().length + 2) * cfg.refresh.timeout_ms * 2)
    return (await this.redis.run((db) => db.set(lock, this.holder, { PX: holdMs, NX: true }))) !== null
  }

  /** Frees the lock if it is still ours (it may have expired and gone to another MX). */
  private async unlock(cfg: Config): Promise<void> {
    const { lock } = providerKeys(cfg.redis.prefix)
    const script = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
    await this.redis.run((db) => db.eval(script, { keys: [lock], arguments: [this.holder] }))
  }

  private async refresh(cfg: Config, shared: ReadonlyMap<string, SharedRanges>): Promise<void> {
    const keys = providerKeys(cfg.redis.prefix)
    const now = this.host.now()
    const errors: string[] = []
    const fresh: SharedRanges[] = []
    const timeoutMs = cfg.refresh.timeout_ms
    for (const p of this.host.providers()) {
      const current = shared.get(p.id)?.ranges ?? p.ips
      let found: { ranges: string[]; source: SharedRanges['source']; version: string | null } | { error: string } | null = null
      if (p.id === 'microsoft' && cfg.refresh.microsoft_endpoints_url) {
        const r = await rangesFromEndpoints(cfg.refresh.microsoft_endpoints_url, shared.get(p.id)?.version ?? null, timeoutMs)
        found = 'error' in r ? r : 'unchanged' in r ? null : { ranges: r.ranges, source: 'endpoints', version: r.version }
      } else if (p.spf.length) {
        const r = await rangesFromSpf(p, this.host.resolver(), timeoutMs)
        found = 'error' in r ? r : { ranges: r.ranges.map(canonicalRange), source: 'spf', version: null }
      }
      if (!found) continue
      if ('error' in found) {
        errors.push(`${p.id}: ${found.error}`)
        continue
      }
      const refusal = implausible(current, found.ranges)
      if (refusal) errors.push(`${p.id}: refused (${refusal})`)
      else fresh.push({ id: p.id, ranges: [...found.ranges].sort(), updated: now, source: found.source, version: found.version })
    }
    for (const s of fresh) {
      await this.redis.run((db) => db.hSet(keys.ranges(s.id), encodeShared(s)))
      await this.redis.run((db) => db.pExpire(keys.ranges(s.id), SHARED_TTL_MS))
    }
    const error = errors.join('; ')
    await this.redis.run((db) => db.hSet(keys.status, { checked: String(now), error, by: `${hostname()}:${process.pid}` }))
    await this.redis.run((db) => db.pExpire(keys.status, SHARED_TTL_MS))
    const kept = errors.length ? `; kept the last good data of ${errors.join('; ')}` : ''
    this.host.log.loginfo(
      `provider refresh: ${fresh.length} provider(s) refreshed (${fresh.map((s) => `${s.id} ${s.ranges.length} ranges from ${s.source}`).join(', ') || 'none'})${kept}`,
    )
  }
}
