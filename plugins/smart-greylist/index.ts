// Haraka adapter: register, configuration (re)loading, the hooks, and recording decisions.
// What is decided lives in adapters/haraka-recipient.ts and the pure core it calls.
import constants from 'haraka-constants'
import DSN from 'haraka-dsn'
import tlds from 'haraka-tld'
import type { Config } from './core/settings'
import { isPostponed, messageRecord, type MessageDecision } from './core/message'
import { headerValue } from './core/header'
import { safeField } from './core/text'
import { answer, counterOf, decisionRecord, failureAnswer, WATCH_NAME, watchResult, type RecipientDecision } from './core/recipient'
import { addressOf, type Address, type Connection, type Next, type RedisClient } from './adapters/haraka-types'
import { correspondentsOf, messageFactsOf, recipientInput, transactionNote } from './adapters/haraka-recipient'
import { decideMessage } from './adapters/message'
import { decideRecipient } from './adapters/recipient'
import { closeRedis, redisTarget, StoreError } from './adapters/redis-client'
import { RedisConnection } from './adapters/redis-connection'
import type { CorrespondentWrite } from './adapters/redis-decision'
import { RedisHealth } from './adapters/redis-health'
import { withTimeout } from './adapters/timeout'
import type { Provider } from './core/providers'
import type { SharedRanges } from './core/refresh'
import { ProviderRefresher } from './adapters/provider-refresh'
import { buildDeps, load, sourcesForPlugin, type ConfigReader, type Deps, type Loaded } from './setup'
import { MetricsEndpoint, METRICS_PATH } from './adapters/metrics'
import { Telemetry } from './adapters/telemetry'

/** What Haraka gives a plugin object, plus the state this plugin keeps on it. */
interface Plugin {
  name: string
  config: ConfigReader
  db?: RedisClient
  register_hook(hook: string, method: string): void
  loginfo(msg: string): void
  logwarn(msg: string): void
  logerror(msg: string): void
  sg: PluginState
  sg_load(): void
  sg_drop_redis(why: string): void
}

interface PluginState {
  deps: Deps
  /** The files' providers, before the shared ranges (what a refresh starts from). */
  fileProviders: readonly Provider[]
  /** Per provider, every range its files give it: what refreshes and shared records are bounded by. */
  anchors: ReadonlyMap<string, readonly string[]>
  /** The providers in force: the files' with the shared ranges applied. */
  providerList: readonly Provider[]
  /** The providers' ranges every MX shares through Redis ([refresh]). */
  shared: ReadonlyMap<string, SharedRanges>
  refresher: ProviderRefresher
  /** Watches for a Redis that is connected but silent; lives as long as the plugin. */
  health: RedisHealth
  /** This process's measurements, and the endpoint that shows them with the site's counters. */
  telemetry: Telemetry
  metrics: MetricsEndpoint
  /** Where this process serves the metrics; unset: none (not started, or a cluster's master). */
  metricsHome?: 'own' | 'haraka' | 'awaiting_http'
  /** The decisions' connection (its client is `db`). */
  redis: RedisConnection
  /**
   * The admin reads' own connection (the metrics' 256 HGETALLs, the stuck count's SCAN), open
   * while this process serves the metrics, so a scrape never queues ahead of a decision.
   */
  admin: RedisConnection
}

