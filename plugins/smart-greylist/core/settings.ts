// Every setting of smart-greylist.ini, declared once: section, key, type, default, bounds and one
// line of doc. The Config type, the defaults, validation, the shipped config/smart-greylist.ini
// and the settings table of docs/settings.md are all derived from SCHEMA (test/unit/settings.test.ts fails
// when the shipped files disagree with it). Pure: no file is read here.
import { parseCidr, parseIp } from './ip'

/** The plugin's files in Haraka's config directory. */
export const FILES = {
  ini: 'smart-greylist.ini',
  whitelist: 'smart-greylist.whitelist',
  /** Shipped with the package and replaced by upgrades; never edited in place. */
  providers: 'smart-greylist.providers',
  /** The admin's providers and what `pools refresh` finds; read together with the shipped file. */
  providersLocal: 'smart-greylist.providers.local',
  /** Per recipient domain: off, or another delay, [select] policy or mode. */
  domains: 'smart-greylist.domains',
  redis: 'redis.ini',
} as const

interface IntSpec {
  readonly type: 'int'
  readonly default: number
  readonly min: number
  readonly max: number
  readonly doc: string
}
interface BoolSpec {
  readonly type: 'bool'
  readonly default: boolean
  readonly doc: string
}
interface EnumSpec<V extends string = string> {
  readonly type: 'enum'
  readonly values: readonly V[]
  readonly default: V
  readonly doc: string
}
interface TextSpec {
  readonly type: 'text'
  readonly default: string
  readonly pattern: RegExp
  /** What a valid value looks like, for the error message. */
  readonly what: string
  readonly doc: string
}
interface IpListSpec {
  readonly type: 'ip_list'
  readonly default: readonly string[]
  readonly doc: string
}
/** Addresses and networks (a.b.c.d/n, v6/n), space or comma separated; held as `address/prefix`. */
interface CidrListSpec {
  readonly type: 'cidr_list'
  readonly default: readonly string[]
  readonly doc: string
}
/** Redis nodes as host:port ([v6]:port), space or comma separated. */
interface NodeListSpec {
  readonly type: 'node_list'
  readonly default: readonly string[]
  readonly doc: string
}
export type KeySpec = IntSpec | BoolSpec | EnumSpec | TextSpec | IpListSpec | CidrListSpec | NodeListSpec

export interface RedisNode {
  readonly host: string
  readonly port: number
}

/** `host:port`, `a.b.c.d:port` or `[v6]:port`; null when it is none of these. */
export function parseNode(text: string): RedisNode | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)):(\d{1,5})$/.exec(text)
  if (!m) return null
  const port = Number(m[3])
  if (port < 1 || port > 65_535) return null
  if (m[1] !== undefined && parseIp(m[1])?.kind() !== 'ipv6') return null
  const host = m[1] ?? m[2]
  return host === undefined ? null : { host, port }
}

/** A node list as the settings hold it (canonical `host:port` strings), or the entries that are not nodes. */
export function parseNodeList(text: string): RedisNode[] | { bad: string[] } {
  const items = text.split(/[\s,]+/).filter(Boolean)
  const nodes = items.map(parseNode)
  const bad = items.filter((_, i) => !nodes[i])
  return bad.length ? { bad } : (nodes as RedisNode[])
}

interface SectionSpec {
  readonly doc: readonly string[]
  readonly keys: Readonly<Record<string, KeySpec>>
  /** Keys named by the admin (provider ids), each of this type. */
  readonly open?: EnumSpec
  /** Keys handed through untouched to another component (haraka-plugin-redis). */
  readonly passthrough?: readonly string[]
}

const int = (def: number, min: number, max: number, doc: string): IntSpec => ({ type: 'int', default: def, min, max, doc })
const bool = (def: boolean, doc: string): BoolSpec => ({ type: 'bool', default: def, doc })
const oneOf = <V extends string>(values: readonly V[], def: V, doc: string): EnumSpec<V> => ({ type: 'enum', values, default: def, doc })

const DAY = 86_400
export const PROVIDER_ACTIONS = ['skip', 'group', 'off'] as const
export type ProviderAction = (typeof PROVIDER_ACTIONS)[number]

