// Settings from smart-greylist.ini, validated once per (re)load into a frozen object.
// parseConfig is pure: the adapter hands it what haraka-config read and keeps the last good
// result when a reload is bad.
import { parseIp } from './ip'

/** The plugin's files in Haraka's config directory. */
export const FILES = {
  ini: 'smart-greylist.ini',
  whitelist: 'smart-greylist.whitelist',
  providers: 'smart-greylist.providers',
} as const

export type DeferAt = 'rcpt' | 'data'
export type OnError = 'accept' | 'defer'
export type Mode = 'enforce' | 'shadow'

export interface Config {
  readonly main: {
    /** Seconds a new tuple must wait before a retry is accepted (RFC 6647 §5.2: >= 1 min). */
    readonly delay: number
    /** Seconds a pending tuple waits for its retry; a later retry starts over. */
    readonly retry_window: number
    /** Seconds a passed tuple is remembered, refreshed on every use (RFC 6647 §5.3: >= 1 week). */
    readonly pass_ttl: number
    /** Defer at RCPT (per recipient) or once at DATA after recording every recipient. */
    readonly defer_at: DeferAt
    /** What to answer when Redis or DNS fails: accept (fail open) or defer. */
    readonly on_error: OnError
    /** Text of the 451 4.7.1 reply. */
    readonly text: string
    /** shadow: log and count every would-be deferral, but accept the mail (RFC 6647 §6). */
    readonly mode: Mode
    /** Add an X-Greylist header to accepted mail saying why it passed (and how long it waited). */
    readonly header: boolean
  }
  readonly stats: {
    /** Days the daily counters are kept in Redis; 0 = keep no statistics. */
    readonly days: number
  }
  readonly identity: {
    /** Group retries by the SPF-authenticated sender domain (HELO domain for the null sender). */
    readonly spf: boolean
    /** Group retries by the parent domain of the forward-confirmed rDNS name. */
    readonly rdns: boolean
    /** Group retries by the provider pool (smart-greylist.providers) that holds the client. */
    readonly pools: boolean
    readonly ipv4_prefix: number
    readonly ipv6_prefix: number
    /** The MX's own public addresses: an SPF record that passes for them is not trusted. */
    readonly self_ip: readonly string[]
    /** Seconds the permissive-record verdict for a domain is kept (shared in Redis). */
    readonly spf_guard_ttl: number
  }
  readonly dns: {
    /** Upper bound for the whole PTR + forward lookup of one client. */
    readonly timeout_ms: number
    /** PTR names checked at most, so a hostile PTR set cannot fan out lookups. */
    readonly max_names: number
    /** Upper bound for one SPF evaluation (when the spf plugin did not run). */
    readonly spf_timeout_ms: number
  }
  readonly awl: {
    /** Successful retries of one (identity, sender domain) after which its mail skips greylisting; 0 = off. */
    readonly passes: number
    /** Seconds an auto-whitelisted pair stays so, refreshed on use. */
    readonly ttl: number
  }
  /** Per provider id: skip (whitelisted), group (pool identity only) or off. Unlisted: the file's choice. */
  readonly providers: Readonly<Record<string, 'skip' | 'group' | 'off'>>
  readonly skip: {
    readonly relaying: boolean
    readonly private: boolean
  }
  readonly whitelist: {
    /** Use the shipped list of big senders (smart-greylist.providers). */
    readonly providers: boolean
    /** helo: entries count only if the FCrDNS name shares the HELO's organisational domain. */
    readonly verify_helo: boolean
    /** from: entries count only if SPF passed for the sender's domain (spf plugin). */
    readonly verify_from: boolean
  }
  readonly redis: {
    /** Prefix of every key; lets several installations share one Redis database. */
    readonly prefix: string
    /** Upper bound for one Redis command; past it the decision fails open (or as on_error says). */
    readonly timeout_ms: number
  }
}

export const DEFAULTS: Config = deepFreeze({
  main: {
    delay: 300,
    retry_window: 90_000, // 25 h: a sender that retries at exactly 24 h still lands inside
    pass_ttl: 35 * 86_400,
    defer_at: 'rcpt',
    on_error: 'accept',
    text: 'Greylisted, please try again later',
    mode: 'enforce',
    header: false,
  },
  stats: { days: 35 },
  identity: { spf: true, rdns: true, pools: true, ipv4_prefix: 24, ipv6_prefix: 64, self_ip: [], spf_guard_ttl: 86_400 },
  dns: { timeout_ms: 3000, max_names: 5, spf_timeout_ms: 3000 },
  awl: { passes: 3, ttl: 35 * 86_400 },
  providers: {},
  skip: { relaying: true, private: true },
  whitelist: { providers: true, verify_helo: true, verify_from: true },
  redis: { prefix: 'sgl:', timeout_ms: 500 },
})

/** Boolean keys, in the form haraka-config wants them declared. */
export const INI_BOOLEANS: string[] = [
  '-main.header',
  '+identity.spf',
  '+identity.rdns',
  '+identity.pools',
  '+skip.relaying',
  '+skip.private',
  '+whitelist.providers',
  '+whitelist.verify_helo',
  '+whitelist.verify_from',
]

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`smart-greylist.ini: ${problems.join('; ')}`)
    this.name = 'ConfigError'
  }
}

type Raw = Record<string, Record<string, unknown> | undefined>