export function register(this: Plugin): void {
  // The watch reads the settings when it runs (after init), so it can be made before they are loaded.
  const health = new RedisHealth(
    () => this.db,
    () => {
      const r = this.sg.deps.config.redis
      return { timeoutMs: r.timeout_ms, intervalMs: r.ping_interval_ms, deadAfterMs: r.dead_after_ms }
    },
    Date.now,
    (why) => this.sg_drop_redis(why),
  )
  const refresher = new ProviderRefresher({
    config: () => this.sg.deps.config,
    providers: () => this.sg.fileProviders,
    anchors: () => this.sg.anchors,
    resolver: () => this.sg.deps.resolver,
    client: () => this.db,
    now: Date.now,
    onShared: (shared) => applyShared(this, shared),
    log: this,
  })
  const shared = new Map<string, SharedRanges>()
  // Read quietly: the load once the public-suffix list is in (below) is the one that is logged.
  const loaded = load(sourcesForPlugin(this.config), undefined, () => this.sg_load(), 'daemon', shared)
  const telemetry = new Telemetry()
  const redis = new RedisConnection('', this, () => health.reset(), { get: () => this.db, set: (db) => (this.db = db) })
  redis.configure(loaded.redis)
  const admin = new RedisConnection('admin reads', this)
  admin.configure(loaded.redis)
  const metrics = new MetricsEndpoint({
    deps: () => this.sg.deps,
    client: () => this.sg.admin.client,
    telemetry,
    providers: () => ({ list: this.sg.providerList, shared: this.sg.shared }),
    redisUp: () => this.db !== undefined && this.db.isReady !== false && this.sg.health.responsive,
    log: this,
  })
  this.sg = {
    deps: buildDeps(loaded, { client: () => this.db, health, ...measured(loaded, telemetry) }),
    fileProviders: loaded.fileProviders,
    anchors: loaded.anchors,
    providerList: loaded.providerList,
    shared,
    refresher,
    health,
    telemetry,
    metrics,
    redis,
    admin,
  }
  // The public-suffix list loads asynchronously; until then no entry can be judged against it.
  // This load is the start's one logged (problems, notes, the `loaded:` line), once per process.
  tlds.ready
    .catch(() => undefined)
    .then(() => this.sg_load())
    .catch(() => undefined)
  this.register_hook('init_master', 'sg_init_master')
  this.register_hook('init_child', 'sg_init_child')
  this.register_hook('init_http', 'sg_init_http')
  this.register_hook('rcpt_ok', 'sg_rcpt_ok')
  this.register_hook('data', 'sg_data')
  this.register_hook('data_post', 'sg_data_post')
  this.register_hook('queue_ok', 'sg_queue_ok')
}

/** Decisions are timed only while the metrics are on: off, they cost nothing. */
function measured(loaded: Loaded, telemetry: Telemetry): { telemetry?: Telemetry } {
  return loaded.config.metrics.enabled ? { telemetry } : {}
}

/** Reads every file, with this plugin's reload as haraka-config's change callback; logs what is wrong. */
function loadFor(plugin: Plugin, previous: Config | undefined, shared: ReadonlyMap<string, SharedRanges>): Loaded {
  const loaded = load(sourcesForPlugin(plugin.config), previous, () => plugin.sg_load(), 'daemon', shared)
  for (const p of loaded.problems) plugin.logerror(p)
  for (const n of loaded.notes) plugin.loginfo(n)
  return loaded
}

function loadedLine(plugin: Plugin, loaded: Loaded): void {
  plugin.loginfo(
    `loaded: whitelist ${loaded.admin.entries.length} entries; providers ${loaded.providerList.length} (${loaded.providers.ranges} ranges, ${refreshedCount(loaded)} refreshed); domains ${loaded.domainRules.length} rules; redis ${redisTarget(loaded.redis)}`,
  )
}

function refreshedCount(loaded: Loaded): number {
  return loaded.providerList.filter((p) => p.origin.startsWith('redis')).length
}

/**
 * Reloads settings and lists; haraka-config calls it whenever one of the files changes, from a
 * timer, where an exception would end Haraka: a reload that fails is logged and the last good
 * world stays in force.
 */
export function sg_load(this: Plugin): void {
  try {
    reload(this)
  } catch (err) {
    this.logerror(`reload failed, the last good configuration stays in force: ${err instanceof Error ? err.message : String(err)}`)
  }
}