export const SCHEMA = {
  main: {
    doc: [],
    keys: {
      delay: int(300, 0, 7 * DAY, 'seconds before a retry of a new tuple is accepted (RFC 6647: >= 60)'),
      retry_window: int(90_000, 1, 60 * DAY, 'seconds a pending tuple waits for its retry; a later one starts over (25 h)'),
      pass_ttl: int(35 * DAY, 1, 400 * DAY, 'seconds a passed tuple is remembered, refreshed on use (35 days)'),
      defer_at: oneOf(['rcpt', 'data'], 'rcpt', 'when a greylisted recipient is answered 451: rcpt = at once; data = all recorded, one 451 at DATA'),
      net_identity_greylist: oneOf(
        ['recipient', 'message'],
        'recipient',
        'senders known only by their network (identity net:, no SPF, rDNS or pool): recipient = greylist each recipient at RCPT; message = greylist the message, keyed on its content and deferred at the end of DATA, so its retry passes from any address (was defer_weak_at = rcpt | data)',
      ),
      data_hash_bytes: int(10_240, 0, 1_048_576, 'net_identity_greylist = message: bytes of the body (after the headers) in the message key'),
      on_error: oneOf(['accept', 'defer'], 'accept', 'when Redis or DNS fails or is too slow: accept (fail open) or defer'),
      text: {
        type: 'text',
        default: 'Greylisted, please try again later',
        // Printable ASCII only: it goes into an SMTP reply line.
        pattern: /^[\x20-\x7e]{1,200}$/,
        what: 'printable ASCII',
        doc: 'text of the "451 4.7.1" reply',
      } satisfies TextSpec,
      mode: oneOf(['enforce', 'shadow'], 'enforce', 'shadow: log and count would-be deferrals, accept the mail (RFC 6647 §6)'),
      header: bool(false, 'add X-Greylist to accepted mail: why it passed, how long it waited'),
      log_decisions: bool(true, 'one info line per recipient decision; false keeps them in the results and counters only (errors are always logged)'),
      budget_ms: int(5000, 200, 25_000, 'bound for all DNS and Redis work of a recipient (ms)'),
    },
  },
  stats: {
    doc: [],
    keys: {
      days: int(35, 0, 400, 'days the daily counters are kept; 0 keeps none'),
      identities: int(1000, 10, 100_000, 'identities kept per day for "delayed most"'),
    },
  },
  envelope: {
    doc: [],
    keys: {
      recipient_strip_ext: bool(true, 'user+ext@ is user@; recipients are otherwise only lower-cased'),
    },
  },
  limits: {
    doc: ['Bounds that keep a sender that sprays first contacts from filling Redis.'],
    keys: {
      pending_per_identity: int(2500, 10, 10_000_000, 'new tuples per identity and retry_window; past it: deferred, not stored'),
      stored_chars: int(64, 16, 1024, 'stored identity, sender, recipient cut to this length'),
    },
  },
  identity: {
    doc: ['Who is sending, in this order: the first that applies is the identity of the tuple.'],
    keys: {
      spf: bool(true, 'identity spf:<domain>: SPF-authenticated MAIL FROM (HELO for <>) domain'),
      rdns: bool(true, 'identity host:<domain>: parent of the forward-confirmed rDNS name'),
      pools: bool(true, 'identity pool:<id>: the provider range that holds the client'),
      ipv4_prefix: int(24, 8, 32, 'else net:<prefix>, the IPv4 network of this length'),
      ipv6_prefix: int(64, 16, 128, 'else net:<prefix>, the IPv6 network of this length'),
      self_ip: {
        type: 'ip_list',
        default: [],
        doc: "this MX's public addresses: an SPF record passing for them is not trusted",
      } satisfies IpListSpec,
      spf_guard_ttl: int(DAY, 60, 30 * DAY, "seconds an SPF record's verdict is kept (in Redis, keyed by its text)"),
      spf_widest_ipv4: int(16, 8, 32, 'SPF pass ranges wider than one IPv4 /N in total: not trusted'),
      spf_widest_ipv6: int(32, 16, 128, 'the same for IPv6'),
    },
  },
  dns: {
    doc: [],
    keys: {
      timeout_ms: int(3000, 50, 30_000, 'bound for the PTR + A/AAAA lookup of a client (without fcrdns)'),
      max_names: int(5, 1, 20, 'PTR names of a client checked at most'),
      spf_timeout_ms: int(3000, 50, 30_000, 'bound for one SPF evaluation (without the spf plugin)'),
    },
  },
  awl: {
    doc: ['Auto-whitelist: never for the null sender, never for rDNS domains whose names spell client addresses.'],
    keys: {
      passes: int(3, 0, 1000, 'retries of an (identity, sender domain) before it skips greylisting; 0 = off'),
      ttl: int(35 * DAY, 60, 400 * DAY, 'seconds an auto-whitelist entry lasts, refreshed on use (35 days)'),
      scope_ipv4_prefix: int(16, 8, 32, "an entry holds in the client's IPv4 /N (or pool) only"),
      scope_ipv6_prefix: int(32, 16, 128, 'the same for IPv6 clients'),
    },
  },
  select: {
    doc: ['Which unknown tuples are greylisted (RFC 6647 2.1: greylisting only some senders).'],
    keys: {
      policy: oneOf(['all', 'suspicious'], 'all', 'suspicious: first contact accepted with FCrDNS + trusted SPF pass, not DNSBL-listed'),
      zones: {
        type: 'text',
        default: '',
        pattern: /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?(?:[\s,]+|$))*$/,
        what: 'DNS zone names, space separated',
        doc: "DNSBL zones asked when the dns-list plugin did not run; a policy list's answer (zen's PBL) also keeps the client's rDNS from grouping it",
      } satisfies TextSpec,
    },
  },
  correspondents: {
    doc: ['Mail from a domain a local mailbox wrote to (relayed) skips greylisting for that mailbox.'],
    keys: {
      enabled: bool(true, 'record relayed mail, and let authenticated replies to it skip greylisting'),
      ttl: int(30 * DAY, 60, 400 * DAY, 'seconds a correspondent is remembered, refreshed by new mail to it (30 days)'),
      per_mailbox: int(1000, 1, 100_000, 'correspondent domains kept per local mailbox (the oldest go)'),
    },
  },
  providers: {
    doc: [
      'Per provider id of smart-greylist.providers: skip (not greylisted), group (one pool identity)',
      'or off. Unlisted providers keep the action their file gives them. Example:',
      'amazonses = group',
    ],
    keys: {},
    open: oneOf(PROVIDER_ACTIONS, 'skip', 'skip, group or off for this provider'),
  },
  refresh: {
    doc: [
      'Provider data that refreshes itself: one MX at a time (a lock in Redis) rebuilds the ranges, every MX reads them from Redis.',
      "Fresh ranges, and every record read back from Redis, are bounded by the provider's ranges in the files (shipped and",
      '.local), never by the last refresh: at most 4x their address space plus one [identity] spf_widest_ipv4/6 network,',
      'at most max(4x, +64) ranges (1024 in all), nothing wider than /12 (IPv6 /24) outside them, and no new range wider',
      'than /20 (IPv6 /40) unless accept_new covers it. What fails is refused and logged; the last good data stays.',
      'Example: accept_new = 52.96.0.0/14 2603:1000::/28',
    ],
    keys: {
      every: int(86_400, 0, 30 * DAY, "seconds between refreshes of the providers' ranges (their SPF records, Microsoft's endpoints service); 0 = off"),
      check_every: int(300, 1, DAY, 'seconds between reads of the shared ranges by each MX'),
      microsoft_endpoints_url: {
        type: 'text',
        default: 'https://endpoints.office.com',
        pattern: /^(https?:\/\/[A-Za-z0-9.:_[\]-]+(\/[A-Za-z0-9._~%/-]*)?)?$/,
        what: 'an http(s) URL, or empty',
        doc: "Microsoft 365's endpoints web service (version polled, Exchange's port 25 ranges); empty = not asked",
      } satisfies TextSpec,
      timeout_ms: int(10_000, 100, 120_000, 'bound for each DNS walk or HTTP request of a refresh (ms)'),
      accept_new: {
        type: 'cidr_list',
        default: [],
        doc: "ranges a refresh may add to any provider although they are new and wider than /20 (IPv6 /40) or grow it past 4x its files' space",
      } satisfies CidrListSpec,
    },
  },
  metrics: {
    doc: ["Prometheus metrics at /metrics: on Haraka's own HTTP server when http.ini has it listen, else on [metrics] listen."],
    keys: {
      enabled: bool(false, "serve the metrics (site-wide counters from Redis, this process's latencies and gauges)"),
      listen: {
        type: 'text',
        default: '127.0.0.1:9464',
        pattern: /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
        what: 'host:port or [v6]:port',
        doc: "where the metrics are served when Haraka's HTTP server is off (keep it off the Internet)",
      } satisfies TextSpec,
      stuck_every: int(
        900,
        0,
        DAY,
        'seconds between counts of stuck senders for the metrics, by one process of the site (a SCAN of the tuples: ~2.5 s CPU per 100k); 0 = never',
      ),
      cache_ms: int(
        5000,
        0,
        300_000,
        "ms a scrape's read of the site's counters (256 HGETALLs) is reused by the scrapes after it; scrapes at the same time always share one",
      ),
      allow: {
        type: 'cidr_list',
        default: ['127.0.0.0/8', '::1/128'],
        doc: "addresses and networks that may scrape, on our listener and on Haraka's HTTP server alike; others get 403 (empty: none)",
      } satisfies CidrListSpec,
    },
  },
  skip: {
    doc: [],
    keys: {
      relaying: bool(true, 'never greylist relaying (AUTH, relay ACL) clients (RFC 6647 §5.7)'),
      private: bool(true, 'never greylist private and loopback clients'),
    },
  },
  whitelist: {
    doc: [],
    keys: {
      providers: bool(true, 'providers with action skip skip greylisting; false: only grouped'),
      verify_helo: bool(true, 'helo: entries count only for a confirmed rDNS name or its siblings'),
      verify_from: bool(true, 'from: entries count only on SPF pass from a trusted record'),
    },
  },
  redis: {
    doc: ['Unset connection keys come from redis.ini [server], as for every haraka-plugin-redis user.'],
    keys: {
      prefix: {
        type: 'text',
        default: 'sgl:',
        pattern: /^[A-Za-z0-9:_.-]{0,64}$/,
        what: 'A-Z a-z 0-9 : _ . -',
        doc: 'prefix of every key this plugin writes',
      } satisfies TextSpec,
      timeout_ms: int(500, 10, 30_000, 'bound for one Redis command (ms); past it, on_error applies'),
      max_in_flight: int(256, 1, 100_000, 'Redis commands waiting at once; past it, on_error at once'),
      ping_interval_ms: int(1000, 100, 60_000, 'how often a silent Redis is looked for (ms)'),
      dead_after_ms: int(5000, 500, 300_000, 'a Redis silent this long (ms) is reconnected'),
      cluster: { type: 'node_list', default: [], doc: 'Redis Cluster seed nodes; host/port/db are then unused' } satisfies NodeListSpec,
      sentinels: { type: 'node_list', default: [], doc: 'Redis Sentinel nodes, when cluster is empty' } satisfies NodeListSpec,
      sentinel_name: {
        type: 'text',
        default: 'mymaster',
        pattern: /^[A-Za-z0-9_.-]{1,64}$/,
        what: 'A-Z a-z 0-9 _ . -',
        doc: 'the master the sentinels monitor',
      } satisfies TextSpec,
    },
    passthrough: ['host', 'port', 'ip', 'path', 'db', 'database', 'username', 'password', 'tls', 'connectTimeout', 'keepAlive', 'noDelay'],
  },
} as const satisfies Record<string, SectionSpec>

