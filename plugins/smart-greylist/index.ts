// Haraka adapter: register, configuration (re)loading, the hooks, and recording decisions.
// What is decided lives in recipient.ts and the pure modules it calls.
import constants from 'haraka-constants'
import DSN from 'haraka-dsn'
import { DEFAULTS, FILES, INI_BOOLEANS, parseConfig, type Config } from './config'
import { makeResolver } from './dns'
import { addressOf, type Address, type Connection, type Next, type RedisClient, type ServerLike } from './haraka'
import { identityText } from './identity'
import { parseProviders, ProviderIndex } from './providers'
import { SpfGuardCache, type Deps } from './plan'
import { decideRecipient, NOTE, type Outcome } from './recipient'
import { StoreError, TupleStore } from './store'
import { compileWhitelist, parseWhitelist, Whitelist } from './whitelist'

interface HarakaConfig {
  get(name: string, opts?: unknown, cb?: () => void): unknown
}

/** What Haraka gives a plugin object, plus the state this plugin keeps on it. */
interface Plugin {
  name: string
  config: HarakaConfig
  cfg?: Record<string, Record<string, unknown>>
  db?: RedisClient
  inherits(name: string): void
  merge_redis_ini(): void
  get_redis_client(opts: unknown): Promise<RedisClient>
  register_hook(hook: string, method: string): void
  loginfo(msg: string): void
  logwarn(msg: string): void
  logerror(msg: string): void
  sg: PluginState
  load_smart_greylist_ini(): void
  load_lists(): void
  sg_connect_redis(): void
}

interface PluginState {
  deps: Deps
  connecting: boolean
  retryTimer?: NodeJS.Timeout
}

export function register(this: Plugin): void {
  this.inherits('haraka-plugin-redis')
  const store = new TupleStore(
    () => this.db,
    () => this.sg.deps.config.redis.timeout_ms,
  )
  this.sg = {
    deps: {
      config: DEFAULTS,
      whitelist: new Whitelist([]),
      providers: new ProviderIndex([]),
      store,
      resolver: makeResolver(DEFAULTS.dns.timeout_ms),
      guard: new SpfGuardCache(
        () => store,
        () => ({ prefix: this.sg.deps.config.redis.prefix, ttlMs: this.sg.deps.config.identity.spf_guard_ttl * 1000 }),
      ),
      now: Date.now,
    },
    connecting: false,
  }
  this.load_smart_greylist_ini()
  this.register_hook('init_master', 'sg_init_redis')
  this.register_hook('init_child', 'sg_init_redis')
  this.register_hook('rcpt_ok', 'sg_rcpt_ok')
  this.register_hook('data', 'sg_data')
  this.register_hook('data_post', 'sg_data_post')
}

export function load_smart_greylist_ini(this: Plugin): void {
  const raw = this.config.get(FILES.ini, { booleans: INI_BOOLEANS }, () =>
    this.load_smart_greylist_ini(),
  ) as Record<string, Record<string, unknown>>
  let config = this.sg.deps.config
  try {
    config = parseConfig(raw)
  } catch (err) {
    // Keep serving with the last good settings rather than with half of a bad edit.
    this.logerror(`${(err as Error).message}; keeping the previous settings`)
  }
  this.sg.deps = { ...this.sg.deps, config, resolver: makeResolver(config.dns.timeout_ms) }
  this.cfg = { ...raw, redis: { ...(raw?.redis ?? {}) } }
  this.merge_redis_ini()
  this.load_lists()
}

