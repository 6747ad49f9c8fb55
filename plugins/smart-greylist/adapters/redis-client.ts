// The one way this package makes and uses a Redis client, for the plugin and the command alike:
// options merged exactly as haraka-plugin-redis merges them (redis.ini [server] under the
// plugin's [redis], `db` mapped to `database`), every client (a single Redis's, a Cluster's, a
// Sentinel set's) made by node-redis, our own declared dependency at the version
// haraka-plugin-redis uses (a single Redis's with haraka-plugin-redis's options, but here: see
// openSingle), and every command bounded in time with its failure classified into a StoreError.
import { dirname } from 'node:path'
import * as redis from 'redis'
import { parseNodeList, SCHEMA, type Config, type RedisNode } from '../core/settings'
import type { RedisClient, RedisNodeClient } from './haraka-types'
import { TimeoutError, withTimeout } from './timeout'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const redisPlugin = require('haraka-plugin-redis') as {
  normalize_redis_ini(raw: unknown): { server: Record<string, unknown> }
  merge_redis_ini(this: { cfg: { redis: Record<string, unknown> }; redisCfg: unknown }): void
}

/** One Redis's node-redis client, before it is given its one master. */
export type SingleClient = Omit<RedisClient, 'sgMasters'> & { sendCommand(args: string[]): Promise<unknown> }

interface NodeRedis {
  createCluster(options: unknown): ClusterLike
  createSentinel(options: unknown): SentinelLike
  createClient(options: unknown): SingleClient & Emitter & { connect(): Promise<unknown> }
}
interface Emitter {
  on(event: string, listener: (...args: unknown[]) => void): unknown
}
interface ClusterLike extends Omit<RedisClient, 'sgMasters' | 'sgMasterOf'>, Emitter {
  readonly masters: readonly unknown[]
  readonly slots: readonly unknown[]
  nodeClient(node: unknown): Promise<RedisNodeClient>
  connect(): Promise<unknown>
  destroy(): void
}
interface SentinelLike extends Omit<RedisClient, 'sgMasters' | 'sgMasterOf' | 'destroy'>, Emitter {
  sendCommand(isReadonly: boolean, args: string[]): Promise<unknown>
  connect(): Promise<unknown>
  destroy(): Promise<void>
}

// node-redis, typed as the few members this file uses (its own types are generic over modules and scripts).
const nodeRedis: NodeRedis = redis
// The slot of a key, computed by the same library our node-redis routes commands with.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const keySlot = require(
  require.resolve('cluster-key-slot', { paths: [require.resolve('@redis/client', { paths: [dirname(require.resolve('redis/package.json'))] })] }),
) as (key: string) => number

/** Where the state lives: one Redis (host/port/db as haraka-plugin-redis has it), a Cluster, or a Sentinel set. */
export type Topology =
  | { readonly kind: 'single' }
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisNode[] }
  | { readonly kind: 'sentinel'; readonly nodes: readonly RedisNode[]; readonly name: string }

export interface RedisOptions {
  /** node-redis client options (for Cluster and Sentinel: those of each node). */
  readonly client: Record<string, unknown>
  readonly topology: Topology
  readonly use: 'daemon' | 'command'
}

/** The [redis] keys of smart-greylist.ini that are this plugin's own (the schema's), not node-redis's. */
const OWN_KEYS: readonly string[] = Object.keys(SCHEMA.redis.keys)

export interface Logger {
  loginfo(msg: string): void
  logwarn(msg: string): void
  logerror(msg: string): void
}

export class StoreError extends Error {
  constructor(
    readonly kind: 'unavailable' | 'timeout' | 'busy' | 'failed',
    message: string,
  ) {
    super(message)
    this.name = 'StoreError'
  }
}

/**
 * Client options from redis.ini (as haraka-config read it) and the [redis] section of
 * smart-greylist.ini. `daemon` (the plugin) reconnects forever with backoff; the command gives up
 * at the first failure so it can answer and exit.
 */