/** The providers' shared ranges changed: reload with them, or keep the last good ones and world. */
function applyShared(plugin: Plugin, shared: ReadonlyMap<string, SharedRanges>): void {
  const last = plugin.sg.shared
  plugin.sg.shared = shared
  try {
    reload(plugin)
  } catch (err) {
    plugin.sg.shared = last
    plugin.logerror(`reload with the shared provider ranges failed, the last good ones stay in force: ${err instanceof Error ? err.message : String(err)}`)
  }
}

function reload(plugin: Plugin): void {
  const loaded = loadFor(plugin, plugin.sg.deps.config, plugin.sg.shared)
  // One assignment: a decision in flight keeps the whole old world or sees the whole new one.
  plugin.sg.deps = buildDeps(loaded, { client: () => plugin.db, health: plugin.sg.health, ...measured(loaded, plugin.sg.telemetry) })
  plugin.sg.fileProviders = loaded.fileProviders
  plugin.sg.anchors = loaded.anchors
  plugin.sg.providerList = loaded.providerList
  plugin.sg.redis.configure(loaded.redis)
  plugin.sg.admin.configure(loaded.redis)
  syncMetrics(plugin)
  loadedLine(plugin, loaded)
}

/** What init_master and init_child hand a plugin: Haraka's server, with its settings. */
interface Server {
  cfg?: { main?: { nodes?: unknown } }
  http?: { app?: { get(path: string, handler: MetricsEndpoint['handle']): unknown }; cfg?: { listen?: unknown } }
}

// Start-up never waits for Redis: with Redis down, Haraka still starts and fails open.
function start(plugin: Plugin): void {
  plugin.sg.redis.open()
  plugin.sg.health.start()
  plugin.sg.refresher.start()
}

/** One process (nodes unset or 0) decides and serves; a cluster's master only forks the workers that do. */
export function sg_init_master(this: Plugin, next: Next, server?: Server): void {
  next()
  start(this)
  const nodes = server?.cfg?.main?.nodes
  placeMetrics(this, !nodes || nodes === '0' ? server : null)
}

export function sg_init_child(this: Plugin, next: Next, server?: Server): void {
  next()
  start(this)
  placeMetrics(this, server)
}

/**
 * Where this process serves the metrics: on Haraka's HTTP server (http.ini listen), whose
 * init_http comes after init_master/init_child, else (or when it has not come a few seconds on:
 * express missing) on our own at [metrics] listen; the workers of a cluster share that port.
 * `null`: this process serves none (a cluster's master).
 */
function placeMetrics(plugin: Plugin, server: Server | null | undefined): void {
  if (server === null) return
  if (!server?.http?.cfg?.listen) {
    plugin.sg.metricsHome = 'own'
    return syncMetrics(plugin)
  }
  plugin.sg.metricsHome = 'awaiting_http'
  setTimeout(() => {
    if (plugin.sg.metricsHome !== 'awaiting_http') return
    plugin.sg.metricsHome = 'own'
    if (plugin.sg.deps.config.metrics.enabled)
      plugin.logwarn("metrics: Haraka's HTTP server did not start (is express installed?); serving on [metrics] listen")
    syncMetrics(plugin)
  }, 5000).unref()
}

/**
 * Opens, moves or closes our own metrics server, and the admin reads' connection, as the settings
 * now say (at start and on every reload).
 */
function syncMetrics(plugin: Plugin): void {
  const { metrics } = plugin.sg.deps.config
  if (metrics.enabled && plugin.sg.metricsHome) plugin.sg.admin.open()
  else plugin.sg.admin.close()
  if (plugin.sg.metricsHome !== 'own' || !metrics.enabled) return plugin.sg.metrics.close()
  plugin.sg.metrics.listen(metrics.listen).catch((err: Error) => plugin.logerror(`metrics: cannot listen on ${metrics.listen}: ${err.message}`))
}