/** Both list files; each is re-read (and both recompiled) when either changes. */
export function load_lists(this: Plugin): void {
  const read = (file: string): string[] => (this.config.get(file, 'data', () => this.load_lists()) as string[] | null) ?? []
  const admin = parseWhitelist(read(FILES.whitelist), FILES.whitelist)
  const shipped = parseProviders(read(FILES.providers), FILES.providers)
  for (const e of [...admin.errors, ...shipped.errors]) this.logerror(`${e.origin}: ignoring "${e.text}": ${e.message}`)
  const { config } = this.sg.deps
  const providers = new ProviderIndex(shipped.providers, (p) => config.providers[p.id] ?? p.action)
  this.sg.deps = { ...this.sg.deps, whitelist: compileWhitelist([admin]), providers }
  this.loginfo(
    `whitelist loaded: ${admin.entries.length} entries; providers: ${shipped.providers.length} (${providers.ranges} ranges)`,
  )
}

// Start-up never waits for Redis: with Redis down, Haraka still starts and fails open.
export function sg_init_redis(this: Plugin, next: Next, server: ServerLike): void {
  next()
  const shared = server?.notes?.redis as RedisClient | undefined
  if (shared && this.cfg?.redis?.database === undefined) {
    this.db = shared
    return
  }
  this.sg_connect_redis()
}

export function sg_connect_redis(this: Plugin): void {
  if (this.db || this.sg.connecting) return
  this.sg.connecting = true
  const { prefix: _p, timeout_ms: _t, ...opts } = (this.cfg?.redis ?? {}) as Record<string, unknown>
  const socket = (opts.socket ?? {}) as Record<string, unknown>
  const clientOpts = {
    ...opts,
    // A command issued while disconnected fails at once instead of queueing past its timeout.
    disableOfflineQueue: true,
    socket: { connectTimeout: 2000, ...socket, reconnectStrategy: (n: number) => Math.min(100 * 2 ** n, 5000) },
  }
  this.get_redis_client(clientOpts)
    .then((client) => {
      this.db = client
    })
    .catch((err: Error) => {
      this.logwarn(`Redis not reachable (${err.message}); failing open, retrying in 5 s`)
      this.sg.retryTimer = setTimeout(() => this.sg_connect_redis(), 5000)
      this.sg.retryTimer.unref()
    })
    .finally(() => {
      this.sg.connecting = false
    })
}

export function shutdown(this: Plugin): void {
  if (this.sg?.retryTimer) clearTimeout(this.sg.retryTimer)
  const db = this.db
  this.db = undefined
  if (db?.quit && db.isOpen !== false) db.quit().catch(() => undefined)
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
      const { on_error } = plugin.sg.deps.config.main
      if (on_error === 'accept') plugin.sg.deps.store.noteFailOpen()
      connection.transaction?.results.add(plugin, { err: `${kind}: ${message}` })
      connection.logerror(plugin, `error (${kind}): ${message}; on_error=${on_error}`)
      // Shadow mode never defers, not even on failure: it is there to measure.
      if (on_error === 'defer' && plugin.sg.deps.config.main.mode !== 'shadow') {
        return once(constants.denysoft, deferReply(plugin.sg.deps.config))
      }
      once()
    })
}

function deferReply(config: Config): unknown {
  return DSN.sec_unauthorized(config.main.text, 451)
}

interface TxnNote {
  defer?: boolean
  /** What accepted recipients got, for the X-Greylist header. */
  passed?: Outcome[]
}

export function sg_rcpt_ok(this: Plugin, next: Next, connection: Connection, rcpt: Address): void {
  guarded(this, connection, next, async () => {
    const txn = connection.transaction
    if (!txn) return []
    const { config, store } = this.sg.deps
    const shadow = config.main.mode === 'shadow'
    const outcome = await decideRecipient(this.sg.deps, connection, rcpt, shadow)
    record(this, connection, rcpt, outcome, shadow)
    const note = ((txn.notes[NOTE] as TxnNote | undefined) ?? {}) as TxnNote
    txn.notes[NOTE] = note
    if (outcome.kind !== 'tuple') {
      const stats = { prefix: config.redis.prefix, shadow, ttlDays: config.stats.days }
      const field = outcome.kind === 'skip' ? `skip:${outcome.reason}` : `wl:${outcome.what}`
      // Counting is best effort and must not hold the recipient.
      store.count(field, this.sg.deps.now(), stats).catch(() => undefined)
    }
    if (outcome.kind !== 'tuple' || outcome.verdict.action !== 'defer' || shadow) {
      if (outcome.kind !== 'skip') note.passed = [...(note.passed ?? []), outcome]
      return []
    }
    if (config.main.defer_at === 'data') {
      note.defer = true
      return []
    }
    return [constants.denysoft, deferReply(config)]
  })
}

