// The Haraka plugin: registers its hooks and hands each to the adapter that does the work.
// What the plugin keeps: adapters/plugin-state.ts; what each hook does: adapters/haraka-hooks.ts.
import type { Address, Connection, Next, RedisClient } from './adapters/haraka-types'
import { onData, onDataEnd, onQueued, onRecipient } from './adapters/haraka-hooks'
import { reloadWhenSuffixesLoad } from './adapters/live-config'
import type { HarakaServer } from './adapters/metrics-home'
import { PluginState, type PluginHost } from './adapters/plugin-state'
import { closeRedis } from './adapters/redis-client'
import { load, sourcesForPlugin } from './setup'

/** What Haraka gives a plugin object, plus the state this plugin keeps on it. */
interface Plugin extends PluginHost {
  name: string
  register_hook(hook: string, method: string): void
  sg: PluginState
}

export function register(this: Plugin): void {
  this.sg = new PluginState(this, (previous, onChange, shared) => load(sourcesForPlugin(this.config), previous, onChange, 'daemon', shared))
  reloadWhenSuffixesLoad(this.sg.live)
  this.register_hook('init_master', 'sg_init_master')
  this.register_hook('init_child', 'sg_init_child')
  this.register_hook('init_http', 'sg_init_http')
  this.register_hook('rcpt_ok', 'sg_rcpt_ok')
  this.register_hook('data', 'sg_data')
  this.register_hook('data_post', 'sg_data_post')
  this.register_hook('queue_ok', 'sg_queue_ok')
}

/** haraka-config's change callback: reloads settings and lists (never throws). */
export function sg_load(this: Plugin): void {
  this.sg.live.reload()
}

export function sg_init_master(this: Plugin, next: Next, server?: HarakaServer): void {
  next()
  this.sg.start()
  this.sg.metricsHome.place(server, 'master')
}

export function sg_init_child(this: Plugin, next: Next, server?: HarakaServer): void {
  next()
  this.sg.start()
  this.sg.metricsHome.place(server, 'child')
}

export function sg_init_http(this: Plugin, next: Next, server?: HarakaServer): void {
  this.sg.metricsHome.onHttp(server)
  next()
}

/** The health watch's call when Redis stopped answering. */
export function sg_drop_redis(this: Plugin, why: string): void {
  this.sg.dropRedis(why)
}

export function shutdown(this: Plugin): void {
  if (this.sg) return this.sg.shutdown()
  const db: RedisClient | undefined = this.db
  this.db = undefined
  void closeRedis(db)
}

export function sg_rcpt_ok(this: Plugin, next: Next, connection: Connection, rcpt: Address): void {
  onRecipient(this, this.sg.deps, next, connection, rcpt)
}

export function sg_data(this: Plugin, next: Next, connection: Connection): void {
  onData(this.sg.deps, next, connection)
}

export function sg_data_post(this: Plugin, next: Next, connection: Connection): void {
  onDataEnd(this, this.sg.deps, next, connection)
}

export function sg_queue_ok(this: Plugin, next: Next, connection: Connection): void {
  onQueued(this, this.sg.deps, next, connection)
}
