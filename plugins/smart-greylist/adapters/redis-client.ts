// The one way this package makes and uses a Redis client, for the plugin and the command alike:
// options merged exactly as haraka-plugin-redis merges them (redis.ini [server] under the
// plugin's [redis], `db` mapped to `database`), the client made by haraka-plugin-redis, and every
// command bounded in time with its failure classified into a StoreError.
import type { RedisClient } from './haraka-types'
import { TimeoutError, withTimeout } from './timeout'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const redisPlugin = require('haraka-plugin-redis') as {
  normalize_redis_ini(raw: unknown): { server: Record<string, unknown> }
  merge_redis_ini(this: { cfg: { redis: Record<string, unknown> }; redisCfg: unknown }): void
  get_redis_client(this: Logger, opts: unknown): Promise<RedisClient>
}

export interface Logger {
  loginfo(msg: string): void
  logwarn(msg: string): void
  logerror(msg: string): void
}

export class StoreError extends Error {
  constructor(
    readonly kind: 'unavailable' | 'timeout' | 'busy' | 'failed',
    message: string,
  ) {
    super(message)
    this.name = 'StoreError'
  }
}

/**
 * Client options from redis.ini (as haraka-config read it) and the [redis] section of
 * smart-greylist.ini. `daemon` (the plugin) reconnects forever with backoff; the command gives up
 * at the first failure so it can answer and exit.
 */
export function redisClientOptions(redisIni: unknown, ownSection: unknown, use: 'daemon' | 'command'): Record<string, unknown> {
  const { prefix: _p, timeout_ms: _t, ...own } = (ownSection ?? {}) as Record<string, unknown>
  // haraka-plugin-redis's own merge, run on a scratch object so plugin and command share it.
  const scratch = { cfg: { redis: own }, redisCfg: redisPlugin.normalize_redis_ini(redisIni ?? {}) }
  redisPlugin.merge_redis_ini.call(scratch)
  const opts = scratch.cfg.redis
  const socket = (opts.socket ?? {}) as Record<string, unknown>
  return {
    ...opts,
    // A command issued while disconnected fails at once instead of queueing past its timeout.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: use === 'daemon' ? 2000 : 3000,
      ...socket,
      reconnectStrategy: use === 'daemon' ? (n: number) => Math.min(100 * 2 ** n, 5000) : false,
    },
  }
}

/** Where the options point, for log lines and error messages (never the password). */
export function redisTarget(opts: Record<string, unknown>): string {
  const s = (opts.socket ?? {}) as Record<string, unknown>
  const where = s.path ? String(s.path) : `${String(s.host ?? '127.0.0.1')}:${String(s.port ?? 6379)}`
  return `redis://${where}/${String(opts.database ?? 0)}`
}

export function openRedis(opts: Record<string, unknown>, log: Logger): Promise<RedisClient> {
  return redisPlugin.get_redis_client.call(log, opts)
}

/**
 * Closes a client within `ms`: QUIT when Redis answers, else the socket is dropped. Never throws:
 * node-redis throws synchronously from disconnect() on a client that closed meanwhile, and an
 * unhandled rejection here would take Haraka down.
 */
export async function closeRedis(db: RedisClient | undefined, ms = 1000): Promise<void> {
  if (!db || db.isOpen === false) return
  try {
    await withTimeout(db.quit!(), ms, 'Redis QUIT')
  } catch {
    try {
      await db.disconnect?.()
    } catch {
      // already closed
    }
  }
}

/** Runs commands on whatever client is current, each bounded by the configured timeout. */
export class BoundedRedis {
  constructor(
    private readonly client: () => RedisClient | undefined,
    private readonly timeoutMs: () => number,
  ) {}

  ready(): RedisClient {
    const db = this.client()
    if (!db) throw new StoreError('unavailable', 'no Redis connection yet')
    if (db.isReady === false) throw new StoreError('unavailable', 'Redis is not connected')
    return db
  }

  async run<T>(command: (db: RedisClient) => Promise<T>): Promise<T> {
    const db = this.ready()
    try {
      return await withTimeout(command(db), this.timeoutMs(), 'Redis')
    } catch (err) {
      if (err instanceof StoreError) throw err
      if (err instanceof TimeoutError) throw new StoreError('timeout', err.message)
      const msg = err instanceof Error ? err.message : String(err)
      const offline = /closed|offline|ECONNREFUSED|socket/i.test(msg)
      throw new StoreError(offline ? 'unavailable' : 'failed', msg)
    }
  }
}