export function parseConfig(raw: Raw | undefined | null): Config {
  const problems: string[] = []
  const section = (name: string): Record<string, unknown> => raw?.[name] ?? {}

  const num = (sec: string, key: string, def: number, min: number, max: number): number => {
    const v = section(sec)[key]
    if (v === undefined || v === null || v === '') return def
    const n = typeof v === 'number' ? v : Number(String(v).trim())
    if (!Number.isFinite(n) || n < min || n > max) {
      problems.push(`[${sec}] ${key} = ${String(v)}: expected a number from ${min} to ${max}`)
      return def
    }
    return n
  }
  const bool = (sec: string, key: string, def: boolean): boolean => {
    const v = section(sec)[key]
    if (v === undefined || v === null || v === '') return def
    if (typeof v === 'boolean') return v
    const s = String(v).trim().toLowerCase()
    if (['true', 'yes', 'on', '1'].includes(s)) return true
    if (['false', 'no', 'off', '0'].includes(s)) return false
    problems.push(`[${sec}] ${key} = ${String(v)}: expected true or false`)
    return def
  }
  const oneOf = <T extends string>(sec: string, key: string, def: T, allowed: readonly T[]): T => {
    const v = section(sec)[key]
    if (v === undefined || v === null || v === '') return def
    const s = String(v).trim().toLowerCase()
    if ((allowed as readonly string[]).includes(s)) return s as T
    problems.push(`[${sec}] ${key} = ${String(v)}: expected one of ${allowed.join(', ')}`)
    return def
  }
  const str = (sec: string, key: string, def: string, pattern: RegExp, what: string): string => {
    const v = section(sec)[key]
    if (v === undefined || v === null) return def
    const s = String(v).trim()
    if (!pattern.test(s)) {
      problems.push(`[${sec}] ${key} = ${s}: expected ${what}`)
      return def
    }
    return s
  }

  const ipList = (sec: string, key: string): string[] => {
    const v = section(sec)[key]
    if (v === undefined || v === null || v === '') return []
    const items = String(v).split(/[\s,]+/).filter(Boolean)
    const bad = items.filter((ip) => !parseIp(ip))
    if (bad.length) problems.push(`[${sec}] ${key}: not an IP address: ${bad.join(', ')}`)
    return items.filter((ip) => parseIp(ip)).map((ip) => parseIp(ip)!.toString())
  }
  const providerActions = (): Record<string, 'skip' | 'group' | 'off'> => {
    const out: Record<string, 'skip' | 'group' | 'off'> = {}
    for (const id of Object.keys(section('providers'))) {
      out[id.toLowerCase()] = oneOf('providers', id, 'skip', ['skip', 'group', 'off'] as const)
    }
    return out
  }

  const D = DEFAULTS
  const config: Config = {
    main: {
      delay: num('main', 'delay', D.main.delay, 0, 7 * 86_400),
      retry_window: num('main', 'retry_window', D.main.retry_window, 1, 60 * 86_400),
      pass_ttl: num('main', 'pass_ttl', D.main.pass_ttl, 1, 400 * 86_400),
      defer_at: oneOf('main', 'defer_at', D.main.defer_at, ['rcpt', 'data'] as const),
      on_error: oneOf('main', 'on_error', D.main.on_error, ['accept', 'defer'] as const),
      // Printable ASCII only: it goes into an SMTP reply line.
      text: str('main', 'text', D.main.text, /^[\x20-\x7e]{1,200}$/, '1 to 200 printable ASCII characters'),
      mode: oneOf('main', 'mode', D.main.mode, ['enforce', 'shadow'] as const),
      header: bool('main', 'header', D.main.header),
    },
    stats: { days: num('stats', 'days', D.stats.days, 0, 400) },
    identity: {
      spf: bool('identity', 'spf', D.identity.spf),
      rdns: bool('identity', 'rdns', D.identity.rdns),
      pools: bool('identity', 'pools', D.identity.pools),
      ipv4_prefix: num('identity', 'ipv4_prefix', D.identity.ipv4_prefix, 8, 32),
      ipv6_prefix: num('identity', 'ipv6_prefix', D.identity.ipv6_prefix, 16, 128),
      self_ip: ipList('identity', 'self_ip'),
      spf_guard_ttl: num('identity', 'spf_guard_ttl', D.identity.spf_guard_ttl, 60, 30 * 86_400),
    },
    dns: {
      timeout_ms: num('dns', 'timeout_ms', D.dns.timeout_ms, 50, 30_000),
      max_names: num('dns', 'max_names', D.dns.max_names, 1, 20),
      spf_timeout_ms: num('dns', 'spf_timeout_ms', D.dns.spf_timeout_ms, 50, 30_000),
    },
    awl: {
      passes: num('awl', 'passes', D.awl.passes, 0, 1000),
      ttl: num('awl', 'ttl', D.awl.ttl, 60, 400 * 86_400),
    },
    providers: providerActions(),
    skip: {
      relaying: bool('skip', 'relaying', D.skip.relaying),
      private: bool('skip', 'private', D.skip.private),
    },
    whitelist: {
      providers: bool('whitelist', 'providers', D.whitelist.providers),
      verify_helo: bool('whitelist', 'verify_helo', D.whitelist.verify_helo),
      verify_from: bool('whitelist', 'verify_from', D.whitelist.verify_from),
    },
    redis: {
      prefix: str('redis', 'prefix', D.redis.prefix, /^[A-Za-z0-9:_.-]{0,64}$/, 'up to 64 of A-Z a-z 0-9 : _ . -'),
      timeout_ms: num('redis', 'timeout_ms', D.redis.timeout_ms, 10, 30_000),
    },
  }
  if (config.main.retry_window <= config.main.delay) {
    problems.push(`[main] retry_window (${config.main.retry_window}) must be longer than delay (${config.main.delay})`)
  }
  for (const k of ['ipv4_prefix', 'ipv6_prefix'] as const) {
    if (!Number.isInteger(config.identity[k])) problems.push(`[identity] ${k} must be a whole number`)
  }
  if (problems.length) throw new ConfigError(problems)
  return deepFreeze(config)
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}