type Schema = typeof SCHEMA
type ValueOf<S> = S extends IntSpec
  ? number
  : S extends BoolSpec
    ? boolean
    : S extends EnumSpec<infer V>
      ? V
      : S extends TextSpec
        ? string
        : S extends IpListSpec | CidrListSpec | NodeListSpec
          ? readonly string[]
          : never

export type Config = {
  readonly [Sec in Exclude<keyof Schema, 'providers'>]: { readonly [K in keyof Schema[Sec]['keys']]: ValueOf<Schema[Sec]['keys'][K]> }
} & {
  /** Per provider id: the admin's action; unlisted ids keep the providers file's choice. */
  readonly providers: Readonly<Record<string, ProviderAction>>
}
export type DeferAt = Config['main']['defer_at']
export type OnError = Config['main']['on_error']
export type Mode = Config['main']['mode']

/** One finding about the ini: where, and what is wrong with it. */
export interface SettingProblem {
  readonly section: string
  readonly key?: string
  readonly message: string
}

export function problemText(p: SettingProblem): string {
  return `${FILES.ini} [${p.section}]${p.key ? ` ${p.key}` : ''}: ${p.message}`
}

type Raw = Record<string, unknown>

// haraka-config's own boolean handling turns any unknown word into false ("spf = yes please"
// silently disables SPF), so no boolean is declared to it: these are its true words, and their
// opposites, and anything else is reported.
const TRUE_WORDS = ['true', 'yes', 'ok', 'enabled', 'on', '1']
const FALSE_WORDS = ['false', 'no', 'disabled', 'off', '0']

