// What the running plugin keeps, made once at register: the configuration in force (and its
// provider refresher), the decisions' Redis connection and its health watch, the admin reads'
// connection, this process's measurements and the metrics with where they are served. Its
// start, its reaction to a silent Redis, and its shutdown.
import type { RedisClient } from './haraka-types'
import { LiveConfig, type ConfigHost, type Loader } from './live-config'
import { MetricsEndpoint } from './metrics'
import { MetricsHome } from './metrics-home'
import { RedisConnection } from './redis-connection'
import { RedisHealth } from './redis-health'
import { Telemetry } from './telemetry'

/** Haraka's plugin object as the state uses it: `db` is where Haraka plugins keep their Redis client. */
export interface PluginHost extends ConfigHost {
  db?: RedisClient
  logwarn(msg: string): void
  /** The plugin's reaction to a silent Redis (index.ts sg_drop_redis, which calls dropRedis). */
  sg_drop_redis(why: string): void
}

export class PluginState {
  readonly live: LiveConfig
  /** Watches for a Redis that is connected but silent; lives as long as the plugin. */
  readonly health: RedisHealth
  /** This process's measurements (kept across reloads). */
  readonly telemetry = new Telemetry()
  /** The decisions' connection (its client is the plugin's `db`). */
  readonly redis: RedisConnection
  /**
   * The admin reads' own connection (the metrics' 256 HGETALLs, the stuck count's SCAN), open
   * while this process serves the metrics, so a scrape never queues ahead of a decision.
   */
  readonly admin: RedisConnection
  readonly metrics: MetricsEndpoint
  readonly metricsHome: MetricsHome

  constructor(
    private readonly host: PluginHost,
    loader: Loader,
  ) {
    // The watch reads the settings when it runs (after start), so it can be made before they are loaded.
    this.health = new RedisHealth(
      () => host.db,
      () => {
        const r = this.live.config.redis
        return { timeoutMs: r.timeout_ms, intervalMs: r.ping_interval_ms, deadAfterMs: r.dead_after_ms }
      },
      Date.now,
      (why) => host.sg_drop_redis(why),
    )
    this.live = new LiveConfig(
      host,
      loader,
      { client: () => host.db, health: this.health, telemetry: this.telemetry, failedOpen: () => this.redis.noteFailedOpen() },
      (loaded) => {
        this.redis.configure(loaded.redis)
        this.admin.configure(loaded.redis)
        this.metricsHome.sync()
      },
    )
    this.redis = new RedisConnection('', host, () => this.health.reset(), { get: () => host.db, set: (db) => (host.db = db) })
    this.redis.configure(this.live.redis)
    this.admin = new RedisConnection('admin reads', host)
    this.admin.configure(this.live.redis)
    this.metrics = new MetricsEndpoint({
      deps: () => this.live.deps,
      client: () => this.admin.client,
      telemetry: this.telemetry,
      providers: () => ({ list: this.live.providerList, shared: this.live.shared }),
      redisUp: () => host.db !== undefined && host.db.isReady !== false && this.health.responsive,
      log: host,
    })
    this.metricsHome = new MetricsHome({ config: () => this.live.config, endpoint: this.metrics, admin: this.admin, log: host })
  }

  /** The world a decision runs in now (replaced whole on each reload). */
  get deps(): LiveConfig['deps'] {
    return this.live.deps
  }

  get refresher(): LiveConfig['refresher'] {
    return this.live.refresher
  }

  get shared(): LiveConfig['shared'] {
    return this.live.shared
  }

  // Start-up never waits for Redis: with Redis down, Haraka still starts and fails open.
  start(): void {
    this.redis.open()
    this.health.start()
    this.live.refresher.start()
  }

  /**
   * Drops a client that stopped answering (a black-holed link can stay "open" for minutes); the
   * admin reads' connection goes to the same Redis, so it is made anew too.
   */
  dropRedis(why: string): void {
    if (!this.host.db) return
    this.host.logwarn(`Redis ${why}: dropping the connection and connecting anew; failing open meanwhile`)
    this.health.reset()
    this.redis.drop()
    this.admin.drop()
  }

  shutdown(): void {
    this.health.stop()
    this.live.stop()
    this.metricsHome.close()
    this.redis.close()
  }
}
