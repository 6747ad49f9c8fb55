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
  refreshBounds,
  type RefreshBounds,
  type RefreshStatus,
  type RefusedShared,
  type SharedRanges,
} from '../core/refresh'
import type { Config } from '../core/settings'
import { unboundedWhy } from '../core/spf-record'
import { safeExcerpt } from '../core/text'
import type { Resolver } from './dns'
import type { RedisClient } from './haraka-types'
import { BoundedRedis } from './redis-client'
import { walkSpf, type TxtResolver } from './spf-walk'
import { withTimeout } from './timeout'

/**
 * A provider's ranges from its published SPF records (include: and redirect= followed). A walk
 * that reaches a record passing for any client (`+all`, a macro of the client's address) is
 * refused: its ranges say nothing about where the provider sends from.
 */
export async function rangesFromSpf(
  p: Provider,
  resolver: TxtResolver,
  timeoutMs: number,
  deadline?: AbortSignal,
): Promise<{ ranges: string[]; ignored: string[] } | { error: string }> {
  try {
    const ranges = new Set<string>()
    const ignored: string[] = []
    for (const root of p.spf) {
      const r = await walkSpf(root, resolver, { maxLookups: 50, timeoutMs, ...(deadline ? { deadline } : {}) })
      const unbounded = unboundedWhy(r.records)
      if (unbounded) return { error: `refused: a record under ${root} passes for any client (${unbounded})` }
      r.ranges.forEach((x) => ranges.add(x))
      ignored.push(...r.ignored)
    }
    if (!ranges.size) return { error: 'the SPF records list no ip4/ip6 ranges' }
    return { ranges: [...ranges], ignored }
  } catch (err) {
    const e = err as { code?: string; message?: string; name?: string }
    if (deadline?.aborted && (e === deadline.reason || e.name === 'TimeoutError')) return { error: 'the refresh ran out of time' }
    return { error: e.code ? `${e.code} ${e.message ?? ''}`.trim() : String(e.message ?? err) }
  }
}

/** One installation's id for the service's `clientrequestid` (Microsoft asks for one per client). */
const CLIENT_REQUEST_ID = randomUUID()

/**
 * The most an endpoints answer may be. The real /endpoints answer is ~100 KB; a body past this is
 * refused as it streams in, so a server that answers without end costs nothing but the cap.
 */
export const MAX_ANSWER_BYTES = 4 * 1024 * 1024

async function getJson(url: string, timeoutMs: number, deadline?: AbortSignal): Promise<unknown> {
  const where = url.replace(/\?.*$/, '')
  const signal = deadline ? AbortSignal.any([AbortSignal.timeout(timeoutMs), deadline]) : AbortSignal.timeout(timeoutMs)
  // Redirects are not followed: the configured URL is the service, and a redirect could lead the
  // request anywhere (an internal address, a host that answers what it likes).
  const res = await fetch(url, { signal, redirect: 'manual', headers: { accept: 'application/json' } })
  const refuse = (why: string): never => {
    void res.body?.cancel().catch(() => undefined)
    throw new Error(`${where}: ${why}`)
  }
  if (res.status >= 300 && res.status < 400)
    refuse(`HTTP ${res.status} redirect${res.headers.get('location') ? ` to ${heard(res.headers.get('location') ?? '')}` : ''} (redirects are not followed)`)
  if (!res.ok) refuse(`HTTP ${res.status}`)
  const type = res.headers.get('content-type') ?? ''
  if (!/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) refuse(`content type "${heard(type)}", not JSON`)
  const length = Number(res.headers.get('content-length') ?? NaN)
  if (length > MAX_ANSWER_BYTES) refuse(`${length} bytes, more than ${MAX_ANSWER_BYTES}`)
  const text = await withTimeout(readCapped(res, where), timeoutMs, `reading ${where}`)
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new Error(`${where}: not JSON`)
  }
}

/** What the server said, as a log line shows it. */
const heard = (value: string): string => safeExcerpt(value, 100)

