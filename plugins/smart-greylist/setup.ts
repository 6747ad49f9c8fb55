// The one setup of everything a decision needs, for the Haraka plugin and for every subcommand
// of `smart-greylist`: settings, whitelist and providers read through haraka-config (the
// instance's files over the package's), Redis client options, the resolver and the clock.
// Nothing else in this package reads these files, builds a Redis client or a resolver.
import fs from 'node:fs'
import path from 'node:path'
import harakaConfig from 'haraka-config'
import tlds from 'haraka-tld'
import type { Policy } from './core/assess'
import { FILES, parseSettings, problemText, type Config } from './core/settings'
import { DomainPolicies, parseDomains, type DomainRule } from './core/domains'
import { anchorsOf, withShared, type SharedRanges } from './core/refresh'
import { mergeProviders, parseProviders, ProviderIndex, type Provider } from './core/providers'
import { compileWhitelist, parseWhitelist, type ParsedList, type Whitelist } from './core/whitelist'
import { makeResolver, type Resolver } from './adapters/dns'
import type { RedisClient } from './adapters/haraka-types'
import { redisClientOptions, redisProblems, type RedisOptions } from './adapters/redis-client'
import { DecisionStore } from './adapters/redis-decision'
import type { Telemetry } from './adapters/telemetry'
import type { RedisHealth } from './adapters/redis-health'
import { SpfGuardCache } from './adapters/spf-guard'

export const PACKAGE_NAME = 'haraka-plugin-smart-greylist'

/** The installed package's root (its config/ holds the shipped files), found by its package.json. */
export function packageRoot(from = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json')
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === PACKAGE_NAME) return dir
    if (path.dirname(dir) === dir) throw new Error(`cannot find the ${PACKAGE_NAME} package above ${from}`)
  }
}

/** haraka-config's reader, as much of it as is used here. */
export interface ConfigReader {
  get(name: string, ...args: unknown[]): unknown
  root_path?: string
  overrides_path?: string
}

export interface ConfigSources {
  /** The instance's files over the package's: what Haraka gives the plugin as `this.config`. */
  readonly instance: ConfigReader
  /** The package's own config/, which an upgrade replaces. */
  readonly shipped: ConfigReader
  /** The instance's config directory: where the admin's files are (and the command writes). */
  readonly instanceDir: string
  readonly shippedDir: string
}

export function sourcesForPlugin(pluginConfig: ConfigReader): ConfigSources {
  const root = packageRoot()
  return {
    instance: pluginConfig,
    shipped: harakaConfig.module_config(root),
    instanceDir: pluginConfig.overrides_path ?? pluginConfig.root_path ?? path.join(root, 'config'),
    shippedDir: path.join(root, 'config'),
  }
}

/** What Haraka would read for an instance whose config directory is `dir`. */
export function sourcesForDir(dir: string): ConfigSources {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`--config ${dir}: no such directory`)
  const root = packageRoot()
  const instance = harakaConfig.module_config(root)
  instance.overrides_path = path.resolve(dir)
  return { instance, shipped: harakaConfig.module_config(root), instanceDir: path.resolve(dir), shippedDir: path.join(root, 'config') }
}

/** Settings and lists, compiled, with every problem found on the way (file, line or key). */
export interface Loaded extends Policy {
  /** The domains this Haraka takes mail for (host_list, host_list_regex), as rcpt_to.in_host_list reads them. */
  readonly isLocalDomain: (domain: string) => boolean
  readonly admin: ParsedList
  /** The providers in force: the files' with the shared ranges applied. */
  readonly providerList: readonly Provider[]
  /** The providers as the files give them (what a refresh starts from). */
  readonly fileProviders: readonly Provider[]
  /** Per provider id, every range the shipped and the admin's files give it: what refreshes are bounded by. */
  readonly anchors: ReadonlyMap<string, readonly string[]>
  /** smart-greylist.domains, as loaded (the rules in force). */
  readonly domainRules: readonly DomainRule[]
  readonly redis: RedisOptions
  readonly problems: readonly string[]
  /** Worth knowing, but nothing to mend (a stale copy identical to the package's file). */
  readonly notes: readonly string[]
}

/**
 * Reads and compiles everything. A bad setting keeps its `previous` value; bad list lines are
 * skipped. `onChange` (the plugin's reload) is called by haraka-config when any file changes.
 */
