// What every subcommand needs from --config DIR: the plugin's own settings and lists, read with
// haraka-config and parsed by the plugin's own parsers, and a Redis client made the way
// haraka-plugin-redis makes it. Nothing here computes a second way what the plugin computes.
import fs from 'node:fs'
import path from 'node:path'
import harakaConfig from 'haraka-config'
import { promises as dnsp } from 'node:dns'
import { FILES, INI_BOOLEANS, parseConfig, type Config } from '../config'

export { FILES }
import type { RedisClient } from '../haraka'
import { SpfGuardCache, type Deps } from '../plan'
import { parseProviders, ProviderIndex, type ParsedProviders } from '../providers'
import { TupleStore } from '../store'
import { compileWhitelist, parseWhitelist, type ParsedList } from '../whitelist'

/** The installed package's root: its config/ holds the shipped defaults. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..', '..')

export class Context {
  private readonly cfg: { get(name: string, opts?: unknown): unknown; overrides_path?: string }

  constructor(readonly dir: string) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`--config ${dir}: no such directory`)
    // Instance files override the package's shipped ones, as in Haraka itself.
    this.cfg = harakaConfig.module_config(PACKAGE_ROOT)
    this.cfg.overrides_path = path.resolve(dir)
  }

  config(): Config {
    return parseConfig(this.cfg.get(FILES.ini, { booleans: INI_BOOLEANS }) as Record<string, Record<string, unknown>>)
  }

  /** The file as Haraka would read it: the instance's copy, else the shipped one. */
  filePath(name: string): string {
    const own = path.join(this.dir, name)
    return fs.existsSync(own) ? own : path.join(PACKAGE_ROOT, 'config', name)
  }

  lines(name: string): string[] {
    const file = this.filePath(name)
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split(/\r?\n/) : []
  }

  whitelist(): ParsedList {
    return parseWhitelist(this.lines(FILES.whitelist), FILES.whitelist)
  }

  providers(): ParsedProviders {
    return parseProviders(this.lines(FILES.providers), FILES.providers)
  }

  /** Writes DIR/name through a temporary file and a rename, so readers never see half a file. */
  writeAtomic(name: string, text: string): string {
    const file = path.join(this.dir, name)
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, text)
    fs.renameSync(tmp, file)
    return file
  }

  /**
   * Everything the plugin's decision code needs, built from this directory: the same settings,
   * lists, store and (unless `dns` names servers) the system resolver. `readOnly` keeps the SPF
   * guard from writing its verdicts.
   */
  async deps(opts: { dns?: string[]; readOnly?: boolean } = {}): Promise<{ deps: Deps; close(): Promise<void> }> {
    const config = this.config()
    const db = await this.redis()
    const store = new TupleStore(() => db, () => Math.max(config.redis.timeout_ms, 5000))
    const resolver = new dnsp.Resolver({ timeout: config.dns.timeout_ms, tries: 1 })
    if (opts.dns?.length) resolver.setServers(opts.dns)
    const shipped = this.providers()
    const deps: Deps = {
      config,
      whitelist: compileWhitelist([this.whitelist()]),
      providers: new ProviderIndex(shipped.providers, (p) => config.providers[p.id] ?? p.action),
      store,
      resolver,
      guard: new SpfGuardCache(() => store, () => ({ prefix: config.redis.prefix, ttlMs: config.identity.spf_guard_ttl * 1000 }), { readOnly: opts.readOnly }),
      now: Date.now,
    }
    return { deps, close: async () => void (await db.quit?.().catch(() => undefined)) }
  }

  /** A client for the plugin's Redis (redis.ini, overridden by [redis] in smart-greylist.ini). */
  async redis(): Promise<RedisClient> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const redisPlugin = require('haraka-plugin-redis') as {
      normalize_redis_ini(raw: unknown): { server: Record<string, unknown> }
      normalize_endpoint(section: unknown): Record<string, unknown>
      get_redis_client(this: object, opts: unknown): Promise<never>
    }
    const base = redisPlugin.normalize_redis_ini(this.cfg.get('redis.ini')).server
    const own = ((this.cfg.get(FILES.ini) as Record<string, Record<string, unknown>>)?.redis ?? {}) as Record<string, unknown>
    const { prefix: _p, timeout_ms: _t, ...ownRedis } = own
    const opts = redisPlugin.normalize_endpoint({ ...base, ...ownRedis })
    const socket = (opts.socket ?? {}) as Record<string, unknown>
    const quiet = { loginfo: () => undefined, logerror: () => undefined, logwarn: () => undefined }
    return redisPlugin.get_redis_client.call(quiet, {
      ...opts,
      disableOfflineQueue: true,
      socket: { ...socket, connectTimeout: 3000, reconnectStrategy: false },
    })
  }
}
