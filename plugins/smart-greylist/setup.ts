// The one setup of everything a decision needs, for the Haraka plugin and for every subcommand
// of `smart-greylist`: settings, whitelist and providers read through haraka-config (the
// instance's files over the package's), first all read (readFiles), then compiled (compile), and
// the Redis client options. Nothing else in this package reads these files; adapters/deps.ts
// builds what a decision needs from what is loaded here.
import fs from 'node:fs'
import path from 'node:path'
import harakaConfig from 'haraka-config'
import tlds from 'haraka-tld'
import { FILES, parseSettings, problemText, type Config } from './core/settings'
import { DomainPolicies, parseDomains } from './core/domains'
import { anchorsOf, withShared, type SharedRanges } from './core/refresh'
import { mergeProviders, parseProviders, ProviderIndex } from './core/providers'
import { compileWhitelist, parseWhitelist, type Whitelist } from './core/whitelist'
import type { Loaded } from './adapters/deps'
import type { ConfigReader } from './adapters/haraka-types'
import { redisClientOptions, redisProblems } from './adapters/redis-client'

export const PACKAGE_NAME = 'haraka-plugin-smart-greylist'

/** The installed package's root (its config/ holds the shipped files), found by its package.json. */
export function packageRoot(from = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json')
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === PACKAGE_NAME) return dir
    if (path.dirname(dir) === dir) throw new Error(`cannot find the ${PACKAGE_NAME} package above ${from}`)
  }
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

/** Every file as read: all that compiling needs, so compiling reads nothing. */
export interface ConfigFiles {
  readonly ini: Record<string, unknown> | null
  readonly redisIni: unknown
  /** The lists' lines: the admin's whitelist and domains, the package's and the admin's providers. */
  readonly whitelist: readonly string[]
  readonly providers: readonly string[]
  readonly providersLocal: readonly string[]
  readonly domains: readonly string[]
  /** Haraka's own host_list and host_list_regex. */
  readonly hostList: readonly string[]
  readonly hostListRegex: readonly string[]
  /** An instance copy of the package's providers file, which is not read: where, and whether it is the same. */
  readonly staleProviders: { readonly file: string; readonly identical: boolean } | null
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
  return compile(readFiles(src, onChange), previous, use, shared)
}

/** Reads every file through haraka-config (`onChange` watches each), and nothing else. */
export function readFiles(src: ConfigSources, onChange?: () => void): ConfigFiles {
  const watch = onChange ? [onChange] : []
  const lines = (reader: ConfigReader, name: string, type: 'data' | 'list' = 'data'): string[] => (reader.get(name, type, ...watch) as string[] | null) ?? []
  return {
    ini: src.instance.get(FILES.ini, 'ini', ...watch) as Record<string, unknown> | null,
    redisIni: src.instance.get(FILES.redis, 'ini', ...watch),
    whitelist: lines(src.instance, FILES.whitelist),
    providers: lines(src.shipped, FILES.providers),
    providersLocal: lines(src.instance, FILES.providersLocal),
    domains: lines(src.instance, FILES.domains),
    hostList: lines(src.instance, 'host_list', 'list'),
    hostListRegex: lines(src.instance, 'host_list_regex', 'list'),
    staleProviders: staleProviders(src),
  }
}

function staleProviders(src: ConfigSources): ConfigFiles['staleProviders'] {
  const file = path.join(src.instanceDir, FILES.providers)
  if (path.resolve(src.instanceDir) === path.resolve(src.shippedDir) || !fs.existsSync(file)) return null
  const shippedFile = path.join(src.shippedDir, FILES.providers)
  return { file, identical: fs.existsSync(shippedFile) && fs.readFileSync(file).equals(fs.readFileSync(shippedFile)) }
}

/** The files compiled: pure but for the public-suffix list haraka-tld holds. */
export function compile(
  files: ConfigFiles,
  previous?: Config,
  use: 'daemon' | 'command' = 'daemon',
  shared: ReadonlyMap<string, SharedRanges> = new Map(),
): Loaded {
  const { config, problems: settingProblems, notes: settingNotes } = parseSettings(files.ini, previous)
  const problems = settingProblems.map(problemText)
  const admin = parseWhitelist(files.whitelist, FILES.whitelist, isPublicSuffix)
  const shipped = parseProviders(files.providers, FILES.providers)
  const local = parseProviders(files.providersLocal, FILES.providersLocal)
  const merged = mergeProviders(shipped.providers, local.providers)
  const domains = parseDomains(files.domains, FILES.domains, isPublicSuffix)
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
  const notes: string[] = [...settingNotes]
  const stale = files.staleProviders
  if (stale?.identical) notes.push(`${stale.file} is a copy of the package's file and is not read: it can be deleted`)
  else if (stale) problems.push(`${stale.file} is not read: the package's copy is (upgrades replace it); move your changes to ${FILES.providersLocal}`)
  // The ranges every MX shares through Redis ([refresh]) over the files', unless those are newer.
  const providerList = withShared(merged.providers, shared)
  const redis = redisClientOptions(files.redisIni, files.ini?.redis, config.redis, use)
  problems.push(...redisProblems(redis))
  return {
    config,
    whitelist: compileWhitelist([admin]),
    providers: new ProviderIndex(providerList, (p) => config.providers[p.id] ?? p.action),
    orgDomain,
    domains: new DomainPolicies(domainRules),
    domainRules,
    isLocalDomain: localDomains(files.hostList, files.hostListRegex),
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

function localDomains(hostList: readonly string[], hostListRegex: readonly string[]): (domain: string) => boolean {
  const hosts = new Set(hostList.map((h) => h.toLowerCase()))
  const regexes = hostListRegex.flatMap((r) => {
    try {
      return [new RegExp(`^(?:${r})$`, 'i')]
    } catch {
      return []
    }
  })
  return (d) => hosts.has(d) || regexes.some((re) => re.test(d))
}

// Deps lives with the adapters that take it; re-exported for the callers that load and build in one place.
export { buildDeps, type Compiled, type Deps, type Loaded, type Runtime } from './adapters/deps'
export type { ConfigReader, Whitelist }
