// Haraka adapter: register, hooks, and applying decisions. The decisions themselves live in
// the pure modules (identity, whitelist, decision); Redis and DNS sit behind store.ts/dns.ts.
import constants from 'haraka-constants'
import DSN from 'haraka-dsn'
import tlds from 'haraka-tld'
import { DEFAULTS, INI_BOOLEANS, parseConfig, type Config } from './config'
import { timingFrom } from './decision'
import { lookupRdns, makeResolver, rdnsFromFcrdnsResults, type Resolver } from './dns'
import { domainOf, normaliseAddress } from './envelope'
import { addressOf, type Address, type Connection, type Next, type RedisClient, type ServerLike } from './haraka'
import { identityText, resolveIdentity, type Identity, type RdnsFacts } from './identity'
import { parseIp, type ParsedIp } from './ip'
import { tupleKey } from './keys'
import { StoreError, TupleStore } from './store'
import { compileWhitelist, parseWhitelist, Whitelist, type Entry } from './whitelist'

export const WHITELIST_FILE = 'smart-greylist.whitelist'
export const PROVIDERS_FILE = 'smart-greylist.providers'
const NOTE = 'smart-greylist'

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
  load_whitelists(): void
  sg_connect_redis(): void
}

interface PluginState {
  config: Config
  whitelist: Whitelist
  store: TupleStore
  resolver: Resolver
  connecting: boolean
  retryTimer?: NodeJS.Timeout
}

interface ConnectionFacts {
  ip: ParsedIp | null
  rdns?: Promise<RdnsFacts>
}

/** A recipient's fate, as recorded in results and in the log line. */
type Outcome =
  | { kind: 'skip'; reason: string }
  | { kind: 'whitelist'; entry: Entry }
  | { kind: 'tuple'; action: 'defer' | 'pass'; state: string; identity: Identity; waitedMs: number; retryInMs: number }

export function register(this: Plugin): void {
  this.inherits('haraka-plugin-redis')
  this.sg = {
    config: DEFAULTS,
    whitelist: new Whitelist([]),
    store: new TupleStore(
      () => this.db,
      () => this.sg.config.redis.timeout_ms,
    ),
    resolver: makeResolver(DEFAULTS.dns.timeout_ms),
    connecting: false,
  }
  this.load_smart_greylist_ini()
  this.register_hook('init_master', 'sg_init_redis')
  this.register_hook('init_child', 'sg_init_redis')
  this.register_hook('rcpt_ok', 'sg_rcpt_ok')
  this.register_hook('data', 'sg_data')
}

export function load_smart_greylist_ini(this: Plugin): void {
  const raw = this.config.get('smart-greylist.ini', { booleans: INI_BOOLEANS }, () =>
    this.load_smart_greylist_ini(),
  ) as Record<string, Record<string, unknown>>
  try {
    this.sg.config = parseConfig(raw)
  } catch (err) {
    // Keep serving with the last good settings rather than with half of a bad edit.
    this.logerror(`${(err as Error).message}; keeping the previous settings`)
  }
  this.sg.resolver = makeResolver(this.sg.config.dns.timeout_ms)
  this.cfg = { ...raw, redis: { ...(raw?.redis ?? {}) } }
  this.merge_redis_ini()
  this.load_whitelists()
}

export function load_whitelists(this: Plugin): void {
  const read = (file: string): string[] =>
    (this.config.get(file, 'data', () => this.load_whitelists()) as string[] | null) ?? []
  const lists = [parseWhitelist(read(WHITELIST_FILE), WHITELIST_FILE)]
  if (this.sg.config.whitelist.providers) lists.push(parseWhitelist(read(PROVIDERS_FILE), PROVIDERS_FILE))
  for (const e of lists.flatMap((l) => l.errors)) {
    this.logerror(`${e.origin}: ignoring "${e.text}": ${e.message}`)
  }
  this.sg.whitelist = compileWhitelist(lists)
  this.loginfo(`whitelist loaded: ${this.sg.whitelist.size} entries`)
}

// Start-up never waits for Redis: with Redis down, Haraka still starts and fails open.
export function sg_init_redis(this: Plugin, next: Next, server: ServerLike): void {
  next()
  const shared = server?.notes?.redis as RedisClient | undefined
  const cfgRedis = this.cfg?.redis ?? {}
  if (shared && cfgRedis.database === undefined) {
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
      connection.transaction?.results.add(plugin, { err: `${kind}: ${message}` })
      connection.logerror(plugin, `error (${kind}): ${message}; on_error=${plugin.sg.config.main.on_error}`)
      if (plugin.sg.config.main.on_error === 'defer') return once(constants.denysoft, deferReply(plugin.sg.config))
      once()
    })
}

function deferReply(config: Config): unknown {
  return DSN.sec_unauthorized(config.main.text, 451)
}

export function sg_rcpt_ok(this: Plugin, next: Next, connection: Connection, rcpt: Address): void {
  guarded(this, connection, next, async () => {
    const txn = connection.transaction
    if (!txn) return []
    const outcome = await decideRecipient(this, connection, rcpt)
    record(this, connection, rcpt, outcome)
    if (outcome.kind !== 'tuple' || outcome.action !== 'defer') return []
    if (this.sg.config.main.defer_at === 'data') {
      txn.notes[NOTE] = { defer: true }
      return []
    }
    return [constants.denysoft, deferReply(this.sg.config)]
  })
}

export function sg_data(this: Plugin, next: Next, connection: Connection): void {
  const note = connection.transaction?.notes[NOTE] as { defer?: boolean } | undefined
  if (this.sg.config.main.defer_at === 'data' && note?.defer) {
    return next(constants.denysoft, deferReply(this.sg.config))
  }
  next()
}