export function redisClientOptions(redisIni: unknown, ownSection: unknown, settings: Config['redis'], use: 'daemon' | 'command'): RedisOptions {
  const section = (ownSection ?? {}) as Record<string, unknown>
  const own = Object.fromEntries(Object.entries(section).filter(([k]) => !OWN_KEYS.includes(k)))
  // haraka-plugin-redis's own merge, run on a scratch object so plugin and command share it.
  const scratch = { cfg: { redis: own }, redisCfg: redisPlugin.normalize_redis_ini(redisIni ?? {}) }
  redisPlugin.merge_redis_ini.call(scratch)
  const opts = scratch.cfg.redis
  const socket = (opts.socket ?? {}) as Record<string, unknown>
  const client = {
    ...opts,
    // A command issued while disconnected fails at once instead of queueing past its timeout.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: use === 'daemon' ? 2000 : 3000,
      ...socket,
      reconnectStrategy: use === 'daemon' ? (n: number) => Math.min(100 * 2 ** n, 5000) : false,
    },
  }
  return { client, topology: redisTopology(settings), use }
}

/** Cluster when `cluster` names nodes, else Sentinel when `sentinels` does, else one Redis. */
export function redisTopology(settings: Config['redis']): Topology {
  const nodes = (list: readonly string[]): RedisNode[] => {
    const parsed = parseNodeList(list.join(' '))
    return Array.isArray(parsed) ? parsed : []
  }
  if (settings.cluster.length) return { kind: 'cluster', nodes: nodes(settings.cluster) }
  if (settings.sentinels.length) return { kind: 'sentinel', nodes: nodes(settings.sentinels), name: settings.sentinel_name }
  return { kind: 'single' }
}

/** What looks wrong in the Redis settings, as lines for the load report. */
export function redisProblems(opts: RedisOptions): string[] {
  const db = Number(opts.client.database ?? 0)
  if (opts.topology.kind === 'cluster' && db !== 0) return [`[redis] db = ${db} is not used with a cluster: Redis Cluster has database 0 only`]
  return []
}

/** Where the options point, for log lines and error messages (never the password). */
export function redisTarget(opts: RedisOptions): string {
  const t = opts.topology
  const nodes = (n: readonly RedisNode[]): string => n.map((x) => (x.host.includes(':') ? `[${x.host}]:${x.port}` : `${x.host}:${x.port}`)).join(',')
  if (t.kind === 'cluster') return `redis-cluster://${nodes(t.nodes)}`
  const db = text(opts.client.database, '0')
  if (t.kind === 'sentinel') return `redis-sentinel://${nodes(t.nodes)}/${t.name}/${db}`
  const s = (opts.client.socket ?? {}) as Record<string, unknown>
  const where = typeof s.path === 'string' && s.path ? s.path : `${text(s.host, '127.0.0.1')}:${text(s.port, '6379')}`
  return `redis://${where}/${db}`
}

/** Why a connection (or an attempt at one) failed, as log lines name it. */
export type DownCause = 'refused' | 'timed out' | 'silent' | 'closed' | 'failed'

/** What a single Redis's client tells its owner (RedisConnection) about its connection. */
export interface LinkWatch {
  /** An attempt, or the connection, failed; `gone`: this client has been torn down, a new one is needed. */
  down(cause: DownCause, message: string, gone: boolean): void
  /** Connected and answering (the first time and after each reconnect). */
  up(): void
  /** Given at once, before connecting ends: tears the client down, whatever state it is in. */
  closer(close: (ms: number) => Promise<void>): void
}

/** How a connection failure reads in a log line: the cause, named. */
export function causeOf(err: unknown): DownCause {
  const e = err as { code?: unknown; name?: unknown; message?: unknown }
  const msg = typeof e?.message === 'string' ? e.message : ''
  if (e?.code === 'ECONNREFUSED') return 'refused'
  if (e?.name === 'RedisSilentError') return 'silent'
  if (e?.name === 'ConnectionTimeoutError' || e?.code === 'ETIMEDOUT' || /timeout/i.test(msg)) return 'timed out'
  if (e?.code === 'ECONNRESET' || e?.code === 'EPIPE' || /socket closed unexpectedly/i.test(msg)) return 'closed'
  return 'failed'
}

const CAUSE_TEXT: Record<DownCause, string> = {
  refused: 'connection refused',
  'timed out': 'connect timed out',
  silent: 'connected but silent',
  closed: 'connection closed',
  failed: 'failed',
}

