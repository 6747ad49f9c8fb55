// Where this process serves the metrics: on Haraka's HTTP server (http.ini listen), whose
// init_http comes after init_master/init_child, else (or when it has not come a few seconds on:
// express missing) on a server of our own at [metrics] listen; the workers of a cluster share
// that port. A cluster's master serves none. The admin reads' Redis connection is open while this
// process serves the metrics and they are on.
import type { Config } from '../core/settings'
import type { MetricsEndpoint } from './metrics'
import { METRICS_PATH } from './metrics'
import type { Logger } from './redis-client'
import type { RedisConnection } from './redis-connection'

/** What init_master, init_child and init_http hand a plugin: Haraka's server, with its settings. */
export interface HarakaServer {
  cfg?: { main?: { nodes?: unknown } }
  http?: { app?: { get(path: string, handler: MetricsEndpoint['handle']): unknown }; cfg?: { listen?: unknown } }
}

/** How long init_http may take to come before our own server takes over. */
export const AWAIT_HTTP_MS = 5000

export class MetricsHome {
  /** Unset: this process serves none (not started, or a cluster's master). */
  private home?: 'own' | 'haraka' | 'awaiting_http'

  constructor(
    private readonly o: {
      readonly config: () => Config
      readonly endpoint: MetricsEndpoint
      /** The admin reads' connection: the metrics' HGETALLs and SCANs never queue ahead of a decision. */
      readonly admin: RedisConnection
      readonly log: Logger
      readonly awaitHttpMs?: number
    },
  ) {}

  /** Where it is served now, for log lines and tests. */
  get where(): 'own' | 'haraka' | 'awaiting_http' | undefined {
    return this.home
  }

  /**
   * At init_master (`master`) or init_child: one process (nodes unset or 0) decides and serves; a
   * cluster's master only forks the workers that do.
   */
  place(server: HarakaServer | undefined, role: 'master' | 'child'): void {
    if (role === 'master') {
      const nodes = server?.cfg?.main?.nodes
      if (nodes && nodes !== '0') return
    }
    if (!server?.http?.cfg?.listen) {
      this.home = 'own'
      return this.sync()
    }
    this.home = 'awaiting_http'
    setTimeout(() => {
      if (this.home !== 'awaiting_http') return
      this.home = 'own'
      if (this.o.config().metrics.enabled)
        this.o.log.logwarn("metrics: Haraka's HTTP server did not start (is express installed?); serving on [metrics] listen")
      this.sync()
    }, this.o.awaitHttpMs ?? AWAIT_HTTP_MS).unref()
  }

  /** At init_http: Haraka's HTTP server is up, so the metrics are served there (when this process serves them). */
  onHttp(server: HarakaServer | undefined): void {
    const app = server?.http?.app
    if (!app || !this.home) return
    // The route stays; it answers 404 while [metrics] enabled is false.
    app.get(METRICS_PATH, this.o.endpoint.handle)
    this.home = 'haraka'
    this.sync()
    this.o.log.loginfo(`metrics at ${METRICS_PATH} on Haraka's HTTP server${this.o.config().metrics.enabled ? '' : ' (off: [metrics] enabled = false)'}`)
  }

  /**
   * Opens, moves or closes our own metrics server, and the admin reads' connection, as the settings
   * now say (at start and on every reload).
   */
  sync(): void {
    const { metrics } = this.o.config()
    if (metrics.enabled && this.home) this.o.admin.open()
    else this.o.admin.close()
    if (this.home !== 'own' || !metrics.enabled) return this.o.endpoint.close()
    this.o.endpoint.listen(metrics.listen).catch((err: Error) => this.o.log.logerror(`metrics: cannot listen on ${metrics.listen}: ${err.message}`))
  }

  /** At shutdown: serves nothing from now on, whatever a later reload or the HTTP timer asks. */
  close(): void {
    this.home = undefined
    this.o.endpoint.close()
    this.o.admin.close()
  }
}