async function decideRecipient(plugin: Plugin, connection: Connection, rcpt: Address): Promise<Outcome> {
  const { config, whitelist } = plugin.sg
  if (config.skip.relaying && connection.relaying) return { kind: 'skip', reason: 'relaying' }
  const facts = connectionFacts(connection)
  if (!facts.ip) return { kind: 'skip', reason: 'no_client_ip' }
  if (config.skip.private && (connection.remote.is_private || connection.remote.is_local)) {
    return { kind: 'skip', reason: 'private_ip' }
  }
  const recipient = normaliseAddress(addressOf(rcpt))
  const optOut = whitelist.matchRecipient(recipient)
  if (optOut) return { kind: 'whitelist', entry: optOut }

  const sender = normaliseAddress(addressOf(connection.transaction?.mail_from))
  const byIp = whitelist.matchSender({ ip: facts.ip })
  if (byIp) return { kind: 'whitelist', entry: byIp }

  const rdns = await rdnsOf(plugin, connection, facts)
  const confirmed = rdns.status === 'ok' ? rdns.names.filter((n) => n.confirmed).map((n) => n.name) : []
  const entry = whitelist.matchSender({
    fcrdnsNames: confirmed,
    helo: heloIfBacked(config, connection.hello.host, confirmed),
    from: senderIfBacked(config, connection, sender),
  })
  if (entry) return { kind: 'whitelist', entry }

  const identity = resolveIdentity(facts.ip, rdns, config.identity, orgDomain)
  const key = tupleKey(config.redis.prefix, identityText(identity), sender, recipient)
  const v = await plugin.sg.store.check(key, Date.now(), timingFrom(config.main))
  return { kind: 'tuple', action: v.action, state: v.outcome, identity, waitedMs: v.waitedMs, retryInMs: v.retryInMs }
}

function orgDomain(name: string): string | null {
  return tlds.get_organizational_domain(name)
}

function connectionFacts(connection: Connection): ConnectionFacts {
  let facts = connection.notes[NOTE] as ConnectionFacts | undefined
  if (!facts) {
    facts = { ip: parseIp(connection.remote.ip) }
    connection.notes[NOTE] = facts
  }
  return facts
}

/** rDNS facts, looked up once per connection (several recipients and transactions share them). */
function rdnsOf(plugin: Plugin, connection: Connection, facts: ConnectionFacts): Promise<RdnsFacts> {
  if (!facts.ip) return Promise.resolve({ status: 'none' })
  if (!facts.rdns) {
    const fromPlugin = rdnsFromFcrdnsResults(connection.results.get('fcrdns'), facts.ip)
    const { timeout_ms, max_names } = plugin.sg.config.dns
    facts.rdns = fromPlugin
      ? Promise.resolve(fromPlugin)
      : tlds.ready.then(() => lookupRdns(facts.ip!, plugin.sg.resolver, { timeoutMs: timeout_ms, maxNames: max_names }))
  }
  return facts.rdns
}

/** A HELO name counts for the whitelist only when a confirmed rDNS name shares its domain. */
function heloIfBacked(config: Config, helo: string | null | undefined, confirmed: string[]): string | null {
  if (!helo) return null
  if (!config.whitelist.verify_helo) return helo
  const heloOrg = orgDomain(helo)
  return heloOrg && confirmed.some((n) => orgDomain(n) === heloOrg) ? helo : null
}

/** An envelope sender counts for the whitelist only when SPF passed for its domain. */
function senderIfBacked(config: Config, connection: Connection, sender: string): string | null {
  if (!config.whitelist.verify_from) return sender
  const spf = connection.transaction?.results.get('spf')
  const domain = domainOf(sender)
  const pass = spf?.scope === 'mfrom' && spf?.result === 'Pass' && String(spf?.domain).toLowerCase() === domain
  return pass ? sender : null
}

function record(plugin: Plugin, connection: Connection, rcpt: Address, o: Outcome): void {
  const txn = connection.transaction
  if (!txn) return
  const to = addressOf(rcpt)
  const from = addressOf(txn.mail_from)
  switch (o.kind) {
    case 'skip':
      txn.results.add(plugin, { skip: o.reason })
      connection.loginfo(plugin, `skip reason=${o.reason} from=<${from}> to=<${to}>`)
      return
    case 'whitelist':
      txn.results.add(plugin, { pass: `whitelist:${o.entry.kind}`, whitelist: `${o.entry.kind}:${o.entry.pattern}` })
      connection.loginfo(
        plugin,
        `accept reason=whitelist:${o.entry.kind} entry="${o.entry.kind}:${o.entry.pattern}" (${o.entry.origin}) from=<${from}> to=<${to}>`,
      )
      return
    case 'tuple': {
      const id = identityText(o.identity)
      const result = o.action === 'defer' ? { fail: `greylisted:${o.state}` } : { pass: `greylist:${o.state}` }
      txn.results.add(plugin, { ...result, identity: id, identity_reason: o.identity.reason })
      const timing =
        o.action === 'defer'
          ? `waited=${secs(o.waitedMs)}s retry_in=${secs(o.retryInMs)}s`
          : `waited=${secs(o.waitedMs)}s`
      connection.loginfo(
        plugin,
        `${o.action} reason=${o.state} identity=${id} identity_reason=${o.identity.reason} from=<${from}> to=<${to}> ${timing}`,
      )
    }
  }
}

function secs(ms: number): number {
  return Math.round(ms / 1000)
}