/** "connection refused: connect ECONNREFUSED 127.0.0.1:6379" */
export function causeText(cause: DownCause, message: string): string {
  return message ? `${CAUSE_TEXT[cause]}: ${message}` : CAUSE_TEXT[cause]
}

/**
 * Opens a client. `watch` (the plugin's connections) hears of every failure and recovery of a
 * single Redis's client instead of a log line per attempt, and gets a way to tear the client
 * down before it has connected; without it (the command) failures are only the rejection.
 */
export function openRedis(opts: RedisOptions, log: Logger, watch?: LinkWatch): Promise<RedisClient> {
  const t = opts.topology
  if (t.kind === 'single') return openSingle(opts, log, watch)
  // Each node gets the single-Redis options but its own address.
  const { socket, database, ...common } = opts.client as { socket: Record<string, unknown>; database?: unknown }
  const { host: _h, port: _p, path: _s, ...nodeSocket } = socket
  const node = { ...common, socket: nodeSocket }
  const target = redisTarget(opts)
  if (t.kind === 'cluster') {
    const cluster = nodeRedis.createCluster({
      rootNodes: t.nodes.map((n) => ({ socket: { host: n.host, port: n.port } })),
      // Connecting needs one node that knows the slots, not every master: a client can be made
      // while a master is down, and picks up the promoted replica.
      minimizeConnections: true,
      defaults: {
        ...node,
        // A node that went away is not waited for: node-redis would retry its address forever,
        // while the cluster moves its slots to a replica. Its commands fail (fail open), the
        // health probe sees it, and after dead_after_ms a new client reads the new topology.
        socket: {
          ...nodeSocket,
          ...(opts.use === 'daemon' ? { reconnectStrategy: (n: number) => (n >= 3 ? new Error('cluster node unreachable') : 100 * 2 ** n) } : {}),
        },
      },
    })
    cluster.on('error', (err) => log.logwarn(`${target}: ${(err as Error).message}`))
    cluster.on('node-error', (err, where) => log.logwarn(`${target} node ${nodeName(where)}: ${(err as Error).message}`))
    const withMasters = Object.assign(cluster, {
      // Connected lazily, per command: a master that is still connecting holds up only its own probe.
      sgMasters: () =>
        Promise.resolve(
          cluster.masters.map((m): RedisNodeClient => ({
            address: (m as { address: string }).address,
            sendCommand: async (args) => (await cluster.nodeClient(m)).sendCommand(args),
          })),
        ),
      sgMasterOf: (key: string) => (cluster.slots[keySlot(key)] as { master?: { address?: string } } | undefined)?.master?.address,
    })
    return connected(withMasters, cluster.connect(), () => cluster.destroy(), log, target)
  }
  return askSentinels(t.nodes, t.name, nodeSocket).then(() =>
    openSentinel(t.name, t.nodes, { ...node, ...(database === undefined ? {} : { database }) }, nodeSocket, log, target),
  )
}

/**
 * Fails with a plain message when no sentinel answers or none knows the master: node-redis's
 * own connect retries for many seconds and prints each failure to stdout.
 */
async function askSentinels(nodes: readonly RedisNode[], name: string, socket: Record<string, unknown>): Promise<void> {
  const errors: string[] = []
  for (const n of nodes) {
    const client = nodeRedis.createClient({ socket: { ...socket, host: n.host, port: n.port, reconnectStrategy: false } })
    client.on('error', () => undefined)
    try {
      await client.connect()
      const addr = await client.sendCommand(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name])
      if (addr) return
      errors.push(`${n.host}:${n.port} does not know master ${name}`)
    } catch (err) {
      errors.push(`${n.host}:${n.port} ${(err as Error).message}`)
    } finally {
      await closeRedis(client, 200)
    }
  }
  throw new Error(`no sentinel names a master: ${errors.join('; ')}`)
}

