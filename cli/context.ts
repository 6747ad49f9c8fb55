// What every subcommand needs from --config DIR, through the plugin's one setup (setup.ts): the
// same settings, lists, Redis options and decision code as the plugin. Every session closes what
// it opened on every path, so no subcommand can hang.
import fs from 'node:fs'
import path from 'node:path'
import tlds from 'haraka-tld'
import { AdminStore } from '../plugins/smart-greylist/adapters/redis-admin'
import { readShared, sharedCheck } from '../plugins/smart-greylist/adapters/provider-refresh'
import { BoundedRedis, closeRedis, openRedis, redisTarget } from '../plugins/smart-greylist/adapters/redis-client'
import type { RedisClient } from '../plugins/smart-greylist/adapters/haraka-types'
import { withTimeout } from '../plugins/smart-greylist/adapters/timeout'
import { buildDeps, load, sourcesForDir, type ConfigSources, type Deps, type Loaded } from '../plugins/smart-greylist/setup'

export { FILES } from '../plugins/smart-greylist/core/settings'

const LOCK_WAIT_MS = 10_000

/**
 * A lock file names the process that holds it; it is stale when that process is gone. (Not by
 * its age: the file's time is the filesystem's clock, which need not be this process's.)
 */
function staleLock(file: string): boolean {
  let pid: number
  try {
    pid = Number(fs.readFileSync(file, 'utf8').trim())
  } catch {
    return false // gone meanwhile: the next attempt takes it
  }
  // Empty: the holder has created it and not yet written its pid.
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

async function lock(file: string): Promise<() => void> {
  const deadline = Date.now() + LOCK_WAIT_MS
  for (;;) {
    try {
      const fd = fs.openSync(file, 'wx')
      try {
        fs.writeSync(fd, `${process.pid}\n`)
      } finally {
        fs.closeSync(fd)
      }
      return () => fs.rmSync(file, { force: true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      if (staleLock(file)) fs.rmSync(file, { force: true })
      else if (Date.now() > deadline) throw new Error(`${file} is held by another smart-greylist command (remove it if none runs)`)
      else await new Promise((r) => setTimeout(r, 50))
    }
  }
}

function writeDurably(file: string, text: string): void {
  const old = fs.statSync(file, { throwIfNoEntry: false })
  const tmp = `${file}.${process.pid}.tmp`
  const fd = fs.openSync(tmp, 'w', old ? old.mode & 0o7777 : 0o644)
  try {
    fs.writeFileSync(fd, text)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  if (old) {
    fs.chmodSync(tmp, old.mode & 0o7777)
    if (process.getuid?.() === 0) fs.chownSync(tmp, old.uid, old.gid)
  }
  fs.renameSync(tmp, file)
  const dir = fs.openSync(path.dirname(file), 'r')
  try {
    fs.fsyncSync(dir)
  } finally {
    fs.closeSync(dir)
  }
}

/** The command's bound for one Redis command: scans and reads may take longer than a decision's. */
const COMMAND_REDIS_TIMEOUT_MS = 5000

export interface Session {
  readonly deps: Deps
  readonly admin: AdminStore
  /** Why Redis could not be reached; the store then fails every call. */
  readonly redisError: string | null
  readonly redisTarget: string
  /** The providers' shared ranges and the last refresh's status; null without Redis. */
  readonly refresh: Awaited<ReturnType<typeof readShared>> | null
}

const quiet = { loginfo: () => undefined, logwarn: () => undefined, logerror: () => undefined }

export class Context {
  private found?: ConfigSources

  /** Checks nothing yet: a missing directory is an error when the command first reads it. */
  constructor(readonly dir: string) {}

  /** What Haraka would read for this directory (it must exist). */
  get sources(): ConfigSources {
    this.found ??= sourcesForDir(this.dir)
    return this.found
  }

  /** Settings and lists as the plugin loads them, with the problems it would log. */
  async load(): Promise<Loaded> {
    await tlds.ready
    return load(this.sources, undefined, undefined, 'command')
  }

  /** The file as Haraka reads it: the instance's copy, else the package's. */
  filePath(name: string): string {
    const own = path.join(this.dir, name)
    return fs.existsSync(own) ? own : path.join(this.sources.shippedDir, name)
  }

  /**
   * Edits a file the admin owns under a lock: reads it once (the instance's copy, else the
   * package's template, whose comments then start the admin's copy), lets `change` decide, and
   * writes the new text, if any, through a temporary file and a rename, so Haraka never reads
   * half a file. An existing file keeps its mode and owner (the command may run as root for a
   * Haraka that does not); a symlinked file is written where the link points; file and
   * directory are fsynced. Two commands editing at once take turns instead of losing an edit.
   */
  async edit<T>(name: string, change: (lines: string[]) => { text: string | null; result: T }): Promise<{ file: string | null; result: T }> {
    const link = path.join(this.dir, name)
    // Named the same way (absolute) whether the file is there yet or not.
    const dir = fs.existsSync(this.dir) ? fs.realpathSync(this.dir) : path.resolve(this.dir)
    const file = fs.existsSync(link) ? fs.realpathSync(link) : path.join(dir, name)
    const unlock = await lock(`${file}.lock`)
    try {
      const source = fs.existsSync(file) ? file : path.join(this.sources.shippedDir, name)
      const lines = fs.existsSync(source) ? fs.readFileSync(source, 'utf8').split(/\r?\n/) : []
      const { text, result } = change(lines)
      if (text === null) return { file: null, result }
      writeDurably(file, text)
      return { file, result }
    } finally {
      unlock()
    }
  }

  /**
   * Runs `work` with the decision code's dependencies and a Redis session; closes Redis however
   * `work` ends. With `requireRedis`, an unreachable Redis is an error before `work` runs.
   */
  async withSession<T>(opts: { dns?: string[]; requireRedis: boolean }, work: (s: Session) => Promise<T>): Promise<T> {
    const loaded = await this.load()
    let db: RedisClient | undefined
    const runtime = { client: () => db, dnsServers: opts.dns, redisTimeoutMs: COMMAND_REDIS_TIMEOUT_MS, readOnly: true }
    // Built before Redis is opened: a bad --dns fails here with nothing to close.
    let deps = buildDeps(loaded, runtime)
    const target = redisTarget(loaded.redis)
    let redisError: string | null = null
    try {
      // connectTimeout bounds the TCP connect only; a Redis that accepts and never answers is bounded here.
      db = await withTimeout(openRedis(loaded.redis, quiet), COMMAND_REDIS_TIMEOUT_MS, 'Redis connect')
    } catch (err) {
      redisError = (err as Error).message || String(err)
      if (opts.requireRedis) throw new Error(`Redis at ${target} is unreachable: ${redisError}`)
    }
    try {
      const admin = new AdminStore(
        () => db,
        () => COMMAND_REDIS_TIMEOUT_MS,
      )
      let refresh: Session['refresh'] = null
      if (db) {
        // The providers' ranges as every MX has them: the files' with the shared refresh applied.
        const bounded = new BoundedRedis(
          () => db,
          () => COMMAND_REDIS_TIMEOUT_MS,
        )
        refresh = await readShared(
          bounded,
          loaded.config.redis.prefix,
          loaded.fileProviders.map((p) => p.id),
          sharedCheck(loaded.config, loaded.anchors, Date.now()),
        ).catch(() => null)
        if (refresh?.shared.size) deps = buildDeps(load(this.sources, undefined, undefined, 'command', refresh.shared), runtime)
      }
      return await work({ deps, admin, redisError, redisTarget: target, refresh })
    } finally {
      await closeRedis(db)
    }
  }
}
