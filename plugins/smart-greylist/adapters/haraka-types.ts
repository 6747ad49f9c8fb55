// The few parts of Haraka's objects this plugin touches, typed structurally so that
// neither Haraka nor its test fixtures are needed to compile or to unit-test the core.

export type Next = (code?: number, msg?: unknown) => void

export interface Results {
  add(plugin: object | string, obj: Record<string, unknown>): void
  get(plugin: object | string): Record<string, unknown> | undefined
  /** haraka-results >= 2: publishes a result to Redis (result-<uuid>) as haraka-plugin-watch reads them, without storing it. */
  redis_publish?(name: string, obj: Record<string, unknown>): void
}

/** Haraka <= 3.1 exposes address() as a method, >= 3.2 as a property. */
export interface Address {
  user?: string | null
  host?: string | null
  address?: string | (() => string)
  isNull?: () => boolean
}

/** haraka-message-stream: the message as received, piped to a reader. */
export interface MessageStream {
  pipe(destination: NodeJS.WritableStream, options?: { skip_headers?: boolean; line_endings?: string }): unknown
  /** Tears down the active pipe (haraka-message-stream >= 2). */
  unpipe?(): void
  pause?(): void
  resume?(): void
}

export interface Transaction {
  uuid: string
  mail_from: Address | null
  rcpt_to: Address[]
  results: Results
  notes: Record<string, unknown>
  add_header?(name: string, value: string): void
  /** Set once DATA has begun. */
  message_stream?: MessageStream
  header?: { get(name: string): string }
}

export interface Connection {
  uuid: string
  remote: { ip: string | null; is_private?: boolean; is_local?: boolean; host?: string | null }
  hello: { host?: string | null; verb?: string | null }
  relaying: boolean
  transaction: Transaction | null
  results: Results
  notes: Record<string, unknown>
  loginfo(plugin: object, msg: string): void
  logwarn(plugin: object, msg: string): void
  logerror(plugin: object, msg: string): void
}

export interface ServerLike {
  notes: Record<string, unknown>
}

/** Whether a client can take commands now (node-redis sets it; absent: assume it can). */
export interface RedisLiveness {
  readonly isReady?: boolean
}

/** What a decision sends through node-redis (v4/v5, camelCase): the scripts and small reads and writes. */
export interface DecisionRedis extends RedisLiveness {
  evalSha(sha1: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  get(key: string): Promise<string | null>
  set(key: string, value: string, options?: { PX?: number; NX?: true }): Promise<unknown>
  hGet(key: string, field: string): Promise<string | null | undefined>
}

/** What the operator's command reads and removes besides (list, flush, stats, check, migrate). */
export interface AdminRedis extends DecisionRedis {
  hmGet(key: string, fields: string[]): Promise<(string | null)[]>
  hGetAll(key: string): Promise<Record<string, string>>
  pTTL(key: string): Promise<number>
  del(keys: string[]): Promise<number>
  hDel(key: string, fields: string[]): Promise<number>
  hSet(key: string, fields: Record<string, string>): Promise<number>
  pExpire(key: string, ms: number): Promise<unknown>
  renameNX(from: string, to: string): Promise<unknown>
  zRangeWithScores(key: string, start: number, stop: number, options?: { REV: true }): Promise<{ value: string; score: number }[]>
  /** A plain client per master, for what goes to every master rather than by key: SCAN, the TIME probe. */
  sgMasters(): Promise<RedisNodeClient[]>
}

/** A client as redis-client.ts opens it: one Redis, a Cluster or a Sentinel set. */
export interface RedisClient extends AdminRedis {
  readonly isOpen?: boolean
  /** Cluster clients: the address (host:port) of the master that holds a key's slot now. */
  sgMasterOf?(key: string): string | undefined
  // Closing differs across node-redis versions and topologies (redis-client.ts closeRedis).
  quit?(): Promise<unknown>
  close?(): Promise<unknown>
  disconnect?(): Promise<unknown>
  destroy?(): unknown
  /** A single Redis's client: closes within `ms`, connected or not (redis-client.ts openSingle). */
  sgClose?(ms: number): Promise<void>
}

/** One Redis server (a master), for what goes to every master rather than by key. */
export interface RedisNodeClient {
  /** host:port, when there can be several masters (Cluster). */
  readonly address?: string
  sendCommand(args: string[]): Promise<unknown>
}

export function addressOf(addr: Address | null | undefined): string {
  if (!addr) return ''
  if (typeof addr.address === 'function') return addr.address() ?? ''
  if (typeof addr.address === 'string') return addr.address
  if (addr.user && addr.host) return `${addr.user}@${addr.host}`
  return ''
}

/** haraka-config's reader, as much of it as is used here (a plugin's `this.config`, or module_config's). */
export interface ConfigReader {
  get(name: string, ...args: unknown[]): unknown
  root_path?: string
  overrides_path?: string
}