export function load(
  src: ConfigSources,
  previous?: Config,
  onChange?: () => void,
  use: 'daemon' | 'command' = 'daemon',
  shared: ReadonlyMap<string, SharedRanges> = new Map(),
): Loaded {
  const watch = onChange ? [onChange] : []
  const ini = src.instance.get(FILES.ini, 'ini', ...watch) as Record<string, unknown> | null
  const { config, problems: settingProblems } = parseSettings(ini, previous)
  const problems = settingProblems.map(problemText)

  const lines = (reader: ConfigReader, name: string): string[] => (reader.get(name, 'data', ...watch) as string[] | null) ?? []
  const admin = parseWhitelist(lines(src.instance, FILES.whitelist), FILES.whitelist, isPublicSuffix)
  const shipped = parseProviders(lines(src.shipped, FILES.providers), FILES.providers)
  const local = parseProviders(lines(src.instance, FILES.providersLocal), FILES.providersLocal)
  const merged = mergeProviders(shipped.providers, local.providers)
  const domains = parseDomains(lines(src.instance, FILES.domains), FILES.domains, isPublicSuffix)
  for (const e of [...admin.errors, ...shipped.errors, ...local.errors, ...domains.errors]) problems.push(`${e.origin}: ignoring "${e.text}": ${e.message}`)
  // A rule's delay must leave a retry window, as [main] delay must.
  const domainRules = domains.rules.filter((r) => {
    const ok = r.settings.delay === undefined || r.settings.delay < config.main.retry_window
    if (!ok)
      problems.push(
        `${r.origin}: ignoring the rule for ${r.pattern}: delay ${r.settings.delay} must be shorter than [main] retry_window (${config.main.retry_window})`,
      )
    return ok
  })
  problems.push(...merged.notes)
  const notes: string[] = []
  const stale = path.join(src.instanceDir, FILES.providers)
  if (path.resolve(src.instanceDir) !== path.resolve(src.shippedDir) && fs.existsSync(stale)) {
    const shippedFile = path.join(src.shippedDir, FILES.providers)
    if (fs.existsSync(shippedFile) && fs.readFileSync(stale).equals(fs.readFileSync(shippedFile))) {
      notes.push(`${stale} is a copy of the package's file and is not read: it can be deleted`)
    } else {
      problems.push(`${stale} is not read: the package's copy is (upgrades replace it); move your changes to ${FILES.providersLocal}`)
    }
  }
  // The ranges every MX shares through Redis ([refresh]) over the files', unless those are newer.
  const providerList = withShared(merged.providers, shared)
  const redis = redisClientOptions(src.instance.get(FILES.redis, 'ini', ...watch), ini?.redis, config.redis, use)
  problems.push(...redisProblems(redis))
  return {
    config,
    whitelist: compileWhitelist([admin]),
    providers: new ProviderIndex(providerList, (p) => config.providers[p.id] ?? p.action),
    orgDomain,
    domains: new DomainPolicies(domainRules),
    domainRules,
    isLocalDomain: localDomains(src.instance, watch),
    admin,
    providerList,
    fileProviders: merged.providers,
    anchors: anchorsOf(shipped.providers, merged.providers),
    redis,
    problems,
    notes,
  }
}

/** haraka-tld's verdict; its lists load asynchronously, so callers load again once `tlds.ready`. */
export function isPublicSuffix(name: string): boolean {
  return tlds.is_public_suffix(name)
}

function orgDomain(name: string): string | null {
  return tlds.get_organizational_domain(name)
}

function localDomains(reader: ConfigReader, watch: (() => void)[]): (domain: string) => boolean {
  const list = (name: string): string[] => (reader.get(name, 'list', ...watch) as string[] | null) ?? []
  const hosts = new Set(list('host_list').map((h) => h.toLowerCase()))
  const regexes = list('host_list_regex').flatMap((r) => {
    try {
      return [new RegExp(`^(?:${r})$`, 'i')]
    } catch {
      return []
    }
  })
  return (d) => hosts.has(d) || regexes.some((re) => re.test(d))
}

/** Everything a decision needs. */
export interface Deps extends Policy {
  readonly isLocalDomain: (domain: string) => boolean
  readonly decisions: DecisionStore
  readonly resolver: Resolver
  readonly guard: SpfGuardCache
  readonly now: () => number
  /** The plugin's own measurements for the metrics (the command has none). */
  readonly telemetry?: Telemetry
}

export interface Runtime {
  /** The current Redis client, if any (the plugin's changes as it reconnects). */
  readonly client: () => RedisClient | undefined
  readonly now?: () => number
  /** DNS servers to ask instead of the system's (the command's --dns). */
  readonly dnsServers?: readonly string[]
  /** Bound for one Redis command; the configured [redis] timeout_ms when unset. */
  readonly redisTimeoutMs?: number
  /** The SPF guard reads shared verdicts but never writes them (the command). */
  readonly readOnly?: boolean
  /** The plugin's watch on a silent Redis (the command has none: it asks once and exits). */
  readonly health?: RedisHealth
  /** The plugin's measurements, kept across reloads. */
  readonly telemetry?: Telemetry
}

export function buildDeps(loaded: Loaded, rt: Runtime): Deps {
  const { config } = loaded
  const now = rt.now ?? Date.now
  const decisions = new DecisionStore(rt.client, () => rt.redisTimeoutMs ?? config.redis.timeout_ms, {
    storedChars: () => config.limits.stored_chars,
    maxInFlight: () => config.redis.max_in_flight,
    health: rt.health,
    telemetry: rt.telemetry,
  })
  return {
    config,
    whitelist: loaded.whitelist,
    providers: loaded.providers,
    orgDomain: loaded.orgDomain,
    domains: loaded.domains,
    isLocalDomain: loaded.isLocalDomain,
    decisions,
    resolver: makeResolver(config.dns.timeout_ms, rt.dnsServers),
    guard: new SpfGuardCache(decisions, config, now, { readOnly: rt.readOnly }),
    now,
    ...(rt.telemetry ? { telemetry: rt.telemetry } : {}),
  }
}

export type { Whitelist }