export function sg_init_http(this: Plugin, next: Next, server?: Server): void {
  const app = server?.http?.app
  if (app && this.sg.metricsHome) {
    // The route stays; it answers 404 while [metrics] enabled is false.
    app.get(METRICS_PATH, this.sg.metrics.handle)
    this.sg.metricsHome = 'haraka'
    syncMetrics(this)
    this.loginfo(`metrics at ${METRICS_PATH} on Haraka's HTTP server${this.sg.deps.config.metrics.enabled ? '' : ' (off: [metrics] enabled = false)'}`)
  }
  next()
}

/**
 * Drops a client that stopped answering (a black-holed link can stay "open" for minutes); the
 * admin reads' connection goes to the same Redis, so it is made anew too.
 */
export function sg_drop_redis(this: Plugin, why: string): void {
  if (!this.db) return
  this.logwarn(`Redis ${why}: dropping the connection and connecting anew; failing open meanwhile`)
  this.sg.health.reset()
  this.sg.redis.drop()
  this.sg.admin.drop()
}

export function shutdown(this: Plugin): void {
  this.sg?.health.stop()
  this.sg?.refresher.stop()
  this.sg?.metrics.close()
  this.sg?.admin.close()
  if (this.sg) this.sg.redis.close()
  else {
    const db = this.db
    this.db = undefined
    void closeRedis(db)
  }
}

/** Calls next exactly once and turns any failure into the configured on_error answer. */
function guarded(plugin: Plugin, connection: Connection, next: Next, work: () => Promise<[number?, unknown?]>): void {
  let done = false
  const once: Next = (code, msg) => {
    if (done) return
    done = true
    next(code, msg)
  }
  work()
    .then(([code, msg]) => once(code, msg))
    .catch((err: unknown) => {
      const kind = err instanceof StoreError ? `redis_${err.kind}` : 'internal'
      const message = err instanceof Error ? err.message : String(err)
      const text = `error (${kind}): ${message}; on_error=${plugin.sg.deps.config.main.on_error}`
      // One line: haraka-results logs an err as it records it.
      if (connection.transaction) connection.transaction.results.add(plugin, { err: text })
      else connection.logerror(plugin, text)
      const [code, reply] = onErrorAnswer(plugin, kind)
      once(code, reply)
    })
}

/**
 * What a failed decision answers: `[main] on_error`, counted when it fails open; shadow mode
 * (the recipient's, when the failure came with a decision) never defers.
 */
function onErrorAnswer(plugin: Plugin, cause: string, d?: RecipientDecision): [number?, unknown?] {
  const { config, decisions } = plugin.sg.deps
  if (config.main.on_error === 'accept') {
    decisions.noteFailOpen(cause)
    plugin.sg.redis.noteFailedOpen()
  }
  const shadow = d?.kind === 'failed' ? d.shadow : config.main.mode === 'shadow'
  return failureAnswer(shadow, config) === 'defer' ? [constants.denysoft, deferReply(config)] : []
}

function deferReply(config: Config): unknown {
  return DSN.sec_unauthorized(config.main.text, 451)
}

export function sg_rcpt_ok(this: Plugin, next: Next, connection: Connection, rcpt: Address): void {
  guarded(this, connection, next, async () => {
    const txn = connection.transaction
    if (!txn) return []
    const deps = this.sg.deps
    const { config } = deps
    // The backstop: whatever happens inside, the recipient is answered within its budget.
    const decision = await withTimeout(
      decideRecipient(deps, recipientInput(connection, rcpt), deps.decisions),
      config.main.budget_ms + 500,
      "the recipient's decision",
    )
    record(this, connection, rcpt, decision)
    if (decision.kind === 'failed') return onErrorAnswer(this, decision.cause, decision)
    const field = counterOf(decision)
    if (field) {
      const stats = { prefix: config.redis.prefix, shadow: false, ttlDays: config.stats.days }
      // Counting is best effort and must not hold the recipient.
      deps.decisions.count(field, deps.now(), stats, connection.remote.ip ?? '').catch(() => undefined)
    }
    const note = transactionNote(txn)
    if (answer(decision, config) === 'accept') {
      if (isPostponed(decision)) note.postponed.push(decision)
      else if (decision.kind !== 'skip') note.accepted.push(decision)
      return []
    }
    if (config.main.defer_at === 'data') {
      note.deferAtData = true
      return []
    }
    return [constants.denysoft, deferReply(config)]
  })
}

