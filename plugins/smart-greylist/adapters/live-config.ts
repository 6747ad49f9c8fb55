// The plugin's configuration in force: loaded at register, reloaded whenever haraka-config sees a
// file change and whenever the providers' shared ranges in Redis change (the refresher, wired
// here because its output is an input of the load). A reload that fails is logged and the last
// good world stays in force.
import tlds from 'haraka-tld'
import type { Config } from '../core/settings'
import type { Provider } from '../core/providers'
import type { SharedRanges } from '../core/refresh'
import { buildDeps, type Deps, type Loaded, type Runtime } from './deps'
import type { ConfigReader } from './haraka-types'
import { ProviderRefresher } from './provider-refresh'
import { redisTarget, type Logger, type RedisOptions } from './redis-client'
import type { Telemetry } from './telemetry'

/** What the configuration needs of Haraka's plugin object. */
export interface ConfigHost extends Logger {
  readonly config: ConfigReader
  /** haraka-config's change callback: the plugin's reload (index.ts sg_load, which calls reload). */
  sg_load(): void
}

/**
 * Loads every file (setup.ts's load, handed in by index.ts so that no adapter reaches up to
 * setup.ts): `previous` keeps its good values over bad ones, `onChange` is haraka-config's watch.
 */
export type Loader = (previous: Config | undefined, onChange: () => void, shared: ReadonlyMap<string, SharedRanges>) => Loaded

/** What one load puts in force, replaced whole: a decision in flight keeps the old or sees the new. */
interface World {
  /** Everything a decision needs. */
  readonly deps: Deps
  /** The files' providers, before the shared ranges (what a refresh starts from). */
  readonly fileProviders: readonly Provider[]
  /** Per provider, every range its files give it: what refreshes and shared records are bounded by. */
  readonly anchors: ReadonlyMap<string, readonly string[]>
  /** The providers in force: the files' with the shared ranges applied. */
  readonly providerList: readonly Provider[]
  /** Where the settings point Redis. */
  readonly redis: RedisOptions
}

export class LiveConfig {
  /** The providers' ranges every MX shares through Redis ([refresh]). */
  shared: ReadonlyMap<string, SharedRanges> = new Map()
  readonly refresher: ProviderRefresher
  private world: World
  /** Notes (renamed settings, a stale copy) are logged once, not at every reload. */
  private readonly noted = new Set<string>()
  private readonly runtime: Runtime
  /** Shut down: a file change or the public-suffix list arriving later reopens nothing. */
  private stopped = false

  /** `onReload` is told of each new load after the first (Redis connections, the metrics' home). */
  constructor(
    private readonly host: ConfigHost,
    private readonly loader: Loader,
    runtime: Omit<Runtime, 'telemetry'> & { readonly telemetry: Telemetry },
    private readonly onReload: (loaded: Loaded) => void = () => undefined,
  ) {
    this.runtime = runtime
    this.refresher = new ProviderRefresher({
      config: () => this.deps.config,
      providers: () => this.fileProviders,
      anchors: () => this.anchors,
      resolver: () => this.deps.resolver,
      client: runtime.client,
      now: Date.now,
      onShared: (shared) => this.applyShared(shared),
      log: host,
    })
    // Read quietly: the start's logged load is the one once the public-suffix list is in
    // (reloadWhenSuffixesLoad), so each problem, note and `loaded:` line comes once per process.
    const loaded = this.read(undefined, false)
    this.world = this.worldOf(loaded)
  }

  get deps(): Deps {
    return this.world.deps
  }

  get config(): Config {
    return this.world.deps.config
  }

  get fileProviders(): readonly Provider[] {
    return this.world.fileProviders
  }

  get anchors(): ReadonlyMap<string, readonly string[]> {
    return this.world.anchors
  }

  get providerList(): readonly Provider[] {
    return this.world.providerList
  }

  get redis(): RedisOptions {
    return this.world.redis
  }

  /** Reloads settings and lists; called from haraka-config's timer, so it never throws. */
  reload(): void {
    if (this.stopped) return
    try {
      this.apply()
    } catch (err) {
      this.host.logerror(`reload failed, the last good configuration stays in force: ${message(err)}`)
    }
  }

  /** At shutdown: no more reloads, and no more refreshes. */
  stop(): void {
    this.stopped = true
    this.refresher.stop()
  }

  /** The providers' shared ranges changed: reload with them, or keep the last good ones and world. */
  private applyShared(shared: ReadonlyMap<string, SharedRanges>): void {
    if (this.stopped) return
    const last = this.shared
    this.shared = shared
    try {
      this.apply()
    } catch (err) {
      this.shared = last
      this.host.logerror(`reload with the shared provider ranges failed, the last good ones stay in force: ${message(err)}`)
    }
  }

  private apply(): void {
    const loaded = this.read(this.deps.config)
    this.world = this.worldOf(loaded)
    this.onReload(loaded)
    this.loadedLine(loaded)
  }

  /** Decisions are timed only while the metrics are on: off, they cost nothing. */
  private worldOf(loaded: Loaded): World {
    const { telemetry, ...rest } = this.runtime
    const deps = buildDeps(loaded, loaded.config.metrics.enabled ? { ...rest, telemetry } : rest)
    return { deps, fileProviders: loaded.fileProviders, anchors: loaded.anchors, providerList: loaded.providerList, redis: loaded.redis }
  }

  /** Reads every file, with the plugin's reload as haraka-config's change callback; logs what is wrong. */
  private read(previous: Config | undefined, logged = true): Loaded {
    const loaded = this.loader(previous, () => this.host.sg_load(), this.shared)
    if (!logged) return loaded
    for (const p of loaded.problems) this.host.logerror(p)
    for (const n of loaded.notes) {
      if (this.noted.has(n)) continue
      this.noted.add(n)
      this.host.loginfo(n)
    }
    return loaded
  }

  private loadedLine(loaded: Loaded): void {
    const refreshed = loaded.providerList.filter((p) => p.origin.startsWith('redis')).length
    this.host.loginfo(
      `loaded: whitelist ${loaded.admin.entries.length} entries; providers ${loaded.providerList.length} (${loaded.providers.ranges} ranges, ${refreshed} refreshed); domains ${loaded.domainRules.length} rules; redis ${redisTarget(loaded.redis)}`,
    )
  }
}

/** Loads again once haraka-tld's public-suffix list is in: until then no entry can be judged against it. */
export function reloadWhenSuffixesLoad(live: LiveConfig): void {
  // Also when the list fails to load: this is the start's one logged load.
  tlds.ready
    .catch(() => undefined)
    .then(() => live.reload())
    .catch(() => undefined)
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