export function sg_data(this: Plugin, next: Next, connection: Connection): void {
  const note = connection.transaction?.notes[NOTE] as TxnNote | undefined
  if (this.sg.deps.config.main.defer_at === 'data' && note?.defer) {
    return next(constants.denysoft, deferReply(this.sg.deps.config))
  }
  next()
}

export function sg_data_post(this: Plugin, next: Next, connection: Connection): void {
  const txn = connection.transaction
  const note = txn?.notes[NOTE] as TxnNote | undefined
  if (this.sg.deps.config.main.header && txn?.add_header && note?.passed?.length) {
    const value = headerValue(note.passed, this.sg.deps.config.main.mode === 'shadow')
    if (value) txn.add_header('X-Greylist', value)
  }
  next()
}

/** One header for the message: the longest delay, else the whitelist entry, else why it passed. */
export function headerValue(passed: readonly Outcome[], shadow: boolean): string | null {
  const tuples = passed.filter((o): o is Extract<Outcome, { kind: 'tuple' }> => o.kind === 'tuple')
  const delayed = tuples.filter((o) => o.verdict.outcome === 'retry').sort((a, b) => b.verdict.waitedMs - a.verdict.waitedMs)[0]
  if (delayed) return `delayed ${secs(delayed.verdict.waitedMs)} seconds by smart-greylist; identity=${identityText(delayed.identity)}`
  const listed = passed.find((o): o is Extract<Outcome, { kind: 'whitelist' }> => o.kind === 'whitelist')
  if (listed) return `passed by smart-greylist; whitelist entry ${listed.entry} (${listed.origin})`
  const first = tuples[0]
  if (!first) return null
  const why = shadow && first.verdict.action === 'defer' ? 'shadow mode, would have been deferred' : first.verdict.outcome === 'awl' ? 'auto-whitelisted' : 'known sender'
  return `passed by smart-greylist; ${why}; identity=${identityText(first.identity)}`
}

function record(plugin: Plugin, connection: Connection, rcpt: Address, o: Outcome, shadow: boolean): void {
  const txn = connection.transaction
  if (!txn) return
  const envelope = `from=<${addressOf(txn.mail_from)}> to=<${addressOf(rcpt)}>`
  switch (o.kind) {
    case 'skip':
      txn.results.add(plugin, { skip: o.reason })
      connection.loginfo(plugin, `skip reason=${o.reason} ${envelope}`)
      return
    case 'whitelist':
      txn.results.add(plugin, { pass: `whitelist:${o.what}`, whitelist: o.entry })
      connection.loginfo(plugin, `accept reason=whitelist:${o.what} entry="${o.entry}" (${o.origin}) ${envelope}`)
      return
    case 'tuple': {
      const { verdict: v } = o
      const id = identityText(o.identity)
      const result = v.action === 'defer' ? { fail: `greylisted:${v.outcome}` } : { pass: `greylist:${v.outcome}` }
      txn.results.add(plugin, { ...result, identity: id, identity_reason: o.identity.reason, ...(shadow ? { shadow: true } : {}) })
      const timing = `waited=${secs(v.waitedMs)}s` + (v.action === 'defer' ? ` retry_in=${secs(v.retryInMs)}s` : '')
      const action = v.action === 'defer' && shadow ? 'shadow-defer' : v.action
      connection.loginfo(plugin, `${action} reason=${v.outcome} identity=${id} identity_reason=${o.identity.reason} ${envelope} ${timing}`)
    }
  }
}

function secs(ms: number): number {
  return Math.round(ms / 1000)
}