function openSentinel(
  name: string,
  nodes: readonly RedisNode[],
  nodeOptions: Record<string, unknown>,
  socket: Record<string, unknown>,
  log: Logger,
  target: string,
): Promise<RedisClient> {
  const sentinel = nodeRedis.createSentinel({
    name,
    sentinelRootNodes: nodes.map((n) => ({ host: n.host, port: n.port })),
    nodeClientOptions: nodeOptions,
    sentinelClientOptions: { socket },
    // Bounds node-redis's retries when the topology changes under a command (default 16, one per second).
    maxCommandRediscovers: 3,
  })
  sentinel.on('error', (err) => log.logwarn(`${target}: ${(err as Error).message}`))
  sentinel.on('client-error', (ev) => {
    const e = ev as { type?: string; node?: unknown; error?: Error }
    log.logwarn(`${target} ${String(e.type ?? '').toLowerCase()} ${nodeName(e.node)}: ${e.error?.message ?? ''}`)
  })
  // The master as a plain node: sentinel.sendCommand routes to whichever node is master now.
  const master: RedisNodeClient = { sendCommand: (args) => sentinel.sendCommand(false, args) }
  const withMasters = Object.assign(sentinel, { sgMasters: () => Promise.resolve([master]) })
  return connected(withMasters, sentinel.connect(), () => void sentinel.destroy().catch(() => undefined), log, target)
}

/**
 * One Redis's client, one per caller whatever Redis does: node-redis reconnects it by itself (the
 * options' reconnectStrategy, bounded back-off), so a failed attempt never makes a second client.
 * node-redis bounds the TCP connect (connectTimeout) but not the handshake after it: a Redis that
 * accepts and never answers (SIGSTOP, a full backlog) would hold the client for ever, so the
 * handshake gets the same bound, past which the client is torn down as `silent` (the owner makes
 * the next one). Made from haraka-plugin-redis's options as its get_redis_client would, but
 * here, so the client is ours to tear down before it connects.
 */
function openSingle(opts: RedisOptions, log: Logger, watch?: LinkWatch): Promise<RedisClient> {
  const target = redisTarget(opts)
  const client = nodeRedis.createClient(opts.client) as ReturnType<NodeRedis['createClient']> & {
    readonly isReady?: boolean
    destroy(): void
  }
  const socket = (opts.client.socket ?? {}) as { connectTimeout?: unknown }
  const handshakeMs = typeof socket.connectTimeout === 'number' ? socket.connectTimeout : 3000
  // Where the client is: 'tcp' connecting (bounded by connectTimeout), 'handshake' (bounded here),
  // 'ready', 'waiting' before node-redis's next attempt.
  let phase: 'tcp' | 'handshake' | 'ready' | 'waiting' = 'tcp'
  // Torn down (by its owner or as silent): whatever it still emits is dropped. A connection
  // dropped under commands gets their replies late (a SIGSTOPped Redis continued): node-redis
  // then reports its empty queue as a raw TypeError, which is not news to anyone.
  let finished = false
  // Torn down while a TCP connect was under way: node-redis can only be stopped once it ends.
  let destroyPending = false
  let handshake: NodeJS.Timeout | undefined
  let giveUp: (err: Error) => void = () => undefined

  const destroy = (): void => {
    clearTimeout(handshake)
    if (phase === 'tcp') {
      destroyPending = true
      return
    }
    destroyPending = false
    try {
      client.destroy()
    } catch {
      // already closed
    }
  }
  const finish = (): void => {
    if (finished) return
    finished = true
    destroy()
  }
  client.on('connect', () => {
    phase = 'handshake'
    if (finished) return destroy()
    handshake = setTimeout(() => {
      if (finished) return
      const message = `accepted the connection but did not answer within ${handshakeMs} ms`
      finish()
      watch?.down('silent', message, true)
      giveUp(Object.assign(new Error(message), { name: 'RedisSilentError' }))
    }, handshakeMs)
    handshake.unref()
  })
  client.on('ready', () => {
    phase = 'ready'
    clearTimeout(handshake)
    if (finished) return destroy()
    watch?.up()
  })
  client.on('reconnecting', () => {
    phase = 'tcp'
  })
  client.on('error', (err) => {
    clearTimeout(handshake)
    phase = 'waiting'
    if (destroyPending) destroy()
    if (finished) return
    const e = err as Error
    watch?.down(causeOf(e), e.message, false)
  })
  const close = async (ms: number): Promise<void> => {
    if (finished) return
    // Lets the replies of commands in flight arrive: PING is answered after them (one connection,
    // in order). node-redis's close() would too, but once it has begun its socket can no longer
    // be destroyed: a silent Redis would keep it open, and answer it late.
    if (phase === 'ready' && ms > 0) await withTimeout(client.sendCommand(['PING']), ms, 'Redis QUIT').catch(() => undefined)
    finish()
  }
  watch?.closer(close)
  return new Promise<RedisClient>((resolve, reject) => {
    giveUp = reject
    client.connect().then(
      () => {
        if (finished) return reject(new Error('closed while connecting'))
        if (!watch) log.loginfo(`connected to ${target}`)
        resolve(withOneMaster(Object.assign(client, { sgClose: close })))
      },
      (err: Error) => {
        finish()
        reject(err)
      },
    )
  })
}

