// Everything a decision needs (the compiled policy, the Redis store, the resolver, the SPF guard,
// the clock), built from the loaded settings and lists plus what only the running process has;
// and the shape of what is loaded. The adapters take a `Deps`; setup.ts loads what goes into one.
import type { Policy } from '../core/assess'
import type { DomainRule } from '../core/domains'
import type { Provider } from '../core/providers'
import type { ParsedList } from '../core/whitelist'
import { makeResolver, type Resolver } from './dns'
import type { RedisClient } from './haraka-types'
import type { RedisOptions } from './redis-client'
import { DecisionStore } from './redis-decision'
import type { RedisHealth } from './redis-health'
import { SpfGuardCache } from './spf-guard'
import type { Telemetry } from './telemetry'

/** What the settings and lists compile to: the policy, and this Haraka's own domains. */
export interface Compiled extends Policy {
  /** The domains this Haraka takes mail for (host_list, host_list_regex), as rcpt_to.in_host_list reads them. */
  readonly isLocalDomain: (domain: string) => boolean
}

/** Settings and lists, compiled, with every problem found on the way (file, line or key). */
export interface Loaded extends Compiled {
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

/** Everything a decision needs. */
export interface Deps extends Compiled {
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
  /** Told of each decision that failed open (the plugin's decisions' connection counts them). */
  readonly failedOpen?: () => void
}

export function buildDeps(compiled: Compiled, rt: Runtime): Deps {
  const { config } = compiled
  const now = rt.now ?? Date.now
  const decisions = new DecisionStore(rt.client, () => rt.redisTimeoutMs ?? config.redis.timeout_ms, {
    storedChars: () => config.limits.stored_chars,
    maxInFlight: () => config.redis.max_in_flight,
    health: rt.health,
    telemetry: rt.telemetry,
    failedOpen: rt.failedOpen,
  })
  return {
    config,
    whitelist: compiled.whitelist,
    providers: compiled.providers,
    orgDomain: compiled.orgDomain,
    domains: compiled.domains,
    isLocalDomain: compiled.isLocalDomain,
    decisions,
    resolver: makeResolver(config.dns.timeout_ms, rt.dnsServers),
    guard: new SpfGuardCache(decisions, config, now, { readOnly: rt.readOnly }),
    now,
    ...(rt.telemetry ? { telemetry: rt.telemetry } : {}),
  }
}