/** The body as text, counted as it streams: past MAX_ANSWER_BYTES the download is cancelled. */
async function readCapped(res: Response, where: string): Promise<string> {
  if (!res.body) return ''
  const reader = res.body.getReader() as ReadableStreamDefaultReader<Uint8Array>
  const chunks: Uint8Array[] = []
  let bytes = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    bytes += value.byteLength
    if (bytes > MAX_ANSWER_BYTES) {
      await reader.cancel().catch(() => undefined)
      throw new Error(`${where}: more than ${MAX_ANSWER_BYTES} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * Exchange Online's sending ranges from the endpoints web service, asked only when its version
 * moved past `knownVersion` (Microsoft asks clients to poll the version, at most hourly).
 */
export async function rangesFromEndpoints(
  baseUrl: string,
  knownVersion: string | null,
  timeoutMs: number,
  deadline?: AbortSignal,
): Promise<{ ranges: string[]; version: string } | { unchanged: string } | { error: string }> {
  const base = baseUrl.replace(/\/+$/, '')
  try {
    const version = endpointsVersion(await getJson(`${base}/version/Worldwide?clientrequestid=${CLIENT_REQUEST_ID}`, timeoutMs, deadline))
    if (!version) return { error: 'the version answer has no "latest"' }
    if (version === knownVersion) return { unchanged: version }
    const ranges = exchangeSmtpRanges(
      await getJson(`${base}/endpoints/Worldwide?ServiceAreas=Exchange&clientrequestid=${CLIENT_REQUEST_ID}`, timeoutMs, deadline),
    )
    return 'error' in ranges ? ranges : { ranges, version }
  } catch (err) {
    const e = err as Error
    if (deadline?.aborted) return { error: 'the refresh ran out of time' }
    return { error: e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : e.message }
  }
}

/** What the timer needs from the plugin. */
export interface RefreshHost {
  readonly config: () => Config
  /** The providers as the files give them (before shared ranges are applied). */
  readonly providers: () => readonly Provider[]
  /** Per provider, every range its files give it: what a refresh and a record read back are bounded by. */
  readonly anchors: () => ReadonlyMap<string, readonly string[]>
  readonly resolver: () => Resolver
  readonly client: () => RedisClient | undefined
  readonly now: () => number
  /** The shared ranges changed: rebuild the provider index with them. */
  readonly onShared: (shared: ReadonlyMap<string, SharedRanges>) => void
  readonly log: { loginfo(msg: string): void; logwarn(msg: string): void }
}

/** What a record read back from Redis is checked against (see decodeShared). */
export interface SharedCheck {
  readonly anchors: ReadonlyMap<string, readonly string[]>
  readonly bounds: RefreshBounds
  readonly now: number
}

export function sharedCheck(config: Config, anchors: ReadonlyMap<string, readonly string[]>, now: number): SharedCheck {
  return { anchors, bounds: refreshBounds(config), now }
}

/**
 * Reads the shared ranges and the last attempt's status (for every MX, `config check` and
 * `stats`). Each record is checked as a refresh's result is; one that fails is left out of
 * `shared` and named in `refused`, so the files' ranges stay in force for that provider.
 */
export async function readShared(
  redis: BoundedRedis,
  prefix: string,
  ids: readonly string[],
  check: SharedCheck,
): Promise<{ shared: Map<string, SharedRanges>; refused: RefusedShared[]; status: (RefreshStatus & { by: string }) | null }> {
  const keys = providerKeys(prefix)
  const shared = new Map<string, SharedRanges>()
  const refused: RefusedShared[] = []
  for (const id of ids) {
    const s = decodeShared(id, await redis.run((db) => db.hGetAll(keys.ranges(id))), {
      anchor: check.anchors.get(id) ?? [],
      bounds: check.bounds,
      now: check.now,
    })
    if (s && 'refused' in s) refused.push(s)
    else if (s) shared.set(id, s)
  }
  const st = await redis.run((db) => db.hGetAll(keys.status))
  const checked = Number(st.checked)
  // A time Date can hold: it is printed by `config check` and `stats`.
  const status = Number.isFinite(checked) && checked > 0 && checked < 8.64e15 ? { checked, error: st.error || null, by: st.by ?? '' } : null
  return { shared, refused, status }
}

/** Kept while refreshes keep running; gone a month after the last, and the files' ranges apply again. */
const SHARED_TTL_MS = 30 * 86_400_000

/**
 * Writes a hash and its expiry only while the lock (KEYS[1]) still holds this MX's value
 * (ARGV[1]): a refresh that outlived its lock, which another MX may hold now, writes nothing.
 * KEYS[2]: the hash; ARGV[2]: its expiry (ms); ARGV[3..]: field, value pairs. 1 written, 0 not.
 */
const WRITE_IF_HOLDER = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1`

/**
 * How long a refresh may work (its deadline) and how long its lock is held: the deadline is the
 * most every provider's sources may take (two bounded calls each, and two spare), the hold adds
 * time for the writes (a few Redis commands, each bounded by [redis] timeout_ms), so the work
 * always ends before the lock can pass to another MX.
 */
export function refreshTimes(providers: number, cfg: Config): { deadlineMs: number; holdMs: number } {
  const deadlineMs = (providers + 2) * cfg.refresh.timeout_ms * 2
  return { deadlineMs, holdMs: deadlineMs + 4 * Math.max(1000, cfg.redis.timeout_ms) * (providers + 1) }
}

export class ProviderRefresher {
  private timer?: NodeJS.Timeout
  private running = false
  private seen = ''
  /** The refused records last logged: each is logged when it changes, not on every read. */
  private refusedSeen = ''
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
      const check = (): SharedCheck => sharedCheck(cfg, this.host.anchors(), this.host.now())
      let read = await readShared(this.redis, cfg.redis.prefix, ids, check())
      const due = cfg.refresh.every > 0 && (!read.status || this.host.now() - read.status.checked >= cfg.refresh.every * 1000)
      const times = refreshTimes(ids.length, cfg)
      if (due && (await this.lock(cfg, times.holdMs))) {
        try {
          await this.refresh(cfg, read.shared, times.deadlineMs)
        } finally {
          await this.unlock(cfg).catch(() => undefined)
        }
        read = await readShared(this.redis, cfg.redis.prefix, ids, check())
      }
      this.reportRefused(read.refused)
      const text = JSON.stringify([...read.shared.values()].map((s) => [s.id, s.updated, s.ranges]))
      if (text !== this.seen) {
        this.seen = text
        this.host.onShared(read.shared)
      }
    } finally {
      this.running = false
    }
  }

  private reportRefused(refused: readonly RefusedShared[]): void {
    const text = JSON.stringify(refused)
    if (text === this.refusedSeen) return
    this.refusedSeen = text
    for (const r of refused) this.host.log.logwarn(`provider refresh: ignoring the shared record of ${r.id} in Redis (its files' ranges stay): ${r.refused}`)
  }

  private readonly holder = `${hostname()}:${process.pid}:${randomUUID()}`

  private async lock(cfg: Config, holdMs: number): Promise<boolean> {
    const { lock } = providerKeys(cfg.redis.prefix)
    // Held at most for the longest a refresh can take: a refresh that died frees it by itself.
    return (await this.redis.run((db) => db.set(lock, this.holder, { PX: holdMs, NX: true }))) !== null
  }

  /** Frees the lock if it is still ours (it may have expired and gone to another MX). */
  private async unlock(cfg: Config): Promise<void> {
    const { lock } = providerKeys(cfg.redis.prefix)
    const script = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
    await this.redis.run((db) => db.eval(script, { keys: [lock], arguments: [this.holder] }))
  }

  /** Writes `fields` to `key` if the lock is still ours; false when it is not (nothing written). */
  private async writeHeld(cfg: Config, key: string, fields: Record<string, string>): Promise<boolean> {
    const { lock } = providerKeys(cfg.redis.prefix)
    const args = [this.holder, String(SHARED_TTL_MS), ...Object.entries(fields).flat()]
    return (await this.redis.run((db) => db.eval(WRITE_IF_HOLDER, { keys: [lock, key], arguments: args }))) === 1
  }

  private async refresh(cfg: Config, shared: ReadonlyMap<string, SharedRanges>, deadlineMs: number): Promise<void> {
    const keys = providerKeys(cfg.redis.prefix)
    const now = this.host.now()
    const errors: string[] = []
    const fresh: SharedRanges[] = []
    const bounds = refreshBounds(cfg)
    const anchors = this.host.anchors()
    // One deadline for the whole refresh: every DNS lookup and HTTP request is bounded by it as
    // well as by timeout_ms, so each provider's sources get what is left of it, and none start after.
    const deadline = AbortSignal.timeout(deadlineMs)
    const timeoutMs = cfg.refresh.timeout_ms
    for (const p of this.host.providers()) {
      let found: { ranges: string[]; source: SharedRanges['source']; version: string | null } | { error: string } | null = null
      if (p.id === 'microsoft' && cfg.refresh.microsoft_endpoints_url) {
        const r = await rangesFromEndpoints(cfg.refresh.microsoft_endpoints_url, shared.get(p.id)?.version ?? null, timeoutMs, deadline)
        found = 'error' in r ? r : 'unchanged' in r ? null : { ranges: r.ranges, source: 'endpoints', version: r.version }
      } else if (p.spf.length) {
        const r = await rangesFromSpf(p, this.host.resolver(), timeoutMs, deadline)
        found = 'error' in r ? r : { ranges: r.ranges.map(canonicalRange), source: 'spf', version: null }
      }
      if (!found) continue
      if ('error' in found) {
        errors.push(`${p.id}: ${found.error}`)
        continue
      }
      // Bounded by the files' ranges, never by the last refresh: see implausible.
      const refusal = implausible(anchors.get(p.id) ?? [], found.ranges, bounds)
      if (refusal) errors.push(`${p.id}: refused (${refusal})`)
      else fresh.push({ id: p.id, ranges: [...found.ranges].sort(), updated: now, source: found.source, version: found.version })
    }
    for (const s of fresh) {
      if (!(await this.writeHeld(cfg, keys.ranges(s.id), encodeShared(s)))) {
        this.host.log.logwarn(`provider refresh: the lock passed to another MX before the results were written; nothing written`)
        return
      }
    }
    const error = errors.join('; ')
    if (!(await this.writeHeld(cfg, keys.status, { checked: String(now), error, by: `${hostname()}:${process.pid}` }))) {
      this.host.log.logwarn(`provider refresh: the lock passed to another MX before the status was written`)
      return
    }
    const kept = errors.length ? `; kept the last good data of ${errors.join('; ')}` : ''
    this.host.log.loginfo(
      `provider refresh: ${fresh.length} provider(s) refreshed (${fresh.map((s) => `${s.id} ${s.ranges.length} ranges from ${s.source}`).join(', ') || 'none'})${kept}`,
    )
  }
}