/** Resolves once connected; a client that failed to connect is torn down, not left reconnecting. */
async function connected(db: RedisClient, connecting: Promise<unknown>, destroy: () => void, log: Logger, target: string): Promise<RedisClient> {
  try {
    await connecting
  } catch (err) {
    destroy()
    throw err
  }
  log.loginfo(`connected to ${target}`)
  return db
}

function nodeName(where: unknown): string {
  const w = (where ?? {}) as { host?: unknown; port?: unknown }
  return `${text(w.host, '?')}:${text(w.port, '?')}`
}

/** One Redis is its own one master. */
export function withOneMaster(client: SingleClient): RedisClient {
  const master: RedisNodeClient = { sendCommand: (args) => client.sendCommand(args) }
  return Object.assign(client, { sgMasters: () => Promise.resolve([master]) })
}

/** Every key of one node under `pattern`, in batches (SCAN: the server is never blocked). */
export async function* scanNode(node: RedisNodeClient, pattern: string, timeoutMs: number): AsyncGenerator<string[]> {
  let cursor = '0'
  do {
    const reply = (await withTimeout(node.sendCommand(['SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000']), timeoutMs, 'Redis SCAN')) as [string, string[]]
    cursor = String(reply[0])
    if (reply[1].length) yield reply[1]
  } while (cursor !== '0')
}

/**
 * Closes a client within `ms`: QUIT when Redis answers, else the socket is dropped. Never throws:
 * node-redis throws synchronously from disconnect() on a client that closed meanwhile, and an
 * unhandled rejection here would take Haraka down.
 */
export async function closeRedis(
  db: Pick<RedisClient, 'isOpen' | 'close' | 'quit' | 'destroy' | 'disconnect' | 'sgClose'> | undefined,
  ms = 1000,
): Promise<void> {
  if (!db) return
  // A single Redis's client (openSingle) closes itself, in whatever state it is.
  if (db.sgClose) return db.sgClose(ms)
  if (db.isOpen === false) return
  try {
    // close() (node-redis 5: clients, Cluster, Sentinel) lets pending replies arrive; quit() on older ones.
    const closing = db.close?.() ?? db.quit?.()
    if (closing) await withTimeout(closing, ms, 'Redis QUIT')
  } catch {
    try {
      await (db.destroy ? db.destroy() : db.disconnect?.())
    } catch {
      // already closed
    }
  }
}

/** Runs commands on whatever client is current, each bounded by the configured timeout. */
export class BoundedRedis {
  constructor(
    private readonly client: () => RedisClient | undefined,
    private readonly timeoutMs: () => number,
  ) {}

  ready(): RedisClient {
    const db = this.client()
    if (!db) throw new StoreError('unavailable', 'no Redis connection yet')
    if (db.isReady === false) throw new StoreError('unavailable', 'Redis is not connected')
    return db
  }

  async run<T>(command: (db: RedisClient) => Promise<T>): Promise<T> {
    const db = this.ready()
    try {
      return await withTimeout(command(db), this.timeoutMs(), 'Redis')
    } catch (err) {
      if (err instanceof StoreError) throw err
      if (err instanceof TimeoutError) throw new StoreError('timeout', err.message)
      const msg = err instanceof Error ? err.message : String(err)
      const offline = /closed|offline|ECONNREFUSED|socket/i.test(msg)
      throw new StoreError(offline ? 'unavailable' : 'failed', msg)
    }
  }
}

/** An option's value as text: a string or number as it is, anything else as `fallback`. */
function text(v: unknown, fallback: string): string {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : fallback
}