/**
 * A relayed message from a local mailbox was queued: the outside domains it went to become that
 * mailbox's correspondents. Best effort, after the fact: never holds or fails the message.
 */
export function sg_queue_ok(this: Plugin, next: Next, connection: Connection): void {
  // Read before next(): answering the client resets the transaction.
  const w = readCorrespondents(this, connection)
  next()
  if (!w) return
  const deps = this.sg.deps
  const { ttl, per_mailbox } = deps.config.correspondents
  deps.decisions
    .recordCorrespondents(w, deps.now(), ttl * 1000, per_mailbox)
    .then(() => connection.loginfo(this, `correspondents recorded: <${safeField(w.mailbox)}> wrote to ${w.domains.map((d) => safeField(d.domain)).join(', ')}`))
    .catch((err: Error) => connection.logwarn(this, `correspondents not recorded (${err.message})`))
}

function readCorrespondents(plugin: Plugin, connection: Connection): CorrespondentWrite | null {
  try {
    return correspondentsOf(plugin.sg.deps, connection)
  } catch (err) {
    connection.logerror(plugin, `correspondents: ${(err as Error).message}`)
    return null
  }
}

export function sg_data(this: Plugin, next: Next, connection: Connection): void {
  const txn = connection.transaction
  if (this.sg.deps.config.main.defer_at === 'data' && txn && transactionNote(txn).deferAtData) {
    return next(constants.denysoft, deferReply(this.sg.deps.config))
  }
  next()
}

export function sg_data_post(this: Plugin, next: Next, connection: Connection): void {
  guarded(this, connection, next, async () => {
    const txn = connection.transaction
    if (!txn) return []
    const deps = this.sg.deps
    const { config } = deps
    const note = transactionNote(txn)
    let message: MessageDecision | undefined
    if (note.postponed.length) {
      // The backstop, as for a recipient: the body's digest and the message's record fit the budget.
      const work = async (): Promise<MessageDecision> => decideMessage(deps, deps.decisions, note.postponed, await messageFactsOf(txn, config))
      message = await withTimeout(work(), 2 * config.main.budget_ms + 500, "the message's decision")
      const r = messageRecord(message, addressOf(txn.mail_from))
      txn.results.add(this, { ...r.result, human: r.line, emit: config.main.log_decisions })
      if (message.verdict.action === 'defer') return [constants.denysoft, deferReply(config)]
    }
    if (config.main.header && txn.add_header) {
      const value = headerValue(note.accepted, message)
      if (value) txn.add_header('X-Greylist', value)
    }
    return []
  })
}

function record(plugin: Plugin, connection: Connection, rcpt: Address, d: RecipientDecision): void {
  const txn = connection.transaction
  if (!txn) return
  const { config } = plugin.sg.deps
  const r = decisionRecord(d, { from: addressOf(txn.mail_from), to: addressOf(rcpt) }, config.main.on_error)
  // The log line is the result's `human` text, emitted by haraka-results: one line, and
  // haraka-results does not format a summary of its own on every add (nobody read it). An
  // error is logged by haraka-results as it records it.
  if (d.kind === 'failed') txn.results.add(plugin, { err: r.line })
  else txn.results.add(plugin, { ...r.result, human: r.line, emit: config.main.log_decisions })
  txn.results.redis_publish?.(WATCH_NAME, watchResult(d, config, r.line))
  if (r.dnsError) connection.logerror(plugin, r.dnsError)
}