function parseValue(spec: KeySpec, v: unknown): { value: unknown } | { error: string } {
  const s = typeof v === 'string' ? v.trim() : v
  switch (spec.type) {
    case 'int': {
      const n = typeof s === 'number' ? s : Number(s)
      if (s === '' || !Number.isInteger(n) || n < spec.min || n > spec.max) {
        return { error: `"${String(v)}" is not a whole number from ${spec.min} to ${spec.max}` }
      }
      return { value: n }
    }
    case 'bool': {
      if (typeof s === 'boolean') return { value: s }
      const w = String(s).toLowerCase()
      if (TRUE_WORDS.includes(w)) return { value: true }
      if (FALSE_WORDS.includes(w)) return { value: false }
      return { error: `"${String(v)}" is not true or false` }
    }
    case 'enum': {
      const w = String(s).toLowerCase()
      return spec.values.includes(w) ? { value: w } : { error: `"${String(v)}" is not one of ${spec.values.join(', ')}` }
    }
    case 'text': {
      const w = asText(s)
      return spec.pattern.test(w) ? { value: w } : { error: `"${w}" is not ${spec.what}` }
    }
    case 'ip_list': {
      const items = asText(s)
        .split(/[\s,]+/)
        .filter(Boolean)
      const bad = items.filter((ip) => !parseIp(ip))
      if (bad.length) return { error: `not an IP address: ${bad.join(', ')}` }
      return { value: items.flatMap((ip) => parseIp(ip)?.toString() ?? []) }
    }
    case 'cidr_list': {
      const items = asText(s)
        .split(/[\s,]+/)
        .filter(Boolean)
      const nets = items.map(parseCidr)
      const bad = items.filter((_, i) => !nets[i])
      if (bad.length) return { error: `not an address or network: ${bad.join(', ')}` }
      return { value: nets.flatMap((n) => (n ? [`${n.ip.toString()}/${n.prefix}`] : [])) }
    }
    case 'node_list': {
      const nodes = parseNodeList(asText(s))
      if ('bad' in nodes) return { error: `not host:port: ${nodes.bad.join(', ')}` }
      return { value: nodes.map((n) => (n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`)) }
    }
  }
}

/** An ini value as text: haraka-config gives strings, numbers, booleans, and arrays for `key[]`. */
function asText(v: unknown): string {
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) return v.map(asText).join(',')
  return v === null || v === undefined ? '' : JSON.stringify(v)
}

function defaults(): Config {
  const out: Record<string, Record<string, unknown>> = {}
  for (const [sec, spec] of Object.entries(SCHEMA) as [string, SectionSpec][]) {
    out[sec] = Object.fromEntries(Object.entries(spec.keys).map(([k, s]) => [k, s.default]))
  }
  return deepFreeze(out) as Config
}

export const DEFAULTS: Config = defaults()

/** A setting renamed for clarity: the old name is still read, its values mapped, with a notice. */
export interface RenamedSetting {
  readonly section: string
  readonly from: string
  readonly to: string
  /** Old value -> new value, where the values were renamed too. */
  readonly values?: Readonly<Record<string, string>>
}

export const RENAMED: readonly RenamedSetting[] = [
  // "weak" and "at" said neither whom it is about nor that `data` keys the greylist on the message.
  { section: 'main', from: 'defer_weak_at', to: 'net_identity_greylist', values: { rcpt: 'recipient', data: 'message' } },
]

/**
 * The section's keys with every old name read as its new one. The old name wins while it is
 * there: the package's smart-greylist.ini, which Haraka merges under the admin's, always names
 * the new key with its default.
 */
function renamedKeys(sec: string, given: Raw, notes: string[]): Raw {
  const out: Raw = { ...given }
  for (const r of RENAMED) {
    if (r.section !== sec || given[r.from] === undefined || given[r.from] === null) continue
    const old = given[r.from]
    const mapped = typeof old === 'string' ? (r.values?.[old.trim().toLowerCase()] ?? old) : old
    delete out[r.from]
    out[r.to] = mapped
    notes.push(
      `${FILES.ini} [${sec}] ${r.from} is now called ${r.to}: read as ${r.to} = ${String(mapped)}; rename it (the old name is still read, and wins over ${r.to} while it is there)`,
    )
  }
  return out
}

/**
 * Reads what haraka-config parsed from smart-greylist.ini (merged with the shipped copy). A bad
 * value keeps the `previous` good setting of that key and is reported, as is every unknown
 * section or key, so a typo never goes unnoticed and never takes greylisting down. A renamed
 * key's old name is read as the new one, with a note.
 */
export function parseSettings(raw: unknown, previous: Config = DEFAULTS): { config: Config; problems: SettingProblem[]; notes: string[] } {
  const problems: SettingProblem[] = []
  const notes: string[] = []
  const input = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>
  const out: Record<string, Record<string, unknown>> = {}
  for (const [sec, spec] of Object.entries(SCHEMA) as [string, SectionSpec][]) {
    const given = renamedKeys(sec, (input[sec] && typeof input[sec] === 'object' ? input[sec] : {}) as Raw, notes)
    const prev = (previous as Readonly<Record<string, Readonly<Record<string, unknown>> | undefined>>)[sec] ?? {}
    const values: Record<string, unknown> = {}
    for (const [key, keySpec] of Object.entries(spec.keys)) {
      values[key] = keySpec.default
      const v = given[key]
      if (v === undefined || v === null) continue
      const r = parseValue(keySpec, v)
      if ('value' in r) values[key] = r.value
      else {
        values[key] = prev[key]
        problems.push({ section: sec, key, message: `${r.error}; keeping ${show(prev[key])}` })
      }
    }
    for (const [key, v] of Object.entries(given)) {
      if (key in spec.keys || spec.passthrough?.includes(key)) continue
      if (spec.open) {
        const r = parseValue(spec.open, v)
        const id = key.toLowerCase()
        if ('value' in r) values[id] = r.value
        else {
          problems.push({ section: sec, key, message: `${r.error}; keeping ${show(prev[id] ?? "the file's action")}` })
          if (prev[id] !== undefined) values[id] = prev[id]
        }
        continue
      }
      const near = closest(key, [...Object.keys(spec.keys), ...(spec.passthrough ?? [])])
      problems.push({ section: sec, key, message: `unknown key, ignored${near ? ` (did you mean ${near}?)` : ''}` })
    }
    out[sec] = values
  }
  for (const sec of Object.keys(input)) {
    if (sec in SCHEMA) continue
    // haraka-config puts keys written before any section into [main]; an empty [main] is always there.
    const near = closest(sec, Object.keys(SCHEMA))
    problems.push({ section: sec, message: `unknown section, ignored${near ? ` (did you mean [${near}]?)` : ''}` })
  }
  // Both sections are in the schema, so both were filled above.
  const redis = out.redis ?? {}
  if ((redis.cluster as string[]).length && (redis.sentinels as string[]).length) {
    problems.push({ section: 'redis', key: 'sentinels', message: 'cluster is set too: one of the two is used, the cluster; sentinels ignored' })
  }
  const main = out.main ?? {}
  if ((main.retry_window as number) <= (main.delay as number)) {
    problems.push({
      section: 'main',
      key: 'retry_window',
      message: `${String(main.retry_window)} must be longer than delay (${String(main.delay)}); keeping delay = ${previous.main.delay}, retry_window = ${previous.main.retry_window}`,
    })
    main.delay = previous.main.delay
    main.retry_window = previous.main.retry_window
  }
  return { config: deepFreeze(out) as Config, problems, notes }
}

function show(v: unknown): string {
  return Array.isArray(v) ? `"${v.join(' ')}"` : `"${String(v)}"`
}

/** The known name nearest to a misspelt one (at most two edits away), for "did you mean". */
function closest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = 3
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k)
    if (d < bestDistance) [best, bestDistance] = [k, d]
  }
  return best
}

function editDistance(a: string, b: string): number {
  // Two rows of the Levenshtein table; every index below is within them.
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    row = next
  }
  return row[b.length] ?? 0
}

function range(spec: KeySpec): string {
  switch (spec.type) {
    case 'int':
      return `${spec.min}–${spec.max}`
    case 'bool':
      return 'bool'
    case 'enum':
      return spec.values.join(', ')
    case 'text':
      return spec.what
    case 'ip_list':
      return 'addresses'
    case 'cidr_list':
      return 'addresses/networks'
    case 'node_list':
      return 'host:port list'
  }
}

function iniValue(spec: KeySpec): string {
  return Array.isArray(spec.default) ? spec.default.join(' ') : String(spec.default)
}

/** The shipped config/smart-greylist.ini: every key with its default and its doc line. */
export function renderIni(): string {
  const lines = [
    "; smart-greylist: greylisting keyed on the sender's infrastructure, not its single address.",
    '; Every key is optional and shown with its default. Edits take effect without a restart; a bad',
    '; value is logged with its key and the previous value kept. Generated from the settings schema',
    '; (plugins/smart-greylist/core/settings.ts): copy the keys you change into your own',
    '; config/smart-greylist.ini, which Haraka reads over this one.',
  ]
  for (const [sec, spec] of Object.entries(SCHEMA) as [string, SectionSpec][]) {
    lines.push('', `[${sec}]`, ...spec.doc.map((d) => `; ${d}`))
    for (const [key, k] of Object.entries(spec.keys)) lines.push(`; ${k.doc}`, `${key} = ${iniValue(k)}`)
  }
  return `${lines.join('\n')}\n`
}

/** The settings table of docs/settings.md. */
export function renderSettingsTable(): string {
  const rows = ['| key | default | range | meaning |', '| --- | --- | --- | --- |']
  for (const [sec, spec] of Object.entries(SCHEMA) as [string, SectionSpec][]) {
    for (const [key, k] of Object.entries(spec.keys)) {
      rows.push(`| \`[${sec}] ${key}\` | \`${iniValue(k) || '(empty)'}\` | ${range(k)} | ${k.doc.replace(/\|/g, '\\|')} |`)
    }
    if (spec.open) rows.push(`| \`[${sec}] <id>\` | from the file | ${range(spec.open)} | ${spec.open.doc} |`)
  }
  // Renamed keys: an admin's file may still use the old name, which is read with a note.
  rows.push('', 'Renamed: the old name is still read (it wins while it is there), with a note at load and in `config check`.', '')
  rows.push('| old name | new name | old values read as |', '| --- | --- | --- |')
  for (const r of RENAMED) {
    const values = Object.entries(r.values ?? {}).map(([from, to]) => `${from} = ${to}`)
    rows.push(`| \`[${r.section}] ${r.from}\` | \`[${r.section}] ${r.to}\` | ${values.join(', ') || 'the same'} |`)
  }
  return rows.join('\n')
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}
